"""The table and goal lines of `ember bench engine`: each phase's medians side by side, with ratios to raw."""

from __future__ import annotations

import os
import statistics
from typing import Any

GOAL_API_DECODE = 0.95
GOAL_SCALING = 1.5
REFERENCE = "raw"
SERVER = "llama-server"  # with --llama-server: Ember's decode is also compared with it
CHILD = "child"  # `ember serve` on its default engine, llama.cpp in a managed child process
DIRECT = "child-direct"  # the native child's llama-server called without Ember: Ember's relay on one server

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


GOAL_TTFT_VS_SERVER = 1.1  # at most this times llama-server's first-token time
GOAL_TURN2_WARM = 0.2  # a next turn's first token with its history cached: at most this share of cold


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _goal(value: float, goal: float, at_most: bool = False) -> dict[str, Any]:
    return {"goal": goal, "value": value, "at_most": at_most, "met": value <= goal if at_most else value >= goal}


def paired(phase: dict[str, Any], other: dict[str, Any], key: str) -> float:
    """`phase`'s `key` over `other`'s: the median of the ratios of the paired passes (requests seconds apart),
    or the ratio of the medians when the run made no passes."""
    mine, theirs = phase.get("runs", {}).get(f"paired_{key}"), other.get("runs", {}).get(f"paired_{key}")
    if mine and theirs:
        return float(statistics.median(a / b for a, b in zip(mine, theirs, strict=True)))
    return float(phase[key] / other[key])


def _goals(phases: dict[str, dict[str, Any]], ratios: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
    goals: dict[str, dict[str, Any]] = {}
    for phase, result in phases.items():
        if phase != REFERENCE:
            goals[f"{phase}_decode_ratio"] = _goal(ratios[phase]["decode_tps"], GOAL_API_DECODE)
        goals[f"{phase}_scaling_4_over_1"] = _goal(result["scaling_4_over_1"], GOAL_SCALING)
        warm_share = result["turn2_warm_ttft_s"] / result["turn2_cold_ttft_s"]
        goals[f"{phase}_turn2_warm_over_cold"] = _goal(warm_share, GOAL_TURN2_WARM, at_most=True)
    if SERVER in phases:  # the reference: llama.cpp's own server
        server = phases[SERVER]
        for phase in phases:
            if phase not in (REFERENCE, SERVER, DIRECT):
                decode = paired(phases[phase], server, "decode_tps")
                goals[f"{phase}_decode_vs_llama_server"] = _goal(decode, GOAL_API_DECODE)
                ttft = paired(phases[phase], server, "ttft_s")
                goals[f"{phase}_ttft_vs_llama_server"] = _goal(ttft, GOAL_TTFT_VS_SERVER, at_most=True)
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
    if passes := len(phases.get(SERVER, {}).get("runs", {}).get("paired_decode_tps", [])):
        lines.append(f"against {SERVER} (and the relay): the median of {passes} paired passes' ratios")
    for name, g in goals.items():
        sign = "<=" if g["at_most"] else ">="
        lines.append(f"goal: {name} {sign} {g['goal']}: {g['value']:.3f}  {_verdict(g['met'])}")
    lines.append("")
    for phase, result in phases.items():
        if cpu := result.get("cpu"):
            server = cpu.get("server_process_cores")
            front = "" if server is None else f" (the answering process alone, without its children: {server:.2f})"
            lines.append(
                f"CPU during {phase}: this benchmark {cpu['benchmark_cores']:.2f} cores{front}, "
                f"other processes {cpu['other_cores']:.2f} cores (of {os.cpu_count()})"
            )
    summary: dict[str, Any] = {"ratios": ratios, "goals": goals}
    if CHILD in phases and DIRECT in phases:  # the same server with and without Ember in between
        relay = {key: paired(phases[CHILD], phases[DIRECT], key) for key in ("ttft_s", "decode_tps")}
        lines.append(
            f"Ember's relay on one server ({CHILD} / {DIRECT}): decode {relay['decode_tps']:.3f}x, "
            f"TTFT {relay['ttft_s']:.3f}x"
        )
        summary["relay"] = relay
    return "\n".join(lines), summary
