"""llama.cpp server parameters for a role, shared by the in-process engine and the llama.cpp child process.

It builds a `CommonParams` record only: it loads nothing and starts nothing.
"""

from __future__ import annotations

import os
from typing import Any

import xllamacpp as xlc

from ember.config import EngineSpec


def server_params(spec: EngineSpec, path: str, mmproj: str | None = None) -> Any:
    """llama.cpp server parameters for `spec`: `parallel` slots of `ctx_size` tokens each, and the
    multimodal projector `mmproj` if given."""
    threads = spec.threads or os.cpu_count() or 1
    p = xlc.CommonParams()
    p.model.path = path
    if mmproj is not None:
        p.mmproj.path = mmproj
    p.n_parallel = spec.parallel
    p.n_ctx = spec.ctx_size * spec.parallel
    p.kv_unified = False
    p.cpuparams.n_threads = threads
    p.cpuparams_batch.n_threads = threads
    p.verbosity = int(spec.options.get("verbosity", -1))
    return p
