"""`ember bench first-run`: how soon a fresh `ember serve` answers. It starts `ember serve` on an empty data
directory and a cache holding only links to the models already assembled in the usual cache (so no health
index), and measures from the moment the process starts: when `/health/live` first answers, the first
streamed token of a chat (ember-instant) and of an ember-health chat on loopback, and when `/health` reports the
health knowledge index ready (built in the background meanwhile). The caller's other EMBER_* settings (e.g.
EMBER_ROLES) apply. A benchmark: it prints numbers, asserts nothing, downloads nothing and sends nothing
beyond this machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import httpx

from ember.config import Settings
from ember_tools.reliability.server import free_port, log_tail

QUESTION = "Say hello in five words."
HEALTH_QUESTION = "What is a normal resting heart rate?"
POLL_S = 0.1
REPORT_EVERY_S = 15.0
OWN_ENV = {"EMBER_DATA_DIR", "EMBER_CACHE_DIR", "EMBER_HOST", "EMBER_PORT", "EMBER_BUILD_HEALTH_INDEX"}


def link_models(models: Path, cache: Path) -> None:
    """`cache/models` holding a link to every entry of `models` (assembled files, stamps, directories)."""
    (cache / "models").mkdir(parents=True)
    for entry in models.iterdir():
        (cache / "models" / entry.name).symlink_to(entry.absolute())


def first_token(base: str, model: str, question: str, timeout_s: float) -> tuple[float, str]:
    """Seconds (monotonic clock) when the first content token of a streamed chat arrived, and the whole answer."""
    body = {"model": model, "stream": True, "max_tokens": 48, "messages": [{"role": "user", "content": question}]}
    at, parts = 0.0, []
    with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=timeout_s) as resp:
        resp.raise_for_status()
        for line in resp.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choices = json.loads(line[len("data: ") :]).get("choices") or [{}]
            text = choices[0].get("delta", {}).get("content") or ""
            if text and not at:
                at = time.monotonic()
            parts.append(text)
    return at, "".join(parts)


def wait_for(check: Any, proc: subprocess.Popen[bytes], log: Path, deadline: float, poll_s: float) -> Any:
    """Call `check()` until it returns something true (HTTP errors count as not yet); that value."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise click.ClickException(f"`ember serve` exited with status {proc.returncode}:\n{log_tail(log)}")
        try:
            value = check()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        time.sleep(poll_s)
    raise click.ClickException(f"gave up after the timeout:\n{log_tail(log)}")


def measure(base: str, proc: subprocess.Popen[bytes], log: Path, started: float, timeout_s: float) -> dict[str, Any]:
    deadline = started + timeout_s
    wait_for(lambda: httpx.get(f"{base}/health/live", timeout=5).status_code == 200, proc, log, deadline, POLL_S)
    out: dict[str, Any] = {"listening_s": time.monotonic() - started}
    at, _ = first_token(base, "ember-instant", QUESTION, timeout_s)
    out["first_token_s"] = at - started
    at, answer = first_token(base, "ember-health", HEALTH_QUESTION, timeout_s)
    out["health_first_token_s"] = at - started
    out["health_answer_without_sources"] = "Sources:" not in answer
    for key in ("listening_s", "first_token_s", "health_first_token_s"):
        click.echo(f"{key:<22} {out[key]:8.1f}")
    reported = [time.monotonic()]

    def index_ready() -> dict[str, Any] | None:
        status: dict[str, Any] = httpx.get(f"{base}/health", timeout=60).json()["health_index"]
        if time.monotonic() - reported[0] >= REPORT_EVERY_S:
            reported[0] = time.monotonic()
            click.echo(f"  {time.monotonic() - started:6.0f} s  health index {status['done']}/{status['total']}")
        return status if status["ready"] else None

    status = wait_for(index_ready, proc, log, deadline, 1.0)
    out["index_ready_s"] = time.monotonic() - started
    out["index_entries"] = status["total"]
    return out


@click.command("first-run")
@click.option("--models-from", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="a cache whose assembled models to use (default: the configured cache_dir)")  # fmt: skip
@click.option("--timeout", "timeout_s", type=float, default=1800.0, show_default=True, help="give up after (s)")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def first_run(models_from: Path | None, timeout_s: float, json_out: Path | None) -> None:
    """Time a fresh `ember serve` to its first streamed token and to a ready health index."""
    models = (models_from or Settings().cache_dir) / "models"
    with tempfile.TemporaryDirectory(prefix="ember-first-run-") as tmp:
        work = Path(tmp)
        link_models(models, work / "cache")
        port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in OWN_ENV}
        env |= {"EMBER_DATA_DIR": str(work / "data"), "EMBER_CACHE_DIR": str(work / "cache"), "EMBER_PORT": str(port)}
        log = work / "server.log"
        with log.open("wb") as sink:
            started = time.monotonic()
            proc = subprocess.Popen([sys.executable, "-m", "ember.cli", "serve"], env=env, stdout=sink, stderr=sink)
            try:
                out = measure(f"http://127.0.0.1:{port}", proc, log, started, timeout_s)
            finally:
                proc.terminate()
                proc.wait(60)
    out |= {"cpus": os.cpu_count(), "load_avg": os.getloadavg()}
    click.echo(f"{'index_ready_s':<22} {out['index_ready_s']:8.1f}")
    click.echo(f"index entries          {out['index_entries']:8d}   load average {out['load_avg'][0]:.1f}")
    if json_out is not None:
        json_out.write_text(json.dumps(out, indent=2) + "\n")
