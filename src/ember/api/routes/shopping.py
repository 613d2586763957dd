"""Shopping over HTTP: `POST /v1/events` (behaviour, batched), `POST /v1/catalog/items` (admin),
`GET /v1/catalog/items/{id}`, `POST /v1/posts`, `GET /v1/posts/{id}`, `POST /v1/friendships` and
`GET /v1/recommendations`.

Batches are validated row by row: the good rows are stored and each bad one comes back under `rejected`
with its `index` in the batch and why (the request itself is a 400 only when its shape is wrong). Every
name in a row (user, author, friend, named people) is a person of the caller's tenant, as `user` is
elsewhere. Routes translate and declare their scopes as dependencies (`shopping`; `admin` to change the
catalogue); the rules
live in `ember.shopping`.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from ember.api.deps import AdminPrincipal, PipelineDep, ShoppingPrincipal
from ember.api.routes.conversations import UserQuery
from ember.api.shopping_wire import CatalogItem, ImportReport, Recommendation, Recommendations
from ember.api.wire import ERRORS, Post
from ember.errors import NotFound
from ember.policy.keys import Principal
from ember.shopping.recommender import MAX_K, Ask
from ember.shopping.service import Shop

router = APIRouter(responses=ERRORS)
MAX_BATCH = 10_000  # rows per request


def _shop(pipeline: PipelineDep) -> Shop:
    return pipeline.services.shop


ShopDep = Annotated[Shop, Depends(_shop)]


class _Batch(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventsBody(_Batch):
    events: list[Any] = Field(min_length=1, max_length=MAX_BATCH)  # rows are checked one by one


class ItemsBody(_Batch):
    items: list[Any] = Field(min_length=1, max_length=MAX_BATCH)  # rows are checked one by one


class PostsBody(_Batch):
    posts: list[Any] = Field(min_length=1, max_length=MAX_BATCH)  # rows are checked one by one


class FriendshipsBody(_Batch):
    friendships: list[Any] = Field(min_length=1, max_length=MAX_BATCH)  # rows are checked one by one


async def _ingest(shop: Shop, kind: str, rows: list[Any], principal: Principal) -> ImportReport:
    def run() -> ImportReport:
        report = shop.ingest(kind, enumerate(rows), tenant=principal.tenant)
        return ImportReport.model_validate(report.as_dict("index"))

    return await anyio.to_thread.run_sync(run)


@router.post("/v1/events")
async def post_events(body: EventsBody, shop: ShopDep, principal: ShoppingPrincipal) -> ImportReport:
    return await _ingest(shop, "events", body.events, principal)


@router.post("/v1/catalog/items")
async def post_items(body: ItemsBody, shop: ShopDep, principal: AdminPrincipal) -> ImportReport:
    return await _ingest(shop, "catalog", body.items, principal)


@router.get("/v1/catalog/items/{item_id}")
async def get_item(item_id: str, shop: ShopDep, principal: ShoppingPrincipal) -> CatalogItem:
    item = await anyio.to_thread.run_sync(shop.data.item, item_id)
    if item is None:
        raise NotFound(f"catalogue item {item_id!r} not found", param="item_id")
    return CatalogItem.model_validate(item.as_dict())


@router.post("/v1/posts")
async def post_posts(body: PostsBody, shop: ShopDep, principal: ShoppingPrincipal) -> ImportReport:
    return await _ingest(shop, "posts", body.posts, principal)


@router.get("/v1/posts/{post_id}")
async def get_post(post_id: str, shop: ShopDep, principal: ShoppingPrincipal, user: UserQuery = None) -> Post:
    """A post, if the person may see it (otherwise 404, as if it did not exist)."""
    post = await anyio.to_thread.run_sync(shop.data.post, post_id, principal.person(user))
    if post is None:
        raise NotFound(f"post {post_id!r} not found", param="post_id")
    return Post.model_validate(post.as_dict())


@router.post("/v1/friendships")
async def post_friendships(body: FriendshipsBody, shop: ShopDep, principal: ShoppingPrincipal) -> ImportReport:
    return await _ingest(shop, "friendships", body.friendships, principal)


@router.get("/v1/recommendations")
async def recommendations(
    shop: ShopDep,
    principal: ShoppingPrincipal,
    user: UserQuery = None,
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
    q: Annotated[str | None, Query(min_length=1, max_length=500, description="what to look for")] = None,
    category: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    max_price: Annotated[float | None, Query(ge=0)] = None,
    min_price: Annotated[float | None, Query(ge=0)] = None,
) -> Recommendations:
    """Ranked items with scores and reasons; behaviour counts only with the person's personalisation consent."""
    person = principal.person(user)
    ask = Ask(text=q, category=category, max_price=max_price, min_price=min_price, k=k)

    def run() -> Recommendations:
        found = shop.recommender.recommend(person, ask)
        ranked = [Recommendation.model_validate({"rank": n, **r.as_dict()}) for n, r in enumerate(found, start=1)]
        return Recommendations(user=person.label, personalised=shop.personalised(person), data=ranked)

    return await anyio.to_thread.run_sync(run)
