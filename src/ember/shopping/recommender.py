"""The live recommender: candidates by text (MiniLM vectors of the catalogue, filtered by category and
price), ranked for a person from their behaviour, with a score and readable reasons for each item.

A fitted `Snapshot` (item vectors, popularity, Ember's ranker over the most-interacted items) is kept in
memory and swapped whole. Each request reads the person's own latest events fresh, so their newest clicks
count at once; the item-item model refits in a background thread when the events, the catalogue or
anyone's consent changed (checked at most every `CHECK_EVERY_S`; a fit costs one inverse of at most
`MAX_MODEL_ITEMS`² and reads at most `MAX_TRAINING_EVENTS`). Behaviour is used only for people whose
`personalisation` consent is on: everyone else gets text relevance and popularity, and their events are
left out of the model too. This module does not parse requests or know about HTTP or modes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from ember.engines.embeddings import DIM, Embedder
from ember.shopping.data import Event, Item, ShoppingData
from ember.shopping.ranker import MAX_MODEL_ITEMS, EmberRanker, Floats, Interactions, Ints, profile_vector
from ember.types import Person

log = logging.getLogger(__name__)

CHECK_EVERY_S = 1.0
MAX_TRAINING_EVENTS = 2_000_000
MAX_K = 100
# how much each kind of event says about liking an item (a rating's value decides for a rating)
STRENGTH = {"view": 0.5, "click": 0.6, "like": 1.0, "share": 1.0, "add_to_cart": 1.2, "purchase": 1.5}
LIKED_RATING = 3.5  # a rating below this is not a sign of liking
REASON_MIN = 0.35  # a score part below this is too weak to give as a reason
CONTENT_SEEDS = 20  # the latest liked items that text similarity compares with
QUERY_THREADS = 1  # one short query embeds faster on one thread, and requests run side by side
# Without a query: behaviour + CONTENT_WEIGHT * text likeness to what they liked + POPULARITY_WEIGHT * popularity.
# With one: text relevance, raised by up to BOOST_* for what fits their taste (taste alone lifts nothing), and
# only items at least RELEVANCE_FLOOR as relevant as the best match are candidates.
CONTENT_WEIGHT = 0.3
POPULARITY_WEIGHT = 0.05
BOOST_BEHAVIOUR = 0.5
BOOST_CONTENT = 0.2
RELEVANCE_FLOOR = 0.6
VERBS = {"view": "viewed", "click": "looked at", "like": "liked", "share": "shared", "add_to_cart": "saved"}
VERBS |= {"purchase": "bought", "rating": "rated"}


def strength(event: Event) -> float:
    if event.kind == "rating":
        return 1.0 if (event.value or 0.0) >= LIKED_RATING else 0.0
    return STRENGTH.get(event.kind, 0.0)


def item_text(item: Item) -> str:
    return f"{item.title}. {item.category}. {item.description}"


@dataclass(frozen=True)
class Ask:
    """What to recommend: a free-text query and filters; `k` items."""

    text: str | None = None
    category: str | None = None
    max_price: float | None = None
    min_price: float | None = None
    k: int = 10


@dataclass(frozen=True)
class Recommendation:
    item: Item
    score: float
    reasons: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {"item": self.item.as_dict(), "score": round(self.score, 4), "reasons": list(self.reasons)}


@dataclass(frozen=True)
class Snapshot:
    """Everything fitted, for one version of the data."""

    items: list[Item]
    index: dict[str, int]
    vectors: Floats  # items x DIM, unit rows
    categories: list[str]  # lower-case
    prices: Floats
    popularity: Floats  # 0..1, log-scaled counts among consenting people
    model_items: Ints  # snapshot index of each item the ranker knows
    model_index: dict[int, int]  # snapshot index -> ranker column
    ranker: EmberRanker | None
    version: tuple[object, ...]


@dataclass
class _Parts:
    text: Floats
    behaviour: Floats
    content: Floats
    popularity: Floats
    profile: Floats  # the person's recency-weighted profile over the ranker's items (zeros without history)
    seeds: Ints  # snapshot indices of the recent items the text similarity compares with


class Recommender:
    def __init__(
        self, data: ShoppingData, embedder: Callable[[int | None], Embedder], personalised: Callable[[Person], bool]
    ) -> None:
        self.data = data
        self._embedder_factory = embedder
        self._embedders: dict[int | None, Embedder] = {}
        self.personalised = personalised
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()  # one fit at a time
        self._checked = 0.0
        self._refitting = False
        self._blas: ThreadpoolController | None = None

    # --- the fitted model -----------------------------------------------------------------------------------

    def embedder(self, threads: int | None = None) -> Embedder:
        """MiniLM on `threads` threads (None: all cores, for the catalogue in batches)."""
        if threads not in self._embedders:
            self._embedders[threads] = self._embedder_factory(threads)
        return self._embedders[threads]

    def invalidate(self) -> None:
        """The data changed: look again on the next request rather than within CHECK_EVERY_S."""
        self._checked = 0.0

    def snapshot(self) -> Snapshot:
        """The current model: fitted now if there is none; checked for staleness (and refitted) in the
        background at most every CHECK_EVERY_S, so a request never waits for the check or the fit."""
        current = self._snapshot
        if current is None:
            return self.refresh()
        now = time.monotonic()
        if now - self._checked >= CHECK_EVERY_S and not self._refitting:
            self._checked = now
            self._refitting = True
            threading.Thread(target=self._refit_quietly, name="ember-recs-fit", daemon=True).start()
        return current

    def _refit_quietly(self) -> None:
        try:
            self.refresh()
        except Exception:  # a failed background fit keeps the old model serving
            log.exception("refitting the recommender failed; the previous model keeps serving")
        finally:
            self._refitting = False

    def refresh(self) -> Snapshot:
        """Fit a new snapshot now if the data changed since the last one (blocking)."""
        with self._lock:
            version = self.data.version()
            if self._snapshot is not None and self._snapshot.version == version:
                return self._snapshot
            self._snapshot = self._fit(version)
            self._checked = time.monotonic()
            return self._snapshot

    def _fit(self, version: tuple[object, ...]) -> Snapshot:
        started = time.perf_counter()
        items = self.data.items()
        vectors = self._vectors(items)
        index = {item.id: i for i, item in enumerate(items)}
        history = self.data.training_events(MAX_TRAINING_EVENTS)
        liked = [e for e in history if e.item_id in index and strength(e) > 0]
        counts = np.bincount([index[e.item_id] for e in liked], minlength=len(items)).astype(np.float32)
        popularity = np.log1p(counts) / max(float(np.log1p(counts).max(initial=0.0)), 1e-9)
        model_items = np.argsort(-counts, kind="stable")[: min(MAX_MODEL_ITEMS, int((counts > 0).sum()))]
        ranker = _fit_ranker(liked, index, model_items) if len(model_items) >= 2 else None
        log.info(
            "recommender fitted: %d items, %d events, %d in the model, %.2fs",
            len(items), len(liked), len(model_items), time.perf_counter() - started,
        )  # fmt: skip
        return Snapshot(
            items=items,
            index=index,
            vectors=vectors,
            categories=[item.category.lower() for item in items],
            prices=np.array([item.price for item in items], dtype=np.float32),
            popularity=popularity.astype(np.float32),
            model_items=model_items.astype(np.int64),
            model_index={int(s): c for c, s in enumerate(model_items)},
            ranker=ranker,
            version=version,
        )

    def _vectors(self, items: list[Item]) -> Floats:
        """Unit MiniLM vectors of the items' text: stored ones reused, missing ones computed and stored."""
        vectors = np.zeros((len(items), DIM), dtype=np.float32)
        missing = []
        for i, item in enumerate(items):
            if item.embedding is not None and len(item.embedding) == DIM * 4:
                vectors[i] = np.frombuffer(item.embedding, dtype=np.float32)
            else:
                missing.append(i)
        if missing:
            fresh = self.embedder().embed([item_text(items[i]) for i in missing])
            vectors[missing] = fresh
            self.data.set_embeddings({items[i].id: fresh[n].tobytes() for n, i in enumerate(missing)})
        return vectors

    def categories(self) -> list[str]:
        """The catalogue's categories, as written, sorted."""
        return sorted({item.category for item in self.snapshot().items})

    # --- recommending ---------------------------------------------------------------------------------------

    def recommend(self, person: Person, ask: Ask) -> list[Recommendation]:
        """The best `ask.k` items for `person` among those passing `ask`'s filters, with reasons."""
        snap = self.snapshot()
        if not snap.items:
            return []
        history = self.data.person_events(person) if self.personalised(person) else []
        history = [e for e in history if e.item_id in snap.index]
        query = self.embedder(QUERY_THREADS).embed([ask.text])[0] if ask.text else None
        with self._one_blas_thread():  # small products: threads cost more than they give, and requests run in parallel
            parts = _parts(snap, history, query)
            total = _blend(parts, ask.text is not None)
            allowed = self._allowed(snap, ask, history)
            if ask.text and allowed.any():
                allowed &= parts.text >= RELEVANCE_FLOOR * float(parts.text[allowed].max())
            if not allowed.any():
                return []
            total = np.where(allowed, total, -np.inf)
            k = max(1, min(ask.k, MAX_K, int(allowed.sum())))
            best = np.argpartition(-total, k - 1)[:k]
            best = best[np.argsort(-total[best], kind="stable")]
            verbs = {e.item_id: VERBS.get(e.kind, "chose") for e in history}  # the latest event of each item
            return [
                Recommendation(snap.items[i], float(total[i]), _reasons(snap, parts, verbs, ask, int(i))) for i in best
            ]

    def _one_blas_thread(self) -> Any:
        if self._blas is None:
            self._blas = ThreadpoolController()
        return self._blas.limit(limits=1, user_api="blas")

    def _allowed(self, snap: Snapshot, ask: Ask, history: list[Event]) -> np.ndarray:
        allowed = np.ones(len(snap.items), dtype=bool)
        if ask.category:
            allowed &= np.array([c == ask.category.lower() for c in snap.categories])
        if ask.max_price is not None:
            allowed &= snap.prices <= ask.max_price
        if ask.min_price is not None:
            allowed &= snap.prices >= ask.min_price
        # not again what they bought; without a query, nothing they already know (as the evaluation ranks)
        known = [snap.index[e.item_id] for e in history if e.kind == "purchase" or not ask.text]
        allowed[known] = False
        return allowed


