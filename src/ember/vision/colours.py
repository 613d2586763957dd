"""Two small measuring specialists with no learned weights: dominant colours, and plain geometric shapes.

Colours: each pixel of a small copy of the image is named by the nearest of a few reference colours in
CIELAB (so "dark red" and "crimson" are both red); a name is reported with its share of the image.
Shapes: only on a plain background (a border of one colour), each solid region that differs from it is
traced with OpenCV and named triangle, rectangle or circle when its outline fits one (else nothing is
said), with its colour and box. Neither knows what an object is.
"""

from __future__ import annotations

import math
import time

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image as PILImage

from ember.vision.base import Guess, Observation, Pixels

SAMPLE_SIDE = 96  # colours are counted on a copy at most this big
SHAPE_SIDE = 256
MIN_SHARE = 0.08
VIVID_CHROMA = 40.0  # CIELAB chroma from which a pixel counts as strongly coloured
MIN_VIVID = 0.03  # vivid colours are reported when at least this share of the image is vivid
MIN_OBJECT_VIVID = 0.15  # an object's colour is its vivid one when at least this share of its box is vivid
GREY_CHROMA = 8.0
BLACK_AND_WHITE = 0.98  # share of colourless pixels in a black-and-white image
DARK, BRIGHT = 0.3, 0.8  # mean CIELAB lightness / 100
MAX_COLOURS = 4
BORDER_PLAIN = 0.9  # share of border pixels close to the background colour for a "plain" background
BACKGROUND_DISTANCE = 25.0  # CIELAB distance: near the background
REGION_DISTANCE = 40.0  # CIELAB distance: part of a region
MIN_REGION = 0.005  # of the image
MAX_SHAPES = 5
CIRCULARITY = 0.8
REFERENCE = {
    "black": [(0, 0, 0), (40, 40, 40)],
    "white": [(255, 255, 255), (235, 235, 230)],
    "gray": [(128, 128, 128), (169, 169, 169), (90, 90, 90), (200, 200, 200)],
    "red": [(255, 0, 0), (200, 30, 30), (139, 0, 0)],
    "brown": [(165, 42, 42), (139, 69, 19), (160, 82, 45), (101, 67, 33), (120, 90, 70)],
    "orange": [(255, 165, 0), (255, 140, 0), (230, 110, 30)],
    "yellow": [(255, 255, 0), (240, 220, 60)],
    "beige": [(210, 180, 140), (245, 222, 179)],
    "green": [(0, 255, 0), (0, 128, 0), (34, 139, 34), (107, 142, 35)],
    "teal": [(0, 128, 128)],
    "cyan": [(0, 255, 255)],
    "blue": [(0, 0, 255), (30, 144, 255), (0, 0, 139), (70, 130, 180)],
    "purple": [(128, 0, 128), (147, 112, 219)],
    "pink": [(255, 192, 203), (255, 105, 180)],
}
_NAMES = [name for name, refs in REFERENCE.items() for _ in refs]
Floats = npt.NDArray[np.float64]


