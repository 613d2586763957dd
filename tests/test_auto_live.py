"""ember-auto on the real SmolLM2-135M (`ember serve` in a subprocess): the planner's JSON plan is constrained
by llama.cpp's grammar, so even a tiny model writes a schema-valid plan; the official openai client gets the
route and exact arithmetic."""

from __future__ import annotations

import json

import httpx
import jsonschema
import openai

from ember import registry
from ember.agents.planner import offered, plan_schema


def test_multi_part_request_gets_a_schema_valid_plan_and_a_merged_answer(live_server: str) -> None:
    body = {
        "model": "ember-auto",
        "messages": [{"role": "user", "content": "What is the capital of France? Also, what is 17 * 23?"}],
        "include_trace": True,
        "max_tokens": 48,
        "temperature": 0,
        "seed": 3,
    }
    resp = httpx.post(f"{live_server}/v1/chat/completions", json=body, timeout=240)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["route"]["target"] == "planner"
    planned = next(step for step in out["trace"] if step["phase"] == "plan")
    assert planned["usage"]["completion_tokens"] > 0
    registry.load_plugins()
    jsonschema.validate(json.loads(planned["text"]), plan_schema(offered()))  # what the model itself wrote
    calls = [step for step in out["trace"] if step["phase"].startswith("call:")]
    assert calls and len(out["citations"]) == len(calls)
    assert out["choices"][0]["message"]["content"].strip()
    assert out["usage"]["completion_tokens"] >= planned["usage"]["completion_tokens"]


def test_openai_client_gets_exact_arithmetic_and_the_route(live_server: str) -> None:
    with openai.OpenAI(base_url=f"{live_server}/v1", api_key="not-needed", max_retries=0) as client:
        resp = client.chat.completions.create(
            model="ember-auto", messages=[{"role": "user", "content": "Calculate 123456789 * 987654321"}]
        )
    assert str(123456789 * 987654321) in (resp.choices[0].message.content or "")
    route = (resp.model_extra or {})["route"]
    assert route["target"] == "calculator" and route["reason"]
