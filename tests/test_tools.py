"""Function calling around the engine (`ember.calling`) and on the chat API, on the scripted fake engine:
the decision and call passes, the wire shape of calls (JSON and streamed), tool turns in stored history,
and bad input. The real model's calls are tested in test_tools_live.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient

from ember.api.app import create_app
from ember.calling import as_text, calls_schema, stream_calls
from ember.types import Answer, Message, Tool, ToolCall

from .conftest import make_settings, sse_events

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city now",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city"],
        },
    },
}
ASK = [{"role": "user", "content": "What's the weather in Paris?"}]
CALL = '{"calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}'


def scripted(tmp_path: Path, replies: list[str], **options: Any) -> TestClient:
    role = {"engine": "fake", "model": "fake", "options": {"replies": replies, **options}}
    return TestClient(create_app(make_settings(tmp_path, **{"chat-fast": role, "chat": role})))


def test_calls_schema_allows_each_tool_with_its_own_arguments_only() -> None:
    tools = (Tool("a", "", {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}), Tool("b"))
    schema = calls_schema(tools, 2)
    jsonschema.validate({"calls": [{"name": "a", "arguments": {"x": 1}}, {"name": "b", "arguments": {}}]}, schema)
    for bad in (
        {"calls": []},
        {"calls": [{"name": "a", "arguments": {"x": "one"}}]},
        {"calls": [{"name": "c", "arguments": {}}]},
        {"calls": [{"name": "b", "arguments": {}}] * 3},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_streamed_calls_fold_back_into_the_same_calls() -> None:
    calls = [
        ToolCall("call_1", "get_weather", '{"city": "Paris, the capital of France"}'),
        ToolCall("call_2", "b", "{}"),
    ]
    answer = Answer()
    pieces = stream_calls(calls)
    for delta in pieces:
        answer.add(delta)
    assert answer.tool_calls == tuple(calls)
    assert pieces[0].tool_calls[0].name == "get_weather" and pieces[0].tool_calls[0].arguments == ""
    assert len([d for d in pieces if d.tool_calls[0].index == 0]) > 2  # the arguments came in pieces


def test_history_with_calls_reads_as_text() -> None:
    call = ToolCall("call_9", "get_weather", '{"city": "Oslo"}')
    turns = [
        Message("user", "weather in Oslo?"),
        Message("assistant", "", tool_calls=(call,)),
        Message("tool", "-3 C, snow", tool_call_id="call_9"),
    ]
    text = as_text(turns)
    assert [m.role for m in text] == ["user", "assistant", "user"]
    assert json.loads(text[1].content) == {"calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}
    assert "get_weather" in text[2].content and "-3 C, snow" in text[2].content
    assert not any(m.tool_calls for m in text)


def test_auto_calls_when_a_tool_fits_the_message(tmp_path: Path) -> None:
    with scripted(tmp_path, [CALL]) as client:
        body = client.post("/v1/chat/completions", json={"model": "ember-instant", "messages": ASK, "tools": [WEATHER]})
    assert body.status_code == 200, body.text
    choice = body.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert body.json()["usage"]["completion_tokens"] > 0


def test_auto_answers_in_text_when_no_tool_fits(tmp_path: Path) -> None:
    joke = [{"role": "user", "content": "Tell me a joke about cats"}]
    with scripted(tmp_path, ["Why did the cat sit on the laptop?"]) as client:
        body = client.post(
            "/v1/chat/completions", json={"model": "ember-instant", "messages": joke, "tools": [WEATHER]}
        ).json()
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["message"]["content"] == "Why did the cat sit on the laptop?"
    assert "tool_calls" not in body["choices"][0]["message"]


def test_auto_drops_a_call_whose_required_arguments_were_made_up(tmp_path: Path) -> None:
    vague = [{"role": "user", "content": "What's the weather like where I am right now?"}]
    body = {"model": "ember-instant", "messages": vague, "tools": [WEATHER]}
    with scripted(tmp_path, [CALL, "I need to know your city first."]) as client:
        auto = client.post("/v1/chat/completions", json=body)
        required = client.post("/v1/chat/completions", json={**body, "tool_choice": "required"})
    choice = auto.json()["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["message"]["content"] == "I need to know your city first."
    assert auto.json()["usage"]["completion_tokens"] > 7  # the dropped call's tokens count too
    assert required.json()["choices"][0]["finish_reason"] == "tool_calls"  # asked to call: the call stands


def test_streamed_calls_come_as_openai_sends_them(tmp_path: Path) -> None:
    args = {"city": "Paris, Île-de-France, the capital city of France"}
    reply = json.dumps({"calls": [{"name": "get_weather", "arguments": args}]})
    with scripted(tmp_path, [reply]) as client:
        request = {"model": "ember-instant", "messages": ASK, "tools": [WEATHER], "tool_choice": "required"}
        with client.stream("POST", "/v1/chat/completions", json={**request, "stream": True}) as response:
            events = sse_events(list(response.iter_lines()))
    deltas = [e["choices"][0]["delta"] for e in events[:-1] if e["choices"]]
    pieces = [p for d in deltas for p in d.get("tool_calls", [])]
    assert pieces[0]["id"].startswith("call_") and pieces[0]["type"] == "function"
    assert pieces[0]["function"] == {"name": "get_weather", "arguments": ""}
    assert all("id" not in p and "name" not in p["function"] for p in pieces[1:])
    assert len(pieces) > 2 and {p["index"] for p in pieces} == {0}
    assert json.loads("".join(p["function"]["arguments"] for p in pieces)) == args
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert events[-1] == "[DONE]"


def test_a_named_choice_and_none_skip_the_decision(tmp_path: Path) -> None:
    with scripted(tmp_path, [CALL]) as client:
        named = {"type": "function", "function": {"name": "get_weather"}}
        body = client.post(
            "/v1/chat/completions",
            json={"model": "ember-instant", "messages": ASK, "tools": [WEATHER], "tool_choice": named},
        ).json()
        assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
        plain = client.post(
            "/v1/chat/completions",
            json={"model": "ember-instant", "messages": ASK, "tools": [WEATHER], "tool_choice": "none"},
        ).json()
    assert plain["choices"][0]["finish_reason"] == "stop" and "tool_calls" not in plain["choices"][0]["message"]


def test_a_round_trip_is_stored_and_continued(tmp_path: Path) -> None:
    """After a tool's result, `auto` answers from it in text; the calls and results are kept."""
    with scripted(tmp_path, [CALL, "It is 18 C in Paris."]) as client:
        first = client.post(
            "/v1/chat/completions",
            json={"model": "ember-instant", "messages": ASK, "tools": [WEATHER], "tool_choice": "required"},
        )
        conversation = first.headers["x-ember-conversation-id"]
        call = first.json()["choices"][0]["message"]["tool_calls"][0]
        result = {"role": "tool", "tool_call_id": call["id"], "content": '{"temp_c": 18}'}
        second = client.post(
            "/v1/chat/completions",
            json={
                "model": "ember-instant",
                "messages": [*ASK, {"role": "assistant", "content": None, "tool_calls": [call]}, result],
                "tools": [WEATHER],
                "conversation_id": conversation,
            },
        )
        assert second.status_code == 200, second.text
        stored = client.get(f"/v1/conversations/{conversation}").json()["messages"]
    assert second.json()["choices"][0]["message"]["content"] == "It is 18 C in Paris."
    assert [m["role"] for m in stored] == ["user", "assistant", "tool", "assistant"]
    assert stored[1]["tool_calls"] == [call] and stored[1]["finish_reason"] == "tool_calls"
    assert stored[2]["tool_call_id"] == call["id"]


