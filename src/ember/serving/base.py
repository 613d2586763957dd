"""What every serving object works with: the pipeline, the settings, the key limiter and the admission limit."""

from __future__ import annotations

from dataclasses import dataclass

from ember.config import Settings
from ember.policy.limits import Limiter
from ember.serving.admission import Admission
from ember.serving.pipeline import Pipeline


@dataclass
class Serving:
    pipeline: Pipeline
    settings: Settings
    limiter: Limiter
    admission: Admission
