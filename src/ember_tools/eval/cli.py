"""`ember eval …`: the command group of the evaluations, each imported only when it runs."""

from __future__ import annotations

import click

from ember.cli.lazy import Lazy, LazyGroup

EVALS = {
    "speech": Lazy(
        "ember_tools.eval.speech:speech", "WER and real-time factor of speech models on real recorded speech."
    ),
    "health": Lazy(
        "ember_tools.eval.health:health",
        "Accuracy of ember-instant vs ember-health on MedQA-en, with tokens and latency.",
    ),
    "reasoning": Lazy(
        "ember_tools.eval.reasoning:reasoning",
        "Accuracy, tokens and latency of the modes on GSM8K or ARC-Challenge: JSON, Markdown and a PNG.",
    ),
    "vision": Lazy(
        "ember_tools.eval.vision:vision",
        "Accuracy and latency of image questions, answered through the vision specialists.",
    ),
    "auto": Lazy(
        "ember_tools.eval.auto:auto",
        "Accuracy and tokens of instant, thinking, contemplating and auto on a mixed set: JSON and Markdown.",
    ),
    "recs": Lazy(
        "ember_tools.eval.recs:recs",
        "Recall@10 and NDCG@10 on MovieLens-100k: popularity, item-kNN, EASE, ALS, BPR and Ember's ranker.",
    ),
}


@click.group("eval", cls=LazyGroup, lazy=EVALS)
def eval_() -> None:
    """Quality evaluations on real data (numbers, not pass/fail)."""
