"""`ember eval …`: the command group of the evaluations, each imported only when it runs."""

from __future__ import annotations

import click

from ember.cli.lazy import Lazy, LazyGroup

EVALS = {
    "speech": Lazy(
        "ember_tools.eval.speech:speech", "WER and real-time factor of speech models on real recorded speech."
    ),
    "health": Lazy(
        "ember_tools.eval.medical:health",
        "MedQA-en accuracy of Ember's modes on chosen models (ember-health and ember-instant), resumable.",
    ),
    "reasoning": Lazy(
        "ember_tools.eval.reasoning:reasoning",
        "Accuracy, tokens and latency of modes at efforts on GSM8K and ARC-Challenge: resumable, with a report.",
    ),
    "strategies": Lazy(
        "ember_tools.eval.strategies:strategies_command",
        "The reasoning strategies and candidate plans on the dev slice: accuracy and tokens.",
    ),
    "vision": Lazy(
        "ember_tools.eval.vision:vision",
        "Accuracy and latency of image questions, answered through the image readers.",
    ),
    "auto": Lazy(
        "ember_tools.eval.auto:auto",
        "Accuracy and tokens of instant, thinking, contemplating and auto on a mixed set: JSON and Markdown.",
    ),
    "tools": Lazy(
        "ember_tools.eval.tools:tools",
        "BFCL accuracy (AST categories) of Ember's modes and of the raw model's own tool calling, side by side.",
    ),
    "recs": Lazy(
        "ember_tools.eval.recs:recs",
        "Recall@10 and NDCG@10 on MovieLens-100k: popularity, item-kNN, EASE, ALS, BPR and Ember's ranker.",
    ),
}


@click.group("eval", cls=LazyGroup, lazy=EVALS)
def eval_() -> None:
    """Quality evaluations on real data (numbers, not pass/fail)."""
