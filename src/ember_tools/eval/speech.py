"""`ember eval speech`: word error rate and real-time factor of the speech roles on real recordings.

The default data are the LibriVox utterances that Debian's `pocketsphinx-testdata` package ships
(a `transcription` file of `<s> words </s> (utterance-id)` lines beside `utterance-id.wav`). Each model
is loaded, warmed up on the first utterance, then timed on all of them through the same engine the
server uses. WER is corpus-level (edits / reference words) after a small, documented normalisation;
the real-time factor is transcription seconds / audio seconds on this machine's cores. This module
reports numbers; it never downloads data or models.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import click

from ember import registry
from ember.config import Settings
from ember.engines.pool import EnginePool
from ember.intake.audio import AudioClip, load_audio
from ember.types import TranscribeOptions

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
GOAL_WER = {"asr-base": 0.15}
GOAL_RTF = {"asr": 0.1}
SPELLED = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint"}
LINE = re.compile(r"^\s*(?:<s>)?\s*(?P<text>.*?)\s*(?:</s>)?\s*\((?P<id>[^()]+)\)\s*$")


def normalise(text: str) -> list[str]:
    """Lower case, hyphens to spaces, punctuation dropped, common abbreviations spelled out."""
    words = re.sub(r"[^\w' ]+", " ", text.lower().replace("-", " ")).split()
    return [SPELLED.get(w.strip("'"), w.strip("'")) for w in words if w.strip("'")]


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance (substitutions, insertions, deletions)."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        diag, row[0] = row[0], i
        for j, h in enumerate(hyp, start=1):
            diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diag + (r != h))
    return row[-1]


def read_corpus(data: Path) -> list[tuple[Path, str]]:
    """(wav, reference text) pairs from a pocketsphinx-style `transcription` file."""
    listing = data / "transcription"
    if not listing.is_file():
        raise click.ClickException(
            f"no {listing}: install Debian's pocketsphinx-testdata (`make eval-speech` does) or pass --data"
        )
    pairs = []
    for line in listing.read_text().splitlines():
        if m := LINE.match(line):
            pairs.append((data / f"{m['id']}.wav", m["text"]))
    if not pairs:
        raise click.ClickException(f"{listing} holds no utterances")
    return pairs


@dataclass(frozen=True)
class Result:
    model: str
    utterances: int
    words: int
    errors: int
    audio_s: float
    transcribe_s: float
    load_s: float

    @property
    def wer(self) -> float:
        return self.errors / self.words

    @property
    def rtf(self) -> float:
        return self.transcribe_s / self.audio_s


def _with_beam(settings: Settings, model: str, beam: int | None) -> Settings:
    settings = settings.with_speech_role(model)
    if beam is None:
        return settings
    spec = settings.roles[model]
    spec = spec.model_copy(update={"options": {**spec.options, "beam_size": beam}})
    return settings.model_copy(update={"roles": {**settings.roles, model: spec}})


async def evaluate(model: str, corpus: list[tuple[AudioClip, str]], settings: Settings, beam: int | None) -> Result:
    pool = EnginePool(_with_beam(settings, model, beam))
    try:
        t0 = time.perf_counter()
        engine = await pool.get_speech(model)
        load_s = time.perf_counter() - t0
        await engine.transcribe(corpus[0][0], TranscribeOptions(language="en"))  # warm-up, not counted
        errors = words = 0
        t0 = time.perf_counter()
        for clip, reference in corpus:
            heard = await engine.transcribe(clip, TranscribeOptions(language="en"))
            ref = normalise(reference)
            errors, words = errors + edit_distance(ref, normalise(heard.text)), words + len(ref)
        elapsed = time.perf_counter() - t0
    finally:
        await pool.close()
    audio_s = sum(clip.duration for clip, _ in corpus)
    return Result(model, len(corpus), words, errors, audio_s, elapsed, load_s)


def _goal(value: float, goal: float | None) -> str:
    return "" if goal is None else f" (goal ≤ {goal:g}: {'met' if value <= goal else 'NOT met'})"


def report(results: list[Result]) -> str:
    lines = ["| model | utterances | words | WER | real-time factor | load s |", "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r.model} | {r.utterances} | {r.words} | {r.wer:.1%}{_goal(r.wer, GOAL_WER.get(r.model))} "
            f"| {r.rtf:.3f}{_goal(r.rtf, GOAL_RTF.get(r.model))} | {r.load_s:.1f} |"
        )
    return "\n".join(lines)


@click.command()
@click.option("--model", "models", multiple=True, default=("asr", "asr-base"), show_default=True)
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=LIBRIVOX, show_default=True)
@click.option("--beam-size", type=click.IntRange(1, 10), default=None, help="override the roles' beam size")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def speech(models: tuple[str, ...], data: Path, beam_size: int | None, json_out: Path | None) -> None:
    """WER and real-time factor of speech models on real recorded speech."""
    registry.load_plugins()
    settings = Settings()
    corpus = [(load_audio(wav, settings.audio_max_seconds), text) for wav, text in read_corpus(data)]
    click.echo(f"{len(corpus)} utterances, {sum(c.duration for c, _ in corpus):.1f} s of audio, {os.cpu_count()} cores")
    results = [asyncio.run(evaluate(model, corpus, settings, beam_size)) for model in models]
    click.echo(report(results))
    if json_out is not None:
        rows = [{**asdict(r), "wer": r.wer, "rtf": r.rtf} for r in results]
        json_out.write_text(json.dumps({"cores": os.cpu_count(), "data": str(data), "results": rows}, indent=2))
