"""The bodies of `GET /health` and `GET /health/live`, in `ember.api.wire`'s style."""

from __future__ import annotations

from typing import Any, Literal

from ember.api.wire import Number, Omitted, Wire

# -- health ---------------------------------------------------------------------------------------------------


class IndexStatus(Wire):
    """ember-health's knowledge index: ready, or how far a build has got (and why it failed, if it did)."""

    ready: bool
    building: bool
    done: int
    total: int
    error: Omitted[str] = None


class HealthReport(Wire):
    """`/health`: every engine's probe (200 `ok`, or 503 `unavailable`), its age, and the knowledge index."""

    status: Literal["ok", "unavailable"]
    engines: dict[str, dict[str, Any]]
    age_s: Number
    health_index: IndexStatus


class Live(Wire):
    status: Literal["ok"] = "ok"
