"""One way to open an ONNX model for the image readers: CPU, quiet, a bounded number of threads."""

from __future__ import annotations

import os
from pathlib import Path

import onnxruntime as ort

DEFAULT_THREADS = 2


def session(model: Path, threads: int | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or min(DEFAULT_THREADS, os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
