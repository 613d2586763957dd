"""COCO-80 object detection with CenterNet-MobileNetV3 (converted to ONNX at set-up) on onnxruntime.

The image is padded to a square (stretching it loses most people), resized to 512 x 512 and fed as 0-255
RGB. The network gives an 80-class centre heatmap and box sizes on a 128 x 128 grid; decoding is
CenterNet's: local maxima of the heatmap (3 x 3), the strongest `MAX_OBJECTS`, then per-class
non-maximum suppression. Boxes come back in the pixels given, each object with the main colour of the
middle of its box. This module does not count or describe.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image as PILImage

from ember.vision.base import Box, Guess, Observation, Pixels
from ember.vision.colours import main_colour
from ember.vision.onnx import session

INPUT = 512
STRIDE = 4  # heatmap cell size in input pixels
MIN_SCORE = 0.3
MAX_OBJECTS = 20
NMS_IOU = 0.5
SOURCE = "CenterNet-MobileNetV3 (COCO-80)"
# fmt: off
LABELS = (  # COCO-80, in the detector's class order
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow", "elephant",
    "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard",
    "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli",
    "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", "dining table", "toilet",
    "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)
# fmt: on


def _iou(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """IoU of box `a` with each row of `b` (x1, y1, x2, y2)."""
    x1, y1 = np.maximum(a[0], b[:, 0]), np.maximum(a[1], b[:, 1])
    x2, y2 = np.minimum(a[2], b[:, 2]), np.minimum(a[3], b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    out: npt.NDArray[np.float32] = inter / np.maximum(area, 1e-6)
    return out


def decode(
    heatmap: npt.NDArray[np.float32], sizes: npt.NDArray[np.float32], scale: float, bounds: tuple[int, int]
) -> list[Guess]:
    """Objects from one image's heatmap (80, G, G) and box sizes (4, G, G); `scale` maps input pixels back."""
    grid = heatmap.shape[1]
    padded = np.pad(heatmap, ((0, 0), (1, 1), (1, 1)), constant_values=-1.0)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))
    peaks = np.where(heatmap == windows.max(axis=(-1, -2)), heatmap, 0.0).reshape(-1)
    top = np.argsort(-peaks)[: MAX_OBJECTS * 3]
    top = top[peaks[top] >= MIN_SCORE]
    classes, cells = np.divmod(top, grid * grid)
    ys, xs = np.divmod(cells, grid)
    left, top_, right, bottom = sizes[:, ys, xs]
    boxes = np.stack([xs * STRIDE - left, ys * STRIDE - top_, xs * STRIDE + right, ys * STRIDE + bottom], axis=1)
    boxes = np.clip(boxes * scale, 0, [bounds[0], bounds[1], bounds[0], bounds[1]]).astype(np.float32)
    kept: list[Guess] = []
    chosen: list[tuple[int, npt.NDArray[np.float32]]] = []
    for i in range(len(top)):
        same = [box for cls, box in chosen if cls == classes[i]]
        if same and _iou(boxes[i], np.stack(same)).max() > NMS_IOU:
            continue
        chosen.append((int(classes[i]), boxes[i]))
        x1, y1, x2, y2 = (round(float(v)) for v in boxes[i])
        box: Box = (x1, y1, x2, y2)
        kept.append(Guess(LABELS[int(classes[i])], float(peaks[top[i]]), box))
        if len(kept) == MAX_OBJECTS:
            break
    return kept


class ObjectDetector:
    kind = "objects"

    def __init__(self, model: Path, threads: int | None = None) -> None:
        self.session = session(model, threads)

    def observe(self, pixels: Pixels) -> Observation:
        started = time.perf_counter()
        height, width = pixels.shape[:2]
        side = max(width, height)
        square = np.zeros((side, side, 3), dtype=np.uint8)
        square[:height, :width] = pixels
        resized = PILImage.fromarray(square).resize((INPUT, INPUT), PILImage.Resampling.BILINEAR)
        batch = np.asarray(resized, dtype=np.float32).transpose(2, 0, 1)[None]
        heatmap, sizes = self.session.run(["heatmap", "wh"], {"images": batch})
        found = decode(heatmap[0], sizes[0], side / INPUT, (width, height))
        guesses = tuple(replace(g, detail=f"mostly {_colour_in(pixels, g.box)}") for g in found)
        return Observation(self.kind, SOURCE, guesses, time.perf_counter() - started)


def _colour_in(pixels: Pixels, box: Box | None) -> str:
    """The main colour of the middle half of `box` (its edges are mostly background)."""
    x1, y1, x2, y2 = box or (0, 0, pixels.shape[1], pixels.shape[0])
    dx, dy = (x2 - x1) // 4, (y2 - y1) // 4
    middle = pixels[y1 + dy : max(y2 - dy, y1 + dy + 1), x1 + dx : max(x2 - dx, x1 + dx + 1)]
    return main_colour(middle)
