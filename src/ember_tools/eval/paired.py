"""Intervals for scores measured on the same items: Wilson for one system's rate, and a paired bootstrap
(resampling the items) for the difference of two systems' means or the ratio of their totals. Plain
arithmetic on lists of per-item scores (right/wrong, or counts); nothing here knows what was asked."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Z95 = 1.959964  # the normal quantile of a two-sided 95% interval
RESAMPLES = 10_000


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of `correct` out of `n` ((0, 1) when n is 0)."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _same_items(a: Sequence[float], b: Sequence[float]) -> None:
    if len(a) != len(b):
        raise ValueError("paired results need the same items")


def _resampled(
    a: Sequence[float], b: Sequence[float], resamples: int, seed: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """`a` and `b` resampled together, item by item: `resamples` rows each."""
    picks = np.random.default_rng(seed).integers(0, len(a), size=(resamples, len(a)))
    return np.asarray(a, dtype=float)[picks], np.asarray(b, dtype=float)[picks]


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float, float]:
    """The mean of `a` minus the mean of `b` on the same items (a[i] and b[i] are one item; right/wrong as
    True/False gives accuracies), with the 2.5th and 97.5th percentiles of that difference over `resamples`
    resamplings of the items."""
    _same_items(a, b)
    if not a:
        return 0.0, 0.0, 0.0
    mine, theirs = _resampled(a, b, resamples, seed)
    low, high = np.percentile((mine - theirs).mean(axis=1), [2.5, 97.5])
    return float((np.asarray(a, dtype=float) - np.asarray(b, dtype=float)).mean()), float(low), float(high)


def ratio_bootstrap(
    a: Sequence[float], b: Sequence[float], resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float, float] | None:
    """The total of `a` over the total of `b` on the same items, with the 2.5th and 97.5th percentiles of
    that ratio over `resamples` resamplings of the items (a resample where `b` totals 0 counts as infinite);
    None when `b` totals 0."""
    _same_items(a, b)
    if not a or sum(b) == 0:
        return None
    mine, theirs = (x.sum(axis=1) for x in _resampled(a, b, resamples, seed))
    ratios = np.divide(mine, theirs, out=np.full(resamples, np.inf), where=theirs > 0)
    low, high = np.percentile(ratios, [2.5, 97.5], method="nearest")
    return float(sum(a) / sum(b)), float(low), float(high)
