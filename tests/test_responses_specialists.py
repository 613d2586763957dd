"""Ember's specialists as built-in Responses tools (`{"type": "specialist", "name": ...}`): the server runs the
call, reports it as a `specialist_call` output item, and the model answers from its result; a chain replays
both; an unknown specialist is refused. On the fake engine (scripted calls) and on SmolLM2-135M."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from ember.api.app import create_app

from .conftest import make_settings

CALCULATOR = {"type": "specialist", "name": "calculator"}
CALL = json.dumps({"calls": [{"name": "calculator", "arguments": {"expression": "17*23"}}]})


def scripted(tmp_path: Path, replies: list[str]) -> TestClient:
    role = {"engine": "fake", "model": "fake", "options": {"replies": replies}}
    return TestClient(create_app(make_settings(tmp_path, chat_fast=role)))


def post(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/responses", json={"model": "ember-instant", **body})
    assert response.status_code == 200, response.text
    out: dict[str, Any] = response.json()
    return out


def test_the_server_runs_the_specialist_and_the_model_answers_from_it(tmp_path: Path) -> None:
    with scripted(tmp_path, [CALL, "17 times 23 is 391."]) as client:
        body = post(client, input="What is 17*23?", tools=[CALCULATOR], tool_choice="required")
        engine = client.app.state.pipeline.engines.loaded()["chat-fast"]  # type: ignore[attr-defined]
        second_prompt = engine.calls[-1][0]
        follow = post(client, input="Thanks!", previous_response_id=body["id"], tools=[CALCULATOR])
        replayed = engine.calls[-1][0]
    call, message = body["output"]
    assert call["type"] == "specialist_call" and call["status"] == "completed" and call["name"] == "calculator"
    assert json.loads(call["arguments"]) == {"expression": "17*23"} and "391" in call["output"]
    assert message["type"] == "message" and message["content"][0]["text"] == "17 times 23 is 391."
    assert body["tools"] == [CALCULATOR] and body["status"] == "completed"
    assert any("391" in m.content for m in second_prompt if m.role == "user")  # the result, read as text
    assert follow["status"] == "completed"
    assert any(call["call_id"] in m.content for m in replayed)  # the chain replays the call and its result


def test_a_failed_specialist_is_reported_and_answered(tmp_path: Path) -> None:
    bad = json.dumps({"calls": [{"name": "calculator", "arguments": {"expression": "import os"}}]})
    with scripted(tmp_path, [bad, "I could not work that out."]) as client:
        body = post(client, input="compute something", tools=[CALCULATOR], tool_choice="required")
    call, message = body["output"]
    assert call["status"] == "failed" and "calculator failed" in call["output"]
    assert message["content"][0]["text"] == "I could not work that out."


def test_specialist_calls_stream_as_done_items(tmp_path: Path) -> None:
    with scripted(tmp_path, [CALL, "It is 391."]) as client:
        request = {"model": "ember-instant", "input": "17*23?", "tools": [CALCULATOR], "tool_choice": "required"}
        with client.stream("POST", "/v1/responses", json={**request, "stream": True}) as response:
            data = [json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:")]
    kinds = [(e["type"], e.get("item", {}).get("type")) for e in data]
    added = kinds.index(("response.output_item.added", "specialist_call"))
    assert kinds[added + 1] == ("response.output_item.done", "specialist_call")
    assert kinds.index(("response.output_item.added", "message")) > added + 1
    assert kinds[-1][0] == "response.completed"
    done = data[-1]["response"]["output"]
    assert [i["type"] for i in done] == ["specialist_call", "message"]


def test_a_call_cut_off_by_the_token_limit_is_no_call(tmp_path: Path) -> None:
    with scripted(tmp_path, [CALL]) as client:
        body = post(client, input="17*23?", tools=[CALCULATOR], tool_choice="required", max_output_tokens=3)
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["output"] == []


def test_an_unknown_specialist_is_refused_and_nothing_stored(tmp_path: Path) -> None:
    with scripted(tmp_path, [CALL]) as client:
        response = client.post(
            "/v1/responses",
            json={"model": "ember-instant", "input": "hi", "tools": [{"type": "specialist", "name": "oracle"}]},
        )
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["param"] == "tools.0.name" and "calculator" in error["message"]
        with client.app.state.pipeline.store.db.connect() as conn:  # type: ignore[attr-defined]
            assert conn.exec_driver_sql("SELECT count(*) FROM responses").scalar_one() == 0


def test_the_calculator_as_a_built_in_tool_on_a_real_model(live_server: str) -> None:
    body = {
        "model": "ember-instant",
        "input": "What is 17 * 23?",
        "tools": [CALCULATOR],
        "tool_choice": "required",
        "max_output_tokens": 200,
    }
    response = httpx.post(f"{live_server}/v1/responses", json=body, timeout=300)
    assert response.status_code == 200, response.text
    *calls, message = response.json()["output"]
    assert calls and message["type"] == "message"
    for call in calls:  # (the tiny model may write several, and expressions that do not run)
        assert call["type"] == "specialist_call" and call["name"] == "calculator"
        assert call["status"] in {"completed", "failed"} and call["output"]
