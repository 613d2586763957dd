"""The built-in image readers, registered in `ember.registry.vision` exactly as a plugin would.

Each factory is called once, when the first image is described; the model files come from the verified
vision cache (`ember.vision.assets`). Importing this module loads no model.
"""

from __future__ import annotations

from ember import registry
from ember.config import Settings
from ember.vision.assets import vision_file
from ember.vision.base import ImageReader


def _objects(settings: Settings) -> ImageReader:
    from ember.vision.objects import ObjectDetector

    return ObjectDetector(vision_file(settings.cache_dir, "centernet.onnx"))


def _classes(settings: Settings) -> ImageReader:
    from ember.vision.classes import Classifier

    cache = settings.cache_dir
    return Classifier(vision_file(cache, "mobilenet_v2.onnx"), vision_file(cache, "imagenet_labels.txt"))


def _text(settings: Settings) -> ImageReader:
    from ember.vision.text import TextReader

    return TextReader()


def _colours(settings: Settings) -> ImageReader:
    from ember.vision.colours import ColourCounter

    return ColourCounter()


def _shapes(settings: Settings) -> ImageReader:
    from ember.vision.colours import ShapeFinder

    return ShapeFinder()


registry.vision.add("objects", _objects)
registry.vision.add("classes", _classes)
registry.vision.add("text", _text)
registry.vision.add("colours", _colours)


def _tone(settings: Settings) -> ImageReader:
    from ember.vision.colours import Tone

    return Tone()


registry.vision.add("shapes", _shapes)
registry.vision.add("tone", _tone)
