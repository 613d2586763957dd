"""`ember bench …`: the command group of the benchmarks, each imported only when it runs."""

from __future__ import annotations

import click

from ember.cli.lazy import Lazy, LazyGroup

BENCHMARKS = {
    "engine": Lazy(
        "ember_tools.bench.generation:engine",
        "llama.cpp called directly vs. through `ember serve` (in-process and child-process engines), and with "
        "--llama-server llama.cpp's own server: TTFT, decode and multi-stream throughput, and a next turn's TTFT "
        "with and without the prompt cache.",
    ),
    "recs": Lazy(
        "ember_tools.bench.recs:recs",
        "Recommendation latency (p50/p99) and event ingest rate at MovieLens-100k size.",
    ),
    "first-run": Lazy(
        "ember_tools.bench.first_run:first_run",
        "Time a fresh `ember serve` to its first streamed token and to a ready health index.",
    ),
}


@click.group(cls=LazyGroup, lazy=BENCHMARKS)
def bench() -> None:
    """Benchmarks (ratios against a reference measured in the same run)."""
