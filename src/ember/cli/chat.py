"""`ember chat` and `ember transcribe`: talk to a mode, or have audio heard, in the terminal, either embedded
(the engines run in this process) or on a running Ember or other OpenAI-compatible server (`--url`)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import click

from ember.cli.common import AUDIO_FILE, load_settings
from ember.config import EngineSpec, Settings
from ember.intake.audio import AudioClip, load_audio
from ember.intake.images import load_image
from ember.transcripts import subtitles, verbose_json
from ember.types import (
    Answer,
    ChatRequest,
    Delta,
    GenerationParams,
    Message,
    Person,
    Tool,
    ToolCall,
    TranscribeOptions,
    Transcript,
)

if TYPE_CHECKING:
    from ember.engines.openai_compat import OpenAITranscriber
    from ember.engines.pool import EnginePool


class Hears(Protocol):
    async def transcribe(self, clip: AudioClip, options: TranscribeOptions) -> Transcript: ...


Turn = Callable[[list[Message]], AsyncIterator[Delta]]


async def _embedded_turns(mode: str, user: str, params: GenerationParams) -> tuple[Turn, Hears, Any]:
    from ember import registry
    from ember.services import Services
    from ember.serving.pipeline import Pipeline

    registry.load_plugins()
    pipeline = Pipeline(Services.open(load_settings()))
    chosen = pipeline.mode(mode)
    await pipeline.engines.start(chosen.roles)
    conversation: dict[str, str | None] = {"id": None}

    async def turn(history: list[Message]) -> AsyncIterator[Delta]:
        request = ChatRequest(mode, history, params, user=Person("", user), conversation_id=conversation["id"])
        async for delta in pipeline.chat(request, chosen):
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
    engine = OpenAICompatEngine(spec, load_settings())  # images go to the server as image_url parts
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
    ears = OpenAITranscriber(spec, load_settings())
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
    tools: tuple[Tool, ...] = (),
) -> None:
    s = load_settings()
    pictures = tuple(load_image(p, s.image_max_bytes, s.image_max_pixels) for p in images)  # for the first turn
    params = GenerationParams(max_tokens=max_tokens, tools=tools, parallel_tool_calls=False)  # one result a line
    turn, ears, closer = await (
        _remote_turns(mode, url, api_key, params) if url else _embedded_turns(mode, user, params)
    )
    history: list[Message] = []
    waiting: list[ToolCall] = []  # calls the answer made whose results the user has still to type
    try:
        async for line in _lines(audio, ears, load_settings()):
            if waiting:
                history.append(Message("tool", line, tool_call_id=waiting.pop(0).id))
                if waiting:
                    click.echo(f"(the result of {waiting[0].name})")
                    continue
            else:
                history.append(Message("user", line, pictures))
                pictures = ()
            answer = Answer()
            async for delta in turn(history):
                click.echo(answer.add(delta).content, nl=False)
            click.echo()
            history.append(Message("assistant", answer.text, tool_calls=answer.tool_calls))
            waiting = list(answer.tool_calls)
            for call in waiting:
                click.echo(f"-> {call.name}({call.arguments})")
            if waiting:
                click.echo(f"(the result of {waiting[0].name})")
    finally:
        await closer.close()


def _tools(path: Path | None) -> tuple[Tool, ...]:
    """The functions in a JSON file of OpenAI `tools` (none without a file), checked as the API checks them."""
    if path is None:
        return ()
    from pydantic import TypeAdapter, ValidationError

    from ember.api.protocol import ToolIn, tool_of
    from ember.errors import InvalidRequest

    try:
        offered = TypeAdapter(list[ToolIn]).validate_json(path.read_bytes())
        return tuple(tool_of(t.function, f"tools.{i}.function") for i, t in enumerate(offered))
    except (ValidationError, InvalidRequest) as exc:
        raise click.BadParameter(f"{path} is not a JSON list of OpenAI function tools: {exc}") from exc


@click.command()
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
@click.option(
    "--tools", "tools_file", type=AUDIO_FILE, default=None, help="offer the functions in this JSON file of OpenAI tools"
)
def chat(
    mode: str,
    url: str | None,
    api_key: str | None,
    user: str,
    audio: Path | None,
    images: tuple[Path, ...],
    max_tokens: int | None,
    tools_file: Path | None,
) -> None:
    """Chat in the terminal, streaming answers. /exit or Ctrl-D to leave. With --tools, a call the model makes
    (one at a time) is shown as `-> name(arguments)` and the next line you type is its result."""
    tools = _tools(tools_file)
    asyncio.run(_chat_loop(mode, url, api_key, user, audio, images, max_tokens, tools))


async def _transcribe(file: Path, model: str, url: str | None, api_key: str | None, language: str | None) -> Transcript:
    settings = load_settings().with_speech_role(model)
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


@click.command()
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
