"""The image reader contract and what specialists report: machine guesses with confidences.

A specialist registers a factory in `ember.registry.vision` (built-ins in `ember.vision.readers`, the
same way a plugin would); the factory gets the Settings and returns an object whose `observe(pixels)`
looks at an RGB image and returns one `Observation`: its kind (objects, classes, text, colours, shapes),
the model it used, and guesses, each with a confidence in [0, 1] and, where it has one, a box in the
pixels it was given. Nothing here runs a model or talks to a language model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

Pixels = npt.NDArray[np.uint8]  # height x width x 3, RGB
Box = tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels
PERSON = "person"


@dataclass(frozen=True)
class Guess:
    """One thing a model thinks it saw. For colours and shapes `confidence` is the share of the image."""

    label: str
    confidence: float
    box: Box | None = None
    detail: str = ""  # e.g. an object's main colour

    def scaled(self, factor: float) -> Guess:
        if self.box is None or factor == 1.0:
            return self
        x1, y1, x2, y2 = (round(v * factor) for v in self.box)
        return Guess(self.label, self.confidence, (x1, y1, x2, y2), self.detail)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label, "confidence": round(self.confidence, 3)}
        if self.box is not None:
            out["box"] = list(self.box)
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True)
class Observation:
    """What one specialist reported: `kind` says what the guesses are, `source` which model made them."""

    kind: str
    source: str
    guesses: tuple[Guess, ...]
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "source": self.source,
            "guesses": [g.as_dict() for g in self.guesses],
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class ImageDescription:
    """Every specialist's observation of one image; boxes are in the image's own pixels."""

    width: int
    height: int
    observations: tuple[Observation, ...] = field(default_factory=tuple)

    def of(self, kind: str) -> tuple[Guess, ...]:
        return tuple(g for o in self.observations if o.kind == kind for g in o.guesses)

    @property
    def people(self) -> int:
        return sum(1 for g in self.of("objects") if g.label == PERSON)

    def labels(self) -> set[str]:
        """Every object and class label, lower-cased, with each comma-separated synonym on its own."""
        names = (g.label for kind in ("objects", "classes") for g in self.of(kind))
        return {part.strip().lower() for name in names for part in name.split(",")}

    @property
    def seconds(self) -> float:
        return sum(o.seconds for o in self.observations)

    def as_dict(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "people": self.people,
            "observations": [o.as_dict() for o in self.observations],
        }


class ImageReader(Protocol):
    """Looks at an RGB image and reports one kind of guesses. `observe` may be called from any thread,
    one call at a time."""

    @property
    def kind(self) -> str: ...

    def observe(self, pixels: Pixels) -> Observation: ...
