"""`ember eval tools` without a model: real BFCL items from the installed `bfcl-eval` package, converted to
OpenAI tools, answered by scripted systems and scored by BFCL's own checker; the cache resumes a run."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from ember_tools.eval import bfcl
from ember_tools.eval.cache import Cache
from ember_tools.eval.paired import paired_bootstrap, wilson
from ember_tools.eval.systems import Reply
from ember_tools.eval.tools import cache_key, request_body, run
from ember_tools.eval.tools_report import document, markdown, summarize

pytest.importorskip("bfcl_eval", reason="bfcl-eval is installed by the Makefile's EVAL_DATA")


def case(category: str, item: str) -> bfcl.Case:
    return next(c for c in bfcl.load_cases(category) if c.id == item)


def test_functions_become_openai_tools_as_bfcl_converts_them() -> None:
    distance = case("simple_python", "simple_python_83")  # `dict` parameters, `tuple` of `float`
    (tool,) = bfcl.openai_tools(distance.functions)
    parameters = tool["function"]["parameters"]
    assert tool["type"] == "function" and parameters["type"] == "object"
    assert parameters["properties"]["coord1"]["type"] == "array"
    assert parameters["properties"]["coord1"]["items"] == {"type": "number"}
    assert distance.functions[0]["parameters"]["type"] == "dict"  # the checker keeps BFCL's own types

    forest = case("simple_python", "simple_python_109")  # a dotted name and an `any` parameter
    (tool,) = bfcl.openai_tools(forest.functions)
    assert tool["function"]["name"] == "random_forest_train"
    assert tool["function"]["parameters"]["properties"]["data"]["type"] == "string"
    assert tool["function"]["description"].endswith("Note that the provided function is in Python 3 syntax.")

    integral = case("parallel_multiple", "parallel_multiple_4")  # `float` parameters
    a = bfcl.openai_tools(integral.functions)[0]["function"]["parameters"]["properties"]["a"]
    assert a == {
        "type": "number",
        "format": "float",
        "description": "The lower bound of the interval. This is a float type value.",
    }

    user = case("simple_python", "simple_python_94")  # a `dict` with its own properties
    info = bfcl.openai_tools(user.functions)[0]["function"]["parameters"]["properties"]["update_info"]
    assert info["type"] == "object" and info["properties"]["name"]["type"] == "string"


def test_calls_become_the_checkers_format() -> None:
    calls = [("spotify_play", '{"artist": "Taylor Swift", "duration": 20}'), ("math_hypot", '{"x": 4, "y": 5}')]
    assert bfcl.decoded(calls) == [
        {"spotify_play": {"artist": "Taylor Swift", "duration": 20}},
        {"math_hypot": {"x": 4, "y": 5}},
    ]
    with pytest.raises(ValueError):
        bfcl.decoded([("math_hypot", '{"x": 4,')])


def test_the_bfcl_checker_scores_a_right_and_a_wrong_call() -> None:
    triangle = case("simple_python", "simple_python_0")
    assert bfcl.score(triangle, [("calculate_triangle_area", '{"base": 10, "height": 5}')]).valid
    wrong = bfcl.score(triangle, [("calculate_triangle_area", '{"base": 10, "height": 6}')])
    assert not wrong.valid and wrong.error_type == "value_error:others"
    assert bfcl.score(triangle, []).error_type == "simple_function_checker:wrong_count"
    assert bfcl.score(triangle, [("calculate_triangle_area", "{not json")]).error_type == "ast_decoder:decoder_failed"

    factorial = case("simple_python", "simple_python_1")  # BFCL's name is math.factorial; tools carry math_factorial
    assert bfcl.score(factorial, [("math_factorial", '{"number": 5}')]).valid
    assert not bfcl.score(factorial, [("math_factorial", '{"number": 6}')]).valid

    spotify = case("parallel", "parallel_0")  # any order, but every call
    second, first = (
        ("spotify_play", '{"artist": "Maroon 5", "duration": 15}'),
        ("spotify_play", '{"artist": "Taylor Swift", "duration": 20}'),
    )
    assert bfcl.score(spotify, [second, first]).valid
    assert bfcl.score(spotify, [first]).error_type == "parallel_function_checker_no_order:wrong_count"
    assert "bfcl_eval.constants.model_config" not in sys.modules  # the checker's stand-in table is gone


def test_irrelevance_is_right_only_without_a_call() -> None:
    bmi = case("irrelevance", "irrelevance_0")
    assert bmi.answer is None
    assert bfcl.score(bmi, []).valid
    made = bfcl.score(bmi, [("determine_body_mass_index", '{"weight": 70.0, "height": 1.8}')])
    assert not made.valid and made.error_type == "irrelevance_error:decoder_success"
    assert bfcl.score(bmi, [("determine_body_mass_index", "not json")]).valid  # BFCL: no decodable call


def test_the_reported_sample_never_holds_the_dev_slice() -> None:
    cases = bfcl.load_cases("multiple")
    reported, dev = bfcl.sample(cases, 100, 0), bfcl.sample(cases, 100, 0, dev=True)
    assert len(reported) == 100 and len(dev) == bfcl.DEV_ITEMS
    assert not {c.id for c in reported} & {c.id for c in dev}
    assert [c.id for c in bfcl.sample(cases, 100, 0)] == [c.id for c in reported]
    assert [c.id for c in bfcl.sample(cases, 10, 0)] == [c.id for c in reported[:10]]


class Scripted:
    """A system that calls the first function with fixed arguments; counts what it was asked."""

    def __init__(self, name: str, arguments: str) -> None:
        self.name, self.fingerprint, self.arguments = name, "scripted", arguments
        self.asked: list[dict[str, Any]] = []

    async def ask(self, body: dict[str, Any]) -> Reply:
        self.asked.append(body)
        name = body["tools"][0]["function"]["name"]
        return Reply([(name, self.arguments)], "", 10, 5, 0.01)


async def test_the_cache_resumes_a_run_and_the_report_pairs_it(tmp_path: Path) -> None:
    by_category = {
        "simple_python": [case("simple_python", "simple_python_0")],
        "irrelevance": [case("irrelevance", "irrelevance_0")],
    }
    path = tmp_path / "items.jsonl"
    right, wrong = Scripted("ember-instant", '{"base": 10, "height": 5}'), Scripted("raw", '{"base": 1, "height": 1}')
    await run([wrong, right], by_category, Cache(path), 256)
    assert len(right.asked) == len(wrong.asked) == 2
    with path.open("a") as f:
        f.write('{"key": "torn')  # a run killed while writing
    again, before = Scripted("ember-instant", "{}"), path.read_text()
    cache = Cache(path)
    await run([again], by_category, cache, 256)
    assert again.asked == [] and path.read_text() == before  # nothing asked twice
    await run([again], by_category, cache, 128)  # another body: another key
    assert len(again.asked) == 2
    assert len(Cache(path).records) == 6  # the first record after the torn line is read too

    keys = {
        s.name: {c.id: cache_key(s, c, request_body(c, 256)) for cs in by_category.values() for c in cs}
        for s in (wrong, right)
    }
    summary = summarize(by_category, keys, Cache(path).records, ["raw", "ember-instant"])
    simple = summary["categories"]["simple_python"]
    assert simple["systems"]["ember-instant"]["accuracy"] == 1.0 and simple["systems"]["raw"]["accuracy"] == 0.0
    assert simple["paired_vs_raw"]["ember-instant"]["difference"] == 1.0
    assert summary["categories"]["irrelevance"]["systems"]["ember-instant"]["accuracy"] == 0.0  # it called
    assert summary["overall"]["systems"]["raw"]["items"] == 2
    assert "| simple_python | ember-instant | 1/1 | 100.0%" in markdown(summary)
    record = json.loads(path.read_text().splitlines()[0])
    assert record["system"] == "raw" and record["calls"] == [["calculate_triangle_area", '{"base": 1, "height": 1}']]


def test_intervals() -> None:
    low, high = wilson(81, 100)
    assert low == pytest.approx(0.7222, abs=1e-3) and high == pytest.approx(0.8748, abs=1e-3)
    assert wilson(0, 0) == (0.0, 1.0)
    same = [True, False, True, True]
    assert paired_bootstrap(same, same) == (0.0, 0.0, 0.0)
    difference, low, high = paired_bootstrap([True] * 30 + [False] * 10, [False] * 30 + [False] * 10)
    assert difference == 0.75 and 0.5 < low < 0.75 < high <= 0.9


def test_a_call_written_as_text_is_no_call_but_is_counted_apart() -> None:
    bmi = case("irrelevance", "irrelevance_0")
    said = '```json\n{"name": "determine_body_mass_index", "arguments": {"weight": 70}}\n```'
    record = {"valid": bfcl.score(bmi, []).valid, "error_type": "", "error": "", "calls": [], "text": said}
    record |= {"seconds": 1.0, "prompt_tokens": 10, "completion_tokens": 5}
    summary = summarize({"irrelevance": [bmi]}, {"raw": {bmi.id: "k"}}, {"k": record}, ["raw"])
    row = summary["categories"]["irrelevance"]["systems"]["raw"]
    assert row["accuracy"] == 1.0 and row["calls_made"] == 0 and row["calls_as_text"] == 1
    meta = {"command": "ember eval tools", "date": "2026-12-04", "model": "chat-fast", "cores": 2}
    meta |= {"package": bfcl.PACKAGE, "max_tokens": 256, "seed": 0, "limit": 1, "dev_items": bfcl.DEV_ITEMS}
    text = document(meta, summary)
    assert "raw wrote a call as JSON text instead of returning it in `tool_calls` in 1 of 1 answers" in text
    assert "raw returned no call in any answer, so its irrelevance score is the ceiling" in text
    assert "Partial run" not in text
    summary["categories"]["irrelevance"]["sample"] = 2
    assert "**Partial run**: 1 items a category" in document(meta, summary)
