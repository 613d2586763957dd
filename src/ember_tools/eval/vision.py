"""`ember eval vision`: image questions answered end to end (image → image readers → a mode's answer).

Two sets: the project's questions over scikit-image's real photos (`ember_tools.eval.vision_questions`), and
easy-VQA's test questions (shapes and colours drawn on plain backgrounds; a seeded sample). Each image
goes through intake's checks and the same engines the server uses: the mode's model has no vision, so
the specialists describe the image and the model answers from that. Scoring is strict: the answer must
contain an accepted answer as whole words and none of the other candidates. Latency is measured per
image (the specialists, once per image) and per answer. Data are found in the installed packages
without importing them; nothing is downloaded.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import click

from ember import registry
from ember.assets.assemble import package_dir
from ember.config import Settings
from ember.intake.images import load_image
from ember.services import Services
from ember.types import ChatRequest, GenerationParams, Image, Message
from ember.vision.describe import describe
from ember.vision.prompt import described
from ember_tools.eval.vision_questions import PHOTO_QUESTIONS

GOAL = {"photos": 0.70}
MAX_TOKENS = 24
INSTRUCTION = "Answer in a few words."
EASY_VQA_ANSWERS = {  # easy-VQA's 13 answers, by kind; a wrong answer is another of the same kind
    "shape": ("circle", "rectangle", "triangle"),
    "colour": ("red", "green", "blue", "yellow", "teal", "brown", "gray", "black"),
    "yes/no": ("yes", "no"),
}


@dataclass(frozen=True)
class Item:
    set: str
    image: Path
    question: str
    accept: tuple[str, ...]
    reject: tuple[str, ...]
    kind: str
    all_of: bool = False


@dataclass(frozen=True)
class Outcome:
    set: str
    image: str
    question: str
    kind: str
    expected: str
    answer: str
    correct: bool
    answer_s: float


def photo_items() -> list[Item]:
    data = package_dir("skimage", "scikit-image==0.25.2") / "data"
    return [Item("photos", data / q.image, q.question, q.accept, q.reject, q.kind, q.all_of) for q in PHOTO_QUESTIONS]


def easy_vqa_items(limit: int, seed: int) -> list[Item]:
    """A seeded sample of easy-VQA's test questions; the other answers of the same kind are the rejects."""
    test = package_dir("easy_vqa", "easy-vqa==1.0") / "data" / "test"
    rows = json.loads((test / "questions.json").read_text())
    random.Random(seed).shuffle(rows)
    kinds = {answer: kind for kind, answers in EASY_VQA_ANSWERS.items() for answer in answers}
    items = []
    for question, answer, image in rows[:limit]:
        others = tuple(a for a in EASY_VQA_ANSWERS[kinds[answer]] if a != answer)
        items.append(Item("easy-vqa", test / "images" / f"{image}.png", question, (answer,), others, kinds[answer]))
    return items


def _words(text: str) -> str:
    spaced = re.sub(r"[^a-z0-9]+", " ", text.lower().replace("no one", "nobody"))
    return f" {spaced.strip()} "


def is_correct(answer: str, accept: tuple[str, ...], reject: tuple[str, ...], all_of: bool = False) -> bool:
    """Strict: an accepted answer (every one, if `all_of`) is there as whole words, and no rejected one is."""
    said = _words(answer)
    found = [_words(a) in said for a in accept]
    return (all(found) if all_of else any(found)) and not any(_words(r) in said for r in reject)


async def _answer(item: Item, image: Image, mode: str, services: Services) -> tuple[str, float]:
    run = registry.modes.get(mode)
    if run is None:
        raise click.ClickException(f"no mode {mode!r}")
    request = ChatRequest(
        model=mode,
        messages=[Message("user", f"{item.question} {INSTRUCTION}", (image,))],
        params=GenerationParams(max_tokens=MAX_TOKENS, temperature=0.0, seed=0),
    )
    started = time.perf_counter()
    request.messages = await described(request.messages, services.settings)  # as the pipeline does for a blind model
    text = "".join([delta.content async for delta in run.run(request, services)])
    return text.strip(), time.perf_counter() - started


