"""Length-bucketed batches embed exactly as one text at a time does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ember.assets.assemble import ensure_asset
from ember.assets.catalogue import CATALOGUE
from ember.engines.embeddings import Embedder, buckets

CACHE = Path.home() / ".cache" / "ember"


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(ensure_asset(CATALOGUE["embed"], CACHE))


def test_buckets_hold_similar_lengths_within_the_budget() -> None:
    lengths = [40, 3, 250, 41, 7, 40, 300, 39, 12, 40]
    batches = list(buckets(lengths, batch_tokens=100, max_rows=3))
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    widths = [[lengths[i] for i in batch] for batch in batches]
    assert [w for batch in widths for w in batch] == sorted(lengths)  # shortest first
    assert all(len(b) <= 3 and (len(b) == 1 or len(b) * max(b) <= 100) for b in widths), widths
    assert [300] in widths  # longer than the budget: alone


def test_bucketed_batches_embed_as_one_text_at_a_time(embedder: Embedder) -> None:
    texts = [
        "fever",
        "A00 Cholera. Also called: cholera infection.",
        "Seizure. A seizure is an intermittent abnormality of nervous system physiology " * 3,
        "",
        "Type 2 diabetes mellitus with hyperglycemia",
        "word " * 400,  # beyond MAX_TOKENS: cut
        "chest pain radiating to the left arm",
    ]
    alone = np.stack([embedder.embed([t])[0] for t in texts])
    seen: list[int] = []
    together = embedder.embed(texts, batch_tokens=64, progress=seen.append)  # several buckets, padded within
    assert sum(seen) == len(texts) and len(seen) > 2
    cosine = (alone * together).sum(axis=1)
    assert np.all(cosine > 1 - 1e-5), cosine
    assert np.allclose(np.linalg.norm(together, axis=1), 1, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)
