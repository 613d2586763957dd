"""A server's health knowledge: the triage embedder, and the knowledge index once it is built. A server
whose index is missing builds it in the background (`keep_built`) and answers meanwhile.

    knowledge = Knowledge(embedders)   # one per server (`ember.services.Services`), over embedders.cache_dir
    await knowledge.keep_built()       # in the server's task group: build if missing, log the progress
    knowledge.status()                 # {"ready", "building", "done", "total"} (and "error"), for /health
    index = await knowledge.index()    # the opened KnowledgeIndex, or None while it is not built
    triager = await knowledge.triager()

The build runs in a child process (`ember.medical.worker`) at the lowest CPU priority: its Python work never
holds the server's GIL, chat generation comes first for the CPU, and a shutdown ends it with a signal. An
index that appears by other means (`ember health build` in another shell) is opened just the same. This
module knows nothing of HTTP or of the language models.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from ember.engines.embeddings import Embedder, Embedders
from ember.medical.knowledge import KnowledgeIndex, built, index_dir
from ember.medical.triage import Triager

log = logging.getLogger(__name__)
LOG_EVERY_S = 5.0  # progress in the server log at most this often
LOG_EVERY_SHARE = 0.1  # or whenever another tenth is done
WORKER_ARGS: tuple[str, ...] = ()  # more arguments for the worker (tests: `--limit` and `--source`)


@dataclass
class Progress:
    """What the background build has said so far."""

    building: bool = False
    done: int = 0
    total: int = 0
    error: str | None = None
    logged_at: float = 0.0
    logged_done: int = 0


@dataclass
class Knowledge:
    """The health knowledge of one server, embedding with `embedders` (the server's shared ones) and kept
    under their cache directory. `build` off: a missing index stays missing."""

    embedders: Embedders
    build: bool = True
    progress: Progress = field(default_factory=Progress)
    _target: Path | None = field(default=None, repr=False)
    _triager: Triager | None = field(default=None, repr=False)
    _index: KnowledgeIndex | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def cache_dir(self) -> Path:
        return self.embedders.cache_dir

    def target(self) -> Path:
        """Where the index for these sources and this embedding model lives (blocking the first time)."""
        if self._target is None:
            self._target = index_dir(self.cache_dir, self.embedders.directory())
        return self._target

    def embedder(self) -> Embedder:
        """The triage embedder (FULL) on all cores (blocking the first time: it may assemble the model)."""
        return self.embedders.get()

    def load_triager(self) -> Triager:
        """The red-flag triager (blocking the first time: call from a thread)."""
        embedder = self.embedder()
        with self._lock:
            self._triager = self._triager or Triager(embedder)
            return self._triager

    def open_index(self) -> KnowledgeIndex | None:
        """The index, opened on the first call that finds it built; None until then (blocking: a thread)."""
        if self._index is None:
            target = self.target()
            if built(target):
                embedder = self.embedders.fast()  # what the index was built with
                with self._lock:
                    self._index = self._index or KnowledgeIndex(target, embedder)
        return self._index

    async def triager(self) -> Triager:
        if self._triager is not None:
            return self._triager
        return await anyio.to_thread.run_sync(self.load_triager)

    async def index(self) -> KnowledgeIndex | None:
        return self._index or await anyio.to_thread.run_sync(self.open_index)

    def status(self) -> dict[str, Any]:
        """For /health: ready (the index is built), building, and entries embedded of the total so far."""
        known = self._target  # found by `keep_built` at start; until then, not ready
        ready = self._index is not None or (known is not None and built(known))
        progress = self.progress
        status: dict[str, Any] = {
            "ready": ready,
            "building": progress.building and not ready,
            "done": len(self._index) if self._index is not None else progress.done,
            "total": len(self._index) if self._index is not None else progress.total,
        }
        if progress.error is not None and not ready:
            status["error"] = progress.error
        return status

    async def keep_built(self) -> None:
        """Build the index in a child process unless it is built or building is off; returns when it is
        built or the build failed (logged, and kept for `status`). Cancelling it stops the child."""
        started = time.monotonic()
        self.progress = Progress(building=self.build, logged_at=started)  # from the start: answers say so
        try:
            target = await anyio.to_thread.run_sync(self.target)
            if built(target):
                return
            if not self.build:
                log.warning("health index missing and not building it: ember-health answers without sources")
                return
            log.info("health index: building in the background; ember-health answers without sources until then")
            await self._run_worker()
        finally:
            self.progress.building = False
        if self.progress.error is None:
            await self.index()
            log.info("health index ready: %d entries in %.0f s", self.progress.total, time.monotonic() - started)
        else:
            log.warning("health index build failed: %s", self.progress.error)

    async def _run_worker(self) -> None:
        command = [sys.executable, "-m", "ember.medical.worker", str(self.cache_dir), *WORKER_ARGS]
        process = await anyio.open_process(command, stdin=subprocess.DEVNULL, stderr=None)
        try:
            assert process.stdout is not None
            buffered = b""
            async for chunk in process.stdout:
                *lines, buffered = (buffered + chunk).split(b"\n")
                for line in lines:
                    self._heard(json.loads(line))
            code = await process.wait()
            if code != 0 and self.progress.error is None:
                self.progress.error = f"the build worker exited with status {code}"
        finally:
            with anyio.CancelScope(shield=True):
                if process.returncode is None:
                    process.terminate()
                await process.wait()
            await process.aclose()

    def _heard(self, message: dict[str, Any]) -> None:
        progress = self.progress
        progress.error = message.get("error", progress.error)
        progress.done, progress.total = message.get("done", progress.done), message.get("total", progress.total)
        if message.get("ready"):
            progress.done = progress.total
        now = time.monotonic()
        step = max(1, int(progress.total * LOG_EVERY_SHARE))
        due = now - progress.logged_at >= LOG_EVERY_S or progress.done - progress.logged_done >= step
        if progress.total and due and (progress.done != progress.logged_done or not progress.done):
            progress.logged_at, progress.logged_done = now, progress.done
            share = 100 * progress.done // progress.total
            log.info("health index: %d of %d entries embedded (%d%%)", progress.done, progress.total, share)

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
