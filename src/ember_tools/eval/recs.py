"""`ember eval recs`: next-item recommendation on MovieLens-100k (from `recbole`), all rankers in one run.

Protocol: every rating is an implicit interaction. Per person, interactions are sorted by timestamp (ties
keep file order); the last is the test item, the one before it the validation item. Each ranker's
settings are chosen on the validation item (trained on everything before it), then it is refitted on
everything but the test item and ranks all items the person has not interacted with (full ranking, no
sampling). Reported: Recall@10 and NDCG@10 over all people, and fit time. Rankers: popularity, item-kNN,
EASE, ALS and BPR (the `implicit` library), and Ember's ranker (EASE from recency-weighted profiles).
Writes JSON, a Markdown table and a PNG. This module measures; it asserts nothing and downloads nothing.
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np
from scipy import sparse

from ember.shopping.movielens import load_ratings
from ember.shopping.ranker import Ease, EmberRanker, Floats, Interactions, Ints, ItemKNN, Popularity, recall_ndcg
from ember.shopping.ranker import top_k as best

K = 10
SEED = 0
EASE_GRID = (50.0, 100.0, 200.0, 300.0, 500.0, 800.0)
KNN_GRID = (20, 50, 100, 200)
RECENCY_GRID = tuple(itertools.product((0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0), (1.0, 3.0, 5.0, 10.0, 20.0, 40.0)))
ALS_GRID = tuple(itertools.product((64, 128), (0.01, 0.1), (1.0, 10.0)))  # factors, regularisation, alpha
BPR_GRID = tuple(itertools.product((64, 128), (0.01, 0.05)))  # factors, learning rate
# RECENCY_GRID: (boost, half-life) of Ember's profile weights
FACTOR_ITERATIONS = {"als": 15, "bpr": 100}


@dataclass(frozen=True)
class Split:
    """Training interactions and one held-out item per person."""

    train: Interactions
    truth: Ints

    def seen(self) -> sparse.csr_matrix:
        return self.train.matrix()


def leave_last_out(data: Interactions, hold: int) -> Split:
    """Hold out each person's `hold`-th latest interaction as truth; train on the ones before it."""
    order = np.lexsort((np.arange(len(data.users)), data.ts, data.users))
    users = data.users[order]
    ends = np.searchsorted(users, np.arange(data.n_users), side="right")
    starts = np.searchsorted(users, np.arange(data.n_users), side="left")
    if np.any(ends - starts <= hold):
        raise ValueError("every person needs more interactions than are held out")
    truth = order[ends - hold]
    position = np.arange(len(users)) - np.repeat(starts, ends - starts)
    keep = order[position < np.repeat(ends - starts - hold, ends - starts)]
    train = Interactions(data.users[keep], data.items[keep], data.ts[keep], data.n_users, data.n_items)
    return Split(train, data.items[truth])


Scorer = Callable[[Split], Floats]


def _plain(model: Popularity | ItemKNN | Ease) -> Scorer:
    def run(split: Split) -> Floats:
        x = split.train.matrix()
        model.fit(x)
        return model.score(x)

    return run


def _ember(lam: float, boost: float, half_life: float) -> Scorer:
    def run(split: Split) -> Floats:
        model = EmberRanker(lam=lam, boost=boost, half_life=half_life)
        model.fit(split.train.matrix())
        return model.score(split.train.recency_profiles(boost, half_life))

    return run


def _factor_model(kind: str, setting: tuple[Any, ...]) -> Any:
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    if kind == "als":
        factors, reg, alpha = setting
        return AlternatingLeastSquares(
            factors=factors, regularization=reg, alpha=alpha, iterations=FACTOR_ITERATIONS[kind], random_state=SEED
        )
    factors, rate = setting
    return BayesianPersonalizedRanking(
        factors=factors, learning_rate=rate, iterations=FACTOR_ITERATIONS[kind], random_state=SEED
    )


def _factors(kind: str, setting: tuple[Any, ...]) -> Scorer:
    def run(split: Split) -> Floats:
        from threadpoolctl import threadpool_limits  # comes with implicit (the `eval` extra)

        for module in ("implicit.cpu.als", "implicit.cpu.bpr"):  # loaded first, so the limit covers their BLAS
            importlib.import_module(module)
        with threadpool_limits(limits=1, user_api="blas"):  # implicit runs its own threads
            model = _factor_model(kind, setting)
            model.fit(split.train.matrix(), show_progress=False)
        return np.asarray(model.user_factors @ model.item_factors.T, dtype=np.float32)

    return run


def evaluate(scorer: Scorer, split: Split) -> tuple[float, float, float]:
    """(Recall@K, NDCG@K, fit-and-score seconds) of one scorer on one split."""
    started = time.perf_counter()
    scores = scorer(split)
    seconds = time.perf_counter() - started
    recall, ndcg = recall_ndcg(best(scores, K, exclude=split.seen()), split.truth)
    return recall, ndcg, seconds


