"""Rankers for implicit feedback (numpy and scipy.sparse): popularity, item-kNN, EASE, and Ember's ranker.

Every ranker fits on a people x items interaction matrix and scores *profiles*: rows over the same items
saying what a person did (binary, or weighted). Scoring profiles rather than person ids is what lets the
live recommender score a person's newest events without refitting, and fold in people the fit never saw.

Ember's ranker is EASE (Steck 2019: a closed-form item-item model, B = I - P·diag(1/diag P) with
P = (XᵀX + λI)⁻¹) scored from a *recency-weighted* profile: each item a person touched weighs
`1 + boost · exp(-age / half_life)`, age counting that person's later interactions, so what they did last
pulls hardest. People with no usable history get popularity. This module knows nothing of the catalogue,
text or the database; it fits and scores arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt
from scipy import sparse

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]

EASE_LAMBDA = 100.0  # L2 weight of EASE: what the MovieLens-100k validation split picks (docs/shopping.md)
RECENCY_BOOST = 4.0  # extra weight of the latest item over an old one (validation pick, as below)
RECENCY_HALF_LIFE = 10.0  # later interactions after which the extra weight has fallen to 1/e
KNN_NEIGHBOURS = 100
MAX_MODEL_ITEMS = 3_000  # EASE inverts an items x items matrix: the most-interacted items only, to bound fit cost


@dataclass(frozen=True)
class Interactions:
    """Who touched what, when: parallel arrays of person index, item index and time (any unit)."""

    users: Ints
    items: Ints
    ts: npt.NDArray[np.float64]
    n_users: int
    n_items: int

    def matrix(self) -> sparse.csr_matrix:
        """The binary people x items matrix (repeats count once)."""
        ones = np.ones(len(self.users), dtype=np.float32)
        x = sparse.csr_matrix((ones, (self.users, self.items)), shape=(self.n_users, self.n_items))
        x.data[:] = 1.0  # duplicates were summed
        return x

    def recency_profiles(self, boost: float, half_life: float) -> sparse.csr_matrix:
        """People x items, each touched item weighted `1 + boost·exp(-age/half_life)` where `age` is how many
        of the person's interactions came after its latest one (0 for the last)."""
        order = np.lexsort((np.arange(len(self.users)), self.ts, self.users))
        users, items = self.users[order], self.items[order]
        starts = np.searchsorted(users, users, side="left")
        ends = np.searchsorted(users, users, side="right")
        position = np.arange(len(users)) - starts
        age = (ends - starts - 1 - position).astype(np.float32)
        weights = (1.0 + boost * np.exp(-age / half_life)).astype(np.float32)
        return _max_duplicates(users, items, weights, self.n_users, self.n_items)


def _max_duplicates(users: Ints, items: Ints, weights: Floats, n_users: int, n_items: int) -> sparse.csr_matrix:
    """A sparse matrix in which an item touched twice keeps its largest weight (its latest touch), not the sum."""
    keys = users * n_items + items
    order = np.lexsort((-weights, keys))
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[order][1:] != keys[order][:-1]
    keep = order[first]
    return sparse.csr_matrix(
        (weights[keep].astype(np.float32), (users[keep], items[keep])), shape=(n_users, n_items), dtype=np.float32
    )


def profile_vector(items: Ints, n_items: int, boost: float, half_life: float, strength: Floats | None = None) -> Floats:
    """One person's recency-weighted profile from their item indices in time order (oldest first);
    `strength` scales each interaction (e.g. a purchase over a view). Repeats keep their largest weight."""
    age = np.arange(len(items) - 1, -1, -1, dtype=np.float32)
    weights = (1.0 + boost * np.exp(-age / half_life)).astype(np.float32)
    if strength is not None:
        weights *= strength
    out = np.zeros(n_items, dtype=np.float32)
    np.maximum.at(out, items, weights)
    return out


class Ranker(Protocol):
    name: str

    def fit(self, x: sparse.csr_matrix) -> None:
        """Learn from the binary people x items matrix."""

    def score(self, profiles: sparse.csr_matrix | Floats) -> Floats:
        """Scores (rows x items) for profile rows over the fitted items."""
        ...


