"""ImageNet-1k classification with torchvision's MobileNetV2 (converted to ONNX at set-up) on onnxruntime.

torchvision's evaluation transform: resize the shorter side to 256, centre-crop 224, scale to [0, 1] and
normalise with ImageNet's mean and std. Reports the top classes whose softmax probability reaches
`MIN_PROBABILITY`, at most `TOP`, named by their WordNet lemmas ("tabby, tabby cat"). No boxes.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from ember.vision.base import Guess, Observation, Pixels
from ember.vision.onnx import session

RESIZE = 256
CROP = 224
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
TOP = 5
MIN_PROBABILITY = 0.05
SOURCE = "MobileNetV2 (ImageNet-1k)"


class Classifier:
    kind = "classes"

    def __init__(self, model: Path, labels: Path, threads: int | None = None) -> None:
        self.session = session(model, threads)
        self.labels = labels.read_text().splitlines()

    def observe(self, pixels: Pixels) -> Observation:
        started = time.perf_counter()
        image = PILImage.fromarray(pixels)
        scale = RESIZE / min(image.size)
        image = image.resize(
            (max(CROP, round(image.width * scale)), max(CROP, round(image.height * scale))),
            PILImage.Resampling.BILINEAR,
        )
        left, top = (image.width - CROP) // 2, (image.height - CROP) // 2
        crop = np.asarray(image.crop((left, top, left + CROP, top + CROP)), dtype=np.float32) / 255.0
        batch = ((crop - MEAN) / STD).transpose(2, 0, 1)[None].astype(np.float32)
        logits = self.session.run(["logits"], {"image": batch})[0][0]
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        best = [int(i) for i in np.argsort(-probs)[:TOP] if probs[i] >= MIN_PROBABILITY]
        guesses = tuple(Guess(self.labels[i], float(probs[i])) for i in best)
        return Observation(self.kind, SOURCE, guesses, time.perf_counter() - started)
