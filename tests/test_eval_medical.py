"""`ember eval health` (MedQA): systems named MODE@MODEL and the settings they run on, the resumable per-item
cache (errors asked again), the report's numbers, goals and marked block in docs/health.md; then runs through
the Pipeline on fake engines (three systems, two models, items at once) and on the real tiny model."""

from __future__ import annotations

import asyncio
import json
from itertools import islice
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from ember import registry
from ember.cli import main
from ember.config import EngineSpec, Settings
from ember.engines.embeddings import Embedders
from ember.medical.knowledge import build_index, icd10cm_entries
from ember.medical.service import Knowledge
from ember.modes.health import SOURCES_HEADING
from ember_tools.eval import medical_report as report
from ember_tools.eval.cache import Cache
from ember_tools.eval.choice import INSTRUCTION, Item, load_items
from ember_tools.eval.medical import (
    DEFAULT_SYSTEMS,
    TASK,
    Candidate,
    Target,
    evaluate,
    key_of,
    request_body,
    run,
    settings_for,
    target_of,
)
from ember_tools.eval.paired import paired_bootstrap, wilson
from ember_tools.eval.systems import Reply
from ember_tools.marked import replace_block

from .conftest import TINY, make_settings

HEALTH_CHAT, INSTANT_CHAT, HEALTH_FAST = DEFAULT_SYSTEMS
DOC = Path(__file__).parents[1] / "docs" / "health.md"


def rec(system: str, item: str, chosen: str | None, gold: str = "B", error: str = "") -> dict[str, Any]:
    """A cache record of `system` choosing `chosen` for `item` (gold `gold`)."""
    return {
        "key": f"{system}|{item}",
        "system": system,
        "id": item,
        "gold": gold,
        "chosen": chosen,
        "correct": chosen == gold and not error,
        "prompt_tokens": 100 if system.startswith("ember-health") else 40,
        "completion_tokens": 10,
        "seconds": 2.0,
        "error": error,
    }


def summary_of(records: list[dict[str, Any]], ids: list[str], systems: tuple[str, ...]) -> dict[str, Any]:
    keys = {s: {i: f"{s}|{i}" for i in ids} for s in systems}
    return report.summarize(ids, keys, {r["key"]: r for r in records})


def test_accuracy_intervals_paired_differences_and_a_partial_run() -> None:
    ids = ["1", "2", "3", "4"]
    records = [
        *(rec(HEALTH_CHAT, i, "B") for i in "123"),
        rec(HEALTH_CHAT, "4", None),  # unparsed: answered, wrong
        rec(INSTANT_CHAT, "1", "B"),
        *(rec(INSTANT_CHAT, i, "A") for i in "23"),
        rec(INSTANT_CHAT, "4", None, error="EngineError: boom"),  # not an answer
        *(rec(HEALTH_FAST, i, "B") for i in "12"),
        rec(HEALTH_FAST, "3", "C"),  # item 4 not asked yet
        rec("ember-health@chat-tiny", "1", "B"),  # a system not asked about: not counted
    ]
    records.append(rec(HEALTH_CHAT, "9", "B") | {"key": "old key"})  # another prompt's answer: not counted
    summary = summary_of(records, ids, DEFAULT_SYSTEMS)
    health, instant, fast = (summary["systems"][s] for s in DEFAULT_SYSTEMS)
    assert (health["items"], health["correct"], health["accuracy"], health["unparsed"]) == (4, 3, 0.75, 1)
    assert health["ci95"] == list(wilson(3, 4)) and health["mean_prompt_tokens"] == 100.0
    assert (instant["items"], instant["correct"], instant["errors"], instant["unparsed"]) == (3, 1, 1, 0)
    assert instant["ci95"] == pytest.approx([0.0615, 0.7923], abs=1e-4)
    assert (fast["items"], fast["correct"], fast["errors"]) == (3, 2, 0)
    assert summary["sample"] == 4 and summary["complete"] == 3  # item 4: instant erred, fast not asked
    versus_instant = summary["paired"][f"{HEALTH_CHAT} - {INSTANT_CHAT}"]
    assert versus_instant["items"] == 3 and versus_instant["accuracy"] == [1.0, pytest.approx(1 / 3)]
    difference, low, high = paired_bootstrap([True] * 3, [True, False, False])
    assert versus_instant["difference"] == pytest.approx(2 / 3) == difference
    assert versus_instant["ci95"] == [low, high] == [0.0, 1.0]
    versus_fast = summary["paired"][f"{HEALTH_CHAT} - {HEALTH_FAST}"]
    assert versus_fast["items"] == 3 and versus_fast["difference"] == pytest.approx(1 / 3)
    assert [(g["met"], g["interval_excludes_0"]) for g in summary["goals"]] == [(True, False), (True, False)]
    table = report.markdown(summary)
    assert f"| {HEALTH_CHAT} | 4/4 | 75.0% [30.1%, 95.4%] | 1 | 0 | 100 | 10 | 2.0 |" in table
    assert f"| {INSTANT_CHAT} | 3/4 | 33.3% [6.1%, 79.2%] | 0 | 1 | 40 | 10 | 2.0 |" in table
    assert f"| {HEALTH_CHAT} - {INSTANT_CHAT} | 3 | 100.0% vs 33.3% | +66.7 [+0.0, +100.0] |" in table
    assert report.partial_lines(summary)[0].startswith("**Partial run: 3 of 4 items** answered by every system")
    lines = report.goal_lines(summary)
    assert lines[0] == (
        "- ember-health on the 1.5B >= ember-instant on the 1.5B: met on the point estimate (+66.7 points "
        "[+0.0, +100.0] on 3 items; the interval includes 0: the difference is not resolved)."
    )
    assert lines[1].startswith("- ember-health on the 1.5B > ember-health on the 0.5B: met on the point estimate")


