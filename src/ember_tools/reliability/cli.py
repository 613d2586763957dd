"""`ember reliability …`: the command group of the reliability checks, each imported only when it runs."""

from __future__ import annotations

import click

from ember.cli.lazy import Lazy, LazyGroup

CHECKS = {
    "durability": Lazy(
        "ember_tools.reliability.durability:durability",
        "SIGKILL `ember serve` mid-burst, restart it, check every received answer is stored and the db is sound.",
    ),
    "load": Lazy(
        "ember_tools.reliability.load:load",
        "Open-model load on loopback: TTFT and latency percentiles, errors, and fast 503s when overloaded.",
    ),
    "soak": Lazy(
        "ember_tools.reliability.soak:soak",
        "Mixed traffic with client disconnects: hangs, /health, RSS growth per 1,000 requests, leaked slots.",
    ),
    "report": Lazy(
        "ember_tools.reliability.report:report",
        "Write the checks' results into docs/reliability.md (between its marker comments).",
    ),
}


@click.group(cls=LazyGroup, lazy=CHECKS)
def reliability() -> None:
    """Load, soak and crash-durability checks against a server on loopback (bounded in count and time)."""
