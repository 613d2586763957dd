"""Durability: an answer's end reaches the client only after its exchange is committed; SIGKILL of `ember serve`
mid-burst loses no answer a client received (SQLite and, where it runs, PostgreSQL); and the integrity check
finds the damage it is there to find."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner

from ember import registry
from ember.cli import main
from ember.services import Services
from ember.serving.pipeline import Pipeline
from ember.store.sql import SqlStore, open_db
from ember.types import ChatRequest, GenerationParams, Message, Person
from ember_tools.reliability import durability
from ember_tools.reliability.integrity import check

from .conftest import make_settings
from .test_store import PG_ADMIN_URL, ask


async def _ends_after_commit(tmp_path: Path, stream_words: int) -> None:
    registry.load_plugins()
    reply = " ".join(f"word{i}" for i in range(stream_words))
    settings = make_settings(tmp_path, chat_fast={"engine": "fake", "model": "fake", "options": {"replies": [reply]}})
    store = SqlStore(settings.db_url)
    pipeline = Pipeline(Services.open(settings, store))
    request = ChatRequest(
        "ember-instant", [Message("user", "hello there")], GenerationParams(), user=Person("", "dora")
    )
    seen: list[str] = []
    try:
        async for delta in pipeline.chat(request, pipeline.mode("ember-instant")):
            assert request.conversation_id is not None
            stored = store.list_conversations(Person("", "dora"))
            if delta.finish_reason is None:
                assert stored == [], "an exchange was stored before its answer ended"
                seen.append(delta.content)
                continue
            # the end of the answer: by now the whole exchange must be committed
            turns = store.get_conversation(request.conversation_id, Person("", "dora"))["messages"]
            assert [(t["role"], t["content"]) for t in turns] == [("user", "hello there"), ("assistant", reply)]
            assert turns[1]["finish_reason"] == "stop"
            assert "".join(seen) + delta.content == reply
            seen.append("<end>")
    finally:
        await pipeline.services.aclose()
    assert seen[-1] == "<end>" and len(seen) == stream_words + 1


def test_the_end_of_an_answer_comes_only_after_it_is_committed(tmp_path: Path) -> None:
    anyio.run(_ends_after_commit, tmp_path, 6)


def test_sqlite_is_synced_on_every_commit(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'e.db'}")
    try:
        found = check(store.db).facts
    finally:
        store.close()
    assert (found["journal_mode"], found["synchronous"]) == ("wal", "FULL")


def test_the_integrity_check_finds_orphans_gaps_and_half_exchanges(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hurt.db'}"
    store = SqlStore(url)
    for cid in ("conv_a", "conv_b", "conv_c"):
        ask(store, cid, [Message("user", f"q {cid}")], f"a {cid}")
    ask(store, "conv_a", [Message("user", "q"), Message("assistant", "a"), Message("user", "again")], "more")
    assert check(store.db).ok and check(store.db).facts["conversations"] == 3
    store.close()
    raw = sqlite3.connect(tmp_path / "hurt.db")  # foreign keys are off on a plain connection
    with raw:
        raw.execute("DELETE FROM messages WHERE conversation_id = 'conv_b' AND role = 'assistant'")
        raw.execute("DELETE FROM messages WHERE conversation_id = 'conv_a' AND seq = 1")
        orphan = "INSERT INTO messages (conversation_id, seq, role, content, created_at) VALUES (?, 0, 'user', 'x', 0)"
        raw.execute(orphan, ("conv_x",))
    raw.close()
    engine = open_db(url)
    found = check(engine)
    engine.dispose()
    assert not found.ok
    text = "\n".join(found.problems)
    assert "conversation conv_b ends with a user message" in text
    assert "conversation conv_a: messages numbered 0..3, 3 of them" in text
    assert "1 messages follow no earlier turn of their conversation" in text  # conv_a's seq 2 followed seq 1
    assert "1 conversations show a branch that ends at none of their turns" in text  # conv_b's answer went
    assert "1 rows of messages name a missing conversations row" in text
    assert "foreign_key_check" in text
    assert "conv_c" not in text


def _require_postgres(report: dict[str, object]) -> None:
    if report["skipped"]:
        if os.environ.get("EMBER_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{report['skipped']}, and EMBER_REQUIRE_POSTGRES=1")
        pytest.skip(f"{report['skipped']}; set EMBER_REQUIRE_POSTGRES=1 to make this a failure")


@pytest.mark.parametrize(
    ("backend", "rounds"), [("sqlite", 2), pytest.param("postgres", 1, marks=pytest.mark.postgres)]
)
def test_kill_mid_burst_loses_no_received_answer(tmp_path: Path, backend: str, rounds: int) -> None:
    out = tmp_path / "durability.json"
    args = ["reliability", "durability", "--backend", backend, "--rounds", str(rounds), "--json", str(out)]
    args += ["--postgres-url", PG_ADMIN_URL]
    result = CliRunner().invoke(main, args)
    assert out.is_file(), result.output
    report = json.loads(out.read_text())["reports"][0]
    if backend == "postgres":
        _require_postgres(report)
    assert result.exit_code == 0, result.output
    assert report["ok"] and report["backend"] == backend and len(report["rounds"]) == rounds
    checked = 0
    for r in report["rounds"]:
        assert r["acknowledged"] >= durability.CONCURRENCY // 2  # answers arrived before the kill
        assert r["in_flight_at_kill"] + r["cut_off"] >= 1  # and the kill came mid-burst
        assert r["sent"] < durability.MAX_REQUESTS
        checked += r["acknowledged"]
        assert r["checked"] == checked == r["found"]  # every answer so far, from every round, is stored
        assert (r["missing"], r["mismatched"]) == (0, 0)
        assert r["integrity"]["ok"] and r["integrity"]["problems"] == []
        assert r["integrity"]["conversations"] >= checked
    assert report["final_integrity"]["ok"]
    assert f"{backend:<9} final integrity: ok" in result.output
