"""Health: a citable knowledge index and red-flag triage rules for the `ember-health` mode."""
