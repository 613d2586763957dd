"""The health knowledge index while a server starts: ember-health answers from triage without sources (and
says so) until the index is built, then with sources; a server builds a missing index in a child process
and reports its progress in /health and the log without stalling its event loop; length-bucketed batches
embed exactly as one text at a time does; the index's int8 model is made once and embeds close to the
packaged one."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ember.api.app import create_app
from ember.assets.assemble import ensure_asset
from ember.assets.catalogue import CATALOGUE
from ember.engines.embeddings import FAST, FULL, Embedder, Embedders, buckets, fast_model
from ember.medical import service
from ember.medical.knowledge import build_index, icd10cm_entries
from ember.medical.service import Knowledge
from ember.modes.health import DISCLAIMER, PREPARING, UNAVAILABLE

from .conftest import make_settings

CACHE = Path.home() / ".cache" / "ember"
# a small index from the real ICD-10-CM source, at normal priority (on a busy shared machine the default
# lowest priority can leave the worker almost no CPU)
SMALL = ("--limit", "300", "--source", "icd-10-cm", "--nice", "0")
RED_FLAG = "my husband has crushing chest pain and is sweating"


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(ensure_asset(CATALOGUE["embed"], CACHE))


def test_buckets_hold_similar_lengths_within_the_budget() -> None:
    lengths = [40, 3, 250, 41, 7, 40, 300, 39, 12, 40]
    batches = list(buckets(lengths, batch_tokens=100, max_rows=3))
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    widths = [[lengths[i] for i in batch] for batch in batches]
    assert [w for batch in widths for w in batch] == sorted(lengths)  # shortest first
    assert all(len(b) <= 3 and (len(b) == 1 or len(b) * max(b) <= 100) for b in widths), widths
    assert [300] in widths  # longer than the budget: alone


def test_bucketed_batches_embed_as_one_text_at_a_time(embedder: Embedder) -> None:
    texts = [
        "fever",
        "A00 Cholera. Also called: cholera infection.",
        "Seizure. A seizure is an intermittent abnormality of nervous system physiology " * 3,
        "",
        "Type 2 diabetes mellitus with hyperglycemia",
        "word " * 400,  # beyond MAX_TOKENS: cut
        "chest pain radiating to the left arm",
    ]
    alone = np.stack([embedder.embed([t])[0] for t in texts])
    seen: list[int] = []
    together = embedder.embed(texts, batch_tokens=64, progress=seen.append)  # several buckets, padded within
    assert sum(seen) == len(texts) and len(seen) > 2
    cosine = (alone * together).sum(axis=1)
    assert np.all(cosine > 1 - 1e-5), cosine
    assert np.allclose(np.linalg.norm(together, axis=1), 1, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


def test_the_index_model_is_made_once_and_finds_what_the_packaged_one_finds(embedder: Embedder, tmp_path: Path) -> None:
    packaged = ensure_asset(CATALOGUE["embed"], CACHE)
    directory = tmp_path / "minilm"
    directory.mkdir()
    for name in (FULL, "tokenizer.json"):
        (directory / name).symlink_to((packaged / name).resolve())
    (directory / "model-int8-000000000000.onnx").write_bytes(b"derived from an earlier package")
    assert fast_model(directory) == FAST
    assert sorted(p.name for p in directory.glob("*.onnx")) == sorted([FULL, FAST])  # the stale one is gone
    made = (directory / FAST).stat().st_mtime_ns
    assert fast_model(directory) == FAST and (directory / FAST).stat().st_mtime_ns == made  # not made again
    fast = Embedder(directory, model=FAST)
    keys = [
        "A00 Cholera. Also called: cholera infection.",
        "I21 Acute myocardial infarction. Includes: heart attack.",
        "E11 Type 2 diabetes mellitus.",
        "Seizure. A seizure is an intermittent abnormality of nervous system physiology.",
        "J45 Asthma. Includes: allergic (predominantly) asthma.",
        "Marfan syndrome. Features: arachnodactyly, ectopia lentis, aortic root aneurysm.",
    ]
    queries = ["watery diarrhoea after drinking river water", "heart attack", "high blood sugar", "a fit", "wheezing"]
    full_keys, fast_keys = embedder.embed(keys), fast.embed(keys)
    assert np.all((full_keys * fast_keys).sum(axis=1) > 0.97)
    for query in queries:  # the same nearest key by either model
        assert np.argmax(full_keys @ embedder.embed([query])[0]) == np.argmax(fast_keys @ fast.embed([query])[0])
    alone = np.stack([fast.embed([k])[0] for k in keys])
    # activations are quantized per batch: near, not equal (cosine alone vs in a batch of 1,500 health keys:
    # mean 0.993, min 0.980 on an AVX2 machine; these six gave 0.9896-0.9921 there, above 0.99 on another)
    assert np.all((alone * fast_keys).sum(axis=1) > 0.97)
    assert np.allclose(np.linalg.norm(fast_keys, axis=1), 1, atol=1e-5)


def ask(client: TestClient, text: str) -> dict[str, Any]:
    body = {"model": "ember-health", "messages": [{"role": "user", "content": text}]}
    resp = client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_without_the_index_ember_health_answers_from_triage_and_says_so(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, chat_fast={"engine": "fake", "model": "f", "options": {"replies": ["See [1]."]}})
    with TestClient(create_app(settings)) as client:
        missing = {"ready": False, "building": False, "done": 0, "total": 0}
        assert client.get("/health").json()["health_index"] == missing
        data = ask(client, RED_FLAG)
        text = data["choices"][0]["message"]["content"]
        assert text.startswith("**This may be an emergency.** Call your local emergency number now")
        assert UNAVAILABLE in text and "ember health build" in text and text.rstrip().endswith(f"_{DISCLAIMER}_")
        assert "Sources:" not in text and not data.get("citations")
        knowledge = client.app.state.services.knowledge  # type: ignore[attr-defined]
        build_index(knowledge.target(), knowledge.embedder(), limit=300, sources={"icd-10-cm": icd10cm_entries})
        assert client.get("/health").json()["health_index"] == {"ready": True, "building": False, "done": 0, "total": 0}
        data = ask(client, "What is cholera?")  # the index built meanwhile is opened and used
        text = data["choices"][0]["message"]["content"]
        assert UNAVAILABLE not in text and "\n\nSources:\n[1] A00" in text
        assert data["citations"][0]["id"].startswith("ICD-10-CM:A00")
        assert client.get("/health").json()["health_index"]["total"] == 300


def test_a_server_builds_a_missing_index_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(service, "WORKER_ARGS", SMALL)
    monkeypatch.setattr(service, "LOG_EVERY_S", 0.0)
    caplog.set_level(logging.INFO, logger=service.__name__)
    settings = make_settings(tmp_path, chat_fast={"engine": "fake", "model": "f"})
    with TestClient(create_app(settings.model_copy(update={"build_health_index": True}))) as client:
        text = ask(client, RED_FLAG)["choices"][0]["message"]["content"]  # the worker is still starting
        assert text.startswith("**This may be an emergency.**") and PREPARING in text and "Sources:" not in text
        assert client.get("/health").json()["health_index"]["building"] is True
        deadline = time.monotonic() + 120
        while not (status := client.get("/health").json()["health_index"])["ready"]:
            assert time.monotonic() < deadline and "error" not in status, status
            time.sleep(0.2)
        assert status == {"ready": True, "building": False, "done": 300, "total": 300}
        text = ask(client, "What is cholera?")["choices"][0]["message"]["content"]
        assert PREPARING not in text and "\n\nSources:\n[1] A00" in text
        while not any((ready := r.getMessage()).startswith("health index ready:") for r in caplog.records):
            assert time.monotonic() < deadline  # the worker said so just after renaming the index into place
            time.sleep(0.1)
    assert ready.startswith("health index ready: 300 entries in")
    logged = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("health index: building in the background") for m in logged), logged
    assert logged.count("health index: 300 of 300 entries embedded (100%)") == 1, logged


async def test_the_build_does_not_stall_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "WORKER_ARGS", SMALL)
    knowledge = Knowledge(Embedders(tmp_path / "cache"))
    build = asyncio.create_task(knowledge.keep_built())
    worst = 0.0
    seen: list[dict[str, Any]] = []
    while not build.done():
        before = time.monotonic()
        await asyncio.sleep(0.01)
        worst = max(worst, time.monotonic() - before - 0.01)
        seen.append(knowledge.status())
    await build
    assert knowledge.status() == {"ready": True, "building": False, "done": 300, "total": 300}
    assert any(s["building"] and s["total"] > 0 for s in seen)  # progress was visible while it built
    assert worst < 0.5, worst  # the loop turned while the child read sources and embedded (2 shared cores)


async def test_a_failed_build_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "WORKER_ARGS", ("--limit", "many"))  # the worker refuses its arguments
    knowledge = Knowledge(Embedders(tmp_path / "cache"))
    await knowledge.keep_built()
    status = knowledge.status()
    assert status["ready"] is False and status["building"] is False
    assert status["error"] == "the build worker exited with status 2"


def workers_for(cache: Path) -> list[str]:
    """Process ids of build workers writing into `cache`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"ember.medical.worker" in command and str(cache).encode() in command:
            found.append(proc.name)
    return found


async def test_stopping_the_server_ends_the_build(tmp_path: Path) -> None:
    knowledge = Knowledge(Embedders(tmp_path / "cache"))  # a full build, stopped long before it could end
    build = asyncio.create_task(knowledge.keep_built())
    deadline = time.monotonic() + 30
    while not workers_for(tmp_path / "cache"):
        assert time.monotonic() < deadline and not build.done()
        await asyncio.sleep(0.05)
    build.cancel()
    with pytest.raises(asyncio.CancelledError):
        await build
    assert workers_for(tmp_path / "cache") == []
    assert knowledge.status()["building"] is False and knowledge.status()["ready"] is False
