"""`ember eval tools`: BFCL's non-live AST categories, Ember's modes side by side with the raw model's own
tool calling, on the same items in one run.

Systems: "raw" is the role's GGUF in llama.cpp (`xllamacpp.Server` from `server_params`, `use_jinja` on:
the model's own chat template and llama.cpp's own tool-call parsing); a call counts only if llama.cpp
returned it in `tool_calls`, text is no call. Each Ember mode (default `ember-instant`) answers through
the same Pipeline the server runs (as the other evaluations do), after the request body was parsed and
checked by the API layer's own `ChatCompletionRequest` / `to_chat_request`. Both get the same OpenAI body:
the item's first turn, its functions as `tools` (`bfcl.openai_tools`), `tool_choice` auto, temperature 0,
seed 0, `max_tokens`. Scoring is BFCL's checker (`bfcl.score`). An answer that failed (an Ember error, a
llama.cpp error) made no call and is scored as such; its error is kept.

Resumable: every scored item is appended (and fsynced) to a JSONL cache under a key of system, category,
item id and a hash of the request body, the model file and the code that writes the prompts (for Ember:
the mode's module and `ember.calling`; for raw: the xllamacpp version); a re-run skips what is there, a
killed run loses at most the item in flight (the cache, `Reply` and `EmberSystem` are `systems.py`'s,
shared with `ember eval health grounded`). Items run round-robin over the categories, both systems per
item, so a partial run is paired and spread evenly. `--limit` items a category come from a fixed-seed
order after its first `bfcl.DEV_ITEMS` (the dev slice, `--dev`, never reported). This module measures; it
asserts nothing and downloads nothing.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import tempfile
import time
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from ember import calling, registry
from ember.assets.assemble import resolve_model
from ember.config import Settings
from ember.services import Services
from ember.serving.pipeline import Pipeline
from ember.store.sql import SqlStore
from ember_tools.eval import bfcl
from ember_tools.eval.cache import Cache, digest, interleaved, model_id, shard_of
from ember_tools.eval.systems import EmberSystem, Reply, System
from ember_tools.eval.systems import cache_key as shared_key
from ember_tools.eval.tools_report import document, markdown, summarize

RAW = "raw"
ROLE = "chat-fast"
TEXT_KEPT = 300  # characters of an answer's text kept in the cache, to see what a system said


def request_body(case: bfcl.Case, max_tokens: int) -> dict[str, Any]:
    """The OpenAI chat-completions body both systems get for `case`."""
    return {
        "messages": case.messages,
        "tools": bfcl.openai_tools(case.functions),
        "tool_choice": "auto",
        "temperature": 0.0,
        "seed": 0,
        "max_tokens": max_tokens,
    }


class RawSystem:
    """The GGUF in llama.cpp with its own chat template and tool-call parsing; loaded on the first ask."""

    name = RAW

    def __init__(self, settings: Settings, role: str = ROLE) -> None:
        import xllamacpp

        self.spec = settings.roles[role]
        self.path = resolve_model(self.spec.model, settings.cache_dir)
        self.fingerprint = digest(model_id(self.path), xllamacpp.__version__, "use_jinja")
        self.server: Any = None

    def _load(self) -> Any:
        import xllamacpp as xlc

        from ember.engines.llama_params import server_params

        params = server_params(self.spec, str(self.path))
        params.use_jinja = True
        return xlc.Server(params)

    async def ask(self, body: dict[str, Any]) -> Reply:
        if self.server is None:
            self.server = await asyncio.to_thread(self._load)
        started = time.perf_counter()
        try:
            result = await asyncio.to_thread(self.server.handle_chat_completions, body)
        except Exception as exc:  # the C++ layer raises plain RuntimeErrors
            return Reply(seconds=time.perf_counter() - started, error=f"llama.cpp failed: {exc}")
        seconds = time.perf_counter() - started
        if "error" in result or not result.get("choices"):
            return Reply(seconds=seconds, error=json.dumps(result.get("error", result))[:TEXT_KEPT])
        message = result["choices"][0]["message"]
        calls = [_call(c["function"]) for c in message.get("tool_calls") or []]
        usage = result.get("usage") or {}
        text = str(message.get("content") or "")
        return Reply(calls, text, int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)), seconds)

    def close(self) -> None:
        self.server = None  # the destructor joins llama.cpp's loop thread and frees the model


def _call(function: dict[str, Any]) -> tuple[str, str]:
    arguments = function.get("arguments", "")
    return str(function.get("name", "")), arguments if isinstance(arguments, str) else json.dumps(arguments)


def cache_key(system: System, case: bfcl.Case, body: dict[str, Any]) -> str:
    return shared_key(system, f"{case.category}|{case.id}", body)


async def one(system: System, case: bfcl.Case, max_tokens: int) -> dict[str, Any]:
    """Ask `system` about `case` and score the answer: the cache record."""
    body = request_body(case, max_tokens)
    reply = await system.ask(body)
    verdict = bfcl.score(case, reply.calls)
    record: dict[str, Any] = {"key": cache_key(system, case, body), "system": system.name, "category": case.category}
    record |= {"id": case.id, "valid": verdict.valid, "error_type": verdict.error_type}
    return record | asdict(reply) | {"text": reply.text[:TEXT_KEPT]}


async def run(systems: list[System], by_category: dict[str, list[bfcl.Case]], cache: Cache, max_tokens: int) -> None:
    """Score every case with every system that the cache does not hold yet."""
    todo = [
        (system, case)
        for case in interleaved(by_category)
        for system in systems
        if cache_key(system, case, request_body(case, max_tokens)) not in cache.records
    ]
    for system, case in tqdm(todo, desc="bfcl", unit="answer"):
        cache.add(await one(system, case, max_tokens))


def chosen_cases(
    categories: tuple[str, ...], limit: int, seed: int, dev: bool, shard: str
) -> dict[str, list[bfcl.Case]]:
    """Per category, the sample (or the dev slice), cut to shard `i/n` (every n-th item from the i-th)."""
    return {c: shard_of(bfcl.sample(bfcl.load_cases(c), limit, seed, dev), shard) for c in categories}


async def evaluate(
    settings: Settings,
    modes: tuple[str, ...],
    by_category: dict[str, list[bfcl.Case]],
    cache: Cache,
    opts: dict[str, Any],
) -> dict[str, Any]:
    """Run (unless `opts["run"]` is false) and summarise what the cache holds for these cases."""
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = Pipeline(Services.open(settings, SqlStore(f"sqlite:///{Path(tmp) / 'eval.db'}")))
        raw = RawSystem(settings)
        code = (inspect.getsource(calling),)
        systems: list[System] = [raw, *(EmberSystem(m, pipeline, settings, code) for m in modes)]
        try:
            if opts["run"]:
                await run(systems, by_category, cache, opts["max_tokens"])
        finally:
            raw.close()
            await pipeline.services.aclose()
        keys = {
            s.name: {
                c.id: cache_key(s, c, request_body(c, opts["max_tokens"])) for cs in by_category.values() for c in cs
            }
            for s in systems
        }
        return summarize(by_category, keys, cache.records, [s.name for s in systems])


def command_line(opts: dict[str, Any]) -> str:
    words = ["ember", "eval", "tools"]
    words += [f"--mode {m}" for m in opts["modes"]]
    words += [f"--category {c}" for c in opts["categories"]] if tuple(opts["categories"]) != bfcl.CATEGORIES else []
    words += [f"--limit {opts['limit']}", f"--seed {opts['seed']}", f"--max-tokens {opts['max_tokens']}"]
    words += [f"--shard {opts['shard']}"] if opts["shard"] != "0/1" else []
    return " ".join(words)


@click.command("tools")
@click.option("--mode", "modes", multiple=True, default=("ember-instant",), show_default=True, help="Ember modes")
@click.option("--category", "categories", multiple=True, type=click.Choice(bfcl.CATEGORIES), default=bfcl.CATEGORIES)
@click.option("--limit", default=100, show_default=True, help="items a category (fixed-seed sample)")
@click.option("--seed", default=0, show_default=True)
@click.option("--max-tokens", default=256, show_default=True, help="answer length cap per item")
@click.option("--shard", default="0/1", show_default=True, help="i/n: run every n-th item from the i-th")
@click.option("--dev", is_flag=True, help="the dev slice instead of the reported sample")
@click.option("--run/--no-run", "run_", default=True, help="--no-run: only summarise what the cache holds")
@click.option("--cache", type=click.Path(dir_okay=False, path_type=Path), default=Path("docs/eval-tools-items.jsonl"))
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--markdown", "md_out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def tools(
    modes: tuple[str, ...],
    categories: tuple[str, ...],
    limit: int,
    seed: int,
    max_tokens: int,
    shard: str,
    dev: bool,
    run_: bool,
    cache: Path,
    json_out: Path | None,
    md_out: Path | None,
) -> None:
    """BFCL accuracy (AST categories) of Ember's modes and of the raw model's own tool calling, side by side."""
    registry.load_plugins()
    settings = Settings()
    opts: dict[str, Any] = {
        "modes": modes,
        "categories": categories,
        "limit": limit,
        "seed": seed,
        "max_tokens": max_tokens,
    }
    opts |= {"shard": shard, "run": run_}
    by_category = chosen_cases(categories, limit, seed, dev, shard)
    summary = asyncio.run(evaluate(settings, modes, by_category, Cache(cache), opts))
    meta: dict[str, Any] = {"command": command_line(opts) + (" --dev" if dev else ""), "date": date.today().isoformat()}
    meta |= {
        "package": bfcl.PACKAGE,
        "model": resolve_model(settings.roles[ROLE].model, settings.cache_dir).name,
        "cores": os.cpu_count(),
        "dev": dev,
    }
    meta |= {k: opts[k] for k in ("limit", "seed", "max_tokens", "shard")} | {"dev_items": bfcl.DEV_ITEMS}
    click.echo(markdown(summary))
    if json_out is not None:
        json_out.write_text(json.dumps({**meta, **summary}, indent=2) + "\n")
    if md_out is not None:
        md_out.write_text(document(meta, summary))
