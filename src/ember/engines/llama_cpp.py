"""llama.cpp in-process through xllamacpp (engine `llama_cpp_inprocess`; the default `llama_cpp` runs it in a
child process, `llama_process.py`): llama.cpp's own server engine, with continuous batching.

Each request runs `Server.handle_chat_completions` on a worker thread; chunks cross to the event loop
through a queue. When the consumer stops iterating, the next chunk's callback returns True, which makes
llama.cpp cancel the task and free its slot (within one token's time). A prompt still being read (prefill)
is read to its end first: the callback comes with the first token, and xllamacpp offers no other way to stop
(the `should_stop` it hands llama.cpp is always false), so `active` counts the generation until then. The
model file comes from `ember.assets`; this module does not download or verify anything itself. A role whose
options name an `mmproj` (the GGUF projector of a vision-language model) takes images natively; otherwise
it reads the images' text descriptions (`Message.descriptions`, made by the pipeline).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import xllamacpp as xlc

from ember import registry
from ember.assets.assemble import resolve_model
from ember.config import EngineSpec, Settings
from ember.engines.base import delta_from_chunk, error_from_payload, openai_body
from ember.engines.llama_params import server_params
from ember.errors import EngineError, EngineUnavailable
from ember.types import Capabilities, Delta, GenerationParams, Message

_END = object()


class LlamaCppEngine:
    """One loaded GGUF model serving `spec.parallel` slots of `spec.ctx_size` tokens each."""

    name = "llama_cpp_inprocess"
    server: str | None = None  # in this process, no server

    def __init__(self, spec: EngineSpec, settings: Settings) -> None:
        self.spec = spec
        self.settings = settings
        self.capabilities = Capabilities(
            image="mmproj" in spec.options, context_tokens=spec.ctx_size, parallel=spec.parallel
        )
        self.runtime: Any = None
        self.active = 0
        self._pool = ThreadPoolExecutor(max_workers=2 * spec.parallel, thread_name_prefix="llama")
        self._start_lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._start_lock:
            if self.runtime is not None:
                return
            path = await asyncio.to_thread(resolve_model, self.spec.model, self.settings.cache_dir)
            mmproj = self.spec.options.get("mmproj")
            if mmproj is not None:
                mmproj = str(await asyncio.to_thread(resolve_model, str(mmproj), self.settings.cache_dir))
            self.runtime = await asyncio.to_thread(xlc.Server, server_params(self.spec, str(path), mmproj))

    def _run(self, body: dict[str, object], put: Any, cancelled: threading.Event) -> None:
        def on_chunk(chunk: dict[str, Any]) -> bool:
            put(chunk)
            return cancelled.is_set()

        self.active += 1
        try:
            if not cancelled.is_set():
                self.runtime.handle_chat_completions(body, on_chunk)
        except Exception as exc:  # the C++ layer raises plain RuntimeErrors
            put(EngineError(f"llama.cpp failed: {exc}"))
        finally:
            self.active -= 1
            put(_END)

    async def stream(self, messages: list[Message], params: GenerationParams) -> AsyncIterator[Delta]:
        if self.runtime is None:
            raise EngineUnavailable(f"engine for {self.spec.model!r} is not started")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancelled = threading.Event()

        def put(item: object) -> None:
            if cancelled.is_set() and item is not _END:
                return
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
                loop.call_soon_threadsafe(queue.put_nowait, item)

        body = openai_body(messages, params, self.capabilities.image)
        loop.run_in_executor(self._pool, self._run, body, put, cancelled)
        try:
            while (item := await queue.get()) is not _END:
                if isinstance(item, Exception):
                    raise item
                if "error" in item:
                    raise error_from_payload(int(item["error"].get("code", 500)), item)
                if (delta := delta_from_chunk(item)) is not None:
                    yield delta
        finally:
            cancelled.set()

    async def close(self) -> None:
        runtime, self.runtime = self.runtime, None
        if runtime is not None:
            await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)
            holder = [runtime]
            del runtime
            await asyncio.to_thread(holder.clear)  # the destructor joins llama.cpp's loop thread


registry.engines.add("llama_cpp_inprocess", LlamaCppEngine)
