"""`POST /v1/embeddings` on the real packaged MiniLM: vectors as the embedder makes them (unit length, float or
base64), real token counts, truncation, the caps and refusals in OpenAI's envelope, `/v1/models`, scopes and
limits, the event loop kept free, logs without the inputs, the official `openai` client against a live server,
and a remote `embed` role forwarding to another server's `/embeddings`."""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import numpy as np
import numpy.typing as npt
import openai
import pytest
from fastapi.testclient import TestClient

from ember.api.app import create_app
from ember.config import Settings, Tier
from ember.engines.embeddings import DIM, MAX_TOKENS, Embedder, Embedders
from ember.policy.keys import KeyStore
from ember.serving.embeddings import MAX_CHARS, MAX_INPUTS

from .conftest import free_port, make_settings, serve_in_thread

CACHE = Path.home() / ".cache" / "ember"  # the packaged MiniLM, assembled by `make test`
FAKE = {"engine": "fake", "model": "fake"}
MODEL = "ember-embed"
PARAPHRASE = ("How do I reset my password?", "I forgot my password, how can I change it?")
UNRELATED = "The best time to plant tomatoes is after the last spring frost."
SECRET = "my neighbour's PIN is 4471"


def settings_for(tmp_path: Path, **roles: dict[str, Any]) -> Settings:
    """Chat on the fake engine, embeddings on the packaged MiniLM (unless `roles` names an `embed` role)."""
    return make_settings(tmp_path, chat_fast=FAKE, **roles).model_copy(update={"cache_dir": CACHE})


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(tmp_path_factory.mktemp("embeddings")))) as client:
        yield client


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedders(CACHE).get()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """A real uvicorn serving the app (its base URL, and the app)."""
    app = create_app(settings_for(tmp_path_factory.mktemp("embeddings-live")))
    with serve_in_thread(app) as base:
        yield base, app


def embed(client: TestClient, text: str | list[str], **over: Any) -> httpx.Response:
    return client.post("/v1/embeddings", json={"model": MODEL, "input": text, **over})


def vectors(response: httpx.Response) -> npt.NDArray[np.float32]:
    assert response.status_code == 200, response.text
    return np.array([item["embedding"] for item in response.json()["data"]], dtype=np.float32)


