"""`ember eval health grounded`'s numbers from its cache records: per template and pooled, each system's key
facts stated (of those listed, with a Wilson interval) and, of those, the ones a source the answer cites
holds; ember-health against plain on the questions both answered (the ratio of facts stated and the
difference per answer, with paired bootstrap intervals over questions); the issue's goals; then as Markdown
tables and as the marked section of docs/health.md. Reads records only.

An answer's own words are its text before ember-health's list of sources (`health.SOURCES_HEADING`). The
sources it cites are its citations, as ember-health returns and lists them: those its own words cite by
number ("[2]", `health.CITED`), or every source it was given when they cite none; a stated fact is held when
one of their texts states it, by the same matcher (`health_facts.states`). Beside it, stricter: held by a
source the answer's own words cite by number.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from ember.modes.health import CITED, SOURCES_HEADING
from ember_tools.eval.health_facts import Fact, Question, states, words
from ember_tools.eval.paired import paired_bootstrap, ratio_bootstrap, wilson

HEALTH, PLAIN = "ember-health", "plain"
RATIO_GOAL = 2.0  # ember-health states at least twice the key facts plain states
HELD_GOAL = 0.9  # and a source it cites holds at least 90% of those it states
BEGIN = "<!-- grounded results: begin (written by `ember eval health grounded --doc`) -->"
END = "<!-- grounded results: end -->"


@dataclass(frozen=True)
class Score:
    facts: int  # the question's key facts
    stated: int  # of them, stated by the answer
    held: int  # of those, held by a source the answer cites (its citations)
    held_by_number: int  # of those, held by a source its own words cite by number
    by_number: bool  # its own words cite a source it was given by number


def own_words(text: str) -> str:
    """An answer without the list of sources ember-health ends it with."""
    return text.rpartition(SOURCES_HEADING)[0] if SOURCES_HEADING in text else text


def cited(record: dict[str, Any], by_number: bool = False) -> list[str]:
    """The texts of the sources the answer cites (its citations); with `by_number`, of those its own words
    cite by number."""
    numbers = {int(n) for n in CITED.findall(own_words(record["text"]))}
    sources = record["sources"]
    return [sources[e] for n, e in record["citations"] if (n in numbers or not by_number) and e in sources]


def _held(stated: list[Fact], texts: list[str]) -> int:
    sources = [words(text) for text in texts]
    return sum(any(states(source, fact) for source in sources) for fact in stated)


def score(question: Question, record: dict[str, Any]) -> Score:
    said = words(own_words(record["text"]))
    stated = [fact for fact in question.facts if states(said, fact)]
    numbered = cited(record, by_number=True)
    held, held_by_number = _held(stated, cited(record)), _held(stated, numbered)
    return Score(len(question.facts), len(stated), held, held_by_number, bool(numbered))


def _mean(records: list[dict[str, Any]], field: str) -> float:
    return statistics.fmean([float(r[field]) for r in records] or [0.0])


def _system_row(scores: list[Score], records: list[dict[str, Any]]) -> dict[str, Any]:
    facts, stated = sum(s.facts for s in scores), sum(s.stated for s in scores)
    held, by_number = sum(s.held for s in scores), sum(s.held_by_number for s in scores)
    return {
        "items": len(scores),
        "errors": sum(bool(r["error"]) for r in records),
        "facts": facts,
        "stated": stated,
        "stated_share": stated / facts if facts else 0.0,
        "stated_ci95": list(wilson(stated, facts)),
        "stated_per_answer": stated / len(scores) if scores else 0.0,
        "held": held,
        "held_share": held / stated if stated else None,
        "held_ci95": list(wilson(held, stated)),
        "held_by_number": by_number,
        "held_by_number_share": by_number / stated if stated else None,
        "held_by_number_ci95": list(wilson(by_number, stated)),
        "answers_citing": sum(bool(r["citations"]) for r in records),
        "answers_citing_by_number": sum(s.by_number for s in scores),
        "mean_seconds": _mean(records, "seconds"),
        "mean_prompt_tokens": _mean(records, "prompt_tokens"),
        "mean_completion_tokens": _mean(records, "completion_tokens"),
    }


def _paired(health: dict[str, Score], plain: dict[str, Score]) -> dict[str, Any]:
    both = sorted(set(health) & set(plain))
    mine, theirs = [health[i].stated for i in both], [plain[i].stated for i in both]
    difference, low, high = paired_bootstrap(mine, theirs)
    ratio = ratio_bootstrap(mine, theirs)
    return {
        "items": len(both),
        "ratio": None if ratio is None else ratio[0],
        "ratio_ci95": None if ratio is None else [x if math.isfinite(x) else None for x in ratio[1:]],
        "difference_per_answer": difference,
        "difference_ci95": [low, high],
    }


def _block(chosen: list[Question], found: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """The numbers of the questions `chosen`; `found[system][question id]` is the answer's record."""
    block: dict[str, Any] = {"sample": len(chosen), "systems": {}}
    scores: dict[str, dict[str, Score]] = {}
    for system, by_id in found.items():
        records = {q.id: by_id[q.id] for q in chosen if q.id in by_id}
        scores[system] = {q.id: score(q, records[q.id]) for q in chosen if q.id in records}
        block["systems"][system] = _system_row(list(scores[system].values()), list(records.values()))
    if HEALTH in scores and PLAIN in scores:
        block["paired"] = _paired(scores[HEALTH], scores[PLAIN])
    return block