def test_goals_are_stated_from_the_point_estimate_and_whether_the_interval_excludes_zero() -> None:
    ids = [str(i) for i in range(20)]
    records = [rec(HEALTH_CHAT, i, "B" if int(i) < 10 else "A") for i in ids]
    records += [rec(INSTANT_CHAT, i, "B") for i in ids] + [rec(HEALTH_FAST, i, "D") for i in ids]
    summary = summary_of(records, ids, DEFAULT_SYSTEMS)
    assert report.partial_lines(summary) == [] and summary["complete"] == 20
    assert summary["paired"][f"{HEALTH_CHAT} - {INSTANT_CHAT}"]["difference"] == -0.5
    assert [(g["met"], g["interval_excludes_0"]) for g in summary["goals"]] == [(False, True), (True, True)]
    first, second = report.goal_lines(summary)
    assert "not met on the point estimate (-50.0 points [" in first and "the interval excludes 0" in first
    assert "met on the point estimate (+50.0 points [+30.0, +70.0] on 20 items" in second
    tie = summary_of([r | {"chosen": "B", "correct": True} for r in records], ids, DEFAULT_SYSTEMS)
    assert [g["met"] for g in tie["goals"]] == [True, False]  # equal: >= holds, > does not
    alone = summary_of(records, ids, (HEALTH_CHAT,))
    assert alone["paired"] == {} and [g["met"] for g in alone["goals"]] == [None, None]  # needs both systems
    assert report.goal_lines(alone)[1] == (
        f"- {report.GOALS[1].text}: not measured (the run does not ask both {HEALTH_CHAT} and {HEALTH_FAST})."
    )
    unpaired = summary_of(records[:20], ids, (HEALTH_CHAT, INSTANT_CHAT))  # instant answered nothing
    assert unpaired["goals"][0]["met"] is None
    assert report.goal_lines(unpaired)[0] == f"- {report.GOALS[0].text}: not measured (no item answered by both)."


META = {
    "command": "ember eval health --limit 4 --seed 0 --max-tokens 128",
    "date": "2026-12-05",
    "cores": 2,
    "max_tokens": 128,
    "limit": 4,
    "seed": 0,
    "concurrency": 2,
    "models": {HEALTH_CHAT: {"mode": "ember-health", "model": "big.gguf"}},
}


def test_the_block_is_written_at_the_end_of_the_medqa_section_once(tmp_path: Path) -> None:
    doc = tmp_path / "health.md"
    committed = DOC.read_text()
    doc.write_text(committed)
    if report.BEGIN in committed:  # the prose around a block the committed doc already holds
        head, tail = committed.split(report.BEGIN)
        original = head.rstrip() + "\n\n" + tail.split(report.END)[1].lstrip()
    else:
        original = committed
    summary = summary_of([rec(HEALTH_CHAT, "1", "B")], ["1", "2"], (HEALTH_CHAT,))
    for _ in range(2):
        replace_block(doc, report.BEGIN, report.END, report.document(META, summary), "# Health\n", report.SECTION)
    text = doc.read_text()
    assert text.count(report.BEGIN) == 1 and text.count(report.END) == 1
    before, rest = text.split(report.BEGIN)
    block, after = rest.split(report.END)
    assert before.rstrip().endswith("then `make eval-health` measures it as it is.")
    assert after.startswith("\n\n## Grounded answers: key facts and their sources (issue 21)")
    assert before.rstrip() + "\n\n" + after.lstrip() == original  # the prose around it is untouched
    assert "**Partial run: 1 of 2 items**" in block and "`ember-health@chat` (`ember-health` on `big.gguf`)" in block
    assert "was not developed on MedQA items" in block


