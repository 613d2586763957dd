"""Demo data: the project's own small shop (`demo/`: 41 items in 8 categories with prices, seven fictional
people's behaviour, their friendships and five shared posts) and MovieLens-100k from `recbole`.

Loading goes through `Shop.ingest`, like any import. The demo's people are fictional (and MovieLens's are
anonymous ids), so loading turns their `personalisation` consent on; real people's consent is theirs to
give (`PATCH /v1/me/consent`). Nothing here downloads anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from ember.shopping import movielens
from ember.shopping.ingest import read_rows
from ember.shopping.service import Report, Shop
from ember.store.consent import DEFAULT_CONSENT
from ember.types import Person

DEMO_FILES = (
    ("catalog", "catalog.jsonl"),
    ("friendships", "friendships.jsonl"),
    ("events", "events.jsonl"),
    ("posts", "posts.jsonl"),
)


def demo_dir() -> Path:
    return Path(str(resources.files("ember.shopping") / "demo"))


def _consent(shop: Shop, people: Iterable[str]) -> int:
    defaults = DEFAULT_CONSENT.as_dict()
    count = 0
    for person in sorted(set(people)):
        shop.store.set_consent(Person("", person), {"personalisation": True}, defaults)
        count += 1
    return count


def load_shop(shop: Shop) -> tuple[list[Report], int]:
    """Load the demo shop; the reports per file, and how many people's personalisation was turned on."""
    reports = [shop.ingest(kind, read_rows(demo_dir() / name, "jsonl")) for kind, name in DEMO_FILES]
    people = [row["user"] for _, row in read_rows(demo_dir() / "events.jsonl", "jsonl")]
    return reports, _consent(shop, people)


def _numbered(rows: Iterable[dict[str, Any]]) -> Iterator[tuple[int, Any]]:
    return enumerate(rows, start=1)


def load_movielens(shop: Shop) -> tuple[list[Report], int]:
    """Load MovieLens-100k: 1,682 films as items (at a demo price) and 100,000 ratings as rating events."""
    directory = movielens.data_dir()
    ratings = movielens.load_ratings(directory)
    items = shop.ingest("catalog", _numbered(movielens.catalogue_rows(movielens.load_films(directory))))
    events = shop.ingest("events", _numbered(movielens.event_rows(ratings)))
    people = {f"{movielens.ID_PREFIX}{u}" for u in set(ratings.users.tolist())}
    return [items, events], _consent(shop, people)
