"""`ember reliability report`: the results of the last `make reliability` as Markdown tables, written into
docs/reliability.md between two marker comments (the prose around them is left as it is).

It reads what the checks wrote: the load and soak JSON (`ember reliability load|soak --out`), the
durability JSON (`ember reliability durability --json`) and the prompt-injection tests' JUnit XML. A
missing file is reported as not run. It runs nothing and measures nothing itself.
"""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ember_tools.marked import replace_block

BEGIN = "<!-- reliability results: begin (written by `ember reliability report`) -->"
END = "<!-- reliability results: end -->"


def _n(value: float | None, fmt: str = "{:.3f}", scale: float = 1.0) -> str:
    return "-" if value is None else fmt.format(value * scale)


def _limits(limits: dict[str, float]) -> str:
    return f"{limits.get('running', 0):g} running + {limits.get('waiting', 0):g} waiting"


def load_section(result: dict[str, Any]) -> list[str]:
    server = result.get("server", {})
    lines = [
        f"### Load ({server.get('model', result['url'])}, {server.get('parallel', '?')} slots, "
        f"max_tokens {result['options']['max_tokens']}, {result['options']['arrivals']} arrivals, "
        f"admission {_limits(result['admission_limits'])}, {result['machine']['nproc']} CPUs)",
        "",
        "| phase | rate (req/s) | sent | ok | 503 | failed | error % | TTFT p50 / p90 / p99 (s) "
        "| latency p50 / p90 / p99 (s) | 503 p50 / max (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, p in result["phases"].items():
        t, lat, b = p["ttft_s"], p["latency_s"], p["busy_latency_s"]
        lines.append(
            f"| {name} | {_n(p.get('rate'), '{:.2f}')} | {p['sent']} | {p['completed']} | {p['busy_503']} "
            f"| {p['failed']} | {100 * p['error_rate']:.1f} | {' / '.join(_n(t[k]) for k in ('p50', 'p90', 'p99'))} "
            f"| {' / '.join(_n(lat[k]) for k in ('p50', 'p90', 'p99'))} "
            f"| {_n(b['p50'], '{:.0f}', 1000)} / {_n(b['max'], '{:.0f}', 1000)} |"
        )
    r, over = result["ratios"], result["phases"]["overload"]
    lines += [
        "",
        f"p50 latency under load: **{_n(r['load_p50_latency_over_reference'], '{:.2f}')}x** the single-request "
        f"reference measured in the same run; p50 TTFT {_n(r['load_p50_ttft_over_reference'], '{:.2f}')}x. "
        f"Overload: {over['timeouts']} timeouts, {over['busy_with_retry_after']} of {over['busy_503']} 503s with "
        f"Retry-After; afterwards the server held {sum(over['after']['held'].values()):g} requests and /health "
        f"answered {over['after']['health_status']} {over['after']['health']}.",
    ]
    return lines


def _held(held: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:g}" for name, value in held.items())


def soak_section(result: dict[str, Any]) -> list[str]:
    m, opts, server = result["memory"], result["options"], result.get("server", {})
    lines = [
        f"### Soak ({result['traffic_s'] / 60:.1f} min, {opts['concurrency']} clients, "
        f"{server.get('model', result['url'])} on {server.get('parallel', '?')} slots, "
        f"{result['machine']['nproc']} CPUs)",
        "",
        "| kind | sent | ok | 503 | failed | timeouts | latency p50 / p99 (s) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, k in result["kinds"].items():
        lat = k["latency_s"]
        lines.append(
            f"| {name} | {k['sent']} | {k['ok']} | {k['busy_503']} | {k['failed']} | {k['timeouts']} "
            f"| {_n(lat['p50'])} / {_n(lat['p99'])} |"
        )
    goal = {True: "met", False: "**missed**"}.get(m.get("goal_met"), "not judged: under 1,000 requests after it")
    lines += [
        "",
        f"{result['requests']} requests; hangs (timeouts): {result['timeouts']}; /health failures: "
        f"{result['health_failures']}; held after traffic: {_held(result['after']['held'])} "
        f"(leaked: {_held(result['leaked']) or 'none'}).",
        f"Server RSS {m['rss_start_mib']} → {m['rss_end_mib']} MiB; after a warm-up of {m['warmup_requests']} "
        f"requests: {_n(m['per_1000_mib'])} MiB per 1,000 requests end to end, {_n(m['slope_per_1000_mib'])} by "
        f"a linear fit (goal < {m.get('goal_mib_per_request', 0.1)} MiB per request: {goal}).",
    ]
    return lines


def durability_section(result: dict[str, Any]) -> list[str]:
    lines = ["### Durability (SIGKILL mid-burst)", "", "| backend | rounds | checked | missing | mismatched | ok |"]
    lines.append("|---|---:|---:|---:|---:|---|")
    for rep in result.get("reports", []):
        if rep.get("skipped"):
            lines.append(f"| {rep.get('backend')} | skipped: {rep['skipped']} | | | | |")
            continue
        rounds = rep.get("rounds", [])
        checked = max((r.get("checked", 0) for r in rounds), default=0)
        missing = sum(r.get("missing", 0) for r in rounds)
        mismatched = sum(r.get("mismatched", 0) for r in rounds)
        lines.append(
            f"| {rep.get('backend')} | {len(rounds)} | {checked} | {missing} | {mismatched} | {rep.get('ok')} |"
        )
    return lines


def injection_section(junit: Path) -> list[str]:
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    count = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    passed = count["tests"] - count["failures"] - count["errors"] - count["skipped"]
    return [
        "### Prompt injection tests (`pytest tests/test_injection.py`)",
        "",
        f"{passed} passed, {count['failures']} failed, {count['errors']} errors, {count['skipped']} skipped.",
    ]


def _json_section(render: Callable[[dict[str, Any]], list[str]]) -> Callable[[Path], list[str]]:
    return lambda path: render(json.loads(path.read_text()))


def render(sources: dict[str, Path]) -> str:
    """The generated block: one section per source, or a line saying it was not run."""
    renderers: dict[str, Callable[[Path], list[str]]] = {
        "load": _json_section(load_section),
        "soak": _json_section(soak_section),
        "durability": _json_section(durability_section),
        "injection": injection_section,
    }
    lines = [BEGIN, "", f"Written on {time.strftime('%Y-%m-%d')} from the checks' JSON and JUnit files.", ""]
    for name, path in sources.items():
        lines += renderers[name](path) if path.is_file() else [f"### {name.capitalize()}", "", f"Not run ({path})."]
        lines.append("")
    return "\n".join([*lines, END])


def write(doc: Path, block: str) -> None:
    """Replace the marked block of `doc` (appending one if it has none)."""
    replace_block(doc, BEGIN, END, block, "# Reliability\n")


@click.command("report")
@click.option("--doc", type=click.Path(dir_okay=False, path_type=Path), default=Path("docs/reliability.md"))
@click.option("--load", "load_json", type=click.Path(path_type=Path), default=Path("docs/reliability-load.json"))
@click.option("--soak", "soak_json", type=click.Path(path_type=Path), default=Path("docs/reliability-soak.json"))
@click.option(
    "--durability", "durability_json", type=click.Path(path_type=Path), default=Path("docs/reliability-durability.json")
)
@click.option("--injection", "junit", type=click.Path(path_type=Path), default=Path("bench-results/injection.xml"))
def report(doc: Path, load_json: Path, soak_json: Path, durability_json: Path, junit: Path) -> None:
    """Write the checks' results into docs/reliability.md (between its marker comments)."""
    sources = {"load": load_json, "soak": soak_json, "durability": durability_json, "injection": junit}
    write(doc, render(sources))
    click.echo(f"wrote {doc}")