def _blend(parts: _Parts, query: bool) -> Floats:
    popular = POPULARITY_WEIGHT * parts.popularity
    if query:
        taste = 1.0 + BOOST_BEHAVIOUR * parts.behaviour + BOOST_CONTENT * parts.content
        return np.asarray(parts.text * taste + popular, dtype=np.float32)
    return np.asarray(parts.behaviour + CONTENT_WEIGHT * parts.content + popular, dtype=np.float32)


def _parts(snap: Snapshot, history: list[Event], query: Floats | None) -> _Parts:
    text = np.zeros(len(snap.items), dtype=np.float32)
    if query is not None:
        text = np.clip(snap.vectors @ query, 0.0, None)
    liked = [e for e in history if strength(e) > 0]
    behaviour, profile = _behaviour(snap, liked)
    content, seeds = _content(snap, liked)
    return _Parts(text, behaviour, content, snap.popularity, profile, seeds)


def _reasons(snap: Snapshot, parts: _Parts, verbs: dict[str, str], ask: Ask, i: int) -> tuple[str, ...]:
    reasons: list[str] = []
    if ask.text and parts.text[i] > 0:
        reasons.append(f"matches “{ask.text}” (similarity {parts.text[i]:.2f})")
    if parts.behaviour[i] >= REASON_MIN and (seed := _behaviour_seed(snap, parts.profile, i)) is not None:
        reasons.append(f"people who liked “{seed.title}”, which you {verbs.get(seed.id, 'chose')}, liked this")
    elif parts.content[i] >= REASON_MIN and len(parts.seeds):
        seed = snap.items[int(parts.seeds[np.argmax(snap.vectors[parts.seeds] @ snap.vectors[i])])]
        reasons.append(f"similar to “{seed.title}”, which you {verbs.get(seed.id, 'chose')}")
    item = snap.items[i]
    if parts.popularity[i] > 0 and (not reasons or not verbs):
        reasons.append(f"popular in {item.category}")
    if ask.category:
        reasons.append(f"in {item.category}")
    if ask.max_price is not None:
        reasons.append(f"within your budget ({item.price:g} ≤ {ask.max_price:g} {item.currency})")
    return tuple(reasons) or ("in the catalogue",)


