"""Engines turn messages into streamed deltas. Each registers itself in `ember.registry.engines`."""
