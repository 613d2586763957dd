"""`ember eval strategies`: the dev-slice attempts, their cache, and plans replayed from it as the reasoning
modes run them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ember.agents.strategies import PLANNED_PROGRAM, PROGRAM, PROSE
from ember.cli import main
from ember_tools.eval.cache import Cache
from ember_tools.eval.reasoning_tasks import sample
from ember_tools.eval.strategies import DRAWS, Draw, replay_contemplating, replay_thinking, report

from .conftest import TINY


def draws(program: list[str | None], planned: list[str | None], prose: list[str | None]) -> list[Draw]:
    """Recorded attempts: each strategy's answers in turn (program's first is the greedy one), 10 tokens each."""
    given = {PROGRAM.name: program, PLANNED_PROGRAM.name: planned, PROSE.name: prose}
    return [Draw(name, n, answer, 10) for name, answers in given.items() for n, answer in enumerate(answers)]


def test_thinking_replays_as_the_mode_runs_its_plan() -> None:
    recorded = draws(["5", "5", "5"], ["7", "7"], ["7", "9"])
    mixed = (PROGRAM, PLANNED_PROGRAM, PROSE)
    assert replay_thinking(recorded, mixed, "low") == ("5", 10)  # one attempt: the greedy program
    # medium: program 5, planned 7, prose 7: the two weaker strategies outweigh the program (0.58 + 0.5 > 0.67)
    assert replay_thinking(recorded, mixed, "medium", repeat=False) == ("7", 30)
    assert replay_thinking(recorded, mixed, "medium") == ("5", 20)  # the program checked by a second program
    assert replay_thinking(recorded, (PROGRAM,), "medium") == ("5", 20)  # two programs agree at once
    unanswered = draws([None, "4", "4"], ["6", "6"], ["8"])
    assert replay_thinking(unanswered, mixed, "low") == ("6", 20)  # none answered: one more attempt
    # at medium the planned program that answered is checked by a second planned program
    assert replay_thinking(unanswered, mixed, "medium") == ("6", 30)


def test_contemplating_replays_waves_that_stop_once_they_agree() -> None:
    agreeing = draws(["5", "5", "5", "5"], ["5", "5"], ["5", "5"])
    mixed = (PROGRAM, PLANNED_PROGRAM, PROSE)
    assert replay_contemplating(agreeing, mixed, "medium") == ("5", 30)  # one wave of three
    split = draws(["5", "6", "5", "5"], ["7", "7"], ["8", "7"])
    assert replay_contemplating(split, mixed, "medium") == ("7", 60)  # two waves; 7 weighs most


def test_a_replay_that_needs_more_attempts_than_were_recorded_says_so() -> None:
    with pytest.raises(LookupError, match="no attempt 1 of program"):
        replay_thinking(draws(["5"], [], []), (PROGRAM,), "high")


def test_the_command_records_every_attempt_once_and_reports_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = {"engine": "fake", "model": "fake", "options": {"replies": ["Because.\nAnswer: B"]}}
    monkeypatch.setenv("EMBER_ROLES", json.dumps({"chat": fake}))
    cache, out = tmp_path / "items.jsonl", tmp_path / "out.json"
    args = ["eval", "strategies", "--task", "arc_challenge", "--items", "2", "--cache", str(cache), "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    records = list(Cache(cache).records.values())
    assert len(records) == 2 and all(len(r["draws"]) == sum(n for _, n in DRAWS["choice"]) for r in records)
    assert CliRunner().invoke(main, args).exit_code == 0
    assert len(cache.read_text().splitlines()) == 2  # resumed: nothing asked again
    golds = [i.gold for i in sample("arc_challenge", 0, 0, dev=True)[:2]]
    rows = {r.get("system") or r["strategy"]: r for r in json.loads(out.read_text())["results"]}
    assert (
        rows["direct"]["right"]
        == rows["thinking:medium checks repeated direct, elimination"]["accuracy"]
        == golds.count("B") / 2
    )
    assert rows["contemplating:medium direct"]["minus_first"] == [0.0, 0.0, 0.0]
    assert all(r.get("short_of_recorded_attempts", 0) == 0 for r in rows.values())


def test_the_command_on_a_real_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBER_ROLES", json.dumps({"chat": TINY}))
    cache, out = tmp_path / "items.jsonl", tmp_path / "out.json"
    args = ["eval", "strategies", "--task", "gsm8k", "--items", "1", "--cap", "12", "--cache", str(cache)]
    result = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    (record,) = Cache(cache).records.values()
    assert len(record["draws"]) == sum(n for _, n in DRAWS["numeric"])
    assert all(0 < d["tokens"] <= 12 for d in record["draws"])
    systems = {r.get("system") for r in json.loads(out.read_text())["results"]}
    assert {"thinking:high programs", "contemplating:medium program, planned, prose"} <= systems


def test_a_plan_short_of_recorded_attempts_counts_the_item_wrong_and_says_so(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "items.jsonl")
    few = [d.__dict__ for d in draws(["5"], [], [])]  # the greedy program only
    cache.add({"key": "k", "task": "gsm8k", "item": "1", "gold": "5", "draws": few})
    rows = {r.get("system"): r for r in report(cache, "gsm8k")}
    assert rows["thinking:low programs"]["accuracy"] == 1.0
    assert rows["thinking:high programs"]["accuracy"] == 0.0
    assert rows["thinking:high programs"]["short_of_recorded_attempts"] == 1
