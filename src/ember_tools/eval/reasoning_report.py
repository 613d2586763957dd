"""`ember eval reasoning`'s numbers from its cache records: per task (and both tasks pooled) each system's
accuracy with a Wilson interval, unparsed answers, errors, tokens and seconds per item; paired differences
with paired bootstrap intervals for the issue's comparisons, each on the items every compared system has;
the issue's goals met or missed; then as Markdown and JSON. Reads records only.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

from ember_tools.eval.choice import Item
from ember_tools.eval.paired import paired_bootstrap, wilson

INSTANT, AUTO, CONTEMPLATING = "ember-instant", "ember-auto", "ember-contemplating:medium"
LOW, MEDIUM, HIGH = (f"ember-thinking:{effort}" for effort in ("low", "medium", "high"))
GSM8K, ARC, POOLED = "gsm8k", "arc_challenge", "both tasks"
VERSUS_BEST = "ember-auto - best mode"


class Comparison(NamedTuple):
    name: str
    a: str
    b: str
    group: tuple[str, ...]  # the systems whose common items it is measured on


COMPARISONS = (
    Comparison("thinking:medium - instant", MEDIUM, INSTANT, (MEDIUM, INSTANT)),
    Comparison("contemplating:medium - thinking:medium", CONTEMPLATING, MEDIUM, (CONTEMPLATING, MEDIUM)),
    Comparison("thinking:medium - thinking:low", MEDIUM, LOW, (LOW, MEDIUM, HIGH)),
    Comparison("thinking:high - thinking:medium", HIGH, MEDIUM, (LOW, MEDIUM, HIGH)),
)
Found = dict[str, dict[str, dict[str, Any]]]  # system -> "task/id" -> its record


def _mean(records: list[dict[str, Any]], field: str) -> float:
    return statistics.fmean([float(r[field]) for r in records] or [0.0])


def _row(records: list[dict[str, Any]]) -> dict[str, Any]:
    correct = sum(bool(r["correct"]) for r in records)
    low, high = wilson(correct, len(records))
    row: dict[str, Any] = {"items": len(records), "correct": correct}
    row |= {"accuracy": correct / len(records) if records else 0.0}
    row |= {"ci95": [low, high], "unparsed": sum(r["committed"] is None and not r["error"] for r in records)}
    row |= {"errors": sum(bool(r["error"]) for r in records)}
    row |= {f"mean_{f}": _mean(records, f) for f in ("prompt_tokens", "completion_tokens", "reasoning_tokens")}
    row |= {"mean_seconds": _mean(records, "seconds")}
    routes = Counter(str(r["route"]) for r in records if r.get("route"))
    return row | ({"routes": dict(routes.most_common())} if routes else {})


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _paired(found: Found, a: str, b: str, group: tuple[str, ...]) -> dict[str, Any] | None:
    """`a` minus `b` on the items every system of `group` has; None when there are none."""
    if any(s not in found for s in group):
        return None
    common = sorted(set.intersection(*(set(found[s]) for s in group)))
    if not common:
        return None
    mine, theirs = [found[a][i] for i in common], [found[b][i] for i in common]
    difference, low, high = paired_bootstrap([r["correct"] for r in mine], [r["correct"] for r in theirs])
    accuracy = [statistics.fmean(float(r["correct"]) for r in rs) for rs in (mine, theirs)]
    completion = [_mean(rs, "completion_tokens") for rs in (mine, theirs)]
    total = [_mean(rs, "prompt_tokens") + _mean(rs, "completion_tokens") for rs in (mine, theirs)]
    return {
        "a": a,
        "b": b,
        "items": len(common),
        "difference": difference,
        "ci95": [low, high],
        "accuracy": accuracy,
        "accuracy_ratio": _ratio(*accuracy),
        "completion_tokens_ratio": _ratio(*completion),
        "total_tokens_ratio": _ratio(*total),
    }


def _versus_best(found: Found) -> dict[str, Any] | None:
    """ember-auto against the most accurate other system, both on the items every system has."""
    others = [s for s in found if s != AUTO]
    if AUTO not in found or not others:
        return None
    common = set.intersection(*(set(by_id) for by_id in found.values()))
    if not common:
        return None
    best = max(others, key=lambda s: sum(bool(found[s][i]["correct"]) for i in common))  # ties: the first named
    return _paired(found, AUTO, best, tuple(found))


def _block(found: Found, sample: int) -> dict[str, Any]:
    paired = {c.name: _paired(found, c.a, c.b, c.group) for c in COMPARISONS} | {VERSUS_BEST: _versus_best(found)}
    return {
        "sample": sample,
        "systems": {s: _row(list(by_id.values())) for s, by_id in found.items()},
        "paired": {name: p for name, p in paired.items() if p is not None},
    }


def summarize(
    samples: dict[str, list[Item]],
    keys: dict[str, dict[str, str]],
    records: dict[str, dict[str, Any]],
    systems: list[str],
) -> dict[str, Any]:
    """The numbers for `systems` on `samples`; `keys[system]["task/id"]` is the item's cache key now (records
    under older keys, from other code or models, are counted as `stale` only)."""
    tasks: dict[str, Any] = {}
    pooled: Found = {s: {} for s in systems}
    for task, items in samples.items():
        wanted = {s: {f"{task}/{i.id}": keys[s][f"{task}/{i.id}"] for i in items} for s in systems}
        found = {s: {i: records[k] for i, k in wanted[s].items() if k in records} for s in systems}
        tasks[task] = _block(found, len(items))
        for s in systems:
            pooled[s] |= found[s]
    current = {k for by_item in keys.values() for k in by_item.values()}
    asked = {k.rsplit("|", 1)[0] for k in current}  # system|task|id
    stale = sum(k not in current and k.rsplit("|", 1)[0] in asked for k in records)
    both = _block(pooled, sum(map(len, samples.values())))
    return {"systems": systems, "tasks": tasks, "pooled": both, "stale_records": stale, "goals": goals(tasks, both)}


def _all(parts: list[bool | None]) -> bool | None:
    """Met when every part is; None (not measured) when a part is not measured."""
    return None if not parts or None in parts else all(parts)


def _paired_in(block: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    return None if block is None else block["paired"].get(name)


def _above(paired: dict[str, Any] | None, field: str, least: float) -> bool | None:
    return None if paired is None or paired[field] is None else paired[field] >= least - 1e-9


def _below(paired: dict[str, Any] | None, field: str, most: float) -> bool | None:
    return None if paired is None or paired[field] is None else paired[field] <= most + 1e-9


def goals(tasks: dict[str, Any], pooled: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals, on point estimates: each met (True), missed (False) or not measured (None)."""
    both = [tasks.get(GSM8K), tasks.get(ARC)]
    thinking = tasks.get(GSM8K, {}).get("systems", {}).get(MEDIUM)
    gsm8k = None if not thinking or not thinking["items"] else thinking["accuracy"] >= 0.6 - 1e-9
    deeper = [_paired_in(b, COMPARISONS[1].name) for b in both]
    chain = [_above(_paired_in(b, c.name), "difference", 0.0) for b in both for c in COMPARISONS[2:]]
    auto = pooled["paired"].get(VERSUS_BEST)
    met = [
        gsm8k,
        _above(_paired_in(tasks.get(ARC), COMPARISONS[0].name), "difference", 0.10),
        _all(
            [
                *(_above(p, "difference", 0.05) for p in deeper),
                *(_below(p, "completion_tokens_ratio", 4) for p in deeper),
            ]
        ),
        _all(chain),
        _all([_above(auto, "accuracy_ratio", 0.95), _below(auto, "total_tokens_ratio", 0.40)]),
    ]
    return [{"goal": goal, "met": m} for goal, m in zip(GOALS, met, strict=True)]


