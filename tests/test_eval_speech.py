"""`ember eval speech`: its WER arithmetic, its reading of pocketsphinx transcription files, and a real run
of tiny.en on Debian's LibriVox recordings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ember_tools.eval.speech import LIBRIVOX, edit_distance, normalise, read_corpus

from .conftest import run_cli


def test_normalise() -> None:
    assert normalise("Mr. Dashwood's well-known, cold-hearted  SISTER!") == [
        "mister", "dashwood's", "well", "known", "cold", "hearted", "sister",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("ref", "hyp", "edits"),
    [("a b c", "a b c", 0), ("a b c", "a x c", 1), ("a b c", "a c", 1), ("a b", "a b c d", 2), ("a b", "", 2)],
)
def test_edit_distance(ref: str, hyp: str, edits: int) -> None:
    assert edit_distance(ref.split(), hyp.split()) == edits


def test_read_corpus(tmp_path: Path) -> None:
    (tmp_path / "transcription").write_text("<s> he was not ill </s> (utt-1)\n\nnot a line\nhello there (utt-2)\n")
    assert read_corpus(tmp_path) == [
        (tmp_path / "utt-1.wav", "he was not ill"),
        (tmp_path / "utt-2.wav", "hello there"),
    ]


def test_missing_corpus_names_the_package(tmp_path: Path) -> None:
    out = run_cli(["eval", "speech", "--data", str(tmp_path)], "", {})
    assert out.returncode != 0 and "pocketsphinx-testdata" in out.stderr and "Traceback" not in out.stderr


def test_eval_on_librivox_with_tiny_en(tmp_path: Path, model_cache: Path) -> None:
    if not (LIBRIVOX / "transcription").is_file():
        pytest.skip("Debian's pocketsphinx-testdata is not installed (make test installs it)")
    out = run_cli(
        ["eval", "speech", "--model", "asr", "--json", str(tmp_path / "r.json")],
        "",
        {"EMBER_CACHE_DIR": str(model_cache)},
    )
    assert out.returncode == 0, out.stderr
    assert "| asr | 5 | 71 |" in out.stdout
    (result,) = json.loads((tmp_path / "r.json").read_text())["results"]
    assert result["wer"] <= 0.15 and result["errors"] < 10  # measured: 3 errors in 71 words
    assert 0 < result["rtf"] < 1 and result["audio_s"] == pytest.approx(24.7, abs=0.2)
