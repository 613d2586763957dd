"""A scripted engine shipped in the package, for unit tests of the logic around engines.

Options (`EngineSpec.options`): `replies` (list of answers, used in turn; default: echo the last user
message), `echo_prompt` (answer with the whole prompt, every message as `role: content`: the worst case of
a model that obeys "repeat the text above"), `describe_images` (it cannot see: it reads the images' text
descriptions, as a real engine without vision does; without the option it takes images as they are),
`delay_s` (pause before each word), `fail_with` (an error message raised as EngineError).
"Tokens" are whitespace-separated words; prompt words beyond `ctx_size` raise ContextLengthExceeded,
like a real engine. `FakeTranscriber` is its speech twin: option `text` is what it "hears" in any clip
that is not silent. Neither loads a language or speech model, and neither is ever the only test of a feature.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

from ember import registry
from ember.config import EngineSpec, Settings
from ember.errors import ContextLengthExceeded, EngineError
from ember.intake.audio import AudioClip
from ember.types import (
    Capabilities,
    Delta,
    GenerationParams,
    Message,
    Segment,
    TranscribeOptions,
    Transcript,
    Usage,
    last_user_text,
)


class FakeEngine:
    name = "fake"
    server: str | None = None

    def __init__(self, spec: EngineSpec, settings: Settings | None = None) -> None:
        self.spec = spec
        self.settings = settings
        blind = bool(spec.options.get("describe_images", False))
        self.capabilities = Capabilities(image=not blind, context_tokens=spec.ctx_size, parallel=spec.parallel)
        replies = spec.options.get("replies")
        self._replies = itertools.cycle(replies) if replies else None
        self.echo_prompt = bool(spec.options.get("echo_prompt", False))
        self.delay_s = float(spec.options.get("delay_s", 0.0))
        self.fail_with: str | None = spec.options.get("fail_with")
        self.active = 0
        self.calls: list[tuple[list[Message], GenerationParams]] = []
        self.started = False

    async def start(self) -> None:
        self.started = True

    def script(self, replies: list[str]) -> None:
        """Answer with `replies` in turn from now on (health probes may have taken some of the earlier ones)."""
        self._replies = itertools.cycle(replies)

    def _reply(self, messages: list[Message]) -> str:
        if self.echo_prompt:
            return "\n".join(f"{m.role}: {m.content}" for m in messages)
        if self._replies is not None:
            return str(next(self._replies))
        last_user = last_user_text(messages)
        return f"You said: {last_user}"

    async def stream(self, messages: list[Message], params: GenerationParams) -> AsyncIterator[Delta]:
        if not self.capabilities.image:
            messages = [Message(m.role, m.as_text()) for m in messages]  # what a model that cannot see reads
        self.calls.append((messages, params))
        prompt_tokens = sum(len(m.content.split()) + 4 for m in messages)
        if prompt_tokens >= self.spec.ctx_size:
            raise ContextLengthExceeded(
                f"request ({prompt_tokens} tokens) exceeds the available context size ({self.spec.ctx_size} tokens)"
            )
        if self.fail_with:
            raise EngineError(self.fail_with)
        words = self._reply(messages).split(" ")
        limit = params.max_tokens or len(words)
        self.active += 1
        try:
            for i, word in enumerate(words[:limit]):
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                yield Delta(content=word if i == 0 else " " + word)
            finish = "length" if limit < len(words) else "stop"
            yield Delta(finish_reason=finish, usage=Usage(prompt_tokens, min(limit, len(words))))
        finally:
            self.active -= 1

    async def close(self) -> None:
        self.started = False


class FakeTranscriber:
    name = "fake"
    SILENCE_PEAK = 0.01

    def __init__(self, spec: EngineSpec, settings: Settings | None = None) -> None:
        self.text = str(spec.options.get("text", "what is the capital of France"))
        self.active = 0
        self.clips: list[tuple[AudioClip, TranscribeOptions]] = []

    async def start(self) -> None:
        return None

    async def transcribe(self, clip: AudioClip, options: TranscribeOptions) -> Transcript:
        self.clips.append((clip, options))
        silent = clip.samples.size == 0 or float(abs(clip.samples).max()) < self.SILENCE_PEAK
        text = "" if silent else self.text
        segments = (Segment(0.0, clip.duration, text),) if text else ()
        return Transcript(text, options.language or "en", clip.duration, segments)

    async def close(self) -> None:
        return None


registry.engines.add("fake", FakeEngine)
registry.speech_engines.add("fake", FakeTranscriber)