GOALS = (
    "thinking (medium) ≥ 60% on GSM8K",
    "thinking (medium) ≥ instant + 10 points on ARC-C",
    "contemplating (medium) ≥ thinking (medium) + 5 points on GSM8K and on ARC-C, at ≤ 4x its completion tokens",
    "thinking rises or holds from low to medium to high, on each task",
    "auto ≥ 95% of the best mode's accuracy at ≤ 40% of its tokens (prompt + completion), both tasks pooled",
)


def _ci(row: dict[str, Any]) -> str:
    low, high = row["ci95"]
    return f"{row['accuracy']:.1%} [{low:.1%}, {high:.1%}]"


def _ratios(paired: dict[str, Any]) -> str:
    named = (
        ("accuracy", "accuracy_ratio"),
        ("completion tokens", "completion_tokens_ratio"),
        ("tokens", "total_tokens_ratio"),
    )
    return ", ".join(f"{label} x{paired[f]:.2f}" for label, f in named if paired[f] is not None)


def _blocks(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [*summary["tasks"].items(), (POOLED, summary["pooled"])]


def markdown(summary: dict[str, Any]) -> str:
    """Two tables: per task and system (n answered of the sample, accuracy [95% Wilson], unparsed, errors,
    mean tokens and seconds per item), then the paired comparisons (a - b [95% paired bootstrap], ratios)."""
    lines = [
        "| task | system | n | accuracy [95% CI] | unparsed | errors | prompt tokens | completion tokens "
        "| of which reasoning | s / item |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for task, block in _blocks(summary):
        for system, row in block["systems"].items():
            tokens = " | ".join(f"{row[f]:.0f}" for f in ("mean_prompt_tokens", "mean_completion_tokens"))
            lines.append(
                f"| {task} | {system} | {row['items']}/{block['sample']} | {_ci(row)} | {row['unparsed']} "
                f"| {row['errors']} | {tokens} | {row['mean_reasoning_tokens']:.0f} | {row['mean_seconds']:.1f} |"
            )
    lines += ["", "| task | a - b | n | Δ accuracy [95% paired CI] | a / b |", "|---|---|---|---|---|"]
    for task, block in _blocks(summary):
        for name, p in block["paired"].items():
            shown = name if name != VERSUS_BEST else f"ember-auto - {p['b']} (best)"
            low, high = p["ci95"]
            lines.append(
                f"| {task} | {shown} | {p['items']} | {p['difference']:+.1%} [{low:+.1%}, {high:+.1%}] | {_ratios(p)} |"
            )
    return "\n".join(lines)


def goal_lines(summary: dict[str, Any]) -> list[str]:
    said = {True: "met", False: "missed", None: "not measured"}
    return [f"- {g['goal']}: **{said[g['met']]}**" for g in summary["goals"]]


def partial(summary: dict[str, Any]) -> str:
    """ "PARTIAL gsm8k 37/150, …" (items every system has answered) when the sample is not done, else ""."""
    counts = {
        task: min((row["items"] for row in block["systems"].values()), default=0)
        for task, block in summary["tasks"].items()
    }
    samples = {task: block["sample"] for task, block in summary["tasks"].items()}
    if counts == samples:
        return ""
    return "PARTIAL " + ", ".join(f"{task} {counts[task]}/{samples[task]}" for task in counts)


def _routes(summary: dict[str, Any]) -> list[str]:
    return [
        f"- {system} routes ({task}): " + ", ".join(f"{target} {n}" for target, n in row["routes"].items())
        for task, block in _blocks(summary)
        for system, row in block["systems"].items()
        if "routes" in row
    ]


def text(summary: dict[str, Any]) -> str:
    """The tables, the goals and the routes, as printed after a run."""
    head = [f"**{partial(summary)}** items answered by every system", ""] if partial(summary) else []
    return "\n".join([*head, markdown(summary), "", "Goals (issue 19):", *goal_lines(summary), *_routes(summary)])


def document(meta: dict[str, Any], summary: dict[str, Any]) -> str:
    """docs/reasoning-eval.md: what was run, on what, and `text`."""
    models = ", ".join(f"{role} `{model.split(':')[0]}`" for role, model in meta["models"].items())
    stale = summary["stale_records"]
    return "\n".join(
        [
            "# Reasoning modes: GSM8K and ARC-Challenge",
            "",
            f"`{meta['command']}` — report of {meta['date']}: {models}; {meta['agents']} contemplating agents; "
            f"{meta['cores']} cores.",
            "",
            "Written by `ember eval reasoning --report` (`src/ember_tools/eval/reasoning*.py`) from the per-item "
            f"cache `{meta['cache']}`; JSON beside it. Items per task: a seed-{meta['seed']} sample of "
            f"{meta['limit']}, after the first {meta['dev_items']} items of the same order; those and the order's "
            f"last {meta['dev_tail']} are the dev slice, never reported. Zero-shot, temperature 0, seed 0, "
            f"answers capped at {meta['max_tokens']} tokens. Accuracy "
            "intervals are Wilson 95%; a - b is measured on the items every compared system answered, with a 95% "
            "paired bootstrap interval (10,000 resamples). Tokens are means per item over every phase and agent; "
            "seconds are wall time per answer while other items ran beside it (the records keep the concurrency).",
            "",
            *(
                [f"{stale} cached answers were made by other code or model files and are not counted.", ""]
                if stale
                else []
            ),
            text(summary),
            "",
        ]
    )


def write_report(meta: dict[str, Any], summary: dict[str, Any], json_path: Path, md_path: Path) -> str:
    """Write the JSON and the Markdown report; returns the Markdown."""
    written = document(meta, summary)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({**meta, **summary}, indent=2, ensure_ascii=False) + "\n")
    md_path.write_text(written)
    return written