@dataclass
class Popularity:
    name: str = "popularity"
    counts: Floats = field(default_factory=lambda: np.zeros(0, dtype=np.float32))

    def fit(self, x: sparse.csr_matrix) -> None:
        self.counts = np.asarray(x.sum(axis=0), dtype=np.float32).ravel()

    def score(self, profiles: sparse.csr_matrix | Floats) -> Floats:
        return np.tile(self.counts, (profiles.shape[0], 1))


@dataclass
class ItemKNN:
    """Cosine similarity between item columns, keeping each item's `neighbours` most similar items."""

    neighbours: int = KNN_NEIGHBOURS
    name: str = "item-kNN"
    similarity: Floats = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))

    def fit(self, x: sparse.csr_matrix) -> None:
        gram = (x.T @ x).toarray().astype(np.float32)
        norms = np.sqrt(np.clip(np.diag(gram), 1e-9, None))
        sim = gram / norms[:, None] / norms[None, :]
        np.fill_diagonal(sim, 0.0)
        if self.neighbours < sim.shape[0]:
            cut = np.partition(sim, -self.neighbours, axis=0)[-self.neighbours]
            sim[sim < cut[None, :]] = 0.0
        self.similarity = sim

    def score(self, profiles: sparse.csr_matrix | Floats) -> Floats:
        return np.asarray(profiles @ self.similarity, dtype=np.float32)


def ease_weights(gram: npt.NDArray[np.float64], lam: float) -> Floats:
    """EASE's item-item matrix from the Gram matrix XᵀX."""
    g = gram.astype(np.float64, copy=True)
    g[np.diag_indices_from(g)] += lam
    p = np.linalg.inv(g)
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b.astype(np.float32)


@dataclass
class Ease:
    lam: float = EASE_LAMBDA
    name: str = "EASE"
    weights: Floats = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))

    def fit(self, x: sparse.csr_matrix) -> None:
        self.weights = ease_weights((x.T @ x).toarray(), self.lam)

    def score(self, profiles: sparse.csr_matrix | Floats) -> Floats:
        return np.asarray(profiles @ self.weights, dtype=np.float32)


@dataclass
class EmberRanker:
    """EASE scored from recency-weighted profiles (build them with `Interactions.recency_profiles` or
    `profile_vector`), falling back to popularity for an empty profile."""

    lam: float = EASE_LAMBDA
    boost: float = RECENCY_BOOST
    half_life: float = RECENCY_HALF_LIFE
    name: str = "Ember (EASE + recency)"
    ease: Ease = field(default_factory=Ease)
    popularity: Popularity = field(default_factory=Popularity)

    def fit(self, x: sparse.csr_matrix) -> None:
        self.ease = Ease(self.lam)
        self.ease.fit(x)
        self.popularity.fit(x)

    def score(self, profiles: sparse.csr_matrix | Floats) -> Floats:
        scores = self.ease.score(profiles)
        empty = np.asarray(abs(profiles).sum(axis=1)).ravel() == 0
        if empty.any():
            top = float(self.popularity.counts.max(initial=0.0)) or 1.0
            scores[empty] = self.popularity.counts / top
        return scores


def top_k(scores: Floats, k: int, exclude: sparse.csr_matrix | None = None) -> Ints:
    """Indices of the `k` best items per row, best first, skipping the items `exclude` marks per row."""
    scores = np.array(scores, dtype=np.float32, copy=True)
    if exclude is not None:
        rows, cols = exclude.nonzero()
        scores[rows, cols] = -np.inf
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, part, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(part, order, axis=1).astype(np.int64)


def recall_ndcg(ranked: Ints, truth: Ints) -> tuple[float, float]:
    """Recall@k and NDCG@k for one held-out item per row (`ranked` is rows x k)."""
    hits = ranked == truth[:, None]
    found = hits.any(axis=1)
    rank = hits.argmax(axis=1)
    gains = np.where(found, 1.0 / np.log2(rank + 2.0), 0.0)
    return float(found.mean()), float(gains.mean())
