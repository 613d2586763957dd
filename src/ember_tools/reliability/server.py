"""What the reliability checks share: loopback-only targets, an `ember serve` subprocess on a free loopback
port, reading `/metrics`, percentiles, and the machine the numbers came from.

The server it starts has a throwaway data directory and its own EMBER_* settings (the model cache is the
caller's, so nothing is downloaded or re-assembled); it is stopped when the block ends. This module sends
no traffic beyond the health and metrics reads, and never to a host other than this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import httpx
from prometheus_client.parser import text_string_to_metric_families

LOOPBACK_NAMES = {"localhost"}
START_TIMEOUT_S = 600.0  # a model loading on a busy 2-core machine
SETTLE_TIMEOUT_S = 30.0
KEPT_ENV = {"EMBER_CACHE_DIR"}  # where the caller's models are; every other EMBER_* setting is the check's own


def require_loopback(url: str) -> str:
    """`url` without a trailing slash, if its host is this machine (127.0.0.0/8, ::1, localhost); else a
    click error: these checks never send traffic anywhere else."""
    host = httpx.URL(url).host
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host.lower() in LOOPBACK_NAMES
    if not loopback:
        raise click.BadParameter(f"{url!r} is not on loopback; reliability checks only target this machine")
    return url.rstrip("/")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Server:
    url: str
    pid: int | None  # None: a server this process did not start


def chat_roles(model: str, parallel: int, ctx_size: int) -> dict[str, dict[str, Any]]:
    """`model` (a catalogue role or GGUF path) behind both chat roles, so every mode and /health use it."""
    spec = {"engine": "llama_cpp", "model": model, "parallel": parallel, "ctx_size": ctx_size}
    return {"chat-fast": spec, "chat": spec}


def log_tail(log: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


def wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Return once `proc`'s /health answers 200; ClickException with its log's tail if it exits or is slow."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise click.ClickException(f"`ember serve` exited with status {proc.returncode}:\n{log_tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=60).status_code == 200:
                return
        time.sleep(0.5)
    raise click.ClickException(f"`ember serve` was not healthy after {START_TIMEOUT_S:.0f}s:\n{log_tail(log)}")


@contextlib.contextmanager
def serve(roles: Mapping[str, Any], settings: Mapping[str, str] | None = None) -> Iterator[Server]:
    """`ember serve` in a subprocess on a free loopback port with these `roles` and extra EMBER_* `settings`,
    a temporary data directory and no ember.toml; yields it once /health answers 200, stops it after."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="ember-reliability-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EMBER_") or k in KEPT_ENV}
        env |= {"EMBER_ROLES": json.dumps(roles), "EMBER_DATA_DIR": tmp, "EMBER_CONFIG": f"{tmp}/none.toml"}
        env |= {"EMBER_TITLES": "false"}  # a title is a generation of its own, after an answer: not what is measured
        env |= dict(settings or {})
        log = Path(tmp) / "serve.log"
        cmd = [sys.executable, "-m", "ember.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(proc, url, log)
            yield Server(url, proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


Samples = dict[str, list[tuple[dict[str, str], float]]]


def parse_metrics(text: str) -> Samples:
    """Every sample of a Prometheus exposition, by sample name (e.g. `ember_admission_refused_total`)."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append((dict(s.labels), s.value))
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 if none)."""
    return sum(v for sample_labels, v in samples.get(name, []) if labels.items() <= sample_labels.items())


async def scrape(client: httpx.AsyncClient) -> Samples:
    resp = await client.get("/metrics", timeout=30)
    resp.raise_for_status()
    return parse_metrics(resp.text)


def in_flight(samples: Samples) -> dict[str, float]:
    """Work the server still holds: engine slots in use, admitted and waiting requests."""
    return {
        "engine_active": total(samples, "ember_engine_active"),
        "admission_running": total(samples, "ember_admission_requests", state="running"),
        "admission_waiting": total(samples, "ember_admission_requests", state="waiting"),
    }


async def settle(client: httpx.AsyncClient, timeout_s: float = SETTLE_TIMEOUT_S) -> dict[str, Any]:
    """After traffic stops: how long until the server holds no work (engine slots, admission places), what
    it still holds then, and what /health says."""
    t0 = time.monotonic()
    held = in_flight(await scrape(client))
    while any(held.values()) and time.monotonic() - t0 < timeout_s:
        await asyncio.sleep(0.1)
        held = in_flight(await scrape(client))
    settled_s = time.monotonic() - t0
    health = await client.get("/health", timeout=60)
    return {"settled_s": round(settled_s, 3), "held": held, "health_status": health.status_code, **_health(health)}


def _health(resp: httpx.Response) -> dict[str, Any]:
    """What a /health answer says: its `status` field, or why there was none."""
    try:
        return {"health": str(resp.json()["status"])}
    except (ValueError, KeyError, TypeError):
        return {"health": None, "health_body": resp.text[:200]}


def percentiles(values: Sequence[float], qs: Sequence[float] = (50, 90, 99)) -> dict[str, float | None]:
    """Linear-interpolated percentiles of `values` (p50, p90, p99) and the max; None for an empty list."""
    ordered = sorted(values)
    out: dict[str, float | None] = {}
    for q in qs:
        out[f"p{q:g}"] = _interpolate(ordered, q / 100) if ordered else None
    out["max"] = ordered[-1] if ordered else None
    return out


def _interpolate(ordered: Sequence[float], fraction: float) -> float:
    pos = fraction * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg": os.getloadavg(),
    }


def write_json(path: Path, result: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
