"""The reliability checks on the real SmolLM2-135M, run briefly: the open-model load client against the live
server (every request accounted for, ordered percentiles, only deliberate 503s, a server that settles), a
short soak against a server it starts (no hangs, /health ok, no leaked slots, RSS sampled), the report
writer, and the loopback-only rule. The figures themselves come from `make reliability`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from ember_tools.reliability import load, report, soak
from ember_tools.reliability import server as srv

SHORT_LOAD = load.Options(
    max_tokens=8,
    timeout_s=60.0,
    arrivals="constant",
    reference_requests=2,
    rate=2.0,
    requests=8,
    duration_s=4.0,
    overload_rate=200.0,  # far beyond what two slots of a 135M model on a few cores serve
    overload_s=1.0,
)


@pytest.fixture(scope="module")
def load_result(live_server: str) -> dict[str, Any]:
    return asyncio.run(load.run(live_server, SHORT_LOAD))


def ordered(p: dict[str, float | None]) -> bool:
    values = [p["p50"], p["p90"], p["p99"], p["max"]]
    return all(v is not None for v in values) and values == sorted(values)  # type: ignore[type-var]


def test_load_accounts_for_every_request(load_result: dict[str, Any]) -> None:
    phases = load_result["phases"]
    assert list(phases) == ["reference", "load", "overload"]
    assert phases["reference"]["sent"] == SHORT_LOAD.reference_requests
    assert phases["load"]["sent"] == SHORT_LOAD.requests  # 2/s for 4 s: the count bound comes first
    assert phases["overload"]["sent"] == 200
    for p in phases.values():
        assert p["completed"] + p["busy_503"] + p["failed"] == p["sent"]
        assert sum(p["statuses"].values()) == p["sent"]
        assert p["failed"] == 0 and p["timeouts"] == 0, p["failures"]
        assert set(p["statuses"]) <= {"200", "503"}  # no 5xx but the deliberate 503s
    for name in ("reference", "load"):
        p = phases[name]
        assert p["completed"] > 0 and ordered(p["ttft_s"]) and ordered(p["latency_s"])
        assert p["ttft_s"]["p50"] <= p["latency_s"]["p50"]
        assert 0 < p["tokens"] <= SHORT_LOAD.max_tokens * p["completed"]


def test_overload_is_refused_with_503s_and_the_server_settles(load_result: dict[str, Any]) -> None:
    over = load_result["phases"]["overload"]
    assert over["busy_503"] > 0
    assert over["busy_with_retry_after"] == over["busy_503"]
    assert over["server_refused"] == over["busy_503"]  # the server's own count agrees with the client's
    assert ordered(over["busy_latency_s"])
    for p in load_result["phases"].values():
        if "after" in p:
            assert not any(p["after"]["held"].values()), p["after"]
            assert (p["after"]["health_status"], p["after"]["health"]) == (200, "ok")
    ratio = load_result["ratios"]["load_p50_latency_over_reference"]
    assert ratio is not None and ratio > 0
    assert load_result["admission_limits"]["running"] >= 1


def test_report_renders_the_load_into_the_marked_block(load_result: dict[str, Any], tmp_path: Path) -> None:
    doc = tmp_path / "reliability.md"
    doc.write_text("# Reliability\n\nProse that stays.\n")
    (tmp_path / "load.json").write_text(json.dumps(load_result))
    sources = {"load": tmp_path / "load.json", "soak": tmp_path / "absent.json"}
    for _ in range(2):  # a second run replaces the block instead of adding one
        report.write(doc, report.render(sources))
    text = doc.read_text()
    assert text.startswith("# Reliability\n\nProse that stays.\n")
    assert text.count(report.BEGIN) == 1 and text.count(report.END) == 1
    assert f"| overload | 200.00 | 200 | {load_result['phases']['overload']['completed']} |" in text
    assert "Not run" in text.split("### Soak", 1)[1]


@pytest.fixture
def cache_env(model_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("EMBER_CACHE_DIR", str(model_cache))  # the live tests' assembled models
    yield


@pytest.mark.usefixtures("cache_env")
def test_short_soak_leaves_no_slot_held_and_health_ok(tmp_path: Path) -> None:
    opts = soak.Options(minutes=0.3, requests=2000, concurrency=3, max_tokens=16, timeout_s=60.0, sample_every=10)
    with srv.serve(srv.chat_roles("chat-tiny", 2, 1024)) as server:
        assert server.pid is not None
        result = asyncio.run(soak.run(server.url, server.pid, opts))
    kinds = result["kinds"]
    assert result["requests"] == sum(k["sent"] for k in kinds.values()) >= 10
    assert {"stream", "complete"} <= set(kinds)  # each client's choices are seeded: these come early
    for name, k in kinds.items():
        assert k["ok"] + k["busy_503"] + k["failed"] == k["sent"]
        assert k["failed"] == 0, (name, k["failures"])
    assert result["timeouts"] == 0 and result["health_failures"] == 0
    assert result["leaked"] == {} and not any(result["after"]["held"].values())
    assert (result["after"]["health_status"], result["after"]["health"]) == (200, "ok")
    rss = [s["rss_kib"] for s in result["samples"]]
    assert len(rss) >= 3 and all(isinstance(v, int) and v > 10_000 for v in rss)  # a loaded model: > 10 MiB
    assert result["memory"]["per_1000_mib"] is not None
    (tmp_path / "soak.json").write_text(json.dumps(result))
    text = report.render({"soak": tmp_path / "soak.json"})
    assert f"| stream | {kinds['stream']['sent']} | {kinds['stream']['ok']} |" in text


def test_memory_growth_skips_the_warm_up_and_fits_the_slope() -> None:
    # 100 MiB taken in the warm-up (the first fifth of 100 s), then exactly 1 KiB per request
    samples = [{"requests": 0, "seconds": 0.0, "rss_kib": 100_000}]
    samples += [{"requests": r, "seconds": r / 30, "rss_kib": 200_000 + r} for r in range(500, 3001, 500)]
    growth = soak.memory_growth(samples, traffic_s=100.0)
    assert growth["warmup_requests"] == 1000  # 500 requests came at 16.7 s, within the warm-up
    assert growth["per_1000_mib"] == pytest.approx(1000 / 1024, abs=1e-3)
    assert growth["slope_per_1000_mib"] == pytest.approx(1000 / 1024, abs=1e-3)
    assert growth["goal_met"] is True
    leaking = [{**s, "rss_kib": s["rss_kib"] + 200 * s["requests"]} for s in samples]  # 0.2 MiB a request
    assert soak.memory_growth(leaking, traffic_s=100.0)["goal_met"] is False
    short = soak.memory_growth(samples[:4], traffic_s=100.0)  # 500 requests after the warm-up
    assert short["per_1000_mib"] is not None and short["goal_met"] is None  # measured, too short to judge


def test_percentiles_interpolate() -> None:
    p = srv.percentiles([float(v) for v in range(100, 0, -1)])
    assert p == {"p50": pytest.approx(50.5), "p90": pytest.approx(90.1), "p99": pytest.approx(99.01), "max": 100.0}
    assert srv.percentiles([]) == {"p50": None, "p90": None, "p99": None, "max": None}


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://[::1]:9/", "http://localhost:1", "http://127.9.9.9"])
def test_loopback_targets_are_accepted(url: str) -> None:
    assert srv.require_loopback(url) == url.rstrip("/")


@pytest.mark.parametrize("url", ["http://192.0.2.1:8000", "https://example.com", "http://0.0.0.0:8000"])
def test_other_hosts_are_refused(url: str) -> None:
    with pytest.raises(click.BadParameter):
        srv.require_loopback(url)


def test_load_command_refuses_a_remote_url_before_any_traffic() -> None:
    out = CliRunner().invoke(load.load, ["--url", "http://192.0.2.1:8000", "--requests", "1"])
    assert out.exit_code != 0
    assert "not on loopback" in out.output