@dataclass
class Candidate:
    """One ranker with its settings grid; `chosen` is the setting the validation split picked."""

    name: str
    grid: tuple[Any, ...]
    build: Callable[[Any], Scorer]
    chosen: Any = None
    validation: dict[str, float] = field(default_factory=dict)

    def tune(self, split: Split) -> None:
        results = {setting: evaluate(self.build(setting), split) for setting in self.grid}
        self.chosen = max(self.grid, key=lambda s: (results[s][1], results[s][0]))
        recall, ndcg, _ = results[self.chosen]
        self.validation = {"recall@10": recall, "ndcg@10": ndcg}


def candidates(with_factors: bool) -> list[Candidate]:
    found = [
        Candidate("popularity", (None,), lambda _: _plain(Popularity())),
        Candidate("item-kNN", KNN_GRID, lambda n: _plain(ItemKNN(neighbours=n))),
        Candidate("EASE", EASE_GRID, lambda lam: _plain(Ease(lam))),
    ]
    if with_factors:
        found += [
            Candidate("ALS (implicit)", ALS_GRID, lambda s: _factors("als", s)),
            Candidate("BPR (implicit)", BPR_GRID, lambda s: _factors("bpr", s)),
        ]
    return found


def interactions() -> Interactions:
    ratings = load_ratings()
    users = np.unique(ratings.users, return_inverse=True)[1].astype(np.int64)
    items_found, items = np.unique(ratings.items, return_inverse=True)
    return Interactions(users, items.astype(np.int64), ratings.ts, int(users.max()) + 1, len(items_found))


def run(with_factors: bool = True, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Tune on validation, then measure on test; Ember's ranker takes EASE's chosen λ and tunes recency."""
    data = interactions()
    validation, test = leave_last_out(data, 2), leave_last_out(data, 1)
    rows = []
    tuned = candidates(with_factors)
    for candidate in tuned:
        progress(f"tuning {candidate.name} ({len(candidate.grid)} settings)")
        candidate.tune(validation)
    lam = next(c.chosen for c in tuned if c.name == "EASE")
    ember = Candidate("Ember (EASE + recency)", RECENCY_GRID, lambda s: _ember(lam, *s))
    progress(f"tuning {ember.name} ({len(ember.grid)} settings)")
    ember.tune(validation)
    for candidate in [*tuned, ember]:
        recall, ndcg, seconds = evaluate(candidate.build(candidate.chosen), test)
        setting = [lam, *candidate.chosen] if candidate is ember else candidate.chosen
        rows.append(
            {
                "ranker": candidate.name,
                "setting": setting,
                "recall@10": round(recall, 4),
                "ndcg@10": round(ndcg, 4),
                "validation": {k: round(v, 4) for k, v in candidate.validation.items()},
                "seconds": round(seconds, 2),
            }
        )
    meta = {"people": data.n_users, "items": data.n_items, "interactions": len(data.users), "k": K}
    return {"dataset": "MovieLens-100k (recbole 1.2.1)", **meta, "cores": os.cpu_count(), "results": rows}


def markdown(rows: Iterable[dict[str, Any]]) -> str:
    lines = ["| ranker | setting | Recall@10 | NDCG@10 | fit + score (s) |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['ranker']} | {r['setting']} | {r['recall@10']:.4f} | {r['ndcg@10']:.4f} | {r['seconds']} |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> bool:
    """Grouped bars of Recall@10 and NDCG@10 per ranker; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(8, 4))
    x = np.arange(len(rows))
    for offset, metric in ((-0.2, "recall@10"), (0.2, "ndcg@10")):
        bars = ax.bar(x + offset, [r[metric] for r in rows], width=0.4, label=metric.replace("@", "@"))
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(x, [r["ranker"] for r in rows], rotation=15, fontsize=8)
    ax.set_title("MovieLens-100k, leave-last-out, full ranking")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


@click.command("recs")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("docs"), show_default=True)
@click.option("--no-factors", is_flag=True, help="skip ALS and BPR (the `implicit` library)")
def recs(out: Path, no_factors: bool) -> None:
    """Recall@10 and NDCG@10 on MovieLens-100k: popularity, item-kNN, EASE, ALS, BPR and Ember's ranker."""
    out.mkdir(parents=True, exist_ok=True)
    result = run(not no_factors, progress=lambda line: click.echo(line, err=True))
    (out / "eval-recs.json").write_text(json.dumps(result, indent=2) + "\n")
    click.echo(markdown(result["results"]))
    if plot(result["results"], out / "eval-recs.png"):
        click.echo(f"wrote {out / 'eval-recs.json'} and {out / 'eval-recs.png'}")