def test_the_model_reads_calls_and_results_as_text(tmp_path: Path) -> None:
    with scripted(tmp_path, [], echo_prompt=True) as client:
        call = {
            "id": "call_7",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
        }
        body = client.post(
            "/v1/chat/completions",
            json={
                "model": "ember-instant",
                "messages": [
                    *ASK,
                    {"role": "assistant", "tool_calls": [call]},
                    {"role": "tool", "tool_call_id": "call_7", "content": "snow, -3 C"},
                ],
                "tools": [WEATHER],
                "tool_choice": "none",
            },
        ).json()
    prompt = body["choices"][0]["message"]["content"]
    assert '"name": "get_weather"' in prompt and "snow, -3 C" in prompt and "call_7" in prompt


BAD = [
    (
        {"tools": [{**WEATHER, "function": {"name": "f", "parameters": {"type": "nonsense"}}}]},
        "tools.0.function.parameters",
    ),
    ({"tools": [WEATHER, WEATHER]}, "tools"),
    ({"tools": [{"type": "function", "function": {"name": "no spaces allowed"}}]}, "tools.0.function.name"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "other"}}}, "tool_choice"),
    ({"messages": [*ASK, {"role": "tool", "tool_call_id": "call_x", "content": "1"}]}, "messages.1.tool_call_id"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 5}}}}, None),
    ({"model": "ember-health", "tools": [WEATHER]}, "tools"),
]


@pytest.mark.parametrize(("change", "param"), BAD)
def test_bad_tool_input_is_refused_and_nothing_is_stored(tmp_path: Path, change: dict[str, Any], param: str) -> None:
    with scripted(tmp_path, [CALL]) as client:
        response = client.post("/v1/chat/completions", json={"model": "ember-instant", "messages": ASK, **change})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["message"]
        if param is not None:
            assert error["param"] == param
        assert client.get("/v1/conversations").json()["data"] == []


def test_json_object_and_schema_constrain_the_engine(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    app = create_app(make_settings(tmp_path, **{"chat-fast": {"engine": "fake", "model": "fake"}}))
    with TestClient(app) as client:
        for response_format, expected in (
            ({"type": "json_schema", "json_schema": {"name": "n", "schema": schema, "strict": True}}, schema),
            ({"type": "json_object"}, {"type": "object"}),
        ):
            sent = {"model": "ember-instant", "messages": ASK, "response_format": response_format}
            assert client.post("/v1/chat/completions", json=sent).status_code == 200
            engine = app.state.pipeline.engines.loaded()["chat-fast"]
            assert engine.calls[-1][1].json_schema == expected
