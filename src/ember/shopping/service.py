"""`Shop`: what a server's shopping routes and `ember-shopping` share — the shopping tables, the live
recommender and the embedder — and `ingest`, the one path by which records get in (API, CLI and demo).

A server has one Shop per engine pool (`shop_for`): the routes reach it through the pipeline, the mode
through the pool it is handed, so both see one fitted model. The Shop opens its own connection pool on
the configured database (`settings.db_url`), the same database the pipeline's store uses. The MiniLM
embedder is loaded once per process, on first use. Consent comes from `ember.policy.privacy`; this module
does not decide what a request may do (routes check scopes, the mode checks visibility through `data`).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ember.assets.assemble import ensure_asset
from ember.assets.catalogue import CATALOGUE
from ember.engines.embeddings import Embedder
from ember.policy.privacy import consent_of
from ember.shopping.data import ShoppingData
from ember.shopping.ingest import RECORDS, ItemIn, RowError, validate
from ember.shopping.recommender import Recommender
from ember.store.sql import SqlStore
from ember.types import Person

if TYPE_CHECKING:
    from ember.engines.pool import EnginePool

KINDS = tuple(RECORDS)  # catalog, events, posts, friendships
_embedders: dict[tuple[Path, int | None], Embedder] = {}
_embedders_lock = threading.Lock()
_shops: weakref.WeakKeyDictionary[EnginePool, Shop] = weakref.WeakKeyDictionary()
_shops_lock = threading.Lock()


def shared_embedder(cache_dir: Path, threads: int | None = None) -> Embedder:
    """The packaged MiniLM on `threads` threads (None: all cores), loaded once per process for each."""
    directory = ensure_asset(CATALOGUE["embed"], cache_dir)
    with _embedders_lock:
        if (directory, threads) not in _embedders:
            _embedders[directory, threads] = Embedder(directory, threads=threads)
        return _embedders[directory, threads]


@dataclass(frozen=True)
class Report:
    """What an import or a batch did: rows stored, and the rows refused with where and why."""

    kind: str
    accepted: int
    errors: tuple[RowError, ...]

    def as_dict(self, label: str = "line") -> dict[str, Any]:
        return {
            "object": f"{self.kind}.import",
            "accepted": self.accepted,
            "rejected": [e.as_dict(label) for e in sorted(self.errors, key=lambda e: e.where)],
        }


class Shop:
    def __init__(self, store: SqlStore, cache_dir: Path) -> None:
        self.store = store
        self.data = ShoppingData(store.engine)
        self.recommender = Recommender(
            self.data, lambda threads: shared_embedder(cache_dir, threads), self.personalised
        )

    def personalised(self, person: Person) -> bool:
        """Whether the person's behaviour may be used (their `personalisation` consent)."""
        return consent_of(self.store, person).personalisation

    def close(self) -> None:
        self.store.close()

    def ingest(
        self,
        kind: str,
        rows: Iterable[tuple[int, Any]],
        *,
        text: bool = False,
        tenant: str = "",
    ) -> Report:
        """Validate and store `kind` rows, numbered for error reports, in `tenant` (the sender's: the names
        rows hold are people of it). `text`: CSV cells. Bad rows are reported and skipped; the rest are stored."""
        good, errors = validate(RECORDS[kind], iter(rows), text=text)
        stored, refused = WRITERS[kind](self.data, good, tenant)
        self.recommender.invalidate()
        return Report(kind, stored, (*errors, *refused))


Rows = list[tuple[int, Any]]
Written = tuple[int, list[RowError]]


def _items(data: ShoppingData, rows: Rows, tenant: str) -> Written:
    latest: dict[str, ItemIn] = {item.id: item for _, item in rows}  # a repeated id: the later row wins
    return data.upsert_items(list(latest.values())), []  # the catalogue is shared: no tenant


def _events(data: ShoppingData, rows: Rows, tenant: str) -> Written:
    return data.add_events(tenant, rows)


def _posts(data: ShoppingData, rows: Rows, tenant: str) -> Written:
    return data.add_posts(tenant, rows)


def _friendships(data: ShoppingData, rows: Rows, tenant: str) -> Written:
    return data.add_friendships(tenant, [f for _, f in rows]), []


WRITERS: dict[str, Callable[[ShoppingData, Rows, str], Written]] = {
    "catalog": _items,
    "events": _events,
    "posts": _posts,
    "friendships": _friendships,
}


def shop_for(pool: EnginePool) -> Shop:
    """The Shop of the server that owns `pool` (made on first use; closed when the pool is gone)."""
    with _shops_lock:
        shop = _shops.get(pool)
        if shop is None:
            shop = _shops[pool] = Shop(SqlStore(pool.settings.db_url), pool.settings.cache_dir)
            weakref.finalize(pool, shop.close)
        return shop
