"""Schema fuzzing: schemathesis generates requests from Ember's own /openapi.json, valid ones and invalid
ones, and sends them to an in-process app on the fake engine; no answer may be a 5xx, and every answer's
status, content type and body must be the ones the schema documents.

`make test` runs a few examples per operation; `make fuzz` many (FUZZ_EXAMPLES per operation and mode,
within FUZZ_SECONDS each)."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from ember.api.app import create_app
from ember.api.protocol import MAX_TOKENS_CAP
from ember.api.wire import ChatCompletion, ErrorResponse
from ember.policy.keys import SCOPES, KeyStore
from ember.store.sql import SqlStore

from .conftest import make_settings

FUZZING = "FUZZ_EXAMPLES" in os.environ  # `make fuzz`: new random inputs each run; `make test`: the same few
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "6"))
SECONDS = float(os.environ.get("FUZZ_SECONDS", "20"))
CACHE = Path.home() / ".cache" / "ember"
HEALTH_INDEX = any((CACHE / "health").glob("knowledge-*/vectors.npy"))
MODES = ["ember-instant", "ember-thinking", "ember-contemplating", "ember-auto", "ember-shopping"]
MODES += ["ember-health"] if HEALTH_INDEX else []  # without its index, ember-health is a 500 asset_unavailable
# what positive cases ask for
MODELS = {"/v1/chat/completions": MODES, "/v1/responses": MODES, "/v1/embeddings": ["ember-embed"]}
CHECKS = [
    negative_data_rejection,
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _app(tmp: Path, keyed: bool = False) -> tuple[FastAPI, dict[str, str]]:
    """The app on the fake engine, and the headers its requests carry: with `keyed`, keys are required
    and requests carry one with every scope (so the fuzzer reaches past authentication)."""
    settings = make_settings(tmp, chat_fast={"engine": "fake", "model": "fake", "ctx_size": 256})
    if HEALTH_INDEX:
        settings.cache_dir = CACHE  # the packaged models and the knowledge index `make test` built
    headers: dict[str, str] = {}
    if keyed:
        settings.require_keys = True
        store = SqlStore(settings.db_url)
        try:
            key = KeyStore(store.db, settings).create("fuzz", SCOPES, "local")[0]
        finally:
            store.close()
        headers["Authorization"] = f"Bearer {key}"
    return create_app(settings), headers


def _operations() -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:  # the schema only: the app is never started
        spec = _app(Path(tmp))[0].openapi()
    return [(method.upper(), path) for path, ops in spec["paths"].items() for method in ops]


def _with_model(pair: tuple[schemathesis.Case, str]) -> schemathesis.Case:
    """A generated request aimed at a real mode or embedding model (a random `model` is only ever a 404)."""
    case, mode = pair
    if isinstance(case.body, dict):
        case.body["model"] = mode
    return case


@pytest.fixture(scope="module", params=[False, True], ids=["keyless", "keyed"])
def fuzz_schema(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[schemathesis.BaseSchema, dict[str, str]]]:
    app, headers = _app(tmp_path_factory.mktemp("fuzz"), keyed=request.param)
    yield schemathesis.openapi.from_asgi("/openapi.json", app), headers
    asgi.shutdown_lifespans()


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
@pytest.mark.parametrize(("method", "path"), _operations())
def test_operation_conforms(
    fuzz_schema: tuple[schemathesis.BaseSchema, dict[str, str]],
    method: str,
    path: str,
    mode: schemathesis.GenerationMode,
) -> None:
    schema, headers = fuzz_schema
    operation = schema[path][method]
    deadline = time.monotonic() + SECONDS
    cases = operation.as_strategy(generation_mode=mode)
    if path in MODELS and mode == schemathesis.GenerationMode.POSITIVE:
        cases = st.tuples(cases, st.sampled_from(MODELS[path])).map(_with_model)

    @settings(
        max_examples=EXAMPLES,
        derandomize=not FUZZING,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def run(case: schemathesis.Case) -> None:
        if time.monotonic() < deadline:
            case.call_and_validate(checks=CHECKS, headers=headers)

    try:
        run()
    except Unsatisfiable:  # every input the schema allows is valid (a bare string path parameter)
        pytest.skip(f"{method} {path} has no invalid input to send")


def test_the_keyed_fuzz_app_needs_the_key_its_requests_carry(tmp_path: Path) -> None:
    """The keyed run fuzzes behind authentication, not only its 401s."""
    app, headers = _app(tmp_path, keyed=True)
    with TestClient(app) as client:
        assert client.get("/v1/me").status_code == 401
        assert client.get("/v1/me", headers=headers).status_code == 200


# -- the schema itself: regression tests for what the fuzzer found ---------------------------------------


def _component(spec: dict[str, Any], name: str) -> dict[str, Any]:
    """A schema of the document's components, its `$ref`s resolvable (jsonschema reads them from the root)."""
    return {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}


