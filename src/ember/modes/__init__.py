"""Modes are what the API calls models: `ember-instant`, `ember-thinking`, `ember-contemplating`,
`ember-auto`, `ember-health` and `ember-shopping`, each declaring the `Mode` contract (`modes.base`)."""
