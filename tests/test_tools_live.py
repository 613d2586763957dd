"""Function calling and structured outputs on the real SmolLM2-135M behind `ember serve`, with the official
openai client: a call, its result and the final answer (streamed and not), `required`, a named choice,
single and parallel calls, arguments that validate against their schema over many sampled requests, and
`chat.completions.parse` with a pydantic model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pydantic

from ember_tools.reliability.server import parse_metrics, total

from .conftest import run_cli

WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city now",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city"],
        },
    },
}
BOOKING: Any = {
    "type": "function",
    "function": {
        "name": "book_table",
        "description": "Book a table at a restaurant",
        "parameters": {
            "type": "object",
            "properties": {
                "restaurant": {"type": "string", "minLength": 1},
                "people": {"type": "integer", "minimum": 1, "maximum": 12},
                "time": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
                "diet": {"type": "array", "items": {"enum": ["vegan", "vegetarian", "none"]}, "maxItems": 3},
                "contact": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "phone": {"type": "string"}},
                    "required": ["name"],
                },
            },
            "required": ["restaurant", "people", "time"],
            "additionalProperties": False,
        },
    },
}
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in (WEATHER, BOOKING)}
PARIS = [{"role": "user", "content": "What's the weather in Paris right now?"}]


def check_calls(calls: Any) -> None:
    """Every call names an offered function, and its arguments are JSON that its schema accepts."""
    assert calls
    for call in calls:
        assert call.id.startswith("call_") and call.type == "function"
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])


def test_a_call_its_result_and_the_answer(live_client: openai.OpenAI) -> None:
    first = live_client.chat.completions.create(
        model="ember-instant", messages=PARIS, tools=[WEATHER], temperature=0, max_tokens=300
    )
    assert first.choices[0].finish_reason == "tool_calls"
    calls = first.choices[0].message.tool_calls
    check_calls(calls)
    assert calls[0].function.name == "get_weather"
    results = [{"role": "tool", "tool_call_id": c.id, "content": '{"temp_c": 18, "sky": "clear"}'} for c in calls]
    assistant = {"role": "assistant", "content": None, "tool_calls": [c.model_dump() for c in calls]}
    final = live_client.chat.completions.create(
        model="ember-instant", messages=[*PARIS, assistant, *results], tools=[WEATHER], max_tokens=40
    )
    assert final.choices[0].finish_reason in ("stop", "length")
    assert final.choices[0].message.content and not final.choices[0].message.tool_calls


def test_streamed_calls_assemble_into_valid_calls(live_client: openai.OpenAI) -> None:
    stream = live_client.chat.completions.create(
        model="ember-instant", messages=PARIS, tools=[WEATHER], temperature=0, max_tokens=300, stream=True
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for piece in choice.delta.tool_calls or []:
                call = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
                if piece.id:
                    assert not call["id"], "id comes once, on the call's first piece"
                    call["id"], call["name"] = piece.id, piece.function.name
                call["arguments"] += piece.function.arguments or ""
    assert finish == "tool_calls" and calls
    for call in calls.values():
        assert call["id"].startswith("call_") and call["name"] == "get_weather"
        jsonschema.validate(json.loads(call["arguments"]), SCHEMAS["get_weather"])


def test_required_always_calls_and_a_named_choice_calls_that_function(live_client: openai.OpenAI) -> None:
    for text in ("hi", "Tell me a joke", "What is 2 + 2?", "Book me a table for two at Chez Anna at 19:30"):
        response = live_client.chat.completions.create(
            model="ember-instant",
            messages=[{"role": "user", "content": text}],
            tools=[WEATHER, BOOKING],
            tool_choice="required",
            parallel_tool_calls=False,  # one call: sampled freely, the tiny model may write calls until the limit
            temperature=0,
            max_tokens=400,
        )
        assert response.choices[0].finish_reason == "tool_calls", text
        check_calls(response.choices[0].message.tool_calls)
    named = live_client.chat.completions.create(
        model="ember-instant",
        messages=PARIS,
        tools=[WEATHER, BOOKING],
        tool_choice={"type": "function", "function": {"name": "book_table"}},
        parallel_tool_calls=False,
        temperature=0,
        max_tokens=400,
    )
    calls = named.choices[0].message.tool_calls
    check_calls(calls)
    assert {c.function.name for c in calls} == {"book_table"}


def test_single_and_parallel_calls(live_client: openai.OpenAI) -> None:
    """`parallel_tool_calls=false` always gives one call; `true` lets the model write several. Sampled, the
    tiny model writes one call for a two-city question about a third of the time, so each question is asked
    with three seeds: one call for all twelve is then very unlikely, whatever llama.cpp build rounds the
    logits."""
    asks = ["Weather in Rome and in Oslo?", "hi", "What's the weather in Paris?", "Is it cold in Tokyo and Lima?"]
    counts = []
    for parallel in (False, True):
        for text in asks:
            for seed in range(3):
                response = live_client.chat.completions.create(
                    model="ember-instant",
                    messages=[{"role": "user", "content": text}],
                    tools=[WEATHER],
                    tool_choice="required",
                    parallel_tool_calls=parallel,
                    seed=seed,
                    max_tokens=300,
                )
                calls = response.choices[0].message.tool_calls
                check_calls(calls)
                counts.append((parallel, len(calls)))
    assert all(n == 1 for parallel, n in counts if not parallel)
    assert any(n >= 2 for parallel, n in counts if parallel), counts


def test_arguments_validate_over_many_sampled_requests(live_client: openai.OpenAI) -> None:
    """Sampled hot (temperature 1.2, 12 seeds): the grammar still keeps every call within its schema."""
    asks = ["Book a table", "Dinner for 4 at Luigi's, 8pm, one vegan", "Reserve Sakura tonight for my family"]
    for seed in range(12):
        response = live_client.chat.completions.create(
            model="ember-instant",
            messages=[{"role": "user", "content": asks[seed % len(asks)]}],
            tools=[BOOKING, WEATHER],
            tool_choice="required",
            parallel_tool_calls=False,  # validity is the point here; up to 8 long calls could pass the limit
            temperature=1.2,
            seed=seed,
            max_tokens=400,
        )
        check_calls(response.choices[0].message.tool_calls)


class City(pydantic.BaseModel):
    name: str
    country: str
    population: int


def test_parse_with_a_pydantic_model(live_client: openai.OpenAI) -> None:
    completion = live_client.chat.completions.parse(
        model="ember-instant",
        messages=[{"role": "user", "content": "Describe Paris as JSON: name, country, population."}],
        response_format=City,
        max_tokens=120,
    )
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, City) and parsed.name


def served(base: str) -> float:
    """How many requests the server has admitted so far."""
    return total(parse_metrics(httpx.get(f"{base}/metrics", timeout=30).text), "ember_admission_admitted_total")


def test_cli_chat_offers_tools_and_takes_their_results(live_server: str, tmp_path: Path) -> None:
    """`ember chat --tools`: a call is shown as `-> name(arguments)`, the next line is its result, and the
    model answers from it (here against a running Ember, which gets the tools passed through)."""
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps([WEATHER]))
    admitted = total(
        parse_metrics(httpx.get(f"{live_server}/metrics", timeout=30).text), "ember_admission_admitted_total"
    )
    out = run_cli(
        ["chat", "--url", f"{live_server}/v1", "--tools", str(tools), "--max-tokens", "200"],
        "What's the weather in Paris right now?\nsunny, 21 C\n/exit\n",
        {},
    )
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    call = next(line for line in lines if line.startswith("-> get_weather("))
    jsonschema.validate(json.loads(call.removeprefix("-> get_weather(")[:-1]), SCHEMAS["get_weather"])
    assert "(the result of get_weather)" in lines
    assert served(live_server) - admitted == 2  # the question, then the result: the model answered from it


def test_cli_chat_refuses_a_tools_file_that_is_not_tools(tmp_path: Path) -> None:
    bad = tmp_path / "tools.json"
    bad.write_text(json.dumps([{"type": "function", "function": {"name": "f", "parameters": {"type": 3}}}]))
    out = run_cli(["chat", "--tools", str(bad)], "", {})
    assert out.returncode == 2 and "not a JSON list of OpenAI function tools" in out.stderr