def summarize(
    chosen: list[Question], keys: dict[str, dict[str, str]], records: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The numbers of every system in `keys` on the questions `chosen`; `keys[system][question id]` is the
    answer's cache key now (records under older keys, from other prompts or models, are not counted)."""
    found = {s: {q: records[k] for q, k in by_id.items() if k in records} for s, by_id in keys.items()}
    templates = dict.fromkeys(q.template for q in chosen)
    summary: dict[str, Any] = {"systems": list(keys)}
    summary["templates"] = {t: _block([q for q in chosen if q.template == t], found) for t in templates}
    summary["overall"] = _block(chosen, found)
    summary["goals"] = goals(summary["overall"])
    return summary


def goals(overall: dict[str, Any]) -> dict[str, Any]:
    """The issue's goals: ember-health states >= 2x plain's key facts, and >= 90% of its stated facts are held
    by a source it cites (None: not measured)."""
    paired, health = overall.get("paired", {}), overall["systems"].get(HEALTH, {})
    ratio, interval = paired.get("ratio"), paired.get("ratio_ci95")
    low = None if interval is None else math.inf if interval[0] is None else interval[0]
    held, by_number = health.get("held_share"), health.get("held_by_number_share")
    return {
        "facts_ratio_at_least_2": None if ratio is None else ratio >= RATIO_GOAL,
        "facts_ratio_ci_above_2": None if low is None else low >= RATIO_GOAL,
        "held_at_least_90": None if held is None else held >= HELD_GOAL,
        "held_by_number_at_least_90": None if by_number is None else by_number >= HELD_GOAL,
    }


def _share(part: int, whole: int, interval: list[float]) -> str:
    if not whole:
        return "—"
    return f"{part}/{whole} = {part / whole:.1%} [{interval[0]:.1%}, {interval[1]:.1%}]"


def markdown(summary: dict[str, Any]) -> str:
    """Per template and pooled: one row a system, then one row of ember-health against plain."""
    lines = [
        "| questions | system | answered | key facts stated [95% CI] | stated / answer | stated facts held by a "
        "source it cites [95% CI] | … by a source it cites by number [95% CI] | answers citing by number | errors "
        "| s / answer | tokens / answer (prompt + completion) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    blocks = [*summary["templates"].items(), ("all (pooled)", summary["overall"])]
    for name, block in blocks:
        for system, row in block["systems"].items():
            held, by_number = "—", "—"
            if system == HEALTH:
                held = _share(row["held"], row["stated"], row["held_ci95"])
                by_number = _share(row["held_by_number"], row["stated"], row["held_by_number_ci95"])
            tokens = f"{row['mean_prompt_tokens']:.0f} + {row['mean_completion_tokens']:.0f}"
            lines.append(
                f"| {name} | {system} | {row['items']}/{block['sample']} "
                f"| {_share(row['stated'], row['facts'], row['stated_ci95'])} | {row['stated_per_answer']:.2f} "
                f"| {held} | {by_number} | {row['answers_citing_by_number']} | {row['errors']} "
                f"| {row['mean_seconds']:.1f} | {tokens} |"
            )
    lines += [
        "",
        "| questions | ember-health ÷ plain, facts stated [95% CI] | ember-health minus plain, facts / answer "
        "[95% CI] | paired |",
        "|---|---|---|---|",
    ]
    for name, block in blocks:
        if (paired := block.get("paired")) is not None:
            lines.append(f"| {name} | {_ratio(paired)} | {_difference(paired)} | {paired['items']} |")
    return "\n".join(lines)


def _ratio(paired: dict[str, Any]) -> str:
    if paired["ratio"] is None:
        return "— (plain stated none)"
    low, high = (f"{x:.2f}" if x is not None else "∞" for x in paired["ratio_ci95"])
    return f"{paired['ratio']:.2f}x [{low}, {high}]"


def _difference(paired: dict[str, Any]) -> str:
    low, high = paired["difference_ci95"]
    return f"{paired['difference_per_answer']:+.2f} [{low:+.2f}, {high:+.2f}]"


def _yes(value: bool | None) -> str:
    return "not measured" if value is None else "yes" if value else "no"


def _goal_lines(summary: dict[str, Any]) -> list[str]:
    overall, met = summary["overall"], summary["goals"]
    paired, health = overall.get("paired"), overall["systems"].get(HEALTH)
    ratio = "" if paired is None else f" ({_ratio(paired)}; its lower end ≥ 2: {_yes(met['facts_ratio_ci_above_2'])})"
    held = by_number = ""
    if health is not None:
        held = f" ({_share(health['held'], health['stated'], health['held_ci95'])})"
        by_number = f" ({_share(health['held_by_number'], health['stated'], health['held_by_number_ci95'])})"
    return [
        "- ember-health states at least twice the key facts plain states: "
        f"{_yes(met['facts_ratio_at_least_2'])}{ratio}.",
        "- A source ember-health cites holds at least 90% of the key facts it states: "
        f"{_yes(met['held_at_least_90'])}{held}; counting only sources its words cite by number: "
        f"{_yes(met['held_by_number_at_least_90'])}{by_number}.",
    ]


def _partial(summary: dict[str, Any]) -> list[str]:
    overall = summary["overall"]
    answered = min((row["items"] for row in overall["systems"].values()), default=0)
    if answered == overall["sample"]:
        return []
    return [
        f"**Partial run**: {answered} of {overall['sample']} questions answered by both systems so far; the same "
        "command (`make eval-health-grounded`) continues it from the per-item cache. Intervals are wide at this size.",
        "",
    ]


def document(meta: dict[str, Any], summary: dict[str, Any]) -> str:
    """The marked section of docs/health.md (whose prose above it says how questions are made and scored):
    what was run, on what, the tables and the goals."""
    return "\n".join(
        [
            BEGIN,
            "",
            "### Results",
            "",
            f"`{meta['command']}` — {meta['date']}, `{meta['model']}` (the `{meta['role']}` role ember-health answers "
            f"on), {meta['cores']} cores, index `{meta['index']}`, temperature 0, at most {meta['max_tokens']} tokens. "
            f"Seed {meta['seed']}, {meta['limit']} questions, each template's taken after the first "
            f"{meta['dev_items']} of its seeded order (the dev slice). JSON in `docs/eval-health-grounded.json`, "
            "every answer in `docs/eval-health-grounded-items.jsonl`. Facts are pooled over answers (Wilson 95%, "
            "which treats them as independent); ratio and difference resample questions (paired bootstrap, "
            "10,000 resamples). Seconds are wall time per answer with up to "
            f"{meta.get('concurrency', 1)} questions answered at once on the machine's shared cores.",
            "",
            *_partial(summary),
            markdown(summary),
            "",
            "Goals (issue 21):",
            *_goal_lines(summary),
            "",
            END,
        ]
    )
