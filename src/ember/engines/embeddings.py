"""Sentence embeddings with the packaged all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime: texts → unit vectors.

Mean pooling over the attention mask, then L2 normalisation, as sentence-transformers does for this model,
so a dot product is a cosine similarity. Texts are cut at `max_tokens` word pieces. The model directory
comes from `ember.assets` (role `embed`); this module never contacts a hub and keeps no index.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Tokenizer

DIM = 384
MAX_TOKENS = 256
BATCH = 64


class Embedder:
    def __init__(self, directory: Path, threads: int | None = None, max_tokens: int = MAX_TOKENS) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(directory / "model.onnx"), options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

    def embed(self, texts: Sequence[str], batch: int = BATCH) -> npt.NDArray[np.float32]:
        """One unit-length row per text (an empty input gives a 0 x 384 array). Texts are batched in order
        of length, so that little time goes on padding, and returned in the caller's order."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        ranked = [texts[i] for i in order]
        out = [self._batch(ranked[i : i + batch]) for i in range(0, len(ranked), batch)]
        if not out:
            return np.zeros((0, DIM), dtype=np.float32)
        vectors = np.empty((len(texts), DIM), dtype=np.float32)
        vectors[order] = np.concatenate(out)
        return vectors

    def _batch(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden: npt.NDArray[np.float32] = self.session.run(["last_hidden_state"], feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: npt.NDArray[np.float32] = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        return unit
