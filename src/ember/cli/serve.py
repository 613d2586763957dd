"""`ember serve`: the API server under uvicorn."""

from __future__ import annotations

import logging

import click

from ember.cli.common import load_settings


@click.command()
@click.option("--host", default=None, help="address to bind (default 127.0.0.1)")
@click.option("--port", type=int, default=None, help="port (default 8000)")
def serve(host: str | None, port: int | None) -> None:
    """Run the API server."""
    import uvicorn

    from ember.api.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(host=host, port=port)
    app = create_app(settings)
    click.echo(f"Ember is starting on http://{settings.host}:{settings.port}  (OpenAI base URL: /v1)")
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