def test_without_its_section_the_block_is_appended(tmp_path: Path) -> None:
    doc = tmp_path / "other.md"
    doc.write_text("# Health\n\n## MedQA: something else\n\nProse.\n")
    summary = summary_of([], ["1"], (HEALTH_CHAT,))
    replace_block(doc, report.BEGIN, report.END, report.document(META, summary), "# Health\n", report.SECTION)
    assert doc.read_text().startswith("# Health\n\n## MedQA: something else\n\nProse.\n\n" + report.BEGIN)


class Scripted:
    """A system that answers "Answer: <letter>" (or fails); counts what it was asked. With `together`, its
    first asks wait until that many are in flight at once."""

    def __init__(self, name: str, letter: str, error: str = "", together: asyncio.Barrier | None = None) -> None:
        self.name, self.fingerprint, self.letter, self.error = name, "scripted", letter, error
        self.together = together
        self.asked: list[str] = []

    async def ask(self, body: dict[str, Any]) -> Reply:
        self.asked.append(body["messages"][0]["content"].partition("\n")[0])
        if self.together is not None and len(self.asked) <= self.together.parties:
            await asyncio.wait_for(self.together.wait(), 30)
        if self.error:
            return Reply(seconds=0.1, error=self.error)
        return Reply([], f"Answer: {self.letter}\nBecause.", 50, 5, 0.5)


ITEMS = [Item(str(i), f"question {i}\nA. yes\nB. no", "AB", "B" if i % 2 else "A") for i in range(4)]


def candidate(system: Scripted) -> Candidate:
    mode, _, model = system.name.partition("@")
    return Candidate(Target(mode, model), system, f"{model}.gguf")


