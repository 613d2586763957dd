"""Sentence embeddings with the packaged all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime: texts → unit vectors.

Mean pooling over the attention mask, then L2 normalisation, as sentence-transformers does for this model,
so a dot product is a cosine similarity. Texts are cut at `max_tokens` word pieces ([CLS] and [SEP]
included). Many texts at once are tokenized first, sorted by token count and run in buckets of similar
length (`buckets`), so that almost no time goes on padding; FULL's vector of a text does not depend on the
others in its batch (padding is masked), FAST's only slightly (its activations are quantized per batch). The
model directory comes from `ember.assets` (role `embed`); this module never contacts a hub and keeps no index.
`Embedders` loads a model once per thread count for everything
one server does with it (`ember.engines.local_embedding` serves it on `POST /v1/embeddings`).

The packaged file stores int8 weights but computes in float32 (FULL). `fast_model` derives FAST from it once:
the same weights with every MatMul quantized for int8 arithmetic (dynamic, per-channel), about 1.9x the
throughput on a CPU with VNNI, at a cosine of ~0.99 to FULL's vectors. The health knowledge index uses FAST
(44,000 entries); everything else keeps FULL, whose vectors its thresholds were set on.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
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
BATCH_TOKENS = 2048  # padded tokens per inference call (rows x longest row); 8192 ran ~15% slower on 2 cores
MAX_ROWS = 256  # rows per inference call, however short

FULL = "model.onnx"  # the packaged model
# derived from FULL by `fast_model`, named after FULL's pinned checksum: a new package gets a new derivation
FAST = f"model-int8-{next(f.sha256 for f in CATALOGUE[ROLE].files if f.name == FULL)[:12]}.onnx"

Progress = Callable[[int], None]  # told how many more texts are embedded


def fast_model(directory: Path) -> str:
    """FAST's file name in `directory`, made from FULL there on the first call (a few seconds; one process at
    a time, written through a temporary name): FULL's graph constant-folded to float weights, then every
    MatMul dynamically quantized to int8 with a scale per output channel (onnxruntime.quantization)."""
    target = directory / FAST
    if target.is_file():
        return FAST
    with (directory / "model-int8.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.is_file():
            _quantize(directory / FULL, target)
            for old in directory.glob("model-int8*.onnx"):  # derived from an earlier package
                if old.name != FAST:
                    old.unlink(missing_ok=True)
    return FAST


def _quantize(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        folded, quantized = Path(work) / "folded.onnx", Path(work) / "quantized.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        quantize_dynamic(folded, quantized, weight_type=QuantType.QInt8, per_channel=True)
        quantized.rename(target)


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
    """One loaded model (`model`, a file in `directory`, beside `tokenizer.json`)."""

    def __init__(
        self, directory: Path, threads: int | None = None, max_tokens: int = MAX_TOKENS, model: str = FULL
    ) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1  # one operator at a time, each on every intra-op thread
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(directory / model), options, providers=["CPUExecutionProvider"])
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
    """The packaged MiniLM under `cache_dir`, loaded once per thread count (None: all cores) and model file,
    and shared by all its users in one process: triage, the health index and the recommender. Blocking on
    first use."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self._directory: Path | None = None
        self._loaded: dict[tuple[int | None, str], Embedder] = {}
        self._lock = threading.Lock()

    def directory(self) -> Path:
        """The assembled model directory (assembled on the first call; one thread at a time)."""
        with self._lock:
            if self._directory is None:
                self._directory = ensure_asset(CATALOGUE[ROLE], self.cache_dir)
            return self._directory

    def get(self, threads: int | None = None) -> Embedder:
        """FULL."""
        return self._load(threads, FULL)

    def fast(self, threads: int | None = None) -> Embedder:
        """FAST (made on the first call)."""
        return self._load(threads, fast_model(self.directory()))

    def _load(self, threads: int | None, model: str) -> Embedder:
        directory = self.directory()
        with self._lock:
            if (threads, model) not in self._loaded:
                self._loaded[threads, model] = Embedder(directory, threads=threads, model=model)
            return self._loaded[threads, model]
