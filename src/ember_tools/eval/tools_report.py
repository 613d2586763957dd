"""`ember eval tools`' numbers from its cache records: per category and pooled, each system's accuracy with a
Wilson interval, each Ember mode's paired difference from the raw model with a paired bootstrap interval,
errors, seconds and tokens per item; then as a Markdown table and as docs/tools.md. Reads records only."""

from __future__ import annotations

import collections
import re
import statistics
from typing import Any

from ember_tools.eval.bfcl import Case
from ember_tools.eval.paired import paired_bootstrap, wilson

RAW = "raw"
IRRELEVANCE_GOAL = 0.8
# text that looks like a call written out instead of returned as one (not counted as a call; shown only)
CALL_AS_TEXT = re.compile(r'"name"\s*:\s*"[^"]*"\s*,\s*"(?:arguments|parameters)"')


def _system_row(records: list[dict[str, Any]]) -> dict[str, Any]:
    correct = sum(bool(r["valid"]) for r in records)
    low, high = wilson(correct, len(records))
    failures = collections.Counter(str(r["error_type"]) for r in records if not r["valid"])
    return {
        "items": len(records),
        "correct": correct,
        "accuracy": correct / len(records) if records else 0.0,
        "ci95": [low, high],
        "errors": sum(bool(r["error"]) for r in records),
        "calls_made": sum(bool(r["calls"]) for r in records),
        "calls_as_text": sum(not r["calls"] and bool(CALL_AS_TEXT.search(str(r["text"]))) for r in records),
        "mean_seconds": statistics.fmean([float(r["seconds"]) for r in records] or [0.0]),
        "mean_prompt_tokens": statistics.fmean([float(r["prompt_tokens"]) for r in records] or [0.0]),
        "mean_completion_tokens": statistics.fmean([float(r["completion_tokens"]) for r in records] or [0.0]),
        "failures": dict(failures.most_common()),
    }


def _paired(mine: dict[str, dict[str, Any]], raw: dict[str, dict[str, Any]]) -> dict[str, Any]:
    both = sorted(set(mine) & set(raw))
    difference, low, high = paired_bootstrap([mine[i]["valid"] for i in both], [raw[i]["valid"] for i in both])
    return {"items": len(both), "difference": difference, "ci95": [low, high]}


def _block(found: dict[str, dict[str, dict[str, Any]]], sample: int) -> dict[str, Any]:
    """One category's (or the pool's) numbers; `found[system][item id]` is that item's record."""
    block: dict[str, Any] = {"sample": sample, "systems": {}, "paired_vs_raw": {}}
    for system, by_id in found.items():
        block["systems"][system] = _system_row(list(by_id.values()))
        if system != RAW and RAW in found:
            block["paired_vs_raw"][system] = _paired(by_id, found[RAW])
    return block


def summarize(
    by_category: dict[str, list[Case]],
    keys: dict[str, dict[str, str]],
    records: dict[str, dict[str, Any]],
    systems: list[str],
) -> dict[str, Any]:
    """The numbers for `systems` on these cases; `keys[system][item id]` is the item's cache key now (records
    under older keys, from other prompts or models, are not counted)."""
    categories: dict[str, Any] = {}
    pooled: dict[str, dict[str, dict[str, Any]]] = {s: {} for s in systems}
    for category, cases in by_category.items():
        found = {s: {c.id: records[keys[s][c.id]] for c in cases if keys[s][c.id] in records} for s in systems}
        categories[category] = _block(found, len(cases))
        for s in systems:
            pooled[s] |= found[s]
    summary = {"systems": systems, "categories": categories}
    summary["overall"] = _block(pooled, sum(len(c) for c in by_category.values()))
    summary["goals"] = goals(categories, systems)
    return summary


def goals(categories: dict[str, Any], systems: list[str]) -> dict[str, Any]:
    """The issue's goals per Ember mode: above raw in every category, and irrelevance >= 80%."""
    out: dict[str, Any] = {}
    for system in systems:
        if system == RAW:
            continue
        above = {
            c: b["paired_vs_raw"][system]["difference"] > 0
            for c, b in categories.items()
            if system in b["paired_vs_raw"]
        }
        irrelevance = categories.get("irrelevance", {}).get("systems", {}).get(system)
        out[system] = {
            "above_raw_in_every_category": bool(above) and all(above.values()),
            "above_raw": above,
            "irrelevance_at_least_80": None if irrelevance is None else irrelevance["accuracy"] >= IRRELEVANCE_GOAL,
        }
    return out


def _ci(row: dict[str, Any]) -> str:
    low, high = row["ci95"]
    return f"{row['accuracy']:.1%} [{low:.1%}, {high:.1%}]"


def _delta(paired: dict[str, Any] | None) -> str:
    if paired is None:
        return "—"
    low, high = paired["ci95"]
    return f"{paired['difference']:+.1%} [{low:+.1%}, {high:+.1%}] (n={paired['items']})"