async def test_a_second_run_asks_nothing_new_and_an_error_is_asked_again(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    health = Scripted(HEALTH_CHAT, "B", together=asyncio.Barrier(2))  # two items in flight, or it waits
    failing = Scripted(INSTANT_CHAT, "A", error="EngineError: out of memory")
    assert await run([candidate(health), candidate(failing)], ITEMS, Cache(path), 64, concurrency=2) == 8
    records = [json.loads(line) for line in path.read_text().splitlines()]
    order = [(r["system"], r["id"]) for r in records]  # each item's systems in turn
    assert all(order.index((HEALTH_CHAT, i.id)) < order.index((INSTANT_CHAT, i.id)) for i in ITEMS)
    first = next(r for r in records if r["id"] == "0" and r["system"] == HEALTH_CHAT)
    assert first["key"] == key_of(health, ITEMS[0], 64) and first["mode"] == "ember-health"
    assert (first["model"], first["gold"], first["chosen"], first["correct"]) == ("chat.gguf", "A", "B", False)
    assert first["text"] == "Answer: B\nBecause." and first["concurrency"] == 2 and first["error"] == ""
    assert (first["prompt_tokens"], first["completion_tokens"], first["seconds"]) == (50, 5, 0.5)
    erred = next(r for r in records if r["system"] == INSTANT_CHAT)
    assert erred["error"] == "EngineError: out of memory" and erred["chosen"] is None and not erred["correct"]
    keys = {s.name: {i.id: key_of(s, i, 64) for i in ITEMS} for s in (health, failing)}
    before = report.summarize([i.id for i in ITEMS], keys, Cache(path).records)
    assert before["systems"][INSTANT_CHAT]["items"] == 0 and before["systems"][INSTANT_CHAT]["errors"] == 4
    assert before["complete"] == 0

    with path.open("a") as f:
        f.write('{"key": "torn')  # the line a killed run was writing
    again, mended = Scripted(HEALTH_CHAT, "B"), Scripted(INSTANT_CHAT, "A")
    assert await run([candidate(again), candidate(mended)], ITEMS, Cache(path), 64, concurrency=2) == 4
    assert again.asked == [] and sorted(mended.asked) == [f"question {i}" for i in range(4)]  # the errors only
    cache = Cache(path)
    after = report.summarize([i.id for i in ITEMS], keys, cache.records)
    assert after["systems"][INSTANT_CHAT] | {"ci95": None} == after["systems"][INSTANT_CHAT] | {
        "items": 4,
        "correct": 2,
        "errors": 0,
        "ci95": None,
    }
    assert after["complete"] == 4
    done = path.read_text()
    assert await run([candidate(Scripted(HEALTH_CHAT, "B"))], ITEMS, cache, 64, concurrency=2) == 0
    assert path.read_text() == done  # nothing asked twice
    assert await run([candidate(Scripted(HEALTH_CHAT, "B"))], ITEMS, cache, 32, concurrency=2) == 4  # another body


def test_the_request_is_the_item_the_instruction_and_greedy_sampling() -> None:
    body = request_body(ITEMS[1], 128)
    assert body == {
        "messages": [{"role": "user", "content": f"question 1\nA. yes\nB. no\n\n{INSTRUCTION}"}],
        "temperature": 0.0,
        "seed": 0,
        "max_tokens": 128,
    }


def test_a_system_points_only_its_modes_local_llama_cpp_chat_roles_at_its_model(tmp_path: Path) -> None:
    registry.load_plugins()
    roles = {"embed": EngineSpec(task="embedding", engine="onnx", model="embed", parallel=1)}
    settings = Settings(data_dir=tmp_path, cache_dir=tmp_path, roles=roles)  # the defaults: both chat roles local
    instant = settings_for(settings, target_of(INSTANT_CHAT))
    assert instant.roles["chat-fast"].model == "chat" and instant.roles["chat-fast"].parallel == 4
    assert instant.roles["chat"] == settings.roles["chat"] and instant.roles["embed"] == settings.roles["embed"]
    small = settings_for(settings, target_of(HEALTH_FAST))
    assert small.roles["chat"].model == "chat-fast" and small.roles["chat-fast"] == settings.roles["chat-fast"]
    assert settings_for(settings, target_of(HEALTH_CHAT)) == settings
    assert settings.roles["chat-fast"].model == "chat-fast"  # the run's own settings are left as they were
    remote = EngineSpec(engine="openai_compat", model="gpt-x", url="http://127.0.0.1:1/v1")
    elsewhere = settings.model_copy(update={"roles": {**settings.roles, "chat": remote}})
    with pytest.raises(click.UsageError, match=r"ember-health has no local llama\.cpp chat role"):
        settings_for(elsewhere, target_of(HEALTH_CHAT))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ember-health", "'ember-health': want MODE@MODEL, e.g. ember-health@chat"),
        ("ember-health@", "want MODE@MODEL"),
        ("@chat", "want MODE@MODEL"),
        ("ember-health@chat@x", "want MODE@MODEL"),
        ("ember-doctor@chat", "no mode 'ember-doctor' (ember-"),
        ("ember-health@qwen-7b", "no chat model 'qwen-7b' in the catalogue (chat, chat-fast, chat-tiny)"),
        ("ember-health@asr", "no chat model 'asr'"),
    ],
)
def test_a_malformed_or_unknown_system_is_a_usage_error(spec: str, message: str) -> None:
    result = CliRunner().invoke(main, ["eval", "health", "--system", spec, "--no-run"])
    assert result.exit_code == 2
    assert "Invalid value for '--system'" in result.output and message in " ".join(result.output.split())


def test_the_grounded_subcommand_still_runs_under_the_group() -> None:
    result = CliRunner().invoke(main, ["eval", "health", "grounded", "--dev", "--json", "x.json"])
    assert result.exit_code == 2 and "the dev slice is never reported" in result.output


def fake(model: str, letter: str) -> dict[str, Any]:
    return {"engine": "fake", "model": model, "parallel": 3, "options": {"replies": [f"Answer: {letter}"]}}


