"""API keys: created once and shown once, stored only as a sha256 hash, with owner, scopes and tier.

`KeyStore` creates, lists, revokes and authenticates keys on the SQL store's database. `Principal` is
who a request acts for; `person()` maps a request's `user` to a `Person` in that principal's tenant (the
key's owner; "" for keyless local use), so one key never reads another owner's people. This module does not
limit rates or read HTTP headers.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select, update

from ember.config import LOCAL_TIER, Settings
from ember.errors import InvalidRequest, NotFound, PermissionDenied, Unauthenticated
from ember.store.schema import api_keys
from ember.types import ANONYMOUS, Person

SCOPES = ("chat", "audio", "shopping", "health", "admin")
KEY_PREFIX = "ember-"
SHOWN_CHARS = 12  # of the key, kept in clear to recognise it in listings


@dataclass(frozen=True)
class Principal:
    """Who a request acts for. `key_id` is None for the keyless loopback default."""

    owner: str
    scopes: frozenset[str]
    tier: str
    key_id: str | None = None

    def require(self, scope: str, *alternatives: str) -> None:
        """PermissionDenied unless the key holds `scope` (or one of the `alternatives`)."""
        wanted = (scope, *alternatives)
        if self.scopes.isdisjoint(wanted):
            which = " or ".join(repr(s) for s in wanted)
            raise PermissionDenied(f"this API key lacks the {which} scope")

    @property
    def tenant(self) -> str:
        """Whose people this principal reaches: its key's owner, or "" (the operator's) without a key."""
        return "" if self.key_id is None else self.owner

    def person(self, user: str | None) -> Person:
        """`user` in this principal's tenant; without `user`, the key's owner itself (name "") or, without
        a key, `anonymous`."""
        if self.key_id is None:
            return Person("", user or ANONYMOUS.name)
        return Person(self.owner, user or "")


LOCAL = Principal(owner="local", scopes=frozenset(SCOPES), tier=LOCAL_TIER)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    def __init__(self, db: Engine, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    def create(self, owner: str, scopes: tuple[str, ...], tier: str, name: str = "") -> tuple[str, dict[str, Any]]:
        """A new key: (the secret, shown once; its record)."""
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown or not scopes:
            raise InvalidRequest(f"scopes must be some of {', '.join(SCOPES)} (got {', '.join(unknown) or 'none'})")
        if tier not in self.settings.tiers:
            raise InvalidRequest(f"unknown tier {tier!r}; configured: {', '.join(self.settings.tiers)}")
        if not owner.strip() or "/" in owner:
            raise InvalidRequest("owner must be a non-empty name without '/'")
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        row = {
            "id": "key_" + uuid.uuid4().hex[:24],
            "hash": hash_key(secret),
            "prefix": secret[:SHOWN_CHARS],
            "owner": owner,
            "scopes": ",".join(s for s in SCOPES if s in scopes),
            "tier": tier,
            "name": name,
            "created_at": time.time(),
            "revoked_at": None,
        }
        with self.db.begin() as conn:
            conn.execute(api_keys.insert().values(**row))
        return secret, _public(row)

    def list(self, owner: str | None = None) -> list[dict[str, Any]]:
        query = select(api_keys).order_by(api_keys.c.created_at)
        if owner is not None:
            query = query.where(api_keys.c.owner == owner)
        with self.db.connect() as conn:
            return [_public(row._asdict()) for row in conn.execute(query)]

    def revoke(self, key_id: str) -> None:
        with self.db.begin() as conn:
            result = conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
        if result.rowcount == 0:
            raise NotFound(f"no active key {key_id!r}")

    def authenticate(self, secret: str) -> Principal:
        with self.db.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.hash == hash_key(secret))).first()
        if row is None or row.revoked_at is not None:  # one answer: a revoked key is not told apart
            raise Unauthenticated("Incorrect API key provided.")
        if row.tier not in self.settings.tiers:
            raise PermissionDenied(f"this key's tier {row.tier!r} is no longer configured")
        return Principal(row.owner, frozenset(row.scopes.split(",")), row.tier, row.id)


def _public(row: dict[str, Any]) -> dict[str, Any]:
    """A key's record without its hash."""
    return {k: v for k, v in row.items() if k != "hash"}