def to_lab(rgb: npt.NDArray[np.uint8] | Floats) -> Floats:
    """sRGB (0-255, any leading shape) → CIELAB under D65."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ np.array([[0.4124, 0.2126, 0.0193], [0.3576, 0.7152, 0.1192], [0.1805, 0.0722, 0.9505]])
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    lab: Floats = np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)
    return lab


_REFERENCE_LAB = to_lab(np.array([rgb for refs in REFERENCE.values() for rgb in refs]))


def colour_names(lab: Floats) -> npt.NDArray[np.str_]:
    """The reference colour name nearest to each CIELAB value."""
    distances = np.linalg.norm(lab[..., None, :] - _REFERENCE_LAB, axis=-1)
    names: npt.NDArray[np.str_] = np.array(_NAMES)[distances.argmin(axis=-1)]
    return names


def _small(pixels: Pixels, side: int) -> Pixels:
    image = PILImage.fromarray(pixels)
    image.thumbnail((side, side), PILImage.Resampling.BILINEAR)
    return np.asarray(image)


def _shares(names: npt.NDArray[np.str_], total: int, least: float) -> tuple[Guess, ...]:
    """The commonest names with their share of `total` pixels, those of at least `least`."""
    labels, counts = np.unique(names, return_counts=True)
    order = np.argsort(-counts)[:MAX_COLOURS]
    return tuple(Guess(str(labels[i]), float(counts[i] / total)) for i in order if counts[i] / total >= least)


def main_colour(pixels: Pixels) -> str:
    """The commonest vivid colour of a region if enough of it is vivid, else its commonest colour."""
    lab = to_lab(_small(pixels, SAMPLE_SIDE // 2).reshape(-1, 3))
    names = colour_names(lab)
    vivid = np.hypot(lab[:, 1], lab[:, 2]) >= VIVID_CHROMA
    pool = names[vivid] if vivid.mean() >= MIN_OBJECT_VIVID else names
    labels, counts = np.unique(pool, return_counts=True)
    return str(labels[counts.argmax()])


class ColourCounter:
    """Main colours (share of all pixels), then the vivid ones (share of the image's strongly coloured
    pixels, when there are enough of them), as guesses named `vivid <colour>`."""

    kind = "colours"

    def observe(self, pixels: Pixels) -> Observation:
        started = time.perf_counter()
        lab = to_lab(_small(pixels, SAMPLE_SIDE).reshape(-1, 3))
        names = colour_names(lab)
        vivid = np.hypot(lab[:, 1], lab[:, 2]) >= VIVID_CHROMA
        guesses = _shares(names, names.size, MIN_SHARE)
        if vivid.mean() >= MIN_VIVID:
            found = _shares(names[vivid], names.size, MIN_VIVID / 2)
            guesses += tuple(Guess(f"vivid {g.label}", g.confidence) for g in found)
        return Observation(self.kind, "colour names (CIELAB)", guesses, time.perf_counter() - started)


class Tone:
    """Whether the image is black and white, and whether it is dark or bright overall (mean lightness)."""

    kind = "tone"

    def observe(self, pixels: Pixels) -> Observation:
        started = time.perf_counter()
        lab = to_lab(_small(pixels, SAMPLE_SIDE).reshape(-1, 3))
        grey = float(np.mean(np.hypot(lab[:, 1], lab[:, 2]) < GREY_CHROMA))
        lightness = float(lab[:, 0].mean()) / 100
        guesses = [Guess("black and white (no colour)", grey)] if grey >= BLACK_AND_WHITE else []
        if lightness < DARK:
            guesses.append(Guess("dark overall", 1 - lightness))
        elif lightness > BRIGHT:
            guesses.append(Guess("bright overall", lightness))
        return Observation(self.kind, "lightness and colourfulness", tuple(guesses), time.perf_counter() - started)


def _shape_name(contour: npt.NDArray[np.int32]) -> str | None:
    perimeter = cv2.arcLength(contour, True)
    area = cv2.contourArea(contour)
    if perimeter <= 0 or area <= 0:
        return None
    corners = len(cv2.approxPolyDP(contour, 0.04 * perimeter, True))
    hull = cv2.contourArea(cv2.convexHull(contour))
    if hull <= 0 or area / hull < 0.9:  # not convex: a silhouette, not a plain shape
        return None
    if corners == 3:
        return "triangle"
    if corners == 4:
        return "rectangle"
    return "circle" if 4 * math.pi * area / perimeter**2 >= CIRCULARITY else None


class ShapeFinder:
    kind = "shapes"

    def observe(self, pixels: Pixels) -> Observation:
        started = time.perf_counter()
        small = _small(pixels, SHAPE_SIDE)
        guesses = tuple(self._shapes(small, pixels.shape[1] / small.shape[1]))
        return Observation(self.kind, "outline geometry (OpenCV)", guesses, time.perf_counter() - started)

    def _shapes(self, small: Pixels, scale: float) -> list[Guess]:
        lab = to_lab(small)
        border = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
        background = np.median(border, axis=0)
        if np.mean(np.linalg.norm(border - background, axis=-1) < BACKGROUND_DISTANCE) < BORDER_PLAIN:
            return []
        mask = (np.linalg.norm(lab - background, axis=-1) > REGION_DISTANCE).astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        total = mask.size
        found = []
        for region in sorted(range(1, count), key=lambda r: -stats[r, cv2.CC_STAT_AREA])[:MAX_SHAPES]:
            share = stats[region, cv2.CC_STAT_AREA] / total
            if share < MIN_REGION:
                break
            inside = (labels == region).astype(np.uint8)
            contours, _ = cv2.findContours(inside, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            name = _shape_name(max(contours, key=cv2.contourArea))
            if name is None:
                continue
            colour = str(colour_names(np.median(lab[inside.astype(bool)], axis=0)))
            x, y, w, h = (int(stats[region, k]) for k in (0, 1, 2, 3))
            box = (round(x * scale), round(y * scale), round((x + w) * scale), round((y + h) * scale))
            found.append(Guess(f"{colour} {name}", float(share), box))
        return found
