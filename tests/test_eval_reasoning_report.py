"""`ember eval reasoning --report`'s arithmetic on a small example worked out by hand, and the whole CLI on the
real tiny model: 2 GSM8K items x 2 systems answered, cached, resumed and reported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ember.cli import main
from ember.modes.reasoning import THINKING_BUDGET
from ember_tools.eval.cache import Cache
from ember_tools.eval.choice import Item
from ember_tools.eval.reasoning_report import document, summarize, write_report

from .conftest import TINY

INSTANT, THINKING, CONTEMPLATING, AUTO = (
    "ember-instant",
    "ember-thinking:medium",
    "ember-contemplating:medium",
    "ember-auto",
)


def record(system: str, item: str, correct: bool, usage: tuple[int, int, int], **more: Any) -> dict[str, Any]:
    prompt, completion, reasoning = usage
    out = {"key": f"{system}|gsm8k|{item}|now", "system": system, "task": "gsm8k", "id": item, "correct": correct}
    out |= {"committed": "1" if correct else "2", "error": "", "route": None, "seconds": 1.0}
    return out | {"prompt_tokens": prompt, "completion_tokens": completion, "reasoning_tokens": reasoning} | more


def example() -> dict[str, Any]:
    """instant 2/4 (one unparsed), thinking 3/4, contemplating 3/3 (item 4 not answered yet), auto 3/4."""
    records = [
        *(record(INSTANT, str(i), ok, (100, 10 * i, 0)) for i, ok in zip(range(1, 5), (1, 0, 0, 1), strict=True)),
        *(record(THINKING, str(i), ok, (300, 200, 150)) for i, ok in zip(range(1, 5), (1, 1, 0, 1), strict=True)),
        *(record(CONTEMPLATING, str(i), True, (900, 600, 400)) for i in range(1, 4)),
        *(
            record(AUTO, str(i), ok, (100, 50, 0), route="program")
            for i, ok in zip(range(1, 4), (1, 1, 0), strict=True)
        ),
        record(AUTO, "4", True, (100, 50, 0), route="ember-thinking"),
        record(INSTANT, "2", True, (1, 1, 0)) | {"key": f"{INSTANT}|gsm8k|2|older-code"},  # stale: not counted
    ]
    records[2]["committed"] = None  # instant's third answer committed to nothing
    by_key = {r["key"]: r for r in records}
    items = {"gsm8k": [Item(str(i), f"q{i}", "", "1") for i in range(1, 5)]}
    systems = [INSTANT, THINKING, CONTEMPLATING, AUTO]
    keys = {s: {f"gsm8k/{i}": f"{s}|gsm8k|{i}|now" for i in range(1, 5)} for s in systems}
    return summarize(items, keys, by_key, systems)


def test_rows_intervals_and_paired_differences_by_hand() -> None:
    summary = example()
    rows = summary["tasks"]["gsm8k"]["systems"]
    assert (rows[INSTANT]["items"], rows[INSTANT]["accuracy"], rows[INSTANT]["unparsed"]) == (4, 0.5, 1)
    assert rows[INSTANT]["ci95"] == pytest.approx([0.1500, 0.8500], abs=1e-4)  # Wilson, z = 1.96, 2 of 4
    assert rows[THINKING]["ci95"] == pytest.approx([0.3006, 0.9544], abs=1e-4)  # 3 of 4
    assert rows[INSTANT]["mean_completion_tokens"] == 25 and rows[THINKING]["mean_reasoning_tokens"] == 150
    assert rows[CONTEMPLATING]["items"] == 3 and rows[AUTO]["routes"] == {"program": 3, "ember-thinking": 1}
    assert summary["stale_records"] == 1

    paired = summary["tasks"]["gsm8k"]["paired"]
    versus_instant = paired["thinking:medium - instant"]
    assert versus_instant["items"] == 4 and versus_instant["difference"] == 0.25
    assert versus_instant["ci95"] == pytest.approx([0.0, 0.75])  # resampling 0,1,0,0: P(mean 1) < 2.5% < P(>= .75)
    deeper = paired["contemplating:medium - thinking:medium"]
    assert deeper["items"] == 3  # only the items both answered
    assert deeper["difference"] == pytest.approx(1 / 3) and deeper["completion_tokens_ratio"] == 3.0
    assert "thinking:medium - thinking:low" not in paired  # low and high were not run
    auto = paired["ember-auto - best mode"]
    assert (auto["b"], auto["items"]) == (CONTEMPLATING, 3)  # the best on the 3 items every system has
    assert auto["accuracy_ratio"] == pytest.approx(2 / 3) and auto["total_tokens_ratio"] == pytest.approx(0.1)

    # thinking 75% >= 60%: met; ARC-C not run: not measured (twice, and for the chain); auto at 2/3 of the best
    assert [g["met"] for g in summary["goals"]] == [True, None, None, None, False]


def test_the_report_says_partial_and_the_goals(tmp_path: Path) -> None:
    summary = example()
    meta = {
        "command": "ember eval reasoning",
        "date": "2026-12-04",
        "cores": 2,
        "agents": 3,
        "dev_items": 20,
        "dev_tail": 60,
    }
    meta |= {"models": {"chat": "qwen.gguf:1:ab"}, "cache": "items.jsonl", "limit": 4, "seed": 0, "max_tokens": 256}
    text = document(meta, summary)
    assert "**PARTIAL gsm8k 3/4** items answered by every system" in text
    assert "after the first 20 items of the same order; those and the order's last 60 are the dev slice" in text
    assert "| gsm8k | ember-instant | 4/4 | 50.0% [15.0%, 85.0%] | 1 | 0 | 100 | 25 | 0 | 1.0 |" in text
    assert "| gsm8k | ember-contemplating:medium | 3/4 | 100.0% [43.9%, 100.0%] |" in text  # 3 / (3 + z²)
    assert "| gsm8k | ember-auto - ember-contemplating:medium (best) | 3 | -33.3% [" in text
    assert "- thinking (medium) ≥ 60% on GSM8K: **met**" in text
    assert "both tasks pooled: **missed**" in text and "on each task: **not measured**" in text
    assert "1 cached answers were made by other code" in text and "chat `qwen.gguf`" in text
    write_report(meta, summary, tmp_path / "r.json", tmp_path / "r.md")
    written = json.loads((tmp_path / "r.json").read_text())
    assert written["tasks"]["gsm8k"]["systems"][THINKING]["correct"] == 3 and written["limit"] == 4
    assert (tmp_path / "r.md").read_text() == text
    summary["tasks"]["gsm8k"]["systems"][CONTEMPLATING]["items"] = 4
    assert "PARTIAL" not in document(meta, summary)


def test_two_items_two_systems_on_the_tiny_model_are_cached_resumed_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_cache: Path
) -> None:
    monkeypatch.setenv("EMBER_ROLES", json.dumps({"chat-fast": TINY, "chat": TINY}))
    monkeypatch.setenv("EMBER_CACHE_DIR", str(model_cache))
    monkeypatch.setenv("EMBER_DATA_DIR", str(tmp_path / "data"))
    out = {name: tmp_path / name for name in ("items.jsonl", "report.json", "report.md")}
    args = ["eval", "reasoning", "--system", "ember-instant", "--system", "ember-thinking:low", "--task", "gsm8k"]
    args += ["--limit", "2", "--max-tokens", "24", "--cache", str(out["items.jsonl"])]
    args += ["--json", str(out["report.json"]), "--markdown", str(out["report.md"])]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "4 answers added" in first.output
    records = list(Cache(out["items.jsonl"]).records.values())
    assert sorted(r["system"] for r in records) == ["ember-instant"] * 2 + ["ember-thinking:low"] * 2
    for r in records:
        assert r["error"] == "" and r["completion_tokens"] > 0 and r["seconds"] > 0 and r["gold"]
        assert (0 < r["reasoning_tokens"] <= THINKING_BUDGET["low"]) == (r["system"] == "ember-thinking:low")
    written = out["items.jsonl"].read_text()

    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert "0 answers added" in again.output and out["items.jsonl"].read_text() == written

    report = CliRunner().invoke(main, [*args, "--report"])
    assert report.exit_code == 0, report.output
    summary = json.loads(out["report.json"].read_text())
    assert {s: r["items"] for s, r in summary["tasks"]["gsm8k"]["systems"].items()} == {
        "ember-instant": 2,
        "ember-thinking:low": 2,
    }
    assert summary["models"]["chat"].startswith("SmolLM2-135M") and summary["limit"] == 2
    assert "| gsm8k | ember-thinking:low | 2/2 |" in out["report.md"].read_text()
    assert "PARTIAL" not in out["report.md"].read_text()
