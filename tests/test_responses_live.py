"""The Responses API end to end on the real SmolLM2-135M, through the official `openai` client: a response
streamed and not, the events in the order the client library accepts, reasoning as its own item, a chain of
three turns through `previous_response_id` that survives a server restart, a function call whose output
continues the chain, and `responses.parse` into a pydantic model (the JSON schema becomes a grammar on
llama.cpp)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import openai
from pydantic import BaseModel

from .conftest import ember_on, oai
from .test_responses import STREAM_CLOSES, STREAM_OPENS


def test_a_response_non_streamed(live_client: openai.OpenAI) -> None:
    response = live_client.responses.create(
        model="ember-instant", input="What is the capital of France?", max_output_tokens=16, temperature=0
    )
    assert response.status in {"completed", "incomplete"} and response.output_text.strip()
    assert response.usage is not None and 0 < response.usage.output_tokens <= 16 and response.usage.input_tokens > 5
    if response.status == "incomplete":
        assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    again = live_client.responses.retrieve(response.id)
    assert (again.output_text, again.usage) == (response.output_text, response.usage)


def test_a_streamed_response_in_the_order_the_client_accepts(live_client: openai.OpenAI) -> None:
    with live_client.responses.stream(
        model="ember-instant", input="Reply with one word: is the sky blue?", max_output_tokens=200, temperature=0
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()  # the library's own accumulation: it raises on a malformed stream
    kinds = [e.type for e in events]
    assert kinds[:4] == STREAM_OPENS and kinds[-4:] == STREAM_CLOSES
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text.strip() and text == final.output_text
    assert live_client.responses.retrieve(final.id).output_text == text  # stored before it was said to be complete


def test_reasoning_comes_as_a_reasoning_item(live_client: openai.OpenAI) -> None:
    response = live_client.responses.create(
        model="ember-thinking", input="What is 2 + 3?", reasoning={"effort": "low"}, max_output_tokens=40, temperature=0
    )
    assert [item.type for item in response.output][:1] == ["reasoning"]
    reasoning = response.output[0]
    assert reasoning.type == "reasoning" and reasoning.summary[0].text.strip()
    assert response.usage is not None and response.usage.output_tokens_details.reasoning_tokens > 0


def test_a_chain_of_three_turns_survives_a_restart(tmp_path: Path, model_cache: Path) -> None:
    ask = {"model": "ember-instant", "max_output_tokens": 12, "temperature": 0}
    with ember_on(tmp_path, model_cache) as base, oai(base) as client:
        first = client.responses.create(input="My name is Zora.", instructions="Answer briefly.", **ask)
        second = client.responses.create(input="Which name did I give?", previous_response_id=first.id, **ask)
    with ember_on(tmp_path, model_cache) as base, oai(base) as client:  # a new server on the same SQLite file
        third = client.responses.create(input="Which name did I give?", previous_response_id=second.id, **ask)
        assert third.previous_response_id == second.id
        assert client.responses.retrieve(first.id).output_text == first.output_text
        own = client.responses.input_items.list(third.id, order="asc")
        assert [item.type for item in own.data] == ["message"]  # the new turn only; the chain is its predecessors'
    sizes = [r.usage.input_tokens for r in (first, second, third) if r.usage is not None]
    assert len(sizes) == 3 and sizes[0] < sizes[1] < sizes[2]  # each turn was read after every earlier one


WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city now",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": True,
}


def test_a_function_call_its_output_and_the_answer(live_client: openai.OpenAI) -> None:
    """The call is written under the tool's schema; its output continues the stored chain; streamed, the
    call's arguments arrive in pieces that the live_client library folds into the same call."""
    ask = {"model": "ember-instant", "tools": [WEATHER], "max_output_tokens": 60, "temperature": 0}
    first = live_client.responses.create(input="What's the weather in Paris right now?", tool_choice="required", **ask)
    calls = [item for item in first.output if item.type == "function_call"]
    assert calls and all(call.name == "get_weather" and call.call_id for call in calls)
    for call in calls:
        jsonschema.validate(json.loads(call.arguments), WEATHER["parameters"])
    results: Any = [
        {"type": "function_call_output", "call_id": call.call_id, "output": '{"temp_c": 18, "sky": "clear"}'}
        for call in calls
    ]
    answer = live_client.responses.create(input=results, previous_response_id=first.id, **ask)
    assert answer.output_text.strip() and not [i for i in answer.output if i.type == "function_call"]
    with live_client.responses.stream(
        input="And the weather in Oslo?", tool_choice={"type": "function", "name": "get_weather"}, **ask
    ) as stream:
        pieces = [e.delta for e in stream if e.type == "response.function_call_arguments.delta"]
        final = stream.get_final_response()
    (streamed,) = [item for item in final.output if item.type == "function_call"]
    assert "".join(pieces) == streamed.arguments and json.loads(streamed.arguments)["city"]


class City(BaseModel):
    name: str
    country: str


def test_parse_into_a_pydantic_model(live_client: openai.OpenAI) -> None:
    parsed = live_client.responses.parse(
        model="ember-instant",
        input="Name a city in France and its country.",
        text_format=City,
        max_output_tokens=100,
        temperature=0,
    )
    assert parsed.status == "completed" and isinstance(parsed.output_parsed, City)
    assert parsed.output_parsed.name.strip() and parsed.output_parsed.country.strip()
