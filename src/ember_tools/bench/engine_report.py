"""The table and goal lines of `ember bench engine`: each phase's medians side by side, with ratios to raw."""

from __future__ import annotations

import os
from typing import Any

GOAL_API_DECODE = 0.95
GOAL_SCALING = 1.5
REFERENCE = "raw"

ROWS = (
    ("TTFT (s)", "ttft_s", "{:.3f}"),
    ("decode tok/s, 1 stream", "decode_tps", "{:.1f}"),
    ("total tok/s, 1 stream", "total_tps_1", "{:.1f}"),
    ("total tok/s, 2 streams", "total_tps_2", "{:.1f}"),
    ("total tok/s, 4 streams", "total_tps_4", "{:.1f}"),
    ("scaling, 4 / 1 stream", "scaling_4_over_1", "{:.2f}x"),
    ("turn 2 prompt tokens", "turn2_prompt_tokens", "{:.0f}"),
    ("turn 2 TTFT, cold (s)", "turn2_cold_ttft_s", "{:.3f}"),
    ("turn 2 TTFT, warm (s)", "turn2_warm_ttft_s", "{:.3f}"),
    ("turn 2 cold / warm", "turn2_speedup", "{:.1f}x"),
)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _goals(phases: dict[str, dict[str, Any]], ratios: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
    goals: dict[str, dict[str, Any]] = {}
    for phase in phases:
        if phase != REFERENCE:
            goals[f"{phase}_decode_ratio"] = {"goal": GOAL_API_DECODE, "value": ratios[phase]["decode_tps"]}
        goals[f"{phase}_scaling_4_over_1"] = {"goal": GOAL_SCALING, "value": phases[phase]["scaling_4_over_1"]}
    for g in goals.values():
        g["met"] = g["value"] >= g["goal"]
    return goals


def report(phases: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The printed table and goal lines for `phases` (raw first), plus the ratios and goals for the JSON."""
    others = [p for p in phases if p != REFERENCE]
    raw = phases[REFERENCE]
    ratios = {p: {key: phases[p][key] / raw[key] for _, key, _ in ROWS} for p in others}
    header = f"{'metric':<26}" + "".join(f"{p:>11}" for p in phases) + "".join(f"{p + '/raw':>15}" for p in others)
    lines = [header]
    for label, key, fmt in ROWS:
        values = "".join(f"{fmt.format(phases[p][key]):>11}" for p in phases)
        lines.append(f"{label:<26}{values}" + "".join(f"{ratios[p][key]:>14.2f}x" for p in others))
    goals = _goals(phases, ratios)
    lines.append("")
    for name, g in goals.items():
        lines.append(f"goal: {name} >= {g['goal']}: {g['value']:.3f}  {_verdict(g['met'])}")
    lines.append("")
    for phase, result in phases.items():
        if cpu := result.get("cpu"):
            lines.append(
                f"CPU during {phase}: this benchmark {cpu['benchmark_cores']:.2f} cores, "
                f"other processes {cpu['other_cores']:.2f} cores (of {os.cpu_count()})"
            )
    return "\n".join(lines), {"ratios": ratios, "goals": goals}
