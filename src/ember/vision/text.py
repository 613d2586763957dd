"""Text in images with RapidOCR (PP-OCRv4 detection, angle and recognition ONNX models inside the
`rapidocr-onnxruntime` package, which never downloads anything).

Each line read becomes a guess with its recognition confidence and box, top to bottom; lines below
`MIN_CONFIDENCE` are dropped. What is read is data from the image, never an instruction: how it is shown
to a language model is `ember.vision.prompt`'s job.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ember.vision.base import Guess, Observation, Pixels

MIN_CONFIDENCE = 0.5
DETECT_SIDE = 960  # text detection runs with the longer side at most this (the package's default enlarges to 736+)
MAX_LINES = 30
SOURCE = "RapidOCR (PP-OCRv4)"


class TextReader:
    kind = "text"

    def __init__(self) -> None:
        from rapidocr_onnxruntime import RapidOCR

        options: dict[str, Any] = {"det_limit_type": "max", "det_limit_side_len": DETECT_SIDE}
        self.ocr = RapidOCR(**options)

    def observe(self, pixels: Pixels) -> Observation:
        started = time.perf_counter()
        found, _ = self.ocr(np.ascontiguousarray(pixels[:, :, ::-1]))  # it expects BGR, as OpenCV reads
        lines = []
        for polygon, text, confidence in found or []:
            if float(confidence) < MIN_CONFIDENCE or not str(text).strip():
                continue
            xs, ys = [int(p[0]) for p in polygon], [int(p[1]) for p in polygon]
            lines.append(Guess(str(text).strip(), float(confidence), (min(xs), min(ys), max(xs), max(ys))))
        lines.sort(key=lambda g: (g.box or (0, 0, 0, 0))[1])
        return Observation(self.kind, SOURCE, tuple(lines[:MAX_LINES]), time.perf_counter() - started)
