"""`python -m ember.medical.worker CACHE_DIR [--limit N] [--source NAME]... [--nice N]`: build the health index
into CACHE_DIR at the lowest CPU priority (by default), telling the parent how far it got on stdout.

Each stdout line is one JSON object: `{"done": N, "total": M}` (total 0 while the sources are read), then
`{"ready": true, "path": ...}`, or `{"error": "..."}` with exit status 1. Progress is
written at most every REPORT_EVERY_S seconds. The server starts this (`ember.medical.service`) when its index is
missing; being a process of its own, its Python work never waits on the server's GIL and the server's
never on its, and stopping it at shutdown is a signal (the index is renamed into place only when complete).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ember.assets.assemble import ensure_asset
from ember.assets.catalogue import CATALOGUE
from ember.medical.knowledge import SOURCES, build_index, index_dir, index_embedder

REPORT_EVERY_S = 0.5
NICE = 19  # the lowest priority: chat generation gets the cores whenever it wants them


def say(**message: object) -> None:
    print(json.dumps(message), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ember.medical.worker")
    parser.add_argument("cache_dir", type=Path)
    parser.add_argument("--limit", type=int, default=None, help="at most this many entries from each source")
    parser.add_argument("--source", action="append", choices=sorted(SOURCES), help="only these sources")
    parser.add_argument("--nice", type=int, default=NICE, help="added to this process's nice value")
    args = parser.parse_args(argv)
    os.nice(args.nice)  # before any thread starts: onnxruntime's and the tokenizer's threads inherit it
    last = 0.0

    def report(done: int, total: int) -> None:
        nonlocal last
        if time.monotonic() - last >= REPORT_EVERY_S or done in (0, total):
            last = time.monotonic()
            say(done=done, total=total)

    try:
        say(done=0, total=0)
        embed_dir = ensure_asset(CATALOGUE["embed"], args.cache_dir)
        sources = {name: SOURCES[name] for name in args.source} if args.source else None
        target = build_index(
            index_dir(args.cache_dir, embed_dir),
            index_embedder(embed_dir),
            limit=args.limit,
            sources=sources,
            report=report,
            keep_built=True,
        )
    except Exception as exc:  # told to the server, which logs it and keeps answering without sources
        say(error=f"{type(exc).__name__}: {exc}")
        return 1
    say(ready=True, path=str(target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
