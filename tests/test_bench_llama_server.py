"""The natively built llama-server (`ember.engines.llama_server`): its command line and its cached build, and
the goal of `ember bench engine` comparing Ember's decode with it (the build itself takes many minutes and is
run by `make llama-server`; tests/test_llama_process.py serves the tiny model on it)."""

from __future__ import annotations

from pathlib import Path

from ember.engines import llama_server
from ember_tools.bench.generation_report import report


def test_the_command_sizes_the_server_like_the_xllamacpp_child() -> None:
    args = llama_server.command(Path("/x/llama-server"), "/m.gguf", 2, 4096, 4, 8123, mmproj="/p.gguf")
    assert args[0] == "/x/llama-server"
    assert args[-3:] == ["--jinja", "--no-webui", "--no-kv-unified"]  # a KV cache per slot, as kv_unified=False
    pairs = dict(zip(args[1:-3:2], args[2:-3:2], strict=True))
    assert pairs["--model"] == "/m.gguf" and pairs["--threads"] == "2" and pairs["--parallel"] == "4"
    assert pairs["--ctx-size"] == str(4096 * 4) and pairs["--port"] == "8123" and pairs["--host"] == "127.0.0.1"
    assert pairs["--mmproj"] == "/p.gguf" and pairs["--threads-batch"] == "2"
    assert "--mmproj" not in llama_server.command(Path("/x/llama-server"), "/m.gguf", 2, 4096, 4, 8123)


def test_a_cached_binary_is_not_built_again(tmp_path: Path) -> None:
    built = llama_server.binary(tmp_path)
    built.parent.mkdir(parents=True)
    built.write_bytes(b"")
    lines: list[str] = []
    assert llama_server.build(tmp_path, lines.append) == built
    assert lines == []  # nothing fetched or compiled


def phase(decode: float) -> dict[str, float]:
    keys = ("ttft_s", "total_tps_1", "total_tps_2", "total_tps_4", "scaling_4_over_1", "turn2_prompt_tokens")
    return {
        **dict.fromkeys(keys, 1.0),
        "decode_tps": decode,
        **dict.fromkeys(("turn2_cold_ttft_s", "turn2_warm_ttft_s", "turn2_speedup"), 1.0),
    }


def test_the_report_compares_ember_with_llama_server() -> None:
    table, summary = report({"raw": phase(20.0), "llama-server": phase(20.0), "child": phase(18.0)})
    goal = summary["goals"]["child_decode_vs_llama_server"]
    assert goal["value"] == 0.9 and goal["met"] is False
    assert "goal: child_decode_vs_llama_server >= 0.95: 0.900  MISS" in table


def test_first_token_and_next_turn_goals_are_upper_bounds() -> None:
    slow_first = phase(20.0) | {"ttft_s": 1.2, "turn2_cold_ttft_s": 10.0, "turn2_warm_ttft_s": 1.0}
    table, summary = report({"raw": phase(20.0), "llama-server": phase(20.0), "child": slow_first})
    ttft, warm = summary["goals"]["child_ttft_vs_llama_server"], summary["goals"]["child_turn2_warm_over_cold"]
    assert (ttft["value"], ttft["met"]) == (1.2, False) and (warm["value"], warm["met"]) == (0.1, True)
    assert "goal: child_ttft_vs_llama_server <= 1.1: 1.200  MISS" in table
    assert "goal: child_turn2_warm_over_cold <= 0.2: 0.100  PASS" in table
    assert summary["goals"]["raw_turn2_warm_over_cold"]["met"] is False  # 1.0 / 1.0


def test_the_cpu_line_names_the_answering_process_alone_when_measured() -> None:
    cpu = {"benchmark_cores": 1.9, "other_cores": 0.01}
    child = phase(18.0) | {"cpu": cpu | {"server_process_cores": 0.12}}
    table, _ = report({"raw": phase(20.0) | {"cpu": cpu}, "child": child})
    assert "CPU during raw: this benchmark 1.90 cores, other processes 0.01 cores" in table
    assert (
        "CPU during child: this benchmark 1.90 cores (the answering process alone, without its children: 0.12)" in table
    )


def test_the_relay_compares_the_child_through_ember_with_its_own_server() -> None:
    phases = {"raw": phase(20.0), "llama-server": phase(20.0), "child": phase(19.0), "child-direct": phase(20.0)}
    table, summary = report(phases)
    assert summary["relay"] == {"ttft_s": 1.0, "decode_tps": 0.95}
    assert "Ember's relay on one server (child / child-direct): decode 0.950x, TTFT 1.000x" in table
    assert "child-direct_decode_vs_llama_server" not in summary["goals"]  # not Ember's path: no goal of its own
    assert "relay" not in report({"raw": phase(20.0), "child": phase(19.0)})[1]


def test_paired_passes_compare_requests_seconds_apart() -> None:
    """A slow spell that hits one phase's rounds skews the ratio of medians, not the passes' own ratios."""
    server = phase(20.0) | {"runs": {"paired_decode_tps": [10.0, 10.0, 40.0], "paired_ttft_s": [1.0, 1.0, 1.0]}}
    child = phase(60.0) | {"runs": {"paired_decode_tps": [10.0, 30.0, 30.0], "paired_ttft_s": [1.0, 2.0, 1.1]}}
    table, summary = report({"raw": phase(20.0), "llama-server": server, "child": child})
    assert summary["goals"]["child_decode_vs_llama_server"]["value"] == 1.0  # ratios 1, 3, 0.75; medians: 3.0
    assert summary["goals"]["child_ttft_vs_llama_server"]["value"] == 1.1
    assert "against llama-server (and the relay): the median of 3 paired passes' ratios" in table
