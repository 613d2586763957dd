"""The HTTP API: OpenAI-shaped routes over the pipeline."""
