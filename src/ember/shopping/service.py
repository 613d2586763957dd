"""`Shop`: what a server's shopping routes and `ember-shopping` share — the shopping tables, the live
recommender and the embedder — and `ingest`, the one path by which records get in (API, CLI and demo).

A server has one Shop (in `ember.services.Services`): the routes and the mode see one fitted model. It
works on the store it is given and embeds with the server's shared `Embedders`. Consent comes from
`ember.store.consent`; this module does not decide what a request may do (routes check scopes, the mode
checks visibility through `data`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ember.engines.embeddings import Embedders
from ember.shopping.data import ShoppingData
from ember.shopping.ingest import RECORDS, ItemIn, RowError, validate
from ember.shopping.recommender import Recommender
from ember.store.consent import consent_of
from ember.store.sql import SqlStore
from ember.types import Person

KINDS = tuple(RECORDS)  # catalog, events, posts, friendships


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
    def __init__(self, store: SqlStore, embedders: Embedders) -> None:
        self.store = store
        self.data = ShoppingData(store.db)
        self.recommender = Recommender(self.data, embedders.get, self.personalised)

    def personalised(self, person: Person) -> bool:
        """Whether the person's behaviour may be used (their `personalisation` consent)."""
        return consent_of(self.store, person).personalisation

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
