"""Pictures drawn for the tests and the screenshots (no image files in the tree)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFilter

RED = (200, 25, 25)
GLASS = (160, 200, 230)


def car_png() -> bytes:
    """A red car on a road, drawn (320x200), blurred and grained a little as a photo is: the colour counter
    calls it red; the object detector has called it a car (about 0.35), which the tests do not rely on."""
    image = PILImage.new("RGB", (320, 200), (235, 240, 245))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 160, 320, 200), fill=(90, 90, 90))
    draw.rounded_rectangle((80, 98, 240, 150), radius=16, fill=RED)
    draw.polygon([(112, 100), (131, 66), (189, 66), (216, 100)], fill=RED)
    draw.polygon([(122, 98), (135, 73), (157, 73), (157, 98)], fill=GLASS)
    draw.polygon([(163, 98), (163, 73), (185, 73), (206, 98)], fill=GLASS)
    draw.rectangle((230, 106, 240, 116), fill=(255, 240, 160))
    for x in (112, 208):
        draw.ellipse((x - 22, 121, x + 22, 165), fill=(20, 20, 20))
        draw.ellipse((x - 10, 133, x + 10, 153), fill=(180, 180, 180))
    pixels = np.asarray(image.filter(ImageFilter.GaussianBlur(1.5))).astype(np.int16)
    pixels += np.random.default_rng(0).normal(0, 8, pixels.shape).astype(np.int16)
    out = io.BytesIO()
    PILImage.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()
