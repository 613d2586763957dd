"""llama.cpp's own `llama-server` as the reference of `ember bench engine --llama-server`: the build, the
binary and its command line are the runtime's (`ember.engines.llama_server`); this starts it on a free
loopback port for the benchmark and stops it afterwards."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import click
import httpx

from ember.engines.llama_server import BuildError, build, command, free_port, library_env

__all__ = ["built", "command", "free_port", "running"]

START_TIMEOUT_S = 300.0


def built(cache_dir: Path) -> Path:
    """The built `llama-server`, building it first (with cmake's lines on stderr) if this cache has none."""
    try:
        return build(cache_dir, lambda line: click.echo(line, err=True))
    except BuildError as exc:
        raise click.ClickException(str(exc)) from None


@contextlib.contextmanager
def running(args: list[str]) -> Iterator[tuple[str, int]]:
    """`llama-server` started with `args` (from `command`); yields its base URL and pid once /health is 200."""
    port = int(args[args.index("--port") + 1])
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, **library_env(Path(args[0]))}
    with subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env) as proc:
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not _healthy(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise click.ClickException(f"llama-server did not start (exit {proc.returncode})")
                time.sleep(0.2)
            yield url, proc.pid
        finally:
            proc.terminate()
            proc.wait(30)


def _healthy(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"{url}/health", timeout=2.0).status_code == 200
    return False
