"""The Responses API on the fake engine, through the API: create, stream, get, delete, input items, chains,
store, consent and errors, every body and event checked against the installed `openai` package's own types,
and the official client reading a stream. Items and turns: test_response_items.py; isolation between people
and privacy: test_responses_privacy.py; the real model: test_responses_live.py."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient
from openai.types.responses import Response, ResponseItemList, ResponseStreamEvent
from pydantic import TypeAdapter

from ember.api.app import create_app
from ember.calling import call_or_answer
from ember.config import Settings
from ember.engines.fake import FakeEngine
from ember.errors import EngineError
from ember.modes import instant
from ember.types import Delta, Message, ToolCall

from .audio import tone
from .conftest import make_settings, serve_in_thread

EVENTS = TypeAdapter[Any](ResponseStreamEvent)
PNG = "data:image/png;base64,iVBORw0KGgo="
STREAM_OPENS = [  # a streamed text response's first events, in the order the openai client expects them
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
]
STREAM_CLOSES = [  # and its last
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


# -- the API ----------------------------------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, chat_fast={"engine": "fake", "model": "fake", "ctx_size": 256})


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def fast_engine(client: TestClient) -> FakeEngine:
    engine: FakeEngine = client.app.state.pipeline.engines.loaded()["chat-fast"]  # type: ignore[attr-defined]
    return engine


def create(client: TestClient, status: int = 200, **body: Any) -> dict[str, Any]:
    resp = client.post("/v1/responses", json={"model": "ember-instant", **body})
    assert resp.status_code == status, resp.text
    out: dict[str, Any] = resp.json()
    if status == 200:
        assert Response.model_validate(out).output_text == "".join(
            part["text"] for item in out["output"] if item["type"] == "message" for part in item["content"]
        )
    return out


def stored_count(client: TestClient) -> int:
    with client.app.state.pipeline.store.db.connect() as conn:  # type: ignore[attr-defined]
        return int(conn.exec_driver_sql("SELECT count(*) FROM responses").scalar_one())


def test_create_answers_stores_and_shows_the_request(api: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ember.api.routes.responses")
    tool = {"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}, "strict": True}
    body = create(
        api,
        input="hello there",
        metadata={"ticket": "42"},
        temperature=0.5,
        tools=[tool],
        tool_choice="none",
        text={"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True}},
        reasoning={"effort": "low"},
        max_output_tokens=50,
        user="ann",
        whatever_else="accepted: its name is logged, never its value",
    )
    assert "whatever_else" in caplog.text and "its value" not in caplog.text
    assert body["id"].startswith("resp_") and body["object"] == "response" and body["status"] == "completed"
    assert body["output"][0]["content"][0]["text"] == "You said: hello there"
    assert body["usage"]["output_tokens"] == 4 and body["usage"]["total_tokens"] == body["usage"]["input_tokens"] + 4
    shown = (body["metadata"], body["temperature"], body["tools"], body["tool_choice"], body["user"])
    assert shown == ({"ticket": "42"}, 0.5, [tool], "none", "ann")
    assert body["reasoning"]["effort"] == "low" and body["store"] is True
    assert body["text"]["format"] == {
        "type": "json_schema",
        "name": "out",
        "schema": {"type": "object"},
        "strict": True,
    }
    (_, params) = fast_engine(api).calls[-1]
    assert (params.max_tokens, params.temperature, params.json_schema) == (50, 0.5, {"type": "object"})
    assert api.get(f"/v1/responses/{body['id']}", params={"user": "ann"}).json() == body
    assert api.get("/v1/conversations", params={"user": "ann"}).json()["data"] == []  # a response, not a conversation


def test_instructions_come_first_and_are_not_carried_over(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, chat_fast={"engine": "fake", "model": "fake", "options": {"echo_prompt": True}})
    with TestClient(create_app(settings)) as client:
        first = create(client, input="one", instructions="Speak like a pirate.")
        second = create(client, input=[{"role": "user", "content": "two"}], previous_response_id=first["id"])
        third = create(client, input="three", previous_response_id=second["id"], instructions="Be terse.")
        prompts = [messages for messages, _ in fast_engine(client).calls[-3:]]
    assert [(m.role, m.content) for m in prompts[0]] == [("system", "Speak like a pirate."), ("user", "one")]
    assert [m.role for m in prompts[1]] == ["system", "user", "assistant", "user"]
    assert prompts[1][0].content.startswith("You are Ember")  # the mode's own: the pirate is gone
    contents = [m.content for m in prompts[2]]
    assert contents[0] == "Be terse." and contents[1::2] == ["one", "two", "three"]  # the whole chain, in order
    assert (second["previous_response_id"], third["instructions"], second["instructions"]) == (
        first["id"],
        "Be terse.",
        None,
    )
    own = client.get(f"/v1/responses/{second['id']}/input_items").json()
    assert [i["content"][0]["text"] for i in own["data"]] == ["two"]  # a response's input is its own


WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city now",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": True,
}


def test_function_calls_and_their_outputs_reach_the_mode(api: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[Message]] = []

    async def spy(engine: Any, messages: list[Message], params: Any, embedders: Any, run: Any) -> AsyncIterator[Delta]:
        seen.append(messages)
        async for delta in call_or_answer(engine, messages, params, embedders, run):
            yield delta

    monkeypatch.setattr(instant, "call_or_answer", spy)
    call = {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Oslo"}'}
    assert create(api, 400, input=[{"role": "user", "content": "weather?"}, call])["error"]["param"] == "input"
    body = create(
        api,
        input=[
            {"role": "user", "content": "weather?"},
            call,
            {"type": "function_call_output", "call_id": "call_1", "output": "-3 C"},
        ],
        tools=[WEATHER],
    )
    (messages,) = seen
    assert [(m.role, m.tool_call_id) for m in messages[1:]] == [("user", None), ("assistant", None), ("tool", "call_1")]
    assert messages[2].tool_calls == (ToolCall("call_1", "get_weather", '{"city":"Oslo"}'),)
    assert messages[3].content == "-3 C"
    listed = ResponseItemList.model_validate(api.get(f"/v1/responses/{body['id']}/input_items?order=asc").json())
    assert [i.type for i in listed.data] == ["message", "function_call", "function_call_output"]


def test_a_function_call_round_trip(tmp_path: Path) -> None:
    call = '{"calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}'
    role = {"engine": "fake", "model": "fake", "options": {"replies": [call, "It is -3 C in Oslo.", call]}}
    named = {"type": "function", "name": "get_weather"}
    with TestClient(create_app(make_settings(tmp_path, chat_fast=role))) as client:
        first = create(client, input="Weather in Oslo?", tools=[WEATHER], tool_choice=named)
        (item,) = first["output"]
        assert (item["type"], item["name"], item["status"]) == ("function_call", "get_weather", "completed")
        assert json.loads(item["arguments"]) == {"city": "Oslo"} and item["call_id"].startswith("call_")
        assert (first["tools"], first["tool_choice"]) == ([WEATHER], named)
        result = {"type": "function_call_output", "call_id": item["call_id"], "output": "-3 C, snow"}
        second = create(client, input=[result], previous_response_id=first["id"], tools=[WEATHER])
        assert second["output"][0]["content"][0]["text"] == "It is -3 C in Oslo."
        messages, _ = fast_engine(client).calls[-1]
        assert "-3 C, snow" in messages[-1].content  # the result reached the model, after the replayed call
        events = sse(client, input="And in Oslo now?", tools=[WEATHER], tool_choice=named)
    kinds = [e["type"].removeprefix("response.") for e in events]
    assert kinds[2] == "output_item.added" and events[2]["item"]["type"] == "function_call"
    assert kinds[-3:] == ["function_call_arguments.done", "output_item.done", "completed"]
    pieces = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta")
    assert json.loads(pieces) == {"city": "Oslo"} == json.loads(events[-1]["response"]["output"][0]["arguments"])


def test_input_items_page_by_limit_order_and_after(api: TestClient) -> None:
    rid = create(api, input=[{"role": "user", "content": f"m{n}"} for n in range(5)])["id"]
    page = api.get(f"/v1/responses/{rid}/input_items", params={"limit": 2}).json()
    assert [i["content"][0]["text"] for i in page["data"]] == ["m4", "m3"] and page["has_more"] is True
    rest = api.get(f"/v1/responses/{rid}/input_items", params={"order": "asc", "after": page["data"][0]["id"]}).json()
    assert [i["content"][0]["text"] for i in rest["data"]] == [] and rest["has_more"] is False
    asc = api.get(f"/v1/responses/{rid}/input_items", params={"order": "asc", "limit": 3}).json()
    assert [i["content"][0]["text"] for i in asc["data"]] == ["m0", "m1", "m2"]
    assert (asc["first_id"], asc["last_id"]) == (asc["data"][0]["id"], asc["data"][2]["id"])
    assert api.get(f"/v1/responses/{rid}/input_items", params={"after": "msg_nope"}).status_code == 400


def test_delete_removes_it_for_good(api: TestClient) -> None:
    rid = create(api, input="forget me")["id"]
    assert api.delete(f"/v1/responses/{rid}").json() == {"id": rid, "object": "response.deleted", "deleted": True}
    for gone in (
        api.get(f"/v1/responses/{rid}"),
        api.get(f"/v1/responses/{rid}/input_items"),
        api.delete(f"/v1/responses/{rid}"),
    ):
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    refused = create(api, 404, input="more", previous_response_id=rid)
    assert refused["error"]["param"] == "previous_response_id" and stored_count(api) == 0


def test_store_false_keeps_nothing(api: TestClient) -> None:
    body = create(api, input="secret", store=False)
    assert body["store"] is False and stored_count(api) == 0
    assert api.get(f"/v1/responses/{body['id']}").status_code == 404
    assert create(api, 404, input="go on", previous_response_id=body["id"])["error"]["code"] == "not_found"


def test_with_history_off_nothing_is_stored_and_nothing_continued(api: TestClient) -> None:
    kept = create(api, input="before", user="dan")["id"]
    assert api.patch("/v1/me/consent", params={"user": "dan"}, json={"history": False}).status_code == 200
    body = create(api, input="after", user="dan")
    assert body["store"] is False and stored_count(api) == 1
    refused = create(api, 400, input="go on", user="dan", previous_response_id=kept)
    assert (refused["error"]["code"], refused["error"]["param"]) == ("history_off", "previous_response_id")


def test_spoken_input_is_heard_and_stored_as_its_transcript(api: TestClient) -> None:
    spoken = {"type": "input_audio", "input_audio": {"data": base64.b64encode(tone(1.0)).decode(), "format": "wav"}}
    body = create(api, input=[{"role": "user", "content": [{"type": "input_text", "text": "Listen:"}, spoken]}])
    assert body["output"][0]["content"][0]["text"] == "You said: Listen:\nwhat is the capital of France"
    (item,) = api.get(f"/v1/responses/{body['id']}/input_items").json()["data"]
    assert item["content"][1] == {"type": "input_text", "text": "what is the capital of France"}  # no recording kept


def test_a_mode_that_keeps_only_with_its_own_consent_stores_nothing_without_it(api: TestClient) -> None:
    body = create(api, model="ember-health", input="I have a mild headache", user="pat")
    assert body["store"] is False and stored_count(api) == 0  # health_storage is off until pat turns it on
    api.patch("/v1/me/consent", params={"user": "pat"}, json={"health_storage": True})
    assert create(api, model="ember-health", input="and a cough", user="pat")["store"] is True


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "ember-nope"}, 404, "model"),
        ({"input": [{"type": "bogus"}]}, 400, "input.0"),
        ({"input": []}, 400, "input"),
        ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, 400, "input.0.content.0"),
        (
            {"input": [{"role": "system", "content": [{"type": "input_image", "image_url": PNG}]}]},
            400,
            "input.0.content.0",
        ),
        (
            {
                "input": [
                    {"role": "user", "content": [{"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]}
                ]
            },
            400,
            "input.0.content.0",
        ),
        ({"input": [{"type": "function_call_output", "call_id": "x", "output": "?"}]}, 400, "input.0.call_id"),
        ({"input": [{"role": "assistant", "content": "I said"}]}, 400, "input"),
        ({"tools": [{"type": "function", "name": "f", "parameters": {"type": 5}}]}, 400, "tools.0.parameters"),
        ({"tools": [{"type": "web_search"}]}, 400, "tools.0"),
        ({"tool_choice": {"type": "function", "name": "g"}}, 400, "tool_choice"),
        (
            {"text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "nah"}}}},
            400,
            "text.format.schema",
        ),
        ({"reasoning": {"effort": "extreme"}}, 400, "reasoning.effort"),
        ({"previous_response_id": "resp_never"}, 404, "previous_response_id"),
        ({"input": "word " * 300}, 400, "input"),  # beyond the fake engine's context
    ],
)
def test_bad_requests_are_refused_in_the_envelope_and_store_nothing(
    api: TestClient, body: dict[str, Any], status: int, param: str
) -> None:
    refused = create(api, status, **{"input": "hi", **body})
    assert set(refused["error"]) == {"message", "type", "param", "code"} and refused["error"]["param"] == param
    assert stored_count(api) == 0


def sse(client: TestClient, **body: Any) -> list[dict[str, Any]]:
    """The events of a streamed response, each checked against its `event:` line and the client's types."""
    request = {"model": "ember-instant", "stream": True, **body}
    with client.stream("POST", "/v1/responses", json=request) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        blocks = [b for b in resp.read().decode().split("\n\n") if b]
    events = []
    for block in blocks:
        name, data = block.split("\n")
        event = json.loads(data.removeprefix("data: "))
        assert name == f"event: {event['type']}"
        EVENTS.validate_python(event)
        events.append(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def test_a_stream_is_stored_before_it_completes(api: TestClient) -> None:
    events = sse(api, input="stream this")
    kinds = [e["type"] for e in events]
    assert kinds[:4] == STREAM_OPENS and kinds[-4:] == STREAM_CLOSES
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    done = events[-1]["response"]
    assert text == "You said: stream this" == done["output"][0]["content"][0]["text"]
    assert events[0]["response"]["usage"] is None and done["usage"]["output_tokens"] == 4
    assert api.get(f"/v1/responses/{done['id']}").json() == done


def test_a_stream_cut_by_max_output_tokens_is_incomplete(api: TestClient) -> None:
    done = sse(api, input="a b c d e f", max_output_tokens=2)[-1]
    assert done["type"] == "response.incomplete" and done["response"]["status"] == "incomplete"
    assert done["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert done["response"]["output"][0]["status"] == "incomplete"


def test_reasoning_comes_back_as_a_reasoning_item(tmp_path: Path) -> None:
    chat = {"engine": "fake", "model": "fake", "options": {"replies": ["first think", "then answer"]}}
    fast = {"engine": "fake", "model": "fake"}
    with TestClient(create_app(make_settings(tmp_path, chat=chat, chat_fast=fast))) as client:
        fast_engine_free = create(client, model="ember-thinking", input="hi", reasoning={"effort": "low"})
        events = sse(client, model="ember-thinking", input="hi")
    assert [i["type"] for i in fast_engine_free["output"]] == ["reasoning", "message"]
    assert fast_engine_free["output"][0]["summary"][0]["text"] == "first think"
    assert fast_engine_free["usage"]["output_tokens_details"]["reasoning_tokens"] == 2
    summary = "".join(e["delta"] for e in events if e["type"] == "response.reasoning_summary_text.delta")
    assert summary == "first think" and events[-1]["response"]["output"][1]["content"][0]["text"] == "then answer"


def test_a_failure_after_the_first_event_is_an_error_event_then_failed(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def breaks(self: FakeEngine, messages: Any, params: Any) -> Any:
        yield Delta(content="half")
        raise EngineError("the engine fell over")

    monkeypatch.setattr(FakeEngine, "stream", breaks)
    events = sse(api, input="go")
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-2]["message"] == "the engine fell over" and events[-1]["response"]["error"]["code"] == "server_error"
    assert stored_count(api) == 0


def test_the_openai_client_reads_the_stream_and_the_responses(settings: Settings) -> None:
    with serve_in_thread(create_app(settings)) as base, openai.OpenAI(base_url=f"{base}/v1", api_key="-") as client:
        with client.responses.stream(model="ember-instant", input="hello client") as stream:
            deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
            final = stream.get_final_response()
        assert "".join(deltas) == final.output_text == "You said: hello client"
        follow = client.responses.create(model="ember-instant", input="again", previous_response_id=final.id)
        assert follow.previous_response_id == final.id and follow.output_text == "You said: again"
        assert client.responses.retrieve(final.id).output_text == final.output_text
        assert [i.type for i in client.responses.input_items.list(final.id)] == ["message"]
        assert client.responses.delete(follow.id) is None
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(follow.id)


def test_the_schema_documents_the_response_and_its_events(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    ok = spec["paths"]["/v1/responses"]["post"]["responses"]["200"]["content"]
    assert ok["application/json"]["schema"] == {"$ref": "#/components/schemas/ResponseObject"}
    assert set(ok) == {"application/json", "text/event-stream"}
    assert "ResponseStreamEvent" in spec["components"]["schemas"]
    assert {"/v1/responses/{response_id}", "/v1/responses/{response_id}/input_items"} <= set(spec["paths"])
