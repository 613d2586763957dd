"""Sentence embeddings with the packaged all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime: texts → unit vectors.

Mean pooling over the attention mask, then L2 normalisation, as sentence-transformers does for this model,
so a dot product is a cosine similarity. Texts are cut at `max_tokens` word pieces ([CLS] and [SEP]
included). Many texts at once are tokenized first, sorted by token count and run in buckets of similar
length (`buckets`), so that almost no time goes on padding; a text's vector does not depend on the others
in its batch (padding is masked). The model directory comes from `ember.assets` (role `embed`); this module
never contacts a hub and keeps no index. `Embedders` loads the model once per thread count for everything
one server does with it (`ember.engines.local_embedding` serves it on `POST /v1/embeddings`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Tokenizer

from ember.assets.assemble import ensure_asset
from ember.assets.catalogue import CATALOGUE

DIM = 384
MAX_TOKENS = 256  # the sequence length all-MiniLM-L6-v2 was trained at (sentence-transformers' max_seq_length)
ROLE = "embed"  # the packaged model's catalogue role
BATCH_TOKENS = 8192  # padded tokens per inference call (rows x longest row)
MAX_ROWS = 256  # rows per inference call, however short

Progress = Callable[[int], None]  # told how many more texts are embedded


def buckets(lengths: Sequence[int], batch_tokens: int = BATCH_TOKENS, max_rows: int = MAX_ROWS) -> Iterator[list[int]]:
    """Indices of `lengths` in batches of similar length: shortest first, each batch at most `max_rows`
    rows and, padded to its longest, at most `batch_tokens` tokens (a longer single row goes alone)."""
    batch: list[int] = []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        if batch and (len(batch) >= max_rows or (len(batch) + 1) * lengths[i] > batch_tokens):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


class Embedder:
    def __init__(self, directory: Path, threads: int | None = None, max_tokens: int = MAX_TOKENS) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1  # one operator at a time, each on every intra-op thread
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(directory / "model.onnx"), options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self.tokenizer.no_padding()  # each bucket is padded to its own longest row

    def embed(
        self, texts: Sequence[str], batch_tokens: int = BATCH_TOKENS, progress: Progress | None = None
    ) -> npt.NDArray[np.float32]:
        """One unit-length row per text, in the caller's order (an empty input gives a 0 x 384 array).
        `progress`, if given, is called after each inference call with the number of texts it embedded."""
        return self.embed_ids(self.tokenize(texts), batch_tokens, progress)

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's token ids as the model reads them: [CLS], word pieces, [SEP], cut at `max_tokens`."""
        return [encoding.ids for encoding in self.tokenizer.encode_batch(list(texts))]

    def embed_ids(
        self, ids: Sequence[Sequence[int]], batch_tokens: int = BATCH_TOKENS, progress: Progress | None = None
    ) -> npt.NDArray[np.float32]:
        """`embed` on texts `tokenize` has read."""
        vectors = np.empty((len(ids), DIM), dtype=np.float32)
        for rows in buckets([len(row) for row in ids], batch_tokens):
            vectors[rows] = self._run([ids[i] for i in rows])
            if progress is not None:
                progress(len(rows))
        return vectors

    def _run(self, rows: list[Sequence[int]]) -> npt.NDArray[np.float32]:
        width = max(len(row) for row in rows)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for n, row in enumerate(rows):
            ids[n, : len(row)] = row
            mask[n, : len(row)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden: npt.NDArray[np.float32] = self.session.run(["last_hidden_state"], feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: npt.NDArray[np.float32] = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        return unit


class Embedders:
    """The packaged MiniLM under `cache_dir`, loaded once per thread count (None: all cores) and shared by
    all its users in one process: triage, the health index and the recommender. Blocking on first use."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self._directory: Path | None = None
        self._loaded: dict[int | None, Embedder] = {}
        self._lock = threading.Lock()

    def directory(self) -> Path:
        """The assembled model directory (assembled on the first call; one thread at a time)."""
        with self._lock:
            if self._directory is None:
                self._directory = ensure_asset(CATALOGUE[ROLE], self.cache_dir)
            return self._directory

    def get(self, threads: int | None = None) -> Embedder:
        directory = self.directory()
        with self._lock:
            if threads not in self._loaded:
                self._loaded[threads] = Embedder(directory, threads=threads)
            return self._loaded[threads]