def _behaviour_seed(snap: Snapshot, profile: Floats, i: int) -> Item | None:
    """The item in the person's profile that pulled item `i` up most."""
    column = snap.model_index.get(i)
    if snap.ranker is None or column is None:
        return None
    pull = profile * snap.ranker.ease.weights[:, column]
    return snap.items[int(snap.model_items[int(np.argmax(pull))])] if pull.max(initial=0.0) > 0 else None


def _fit_ranker(liked: list[Event], index: dict[str, int], model_items: Ints) -> EmberRanker:
    column = {int(s): c for c, s in enumerate(model_items)}
    people: dict[Person, int] = {}
    rows, cols = [], []
    for e in liked:
        c = column.get(index[e.item_id])
        if c is not None:
            rows.append(people.setdefault(e.person, len(people)))
            cols.append(c)
    data = Interactions(
        np.array(rows, dtype=np.int64),
        np.array(cols, dtype=np.int64),
        np.zeros(len(rows)),
        len(people),
        len(model_items),
    )
    ranker = EmberRanker()
    ranker.fit(data.matrix())
    return ranker


def _behaviour(snap: Snapshot, liked: list[Event]) -> tuple[Floats, Floats]:
    """EASE scores (0..1) from the person's recency-weighted profile, and that profile."""
    n = len(snap.items)
    known = [e for e in liked if snap.index[e.item_id] in snap.model_index]
    if snap.ranker is None or not known:
        return np.zeros(n, dtype=np.float32), np.zeros(len(snap.model_items), dtype=np.float32)
    ranker = snap.ranker
    columns = np.array([snap.model_index[snap.index[e.item_id]] for e in known], dtype=np.int64)
    power = np.array([strength(e) for e in known], dtype=np.float32)
    profile = profile_vector(columns, len(snap.model_items), ranker.boost, ranker.half_life, power)
    scores = np.zeros(n, dtype=np.float32)
    scores[snap.model_items] = np.clip(profile @ ranker.ease.weights, 0.0, None)
    top = float(scores.max(initial=0.0))
    return (scores / top if top > 0 else scores), profile


def _content(snap: Snapshot, liked: list[Event]) -> tuple[Floats, Ints]:
    """Similarity of each item's text to what the person liked lately (covers items no one touched yet),
    and those recent items."""
    if not liked:
        return np.zeros(len(snap.items), dtype=np.float32), np.zeros(0, dtype=np.int64)
    seeds = np.array(list(dict.fromkeys(snap.index[e.item_id] for e in liked[-CONTENT_SEEDS:])), dtype=np.int64)
    scores = np.clip((snap.vectors @ snap.vectors[seeds].T).max(axis=1), 0.0, None).astype(np.float32)
    scores[seeds] = 0.0  # an item is not recommended for being similar to itself
    return scores, seeds
