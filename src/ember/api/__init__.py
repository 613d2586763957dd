"""The HTTP API: OpenAI-shaped routes over the serving layer."""
