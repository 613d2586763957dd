"""The one place where extension points live: chat, speech and embedding engines, modes and specialists.

Built-ins register exactly as a third-party plugin does: a module that, on import, calls
`engines.add(...)` or `modes.add(...)`. `load_plugins()` imports the built-in modules listed in
`DEFAULT_PLUGINS` and then every module named by the `ember.plugins` entry-point group.
Nothing here knows what any engine or mode does.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from ember.agents.specialists import Specialist
    from ember.config import EngineSpec, Settings
    from ember.engines.base import EmbeddingEngine, Engine, SpeechEngine
    from ember.engines.embeddings import Embedders
    from ember.modes.base import Mode
    from ember.vision.base import ImageReader

T = TypeVar("T")

DEFAULT_PLUGINS = (
    "ember.engines.llama_cpp",
    "ember.engines.llama_process",
    "ember.engines.openai_compat",
    "ember.engines.fake",
    "ember.engines.whisper",
    "ember.engines.local_embedding",
    "ember.modes.instant",
    "ember.modes.thinking",
    "ember.modes.contemplating",
    "ember.modes.health",
    "ember.modes.shopping",
    "ember.vision.readers",
    "ember.agents.specialists",
    "ember.modes.auto",
)


class Registry(Generic[T]):
    """Named entries of one kind. Registering a name twice is a bug and raises."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T | None:
        return self._entries.get(name)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __iter__(self) -> Iterator[T]:
        return iter(self._entries[name] for name in self.names())

    def __contains__(self, name: object) -> bool:
        return name in self._entries


EngineFactory = Callable[["EngineSpec", "Settings"], "Engine"]

SpeechFactory = Callable[["EngineSpec", "Settings"], "SpeechEngine"]

# `Embedders`: the server's packaged sentence embedders, for an engine that runs them in process (others ignore it)
EmbeddingFactory = Callable[["EngineSpec", "Settings", "Embedders"], "EmbeddingEngine"]

VisionFactory = Callable[["Settings"], "ImageReader"]  # called once, when the first image is described

engines: Registry[EngineFactory] = Registry("engine")
speech_engines: Registry[SpeechFactory] = Registry("speech engine")
embedding_engines: Registry[EmbeddingFactory] = Registry("embedding engine")
modes: Registry[Mode] = Registry("mode")
vision: Registry[VisionFactory] = Registry("image reader")  # each adds its guesses to image descriptions
specialists: Registry[Specialist] = Registry("specialist")  # tools the planner and ember-auto may call

_loaded = False


def load_plugins() -> None:
    """Import built-in and installed plugins once; each registers itself on import."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in DEFAULT_PLUGINS:
        importlib.import_module(module)
    for ep in entry_points(group="ember.plugins"):
        ep.load()
