"""`ember eval health`'s numbers from its cache records: per system accuracy with a Wilson interval, items
answered, unparsed answers, errors, tokens and seconds per answer; the issue's two comparisons as paired
differences on the items both systems answered, with paired bootstrap intervals over items; the issue's
goals met or not; then as a Markdown table and as the marked block of docs/health.md. Reads records only.

A record that holds an error is not an answer: it counts among the errors, never among the items answered
(the next run asks it again).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from ember_tools.eval.paired import RESAMPLES, paired_bootstrap, wilson

HEALTH_CHAT, INSTANT_CHAT, HEALTH_FAST = "ember-health@chat", "ember-instant@chat", "ember-health@chat-fast"
BEGIN = "<!-- medqa results: begin (written by `ember eval health --doc`) -->"
END = "<!-- medqa results: end -->"
SECTION = "## MedQA: ember-instant vs ember-health"  # the block goes at the end of this section


@dataclass(frozen=True)
class Goal:
    """Issue 21's goal that system `a` scores at least (`strict`: more than) system `b`."""

    text: str
    a: str
    b: str
    strict: bool

    @property
    def comparison(self) -> str:
        return f"{self.a} - {self.b}"


GOALS = (
    Goal("ember-health on the 1.5B >= ember-instant on the 1.5B", HEALTH_CHAT, INSTANT_CHAT, strict=False),
    Goal("ember-health on the 1.5B > ember-health on the 0.5B", HEALTH_CHAT, HEALTH_FAST, strict=True),
)


def _mean(records: list[dict[str, Any]], field: str) -> float:
    return statistics.fmean([float(r[field]) for r in records] or [0.0])


def _row(answers: list[dict[str, Any]], errors: int) -> dict[str, Any]:
    """One system's numbers: `answers` are its records without an error."""
    correct = sum(bool(r["correct"]) for r in answers)
    return {
        "items": len(answers),
        "correct": correct,
        "accuracy": correct / len(answers) if answers else 0.0,
        "ci95": list(wilson(correct, len(answers))),
        "unparsed": sum(r["chosen"] is None for r in answers),
        "errors": errors,
        "mean_prompt_tokens": _mean(answers, "prompt_tokens"),
        "mean_completion_tokens": _mean(answers, "completion_tokens"),
        "mean_seconds": _mean(answers, "seconds"),
    }


def _paired(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]], order: list[str]) -> dict[str, Any] | None:
    """`a`'s accuracy minus `b`'s on the items both answered (None when there are none); each maps item id to
    its record."""
    common = [i for i in order if i in a and i in b]
    if not common:
        return None
    mine, theirs = [bool(a[i]["correct"]) for i in common], [bool(b[i]["correct"]) for i in common]
    difference, low, high = paired_bootstrap(mine, theirs)
    accuracy = [statistics.fmean(map(float, rs)) for rs in (mine, theirs)]
    return {"items": len(common), "accuracy": accuracy, "difference": difference, "ci95": [low, high]}


def goal_met(goal: Goal, paired: dict[str, Any] | None) -> dict[str, Any]:
    """Whether the point estimate meets `goal` (None: not measured), and whether the interval excludes 0."""
    if paired is None:
        return {"goal": goal.text, "comparison": goal.comparison, "met": None, "interval_excludes_0": None}
    difference, (low, high) = paired["difference"], paired["ci95"]
    met = difference > 0 if goal.strict else difference >= 0
    return {"goal": goal.text, "comparison": goal.comparison, "met": met, "interval_excludes_0": low > 0 or high < 0}


