"""`ember eval health grounded`: questions built from the health index's own entries (`health_facts`),
answered by `ember-health` and by the same model without sources, on the same questions in one run; scored
by how many of the entry's key facts each answer states, and how many of those a source it cites holds
(`grounded_report`).

Systems: `ember-health` answers through the Pipeline the server runs, on its configured role (`chat`),
with its top four index entries as numbered sources. `plain` is that role's engine asked directly with
ember-health's own instructions without sources (`health.system_message([])`, the words ember-health sends
while its index is missing), the question as the only other turn and the same sampling parameters: one
engine, one model file, one prompt but for the sources, so a difference is what the sources did. Both get
the same OpenAI body (the question, temperature 0, seed 0, `max_tokens`), parsed as the API layer parses it.

Resumable as `ember eval tools` is: every answer is appended (and fsynced) to a JSONL cache (`systems.Cache`)
under a key of system, question id and a hash of the body, the model file and the code that writes the
prompts (for both: `ember.modes.health`; for ember-health also `ember.medical.knowledge` and the index's
fingerprint); a record keeps the whole answer, the sources it was given back as citations and their texts,
so scoring (`grounded_report`) never asks again. Questions run in sample order (templates alternate), both
systems per question, `--concurrency` questions at once (the role's slots by default). This
module measures; it asserts nothing and downloads nothing.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

import click

from ember import registry
from ember.config import Settings
from ember.engines.embeddings import Embedders
from ember.medical import knowledge
from ember.medical.knowledge import KnowledgeIndex, built
from ember.medical.service import Knowledge
from ember.modes import health
from ember.services import Services
from ember.serving.pipeline import Pipeline
from ember.store.sql import SqlStore
from ember.types import Delta
from ember_tools.eval.cache import Cache, digest, model_file, role_models, shard_of
from ember_tools.eval.grounded_report import BEGIN, END, document, markdown, summarize
from ember_tools.eval.health_facts import DEV_ITEMS, Question, questions, sample
from ember_tools.eval.systems import EmberSystem, Reply, System, answered, cache_key, in_turn, parsed
from ember_tools.marked import replace_block

HEALTH = "ember-health"
PLAIN = "plain"


def health_role() -> str:
    """The role ember-health answers on."""
    mode = registry.modes.get(HEALTH)
    if mode is None:
        raise click.ClickException(f"no mode {HEALTH!r}")
    return mode.roles[0]


class PlainSystem:
    """ember-health's role asked directly, with ember-health's instructions and no sources."""

    name = PLAIN

    def __init__(self, pipeline: Pipeline, settings: Settings) -> None:
        self.role = health_role()
        self.engines = pipeline.services.engines
        self.fingerprint = digest(role_models(settings, (self.role,)), [inspect.getsource(health)])

    async def _stream(self, body: dict[str, Any]) -> AsyncIterator[Delta]:
        request = parsed(HEALTH, body)
        engine = await self.engines.get(self.role)
        async for delta in engine.stream([health.system_message([]), *request.messages], request.params):
            yield delta

    async def ask(self, body: dict[str, Any]) -> Reply:
        return await answered(lambda: self._stream(body))


def request_body(question: Question, max_tokens: int) -> dict[str, Any]:
    """The OpenAI chat-completions body both systems get for `question`."""
    messages = [{"role": "user", "content": question.text}]
    return {"messages": messages, "temperature": 0.0, "seed": 0, "max_tokens": max_tokens}


async def one(
    system: System, question: Question, max_tokens: int, source: Callable[[str], str | None]
) -> dict[str, Any]:
    """Ask `system` `question`: the cache record, with the texts of the sources it returned (`source` reads an
    entry's text by id)."""
    body = request_body(question, max_tokens)
    reply = await system.ask(body)
    record: dict[str, Any] = {"key": cache_key(system, question.id, body), "system": system.name}
    record |= {"id": question.id, "template": question.template}
    record |= {k: v for k, v in asdict(reply).items() if k != "calls"}
    return record | {"sources": {i: text for _, i in reply.citations if (text := source(i)) is not None}}


async def run(
    systems: list[System],
    chosen: list[Question],
    cache: Cache,
    max_tokens: int,
    source: Callable[[str], str | None],
    concurrency: int = 1,
) -> None:
    """Ask every system every question that the cache does not hold yet: `concurrency` questions at once, in
    sample order, each question's systems in turn (a record keeps the concurrency its seconds were measured at)."""
    todo = [
        (question, missing)
        for question in chosen
        if (
            missing := [
                s for s in systems if cache_key(s, question.id, request_body(question, max_tokens)) not in cache.records
            ]
        )
    ]

    async def answer(question: Question, system: System) -> dict[str, Any]:
        return await one(system, question, max_tokens, source) | {"concurrency": concurrency}

    await in_turn(todo, answer, cache, concurrency, "grounded")


def _text(index: KnowledgeIndex) -> Callable[[str], str | None]:
    def text(entry_id: str) -> str | None:
        entry = index.get(entry_id)
        return None if entry is None else entry.text

    return text


async def evaluate(settings: Settings, opts: dict[str, Any], cache: Cache) -> dict[str, Any]:
    """Run (unless `opts["run"]` is false) and summarise what the cache holds for the chosen questions."""
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = Pipeline(Services.open(settings, SqlStore(f"sqlite:///{Path(tmp) / 'eval.db'}")))
        try:
            index = await asyncio.to_thread(pipeline.services.knowledge.open_index)
            if index is None:
                raise click.ClickException("the health knowledge index is not built: run `ember health build`")
            index_code = (inspect.getsource(knowledge), index.directory.name)
            systems: list[System] = [
                PlainSystem(pipeline, settings),
                EmberSystem(HEALTH, pipeline, settings, index_code),
            ]
            chosen = shard_of(
                sample(questions(index.entries()), opts["limit"], opts["seed"], opts["dev"]), opts["shard"]
            )
            if opts["run"]:
                await run(systems, chosen, cache, opts["max_tokens"], _text(index), opts.get("concurrency", 1))
        finally:
            await pipeline.services.aclose()
    keys = {s.name: {q.id: cache_key(s, q.id, request_body(q, opts["max_tokens"])) for q in chosen} for s in systems}
    return summarize(chosen, keys, cache.records)


def command_line(opts: dict[str, Any]) -> str:
    words = ["ember", "eval", "health", "grounded", f"--limit {opts['limit']}", f"--seed {opts['seed']}"]
    words += [f"--max-tokens {opts['max_tokens']}"] + ([f"--shard {opts['shard']}"] if opts["shard"] != "0/1" else [])
    return " ".join(words + (["--dev"] if opts["dev"] else []))


@click.command("grounded")
@click.option("--limit", default=200, show_default=True, help="questions (fixed-seed sample, templates alternating)")
@click.option("--seed", default=0, show_default=True)
@click.option("--max-tokens", default=256, show_default=True, help="answer length cap per question")
@click.option("--shard", default="0/1", show_default=True, help="i/n: run every n-th question from the i-th")
@click.option("--dev", is_flag=True, help=f"the dev slice ({DEV_ITEMS} a template) instead of the sample; not written")
@click.option("--concurrency", type=click.IntRange(min=1), default=None, help="questions at once [the role's slots]")
@click.option("--run/--no-run", "run_", default=True, help="--no-run: only summarise what the cache holds")
@click.option(
    "--cache", type=click.Path(dir_okay=False, path_type=Path), default=Path("docs/eval-health-grounded-items.jsonl")
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--doc", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Markdown to write into")
def grounded(
    limit: int,
    seed: int,
    max_tokens: int,
    shard: str,
    dev: bool,
    concurrency: int | None,
    run_: bool,
    cache: Path,
    json_out: Path | None,
    doc: Path | None,
) -> None:
    """Key facts stated, and held by a cited source, by ember-health and by its model without sources."""
    if dev and (json_out or doc):
        raise click.UsageError("the dev slice is never reported: --dev takes no --json or --doc")
    registry.load_plugins()
    settings = Settings()
    target = Knowledge(Embedders(settings.cache_dir), build=False).target()
    if not built(target):  # ember-health would answer without sources: not what this compares
        raise click.ClickException(f"the health knowledge index is not built: run `ember health build` ({target})")
    opts: dict[str, Any] = {"limit": limit, "seed": seed, "max_tokens": max_tokens, "shard": shard, "dev": dev}
    role = health_role()
    run_opts = opts | {"run": run_, "concurrency": concurrency or settings.roles[role].parallel}
    summary = asyncio.run(evaluate(settings, run_opts, Cache(cache)))
    model = (model_file(settings, role) or Path(settings.roles[role].model)).name
    meta: dict[str, Any] = {"command": command_line(opts), "date": date.today().isoformat(), "cores": os.cpu_count()}
    meta |= opts | {"concurrency": run_opts["concurrency"], "role": role, "model": model, "index": target.name}
    meta["dev_items"] = DEV_ITEMS
    click.echo(markdown(summary))
    if json_out is not None:
        json_out.write_text(json.dumps({**meta, **summary}, indent=2) + "\n")
    if doc is not None:
        replace_block(doc, BEGIN, END, document(meta, summary), "# Health\n")
