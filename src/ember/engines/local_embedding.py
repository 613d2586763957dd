"""The packaged MiniLM (`ember.engines.embeddings`) as the engine of an embedding role: `engine = "onnx"`,
`model = "embed"`, the default `embed` role that `POST /v1/embeddings` uses.

It runs on the server's shared `Embedders` (with `spec.threads` intra-op threads; default all cores), on
worker threads, at most `spec.parallel` requests at once, so the event loop never waits on the model.
Vectors are unit length with DIM dimensions, and no other size is offered; each text is cut at MAX_TOKENS
tokens, and the tokens counted are the ones the model read ([CLS] and [SEP] included).
"""

from __future__ import annotations

import anyio

from ember import registry
from ember.config import EngineSpec, Settings
from ember.engines.base import Embeddings
from ember.engines.embeddings import DIM, ROLE, Embedder, Embedders
from ember.errors import ConfigError, EngineUnavailable, InvalidRequest


class LocalEmbeddingEngine:
    name = "onnx"

    def __init__(self, spec: EngineSpec, settings: Settings, embedders: Embedders) -> None:
        if spec.model != ROLE:
            raise ConfigError(f"the onnx embedding engine runs the packaged model {ROLE!r} only, not {spec.model!r}")
        self.spec = spec
        self.embedders = embedders
        self.active = 0
        self._embedder: Embedder | None = None
        self._slots = anyio.CapacityLimiter(spec.parallel)  # made, like every engine, inside the server's event loop

    async def start(self) -> None:
        if self._embedder is None:
            self._embedder = await anyio.to_thread.run_sync(self.embedders.get, self.spec.threads)

    async def embed(self, texts: list[str], dimensions: int | None) -> Embeddings:
        if dimensions is not None and dimensions != DIM:
            raise InvalidRequest(
                f"this model's vectors have {DIM} dimensions, and it cannot make them shorter or longer: "
                f"send dimensions={DIM} or leave it out",
                param="dimensions",
            )
        embedder = self._embedder
        if embedder is None:
            raise EngineUnavailable(f"embedding engine for {self.spec.model!r} is not started")

        def run() -> Embeddings:
            ids = embedder.tokenize(texts)
            return Embeddings(embedder.embed_ids(ids), sum(len(row) for row in ids))

        self.active += 1
        try:
            return await anyio.to_thread.run_sync(run, limiter=self._slots)
        finally:
            self.active -= 1

    async def close(self) -> None:
        self._embedder = None  # the model stays loaded in `Embedders`, which its other users share


registry.embedding_engines.add("onnx", LocalEmbeddingEngine)