@pytest.fixture(scope="module")
def index_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache directory holding a health index of 30 real ICD-10-CM entries (the run asks for an index)."""
    cache = tmp_path_factory.mktemp("medqa") / "cache"
    knowledge = Knowledge(Embedders(cache), build=False)
    build_index(knowledge.target(), knowledge.embedder(), sources={"few": lambda: islice(icd10cm_entries(), 30)})
    return cache


async def test_three_systems_on_two_models_through_the_pipeline_items_at_once(
    tmp_path: Path, index_cache: Path
) -> None:
    """The settings each system would get (`settings_for`), on fake engines: the 1.5B says B, the 0.5B C."""
    registry.load_plugins()
    big, small = fake("fake-1.5b", "B"), fake("fake-0.5b", "C")
    on = {"cache_dir": index_cache}
    pairs = [
        (Target(mode, model), make_settings(tmp_path, chat=chat, chat_fast=fast).model_copy(update=on))
        for mode, model, chat, fast in (
            ("ember-health", "chat", big, small),
            ("ember-instant", "chat", big, big),
            ("ember-health", "chat-fast", small, small),
        )
    ]
    items, path = load_items(TASK, 4, 0), tmp_path / "items.jsonl"
    opts: dict[str, Any] = {"run": True, "max_tokens": 64, "concurrency": 3}
    summary, systems = await evaluate(pairs, items, Cache(path), opts)
    assert opts["asked"] == 12 and systems == {
        HEALTH_CHAT: {"mode": "ember-health", "model": "fake-1.5b"},
        INSTANT_CHAT: {"mode": "ember-instant", "model": "fake-1.5b"},
        HEALTH_FAST: {"mode": "ember-health", "model": "fake-0.5b"},
    }
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == 12 and {r["concurrency"] for r in records} == {3} and not any(r["error"] for r in records)
    by_system = {s: {r["id"]: r for r in records if r["system"] == s} for s in DEFAULT_SYSTEMS}
    gold = {item.id: item.gold for item in items}
    for system, letter in ((HEALTH_CHAT, "B"), (INSTANT_CHAT, "B"), (HEALTH_FAST, "C")):
        assert {r["chosen"] for r in by_system[system].values()} == {letter}
        assert all(r["correct"] == (gold[i] == letter) for i, r in by_system[system].items())
    health, instant = by_system[HEALTH_CHAT][items[0].id], by_system[INSTANT_CHAT][items[0].id]
    assert SOURCES_HEADING in health["text"] and SOURCES_HEADING not in instant["text"]
    assert health["prompt_tokens"] > instant["prompt_tokens"] + 50  # ember-health's instructions and sources
    order = [(r["system"], r["id"]) for r in records]  # each item's systems in turn
    assert all(order.index((HEALTH_CHAT, i)) < order.index((HEALTH_FAST, i)) for i in gold)
    accuracy = sum(g == "B" for g in gold.values()) / 4
    assert summary["systems"][HEALTH_CHAT]["accuracy"] == accuracy and summary["complete"] == 4
    assert summary["paired"][f"{HEALTH_CHAT} - {INSTANT_CHAT}"]["difference"] == 0.0
    again, _ = await evaluate(pairs, items, Cache(path), opts)
    assert opts["asked"] == 0 and again == summary and len(path.read_text().splitlines()) == 12


def test_two_items_on_the_real_tiny_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_cache: Path) -> None:
    monkeypatch.setenv("EMBER_ROLES", json.dumps({"chat-fast": TINY, "chat": TINY}))
    monkeypatch.setenv("EMBER_CACHE_DIR", str(model_cache))
    monkeypatch.setenv("EMBER_DATA_DIR", str(tmp_path / "data"))
    doc, out, path = tmp_path / "health.md", tmp_path / "medqa.json", tmp_path / "items.jsonl"
    doc.write_text(DOC.read_text())
    args = ["eval", "health", "--system", "ember-instant@chat-tiny", "--limit", "2", "--max-tokens", "16"]
    args += ["--cache", str(path), "--json", str(out), "--doc", str(doc)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "2 answers asked for" in result.output
    records = list(Cache(path).records.values())
    assert sorted(r["id"] for r in records) == sorted(i.id for i in load_items(TASK, 2, 0))
    for r in records:
        assert r["system"] == "ember-instant@chat-tiny" and r["model"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
        assert r["error"] == "" and r["text"] and 0 < r["completion_tokens"] <= 16 and r["prompt_tokens"] > 100
        assert r["concurrency"] == TINY["parallel"] and r["correct"] == (r["chosen"] == r["gold"])
    written = json.loads(out.read_text())
    assert written["systems"]["ember-instant@chat-tiny"]["items"] == 2 and written["complete"] == 2
    assert written["command"] == "ember eval health --system ember-instant@chat-tiny --limit 2 --seed 0 --max-tokens 16"
    block = doc.read_text().partition(report.BEGIN)[2]
    assert "### Results (issue 21)" in block and "| ember-instant@chat-tiny | 2/2 |" in block
    assert f"- {report.GOALS[0].text}: not measured (the run does not ask both" in block
    again = CliRunner().invoke(main, [*args, "--no-run"])
    assert again.exit_code == 0 and "0 answers asked for" in again.output and len(Cache(path).records) == 2