def test_the_schema_documents_the_error_envelope_not_422(client: TestClient) -> None:
    """FastAPI documented a 422 body that Ember never sends; every refusal is the OpenAI envelope."""
    spec = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)
            for status in ("4XX", "5XX"):
                schema = responses[status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path)
    refusal = client.post("/v1/chat/completions", json={"model": "ember-instant", "messages": []})
    assert refusal.status_code == 400
    jsonschema.validate(refusal.json(), _component(spec, "ErrorResponse"))
    assert ErrorResponse.model_validate(refusal.json()).wire() == refusal.json()


def test_the_schema_describes_content_parts_and_the_completion(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    content = schemas["ChatMessageIn"]["properties"]["content"]["anyOf"]
    (parts,) = [branch["items"] for branch in content if branch.get("type") == "array"]
    assert parts["discriminator"]["mapping"] == {
        "text": "#/components/schemas/TextPart",
        "image_url": "#/components/schemas/ImageURLPart",
        "input_audio": "#/components/schemas/InputAudioPart",
    }
    assert schemas["ImageURLPart"]["properties"]["image_url"] == {"$ref": "#/components/schemas/ImageURL"}
    ok = spec["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    assert set(ok) == {"application/json", "text/event-stream"}
    answer = client.post(
        "/v1/chat/completions", json={"model": "ember-instant", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert answer.status_code == 200
    jsonschema.validate(answer.json(), _component(spec, "ChatCompletion"))


def test_the_schema_states_the_real_bounds(client: TestClient) -> None:
    """Constraints on Annotated integers showed as `ge`/`le`, which JSON Schema ignores."""
    props = client.get("/openapi.json").json()["components"]["schemas"]["ChatCompletionRequest"]["properties"]
    (max_tokens,) = [b for b in props["max_tokens"]["anyOf"] if b.get("type") == "integer"]
    assert max_tokens["minimum"] == 1 and max_tokens["maximum"] == MAX_TOKENS_CAP and "le" not in max_tokens
    (n,) = [b for b in props["n"]["anyOf"] if b.get("type") == "integer"]
    assert n["minimum"] == n["maximum"] == 1
    (conversation,) = [b for b in props["conversation_id"]["anyOf"] if b.get("type") == "string"]
    assert conversation["pattern"] == "^[A-Za-z0-9_.:-]+$"


def test_the_completion_schema_is_the_models(client: TestClient) -> None:
    """`/openapi.json` documents the completion and its chunks from the models the answers are built from, and
    a real answer, streamed or not, validates against both the document and the model, unchanged by either."""
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    ok = spec["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    assert ok["application/json"]["schema"] == {"$ref": "#/components/schemas/ChatCompletion"}
    derived = ChatCompletion.model_json_schema(ref_template="#/components/schemas/{model}", mode="serialization")
    for name, schema in {**derived.pop("$defs"), "ChatCompletion": derived}.items():
        documented = schemas[name]
        assert list(documented["properties"]) == list(schema["properties"]), name
        assert documented.get("required") == schema.get("required"), name
        assert documented.get("additionalProperties") is False, name
    ask = {"model": "ember-instant", "messages": [{"role": "user", "content": "hi"}]}
    answer = client.post("/v1/chat/completions", json=ask).json()
    jsonschema.validate(answer, _component(spec, "ChatCompletion"))
    assert ChatCompletion.model_validate(answer).wire() == answer
    with client.stream("POST", "/v1/chat/completions", json={**ask, "stream": True}) as stream:
        events = [line.removeprefix("data: ") for line in stream.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]" and len(events) > 2
    for event in events[:-1]:
        jsonschema.validate(json.loads(event), _component(spec, "ChatCompletionChunk"))