async def evaluate(items: list[Item], settings: Settings, mode: str) -> tuple[list[Outcome], dict[str, float]]:
    """Answer every item; return the outcomes and the specialists' seconds per image."""
    services = Services.open(settings)
    images: dict[Path, Image] = {}
    describe_s: dict[str, float] = {}
    outcomes = []
    try:
        for item in items:
            if item.image not in images:
                images[item.image] = image = load_image(item.image, settings.image_max_bytes, settings.image_max_pixels)
                started = time.perf_counter()
                await describe(image, settings)
                describe_s[str(item.image)] = time.perf_counter() - started
            answer, seconds = await _answer(item, images[item.image], mode, services)
            correct = is_correct(answer, item.accept, item.reject, item.all_of)
            expected = (" + " if item.all_of else " / ").join(item.accept)
            outcomes.append(
                Outcome(item.set, item.image.name, item.question, item.kind, expected, answer, correct, seconds)
            )
    finally:
        await services.aclose()
    return outcomes, describe_s


def summary(
    outcomes: list[Outcome], describe_s: dict[str, float], sets: dict[str, list[Item]]
) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for name, items in sets.items():
        mine = [o for o in outcomes if o.set == name]
        images = {str(i.image) for i in items}
        seconds = [describe_s[i] for i in images]
        rows.append(
            {
                "set": name,
                "questions": len(mine),
                "images": len(images),
                "correct": sum(o.correct for o in mine),
                "accuracy": sum(o.correct for o in mine) / max(1, len(mine)),
                "describe_s_mean": statistics.fmean(seconds),
                "describe_s_median": statistics.median(seconds),
                "answer_s_mean": statistics.fmean(o.answer_s for o in mine),
            }
        )
    return rows


def report(rows: list[dict[str, object]]) -> str:
    lines = [
        "| set | questions | images | accuracy | specialists s / image (mean, median) | answer s (mean) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        goal = GOAL.get(str(r["set"]))
        acc = float(str(r["accuracy"]))
        verdict = "" if goal is None else f" (goal ≥ {goal:.0%}: {'met' if acc >= goal else 'NOT met'})"
        lines.append(
            f"| {r['set']} | {r['questions']} | {r['images']} | {acc:.1%}{verdict} "
            f"| {float(str(r['describe_s_mean'])):.2f}, {float(str(r['describe_s_median'])):.2f} "
            f"| {float(str(r['answer_s_mean'])):.2f} |"
        )
    return "\n".join(lines)


@click.command()
@click.option("--set", "sets", type=click.Choice(["photos", "easy-vqa"]), multiple=True, default=("photos", "easy-vqa"))
@click.option("--mode", default="ember-instant", show_default=True)
@click.option("--easy-vqa-limit", type=click.IntRange(1), default=200, show_default=True)
@click.option("--seed", default=0, show_default=True, help="which easy-VQA questions are sampled")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def vision(sets: tuple[str, ...], mode: str, easy_vqa_limit: int, seed: int, json_out: Path | None) -> None:
    """Accuracy and latency of image questions, answered through the image readers."""
    registry.load_plugins()
    settings = Settings()
    chosen: dict[str, Callable[[], list[Item]]] = {
        "photos": photo_items,
        "easy-vqa": lambda: easy_vqa_items(easy_vqa_limit, seed),
    }
    by_set = {name: chosen[name]() for name in sets}
    items = [item for name in sets for item in by_set[name]]
    click.echo(f"{len(items)} questions on {len({i.image for i in items})} images, mode {mode}, {os.cpu_count()} cores")
    outcomes, describe_s = asyncio.run(evaluate(items, settings, mode))
    rows = summary(outcomes, describe_s, by_set)
    click.echo(report(rows))
    if json_out is not None:
        payload = {"mode": mode, "cores": os.cpu_count(), "seed": seed, "summary": rows}
        payload["outcomes"] = [asdict(o) for o in outcomes]
        json_out.write_text(json.dumps(payload, indent=2, ensure_ascii=False))
