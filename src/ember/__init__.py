"""Ember: a self-hostable multimodal assistant behind an OpenAI-compatible API."""

__version__ = "0.1.0"
