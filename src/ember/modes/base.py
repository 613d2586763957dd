"""The mode contract: a named way of answering, built from engine roles.

A mode registers itself in `ember.registry.modes` under the name clients pass as `model`. Its `run` is
handed the request and the server's `Services` (engines, store, shop, health knowledge) and yields
Deltas; it does not store, authorise or format HTTP. What the rest of Ember needs to know about a mode
it declares, with these defaults:
- `scope`: the API key scope a caller needs (`chat`);
- `consent`: a consent flag (e.g. `health_storage`) without which its exchanges are not stored (None);
- `triages`: it does its own crisis triage, so the pipeline shows no crisis resources before it (False);
- `cost_weight`: how much its tokens count against a key's token budget (1.0);
- `tools`: it can call the caller's functions (`tools` in a request, and `tool` turns in its history) (False);
- `memory`: it uses the facts a person asked Ember to remember (`ChatRequest.memories`) (False).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ember.types import ChatRequest, Delta

if TYPE_CHECKING:
    from ember.services import Services


class Mode(ABC):
    name: str  # what clients pass as `model`, e.g. `ember-instant`
    description: str
    roles: tuple[str, ...]  # the engine roles it uses (each must be configured in Settings.roles)
    scope: str = "chat"
    consent: str | None = None
    triages: bool = False
    cost_weight: float = 1.0
    tools: bool = False
    memory: bool = False

    @abstractmethod
    def run(self, request: ChatRequest, services: Services) -> AsyncIterator[Delta]:
        """Answer `request`, piece by piece."""