def assert_refused(response: httpx.Response, status: int, param: str | None, code: str = "invalid_value") -> str:
    """The OpenAI error envelope with this status, param and code; returns its message."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert (error["param"], error["code"]) == (param, code), error
    return str(error["message"])


# -- vectors and usage ----------------------------------------------------------------------------------------


def test_vectors_are_the_embedders_unit_rows_with_its_token_counts(api: TestClient, embedder: Embedder) -> None:
    texts = [PARAPHRASE[0], UNRELATED, "ok"]
    response = embed(api, texts)
    body = response.json()
    assert body["object"] == "list" and body["model"] == MODEL
    assert [(item["object"], item["index"]) for item in body["data"]] == [("embedding", n) for n in range(3)]
    got = vectors(response)
    assert got.shape == (3, DIM)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(got, embedder.embed(texts))  # the same float32 values, nothing rounded
    tokens = sum(len(row) for row in embedder.tokenize(texts))
    assert tokens == 9 + 15 + 3  # each text's words and punctuation, plus [CLS] and [SEP]
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


def test_a_single_string_is_one_vector(api: TestClient, embedder: Embedder) -> None:
    got = vectors(embed(api, PARAPHRASE[1]))
    np.testing.assert_array_equal(got, embedder.embed([PARAPHRASE[1]]))


def test_base64_is_little_endian_float32_of_the_same_vectors(api: TestClient) -> None:
    floats = vectors(embed(api, list(PARAPHRASE)))
    encoded = embed(api, list(PARAPHRASE), encoding_format="base64").json()["data"]
    decoded = np.stack([np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4") for item in encoded])
    np.testing.assert_array_equal(decoded, floats)


def test_a_paraphrase_is_closer_than_an_unrelated_text(api: TestClient) -> None:
    a, b, c = vectors(embed(api, [*PARAPHRASE, UNRELATED]))
    assert a @ b > 0.6 and a @ c < 0.2, (a @ b, a @ c)


def test_long_inputs_are_cut_at_the_models_length(api: TestClient) -> None:
    words = " ".join(f"word{n}" for n in range(1000))
    long, longer = embed(api, words), embed(api, words + " and a tail the model never reads")
    assert long.json()["usage"]["prompt_tokens"] == MAX_TOKENS == longer.json()["usage"]["prompt_tokens"]
    np.testing.assert_array_equal(vectors(long), vectors(longer))


def test_the_role_name_and_the_native_dimensions_are_accepted(api: TestClient) -> None:
    response = api.post("/v1/embeddings", json={"model": "embed", "input": "hi", "dimensions": DIM, "user": "ana"})
    assert response.json()["model"] == MODEL and vectors(response).shape == (1, DIM)


# -- refusals -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("over", "param", "words"),
    [
        ({"input": ""}, "input", "empty"),
        ({"input": []}, "input", "at least one"),
        ({"input": ["fine", ""]}, "input", "text 1 is empty"),
        ({"input": [101, 2023, 102]}, "input", "token ids"),
        ({"input": [[101, 2023, 102]]}, "input", "token ids"),
        ({"input": 5}, "input", "valid string"),
        ({"input": {"text": "hi"}}, "input", "valid string"),
        ({"input": ["a", 1]}, "input.1", "valid string"),
        ({"input": ["x"] * (MAX_INPUTS + 1)}, "input", f"at most {MAX_INPUTS}"),
        ({"input": ["x" * (MAX_CHARS // 2 + 1)] * 2}, "input", f"at most {MAX_CHARS}"),
        ({"dimensions": 256}, "dimensions", f"{DIM} dimensions"),
        ({"dimensions": 0}, "dimensions", "greater than or equal to 1"),
        ({"dimensions": "384"}, "dimensions", "valid integer"),
        ({"encoding_format": "int8"}, "encoding_format", "'float' or 'base64'"),
    ],
)
def test_bad_input_is_a_400_envelope(api: TestClient, over: dict[str, Any], param: str, words: str) -> None:
    response = api.post("/v1/embeddings", json={"model": MODEL, "input": "hi", **over})
    assert words in assert_refused(response, 400, param)


def test_missing_input_and_unknown_model(api: TestClient) -> None:
    assert_refused(api.post("/v1/embeddings", json={"model": MODEL}), 400, "input")
    message = assert_refused(embed(api, "hi", model="text-embedding-3-small"), 404, "model", "model_not_found")
    assert MODEL in message  # it says which models there are
    assert_refused(embed(api, "hi", model="ember-instant"), 404, "model", "model_not_found")  # a mode is no embedder


# -- /v1/models and the schema --------------------------------------------------------------------------------


def test_models_lists_the_embedding_model_beside_the_modes(api: TestClient) -> None:
    data = api.get("/v1/models").json()["data"]
    cards = {card["id"]: card for card in data}
    assert {"object": "model", "created": 0, "owned_by": "ember", "task": "embedding"}.items() <= cards[MODEL].items()
    assert "all-MiniLM-L6-v2" in cards[MODEL]["description"]
    assert cards["ember-instant"]["task"] == "chat" and cards["ember-instant"]["object"] == "model"
    assert [card["task"] for card in data].count("embedding") == 1
    assert api.get(f"/v1/models/{MODEL}").json() == cards[MODEL]


def test_the_schema_documents_the_answer_it_gives(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    ok = spec["paths"]["/v1/embeddings"]["post"]["responses"]["200"]["content"]["application/json"]
    assert ok["schema"] == {"$ref": "#/components/schemas/EmbeddingList"}
    schema = {"$ref": "#/components/schemas/EmbeddingList", "components": spec["components"]}
    for encoding in ("float", "base64"):
        jsonschema.validate(embed(api, "hi", encoding_format=encoding).json(), schema)


# -- keys, limits, the event loop and the logs ----------------------------------------------------------------


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[TestClient]:
    settings = settings_for(tmp_path)
    tiers = {**settings.tiers, "tiny": Tier(tokens_per_minute=10)}
    with TestClient(create_app(settings.model_copy(update={"require_keys": True, "tiers": tiers}))) as client:
        yield client


def key(client: TestClient, scopes: tuple[str, ...], tier: str = "local") -> dict[str, str]:
    keys: KeyStore = client.app.state.keys  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {keys.create('acme', scopes, tier)[0]}"}


def test_it_takes_a_key_with_the_chat_scope(keyed: TestClient) -> None:
    body = {"model": MODEL, "input": "hi"}
    assert_refused(keyed.post("/v1/embeddings", json=body), 401, None, "invalid_api_key")
    denied = keyed.post("/v1/embeddings", json=body, headers=key(keyed, ("audio", "shopping")))
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "insufficient_scope"
    assert denied.json()["error"]["type"] == "permission_error"
    assert keyed.post("/v1/embeddings", json=body, headers=key(keyed, ("chat",))).status_code == 200


def test_the_tokens_read_count_against_the_keys_limit(keyed: TestClient) -> None:
    headers = key(keyed, ("chat",), tier="tiny")
    first = keyed.post("/v1/embeddings", json={"model": MODEL, "input": PARAPHRASE[1]}, headers=headers)
    assert first.status_code == 200 and first.headers["x-ratelimit-limit-tokens"] == "10"
    assert first.json()["usage"]["prompt_tokens"] == 13  # over the limit: counted all the same
    refused = keyed.post("/v1/embeddings", json={"model": MODEL, "input": "hi"}, headers=headers)
    assert_refused(refused, 429, None, "rate_limit_exceeded")
    assert int(refused.headers["retry-after"]) >= 1


def test_embedding_leaves_the_event_loop_free(live: tuple[str, Any]) -> None:
    base, app = live
    warm = httpx.post(f"{base}/v1/embeddings", json={"model": MODEL, "input": "the model is loaded"}, timeout=60)
    assert warm.status_code == 200  # so that the big request runs the model at once, with no start to await
    texts = [f"text {n} " + "the quick brown fox jumps over the lazy dog " * 30 for n in range(32)]
    done: list[float] = []

    def run() -> None:
        response = httpx.post(f"{base}/v1/embeddings", json={"model": MODEL, "input": texts}, timeout=120)
        assert response.status_code == 200
        done.append(time.monotonic())

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 30
    while app.state.admission.running == 0 and worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)
    t0 = time.monotonic()
    assert httpx.get(f"{base}/health/live", timeout=10).status_code == 200
    answered = time.monotonic()
    worker.join(120)
    assert done and answered < done[0], "the event loop waited for the model"
    assert answered - t0 < 2.0


def test_logs_hold_no_input(api: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        assert embed(api, [SECRET], secret_field=SECRET).status_code == 200
        assert embed(api, [SECRET], dimensions=3).status_code == 400
        assert embed(api, [SECRET], model=SECRET).status_code == 404
    assert "secret_field" in caplog.text  # the unknown field's name is logged, never its value
    assert "4471" not in caplog.text and "neighbour" not in caplog.text


# -- the official client on a live server, and a remote role --------------------------------------------------


def test_the_openai_client_gets_the_same_vectors_as_floats_and_base64(
    live: tuple[str, Any], request: pytest.FixtureRequest
) -> None:
    client = openai.OpenAI(base_url=f"{live[0]}/v1", api_key="unused")
    request.addfinalizer(client.close)
    texts = [*PARAPHRASE, UNRELATED]
    as_floats = client.embeddings.create(model=MODEL, input=texts, encoding_format="float")
    as_base64 = client.embeddings.create(model=MODEL, input=texts)  # the client asks for base64 and decodes it
    assert [d.embedding for d in as_floats.data] == [d.embedding for d in as_base64.data]
    a, b, c = (np.array(d.embedding) for d in as_floats.data)
    assert a @ b > a @ c
    assert as_floats.model == MODEL and as_floats.usage.prompt_tokens == as_floats.usage.total_tokens > 0
    assert MODEL in [m.id for m in client.models.list().data]


@pytest.mark.parametrize(
    ("ask", "error"),
    [
        ({"input": ""}, openai.BadRequestError),
        ({"input": []}, openai.BadRequestError),
        ({"input": "hi", "dimensions": 512}, openai.BadRequestError),
        ({"input": [[1, 2, 3]]}, openai.BadRequestError),
        ({"input": "hi", "model": "text-embedding-3-small"}, openai.NotFoundError),
    ],
)
def test_the_openai_client_raises_for_bad_requests(
    live: tuple[str, Any], ask: dict[str, Any], error: type[openai.APIStatusError]
) -> None:
    with (
        openai.OpenAI(base_url=f"{live[0]}/v1", api_key="unused", max_retries=0) as client,
        pytest.raises(error) as raised,
    ):
        client.embeddings.create(**{"model": MODEL, **ask})
    assert isinstance(raised.value.body, dict) and raised.value.body["message"]


def test_a_remote_embed_role_forwards_to_its_servers_embeddings(live: tuple[str, Any], tmp_path: Path) -> None:
    remote = {"engine": "openai", "url": f"{live[0]}/v1", "model": MODEL}
    with TestClient(create_app(settings_for(tmp_path, embed=remote))) as client:
        texts = [*PARAPHRASE, UNRELATED]
        here = embed(client, texts)
        there = httpx.post(f"{live[0]}/v1/embeddings", json={"model": MODEL, "input": texts})
        np.testing.assert_array_equal(vectors(here), vectors(there))
        assert here.json()["usage"] == there.json()["usage"] and here.json()["model"] == MODEL
        message = assert_refused(embed(client, "hi", dimensions=8), 400, "dimensions")
        assert f"{DIM} dimensions" in message  # the remote server's refusal, passed on
        assert client.get(f"/v1/models/{MODEL}").json()["description"] == f"POST /v1/embeddings: {MODEL}"


def test_an_unreachable_remote_embed_role_is_a_503(tmp_path: Path) -> None:
    remote = {"engine": "openai", "url": f"http://127.0.0.1:{free_port()}/v1", "model": MODEL}
    with TestClient(create_app(settings_for(tmp_path, embed=remote))) as client:
        assert_refused(embed(client, "hi"), 503, None, "engine_unavailable")
