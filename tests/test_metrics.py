"""`/metrics` on the fake engine: exact request, error, token and transcription counts, histogram counts,
route labels that are templates, per-app registries, streams timed until their end, and the admin key
required when keys are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from ember.api.app import create_app

from .audio import tone
from .conftest import make_settings, sse_events

Labels = dict[str, str]


def scrape(client: TestClient, **headers: str) -> dict[str, list[tuple[Labels, float]]]:
    """Every sample of the exposition, by sample name (e.g. `ember_errors_total`, `..._bucket`)."""
    resp = client.get("/metrics", headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    samples: dict[str, list[tuple[Labels, float]]] = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            samples.setdefault(s.name, []).append((dict(s.labels), s.value))
    return samples


def value(samples: dict[str, list[tuple[Labels, float]]], name: str, **labels: str) -> float:
    """The one sample of `name` whose labels include `labels`; 0 if there is none."""
    found = [v for sample_labels, v in samples.get(name, []) if labels.items() <= sample_labels.items()]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else 0.0


def chat(client: TestClient, text: str, model: str = "ember-instant") -> httpx.Response:
    return client.post("/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": text}]})


def stream_usage(client: TestClient, text: str) -> dict[str, int]:
    body = {
        "model": "ember-instant",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": text}],
    }
    with client.stream("POST", "/v1/chat/completions", json=body) as resp:
        assert resp.status_code == 200
        events = sse_events(list(resp.iter_lines()))
    usage: dict[str, int] = events[-2]["usage"]
    return usage


def transcribe(client: TestClient, data: bytes) -> httpx.Response:
    return client.post("/v1/audio/transcriptions", files={"file": ("a.wav", data)}, data={"model": "whisper-1"})


def test_chat_errors_and_transcriptions_are_counted_exactly(client: TestClient) -> None:
    usages = [chat(client, "one two").json()["usage"], chat(client, "three four five").json()["usage"]]
    usages.append(stream_usage(client, "six"))
    assert chat(client, "x", model="gpt-17").status_code == 404
    assert transcribe(client, tone(1.5)).status_code == 200
    m = scrape(client)

    route = {"route": "/v1/chat/completions", "method": "POST"}
    assert value(m, "ember_http_requests_total", status="200", **route) == 3
    assert value(m, "ember_http_requests_total", status="404", **route) == 1
    assert value(m, "ember_http_request_seconds_count", **route) == 4
    assert value(m, "ember_http_request_seconds_bucket", le="+Inf", **route) == 4
    assert value(m, "ember_errors_total", route="/v1/chat/completions", code="model_not_found") == 1
    assert sum(v for _, v in m["ember_errors_total"]) == 1

    mode = {"mode": "ember-instant"}
    assert value(m, "ember_tokens_total", kind="prompt", **mode) == sum(u["prompt_tokens"] for u in usages)
    assert value(m, "ember_tokens_total", kind="completion", **mode) == sum(u["completion_tokens"] for u in usages)
    assert value(m, "ember_time_to_first_token_seconds_count", **mode) == 3
    assert value(m, "ember_generation_seconds_count", **mode) == 3
    assert value(m, "ember_generation_seconds_sum", **mode) >= value(m, "ember_time_to_first_token_seconds_sum")

    assert value(m, "ember_transcriptions_total", role="asr") == 1
    assert value(m, "ember_transcribed_audio_seconds_total", role="asr") == 1.5
    assert value(m, "ember_http_requests_total", route="/v1/audio/transcriptions", status="200") == 1
    assert value(m, "ember_engine_active", role="chat-fast") == 0
    assert value(m, "ember_engine_active", role="asr") == 0
    assert {labels["role"] for labels, _ in m["ember_engine_active"]} == {"chat-fast", "chat", "asr"}


def test_route_labels_are_templates_and_unknown_paths_are_other(client: TestClient) -> None:
    cid = chat(client, "hello").headers["x-ember-conversation-id"]
    assert client.get(f"/v1/conversations/{cid}").status_code == 200
    assert client.get("/v1/models/nope").status_code == 404
    assert client.get("/v1/nothing-here/123").status_code == 404
    assert client.get("/v1/chat/completions").status_code == 405
    m = scrape(client)

    template = "/v1/conversations/{conversation_id}"
    assert value(m, "ember_http_requests_total", route=template, method="GET", status="200") == 1
    assert value(m, "ember_errors_total", route="/v1/models/{model_id}", code="model_not_found") == 1
    assert value(m, "ember_errors_total", route="other", code="not_found") == 1
    assert value(m, "ember_http_requests_total", route="other", method="GET", status="404") == 1
    assert value(m, "ember_errors_total", route="/v1/chat/completions", code="method_not_allowed") == 1
    routes = {labels["route"] for name in m if name.startswith("ember_") for labels, _ in m[name] if "route" in labels}
    assert routes == {"/v1/chat/completions", template, "/v1/models/{model_id}", "other"}


def test_server_errors_and_middleware_refusals_are_counted(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, chat_fast={"engine": "fake", "model": "f", "options": {"fail_with": "boom"}})
    app = create_app(settings.model_copy(update={"audio_max_bytes": 16 * 1024}))

    async def boom() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/boom", boom)
    with TestClient(app, raise_server_exceptions=False) as c:
        assert chat(c, "hi").status_code == 502
        assert c.get("/boom").status_code == 500
        assert transcribe(c, tone(3.0)).status_code == 413  # refused by BodyLimit, before any route
        m = scrape(c)
    assert value(m, "ember_errors_total", route="/v1/chat/completions", code="engine_error") == 1
    assert value(m, "ember_errors_total", route="/boom", code="server_error") == 1
    assert value(m, "ember_http_requests_total", route="/boom", status="500") == 1
    assert value(m, "ember_errors_total", route="/v1/audio/transcriptions", code="payload_too_large") == 1
    assert value(m, "ember_generation_seconds_count", mode="ember-instant") == 0  # refused, not generated
    assert value(m, "ember_tokens_total", mode="ember-instant", kind="prompt") == 0


def test_a_stream_is_timed_until_its_end(tmp_path: Path) -> None:
    options: dict[str, Any] = {"replies": ["a b c d e"], "delay_s": 0.05}
    settings = make_settings(tmp_path, chat_fast={"engine": "fake", "model": "f", "options": options})
    with TestClient(create_app(settings)) as c:
        stream_usage(c, "go")
        m = scrape(c)
    route = {"route": "/v1/chat/completions", "method": "POST"}
    assert value(m, "ember_http_request_seconds_sum", **route) >= 5 * 0.05
    assert value(m, "ember_time_to_first_token_seconds_sum", mode="ember-instant") < 4 * 0.05
    assert value(m, "ember_generation_seconds_sum", mode="ember-instant") >= 5 * 0.05


def test_each_app_has_its_own_registry(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, chat_fast={"engine": "fake", "model": "f"})
    with TestClient(create_app(settings)) as first, TestClient(create_app(settings)) as second:
        assert chat(first, "hi").status_code == 200
        assert value(scrape(first), "ember_http_requests_total", route="/v1/chat/completions") == 1
        assert value(scrape(second), "ember_http_requests_total", route="/v1/chat/completions") == 0


def test_metrics_needs_an_admin_key_when_keys_are_required(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, chat_fast={"engine": "fake", "model": "f"})
    with TestClient(create_app(settings.model_copy(update={"require_keys": True}))) as c:
        keys = c.app.state.keys  # type: ignore[attr-defined]
        chat_key, _ = keys.create("alice", ("chat",), "local")
        admin_key, _ = keys.create("ops", ("admin",), "local")
        assert c.get("/metrics").status_code == 401
        denied = c.get("/metrics", headers={"authorization": f"Bearer {chat_key}"})
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "insufficient_scope"
        m = scrape(c, authorization=f"Bearer {admin_key}")
    assert value(m, "ember_errors_total", route="/metrics", code="invalid_api_key") == 1
    assert value(m, "ember_errors_total", route="/metrics", code="insufficient_scope") == 1
