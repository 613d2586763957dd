"""The shopping routes' bodies (catalogue imports, items, recommendations), in `ember.api.wire`'s style."""

from __future__ import annotations

from typing import Any, Literal

from ember.api.wire import Number, Wire

# -- shopping -------------------------------------------------------------------------------------------------


class RejectedRow(Wire):
    index: int
    message: str


class ImportReport(Wire):
    """A batch's outcome: `object` is `events.import`, `catalog.import`, `posts.import` or `friendships.import`."""

    object: str
    accepted: int
    rejected: list[RejectedRow]


class CatalogItem(Wire):
    id: str
    object: Literal["catalog.item"] = "catalog.item"
    title: str
    description: str
    category: str
    price: Number
    currency: str
    attributes: dict[str, Any]


class Recommendation(Wire):
    rank: int
    item: CatalogItem
    score: Number
    reasons: list[str]


class Recommendations(Wire):
    object: Literal["list"] = "list"
    user: str
    personalised: bool
    data: list[Recommendation]