def markdown(summary: dict[str, Any]) -> str:
    """One row per category and system: items, accuracy [95% Wilson], Δ vs raw [95% paired bootstrap],
    calls made, errors, seconds and tokens (prompt + completion) per item."""
    lines = [
        "| category | system | items | accuracy [95% CI] | Δ vs raw [95% paired CI] | calls made | errors | s / item "
        "| tokens / item (prompt + completion) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    blocks = [*summary["categories"].items(), ("all (pooled)", summary["overall"])]
    for category, block in blocks:
        for system, row in block["systems"].items():
            tokens = f"{row['mean_prompt_tokens']:.0f} + {row['mean_completion_tokens']:.0f}"
            lines.append(
                f"| {category} | {system} | {row['items']}/{block['sample']} | {_ci(row)} "
                f"| {_delta(block['paired_vs_raw'].get(system))} | {row['calls_made']} | {row['errors']} "
                f"| {row['mean_seconds']:.1f} | {tokens} |"
            )
    return "\n".join(lines)


def _goal_lines(summary: dict[str, Any]) -> list[str]:
    lines = []
    for system, goal in summary["goals"].items():
        above = ", ".join(f"{c} {'yes' if v else 'no'}" for c, v in goal["above_raw"].items())
        lines.append(
            f"- {system} above raw (point estimate) in every category: "
            f"{'yes' if goal['above_raw_in_every_category'] else 'no'} ({above})."
        )
        if goal["irrelevance_at_least_80"] is not None:
            lines.append(f"- {system} irrelevance ≥ 80%: {'yes' if goal['irrelevance_at_least_80'] else 'no'}.")
    raw = summary["overall"]["systems"].get(RAW)
    if raw and raw["items"] and not raw["calls_made"]:
        lines.append(
            "- raw returned no call in any answer, so its irrelevance score is the ceiling (100%): there, a system "
            "that calls when a function fits can at most equal it."
        )
    return lines


def document(meta: dict[str, Any], summary: dict[str, Any]) -> str:
    """docs/tools.md: what was run, on what, the table and the goals."""
    counts = ", ".join(
        f"{c} {b['systems'].get(RAW, {}).get('items', 0)}/{b['sample']}" for c, b in summary["categories"].items()
    )
    return "\n".join(
        [
            "# Function calling: BFCL (non-live AST categories)",
            "",
            f"`{meta['command']}` — {meta['date']}, `{meta['model']}` (the `chat-fast` role), {meta['cores']} cores, "
            f"data and checker from `{meta['package']}`.",
            "",
            "Written by `ember eval tools` (`src/ember_tools/eval/tools.py`, `bfcl.py`); JSON beside it in "
            '`docs/eval-tools.json`. "raw" is the same GGUF in llama.cpp with its own chat template (`use_jinja`) and '
            "llama.cpp's own tool-call parsing (a call counts only if llama.cpp returned it in `tool_calls`); the "
            "Ember modes answer through the server's Pipeline. Same body for both: the item's first turn, its "
            "functions as OpenAI `tools` (converted as BFCL's OpenAI handler converts them), `tool_choice` auto, "
            f"temperature 0, seed 0, at most {meta['max_tokens']} tokens. Scored by BFCL's own AST checker; "
            "irrelevance is right when no call is made. Accuracy intervals are Wilson 95%; Δ is the mode minus raw "
            "on the items both answered, with a 95% paired bootstrap interval (10,000 resamples).",
            "",
            f"Items per category: a seed-{meta['seed']} sample of {meta['limit']}, taken after the first "
            f"{meta['dev_items']} items of the same seeded order, which are the dev slice (looked at while debugging, "
            f"never reported). Answered (raw): {counts}.",
            "",
            *_partial(summary),
            markdown(summary),
            "",
            "Goals (issue 18):",
            *_goal_lines(summary),
            "",
            *_text_calls(summary),
        ]
    )


def _partial(summary: dict[str, Any]) -> list[str]:
    """A warning when some items of the sample have no answer yet."""
    fewest = [min((row["items"] for row in b["systems"].values()), default=0) for b in summary["categories"].values()]
    samples = [b["sample"] for b in summary["categories"].values()]
    if fewest == samples:
        return []
    return [
        f"**Partial run**: {_span(fewest)} items a category so far, not the whole sample; the same command "
        "continues it from the per-item cache `docs/eval-tools-items.jsonl`. "
        "Intervals are wide at this size.",
        "",
    ]


def _span(counts: list[int]) -> str:
    low, high = min(counts, default=0), max(counts, default=0)
    return str(low) if low == high else f"{low} to {high}"


def _text_calls(summary: dict[str, Any]) -> list[str]:
    """A note for each system that wrote calls as text instead of returning them (scored as no call)."""
    lines = [
        f"{system} wrote a call as JSON text instead of returning it in `tool_calls` in {row['calls_as_text']} of "
        f"{row['items']} answers (all categories); those count as no call, as BFCL counts them."
        for system, row in summary["overall"]["systems"].items()
        if row["calls_as_text"]
    ]
    return [*lines, ""] if lines else []
