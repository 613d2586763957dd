"""The mode contract: a named way of answering, built from engine roles.

A mode registers itself in `ember.registry.modes` under the name clients pass as `model`. It asks the
engine pool for the roles it needs and yields Deltas; it does not store, authorise or format HTTP. A mode
whose exchanges are sensitive may name a consent flag in a `consent` attribute (e.g. `health_storage`):
the pipeline then stores its exchanges only for people who turned that flag on. A mode may name the key
scope it needs in a `scope` attribute (default `chat`). Before any mode's answer the pipeline shows crisis
resources when the person speaks of suicide or an overdose, unless the mode sets `triages = True` (it does
its own triage).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol

from ember.types import ChatRequest, Delta

if TYPE_CHECKING:
    from ember.engines.pool import EnginePool


class Mode(Protocol):
    @property
    def name(self) -> str:
        """What clients pass as `model`, e.g. `ember-instant`."""

    @property
    def description(self) -> str: ...

    @property
    def roles(self) -> tuple[str, ...]:
        """The engine roles this mode uses (each must be configured in Settings.roles)."""

    def run(self, request: ChatRequest, engines: EnginePool) -> AsyncIterator[Delta]:
        """Answer `request`, piece by piece."""
        ...


def scope_of(mode: Mode) -> str:
    """The key scope `mode` needs (its `scope` attribute; `chat` if it names none)."""
    return str(getattr(mode, "scope", "chat"))
