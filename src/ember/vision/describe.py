"""Describe an image with every registered image reader: pixels in, an `ImageDescription` out.

The image is decoded once (alpha laid on white, at most `WORK_SIDE` pixels a side), each specialist
observes it in turn, and boxes are mapped back to the image's own pixels. Descriptions are cached by the
image's sha256, so a conversation that resends an image (or a mode that asks the engine twice) does not
pay again. One describer per cache directory serves the whole process, one image at a time. This module
does not talk to a language model.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import anyio
import numpy as np
from PIL import Image as PILImage

from ember import registry
from ember.config import Settings
from ember.types import Image
from ember.vision.base import ImageDescription, ImageReader, Pixels

WORK_SIDE = 1024
CACHE_SIZE = 64


def pixels_of(image: Image, max_side: int = WORK_SIDE) -> Pixels:
    """The image as RGB, transparency laid on white, shrunk (never enlarged) to at most `max_side` a side."""
    with PILImage.open(io.BytesIO(image.data)) as opened:
        opened.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale when it is much larger
        rgba = opened.convert("RGBA")
    rgba.thumbnail((max_side, max_side), PILImage.Resampling.BILINEAR)
    canvas = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
    canvas.alpha_composite(rgba)
    return np.asarray(canvas.convert("RGB"))


class Describer:
    """Runs every registered image reader on an image; thread-safe, one image at a time."""

    def __init__(self, specialists: list[ImageReader]) -> None:
        self.specialists = specialists
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, ImageDescription] = OrderedDict()

    @classmethod
    def from_registry(cls, settings: Settings) -> Describer:
        registry.load_plugins()
        return cls([factory(settings) for factory in registry.vision])

    def describe(self, image: Image) -> ImageDescription:
        with self._lock:
            cached = self._cache.get(image.sha256)
            if cached is not None:
                self._cache.move_to_end(image.sha256)
                return cached
            pixels = pixels_of(image)
            scale = image.width / pixels.shape[1]
            observations = []
            for specialist in self.specialists:
                seen = specialist.observe(pixels)
                observations.append(replace(seen, guesses=tuple(g.scaled(scale) for g in seen.guesses)))
            description = ImageDescription(image.width, image.height, tuple(observations))
            self._cache[image.sha256] = description
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
            return description


_describers: dict[Path, Describer] = {}
_describers_lock = threading.Lock()


def describer(settings: Settings) -> Describer:
    """The process's describer for this cache directory (its models are loaded on first use)."""
    with _describers_lock:
        found = _describers.get(settings.cache_dir)
        if found is None:
            found = _describers[settings.cache_dir] = Describer.from_registry(settings)
        return found


async def describe(image: Image, settings: Settings) -> ImageDescription:
    """Describe `image` on a worker thread."""
    return await anyio.to_thread.run_sync(lambda: describer(settings).describe(image))