def summarize(ids: list[str], keys: dict[str, dict[str, str]], records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The numbers of every system in `keys` on the items `ids`; `keys[system][item id]` is the answer's cache
    key now (records under older keys, from other prompts, models or bodies, are not counted)."""
    held = {s: {i: records[k] for i, k in by_id.items() if k in records} for s, by_id in keys.items()}
    answers = {s: {i: r for i, r in by_id.items() if not r["error"]} for s, by_id in held.items()}
    summary: dict[str, Any] = {"sample": len(ids), "systems": {}, "paired": {}, "goals": []}
    for system, by_id in answers.items():
        errors = sum(bool(r["error"]) for r in held[system].values())
        summary["systems"][system] = _row([by_id[i] for i in ids if i in by_id], errors)
    summary["complete"] = sum(all(i in by_id for by_id in answers.values()) for i in ids) if answers else 0
    for goal in GOALS:
        paired = _paired(answers[goal.a], answers[goal.b], ids) if goal.a in answers and goal.b in answers else None
        if paired is not None:
            summary["paired"][goal.comparison] = paired
        summary["goals"].append(goal_met(goal, paired))
    return summary


def _percent(x: float) -> str:
    return f"{x:.1%}"


def _points(x: float) -> str:
    return f"{100 * x:+.1f}"


def markdown(summary: dict[str, Any]) -> str:
    """One row a system, then one row a comparison (differences in percentage points)."""
    lines = [
        "| system | answered | accuracy [95% CI] | unparsed | errors | prompt tokens | completion tokens "
        "| s / answer |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for system, row in summary["systems"].items():
        low, high = row["ci95"]
        lines.append(
            f"| {system} | {row['items']}/{summary['sample']} | {_percent(row['accuracy'])} "
            f"[{_percent(low)}, {_percent(high)}] | {row['unparsed']} | {row['errors']} "
            f"| {row['mean_prompt_tokens']:.0f} | {row['mean_completion_tokens']:.0f} | {row['mean_seconds']:.1f} |"
        )
    if summary["paired"]:
        lines += [
            "",
            "| comparison (on the items both answered) | items | accuracies | difference, points [95% CI] |",
            "|---|---|---|---|",
        ]
        for name, paired in summary["paired"].items():
            low, high = paired["ci95"]
            accuracies = " vs ".join(map(_percent, paired["accuracy"]))
            lines.append(
                f"| {name} | {paired['items']} | {accuracies} "
                f"| {_points(paired['difference'])} [{_points(low)}, {_points(high)}] |"
            )
    return "\n".join(lines)


def goal_lines(summary: dict[str, Any]) -> list[str]:
    """One line a goal of the issue: met or not on the point estimate, and what the interval says."""
    lines = []
    for goal in summary["goals"]:
        paired = summary["paired"].get(goal["comparison"])
        if paired is None:
            a, b = goal["comparison"].split(" - ")
            asked = a in summary["systems"] and b in summary["systems"]
            why = "no item answered by both" if asked else f"the run does not ask both {a} and {b}"
            lines.append(f"- {goal['goal']}: not measured ({why}).")
            continue
        low, high = paired["ci95"]
        interval = "excludes 0" if goal["interval_excludes_0"] else "includes 0: the difference is not resolved"
        lines.append(
            f"- {goal['goal']}: {'met' if goal['met'] else 'not met'} on the point estimate "
            f"({_points(paired['difference'])} points [{_points(low)}, {_points(high)}] on {paired['items']} items; "
            f"the interval {interval})."
        )
    return lines


def partial_lines(summary: dict[str, Any]) -> list[str]:
    """A "Partial run" line when not every system answered every item; none when the run is complete."""
    if summary["complete"] == summary["sample"]:
        return []
    return [
        f"**Partial run: {summary['complete']} of {summary['sample']} items** answered by every system so far; "
        "the same command (`make eval-health`) continues it from the per-item cache.",
        "",
    ]


def _systems(meta: dict[str, Any]) -> str:
    described = [f"`{name}` (`{s['mode']}` on `{s['model']}`)" for name, s in meta["models"].items()]
    return "; ".join(described)


def document(meta: dict[str, Any], summary: dict[str, Any]) -> str:
    """The marked block of docs/health.md: what was run, on what, the tables and the goals."""
    return "\n".join(
        [
            BEGIN,
            "",
            "### Results (issue 21)",
            "",
            f"`{meta['command']}` — {meta['date']}, {meta['cores']} cores, temperature 0, seed 0 in each request, "
            f"at most {meta['max_tokens']} answer tokens; {meta['limit']} items drawn with seed {meta['seed']} "
            "(`choice.load_items`: 200 items with seed 0 are the items of the first run above). Systems, each a "
            f"mode with its local chat roles on a model: {_systems(meta)}. JSON in `docs/eval-health-medqa.json`, "
            "every answer in `docs/eval-health-items.jsonl`. Accuracy with a Wilson 95% interval; differences on the "
            f"items both systems answered, with a paired bootstrap interval ({RESAMPLES:,} resamples of items). "
            f"Seconds are wall time per answer with up to {meta['concurrency']} items asked at once on the "
            "machine's shared cores. ember-health's multiple-choice route (commit 6915e0d) was not developed on "
            "MedQA items: that commit's one multiple-choice example is a hand-written question (scurvy, four "
            "options) in `tests/test_health.py`.",
            "",
            *partial_lines(summary),
            markdown(summary),
            "",
            "Goals (issue 21):",
            *goal_lines(summary),
            "",
            END,
        ]
    )
