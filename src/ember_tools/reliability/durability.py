"""`ember reliability durability`: SIGKILL the server in the middle of a burst of chats, restart it on the
same database, and check that every answer a client fully received is stored, and that the database
passes an integrity check (`ember_tools.reliability.integrity`).

Each round: `ember serve` starts as a subprocess on a free loopback port, on a database made for this run
(a fresh SQLite file; a fresh PostgreSQL database when the server is reachable, dropped afterwards); a
person whose history consent is on sends concurrent chats, half streamed; once a random number of answers
(seeded) has arrived the server gets SIGKILL while other requests are still in flight; it is restarted
and every answer acknowledged so far, in this round and the ones before, is looked up through the API by
its conversation id and compared with what the client received. An answer counts as received when the
client has it whole: the JSON body, or the streamed chunk carrying `finish_reason`.

The model is the scripted fake engine by default (the store is what is under test; its answers take
words at a steady pace, so a kill lands mid-stream), or the packaged SmolLM2-135M with `--engine tiny`.
Bounded: rounds, requests per round and seconds per round are capped; traffic stays on loopback. This
module neither touches an existing database nor measures speed.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import click
import httpx
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from ember.config import Settings
from ember.store.sql import open_db
from ember_tools.reliability.integrity import Integrity, check
from ember_tools.reliability.server import free_port, wait_healthy

PERSON = "durability-probe"
MODE = "ember-instant"
CONCURRENCY = 8
MAX_REQUESTS = 10 * CONCURRENCY  # per round: the kill comes well before they are all sent
ROUND_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 30.0
DEFAULT_ROUNDS = 5
DEFAULT_SEED = 7
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
FAKE = {"engine": "fake", "model": "fake", "parallel": CONCURRENCY, "options": {"delay_s": 0.01}}
TINY = {"engine": "llama_cpp", "model": "chat-tiny", "ctx_size": 1024, "parallel": 4}
ENGINES: dict[str, dict[str, Any]] = {
    "fake": {"chat-fast": FAKE, "chat": FAKE},
    "tiny": {"chat-fast": TINY, "chat": TINY},
}
NO_SPEECH = {"task": "speech", "engine": "fake", "model": "fake"}  # nothing to hear: do not load whisper
MAX_TOKENS = 24


class DurabilityError(click.ClickException):
    """The check could not run (a server that does not start, a database that cannot be made)."""


@dataclass(frozen=True)
class Received:
    """An answer the client had whole: its conversation, the question and what came back."""

    conversation_id: str
    question: str
    answer: str
    streamed: bool


@dataclass
class Round:
    """One kill and restart, in numbers."""

    round: int
    sent: int = 0
    acknowledged: int = 0
    cut_off: int = 0  # requests the kill ended before the client had the whole answer
    in_flight_at_kill: int = 0
    checked: int = 0  # every answer acknowledged so far, looked up after the restart
    found: int = 0
    missing: int = 0
    mismatched: int = 0
    integrity: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    backend: str
    engine: str
    rounds: list[Round] = field(default_factory=list)
    final_integrity: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        bad = any(r.missing or r.mismatched or not r.integrity.get("ok") for r in self.rounds)
        return self.skipped is not None or (not bad and bool(self.final_integrity.get("ok")))


# --- databases -----------------------------------------------------------------------------------------------


class Unreachable(Exception):
    """PostgreSQL is not there to test."""


@contextmanager
def sqlite_database(workdir: Path) -> Iterator[str]:
    yield f"sqlite:///{workdir / 'durability.db'}"


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh database on the server at `admin_url`, dropped afterwards; Unreachable if it cannot be made."""
    url = sa.make_url(admin_url)
    driver = url.set(drivername="postgresql+psycopg") if url.drivername == "postgresql" else url
    admin = sa.create_engine(driver, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    name = f"ember_durability_{uuid.uuid4().hex[:12]}"
    try:
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        except OperationalError as exc:
            raise Unreachable(" ".join(str(exc.orig).split())) from exc
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def integrity_of(url: str) -> Integrity:
    db = open_db(url)
    try:
        return check(db)
    finally:
        db.dispose()


# --- the server ----------------------------------------------------------------------------------------------


class Server:
    """`ember serve` in a subprocess on `database_url`, on a new loopback port each start."""

    def __init__(self, database_url: str, workdir: Path, engine: str, cache_dir: Path) -> None:
        self.database_url = database_url
        self.workdir = workdir
        self.roles = {**ENGINES[engine], "asr": NO_SPEECH}
        self.cache_dir = cache_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = ""
        self.starts = 0

    def start(self) -> str:
        port = free_port()
        self.starts += 1
        env = {k: v for k, v in os.environ.items() if not k.startswith("EMBER_")}
        env |= {
            "EMBER_DATABASE_URL": self.database_url,
            "EMBER_DATA_DIR": str(self.workdir / "data"),
            "EMBER_CACHE_DIR": str(self.cache_dir),
            "EMBER_HOST": "127.0.0.1",
            "EMBER_PORT": str(port),
            "EMBER_ROLES": json.dumps(self.roles),
            "EMBER_CONFIG": str(self.workdir / "no-ember.toml"),  # no config file but this run's
        }
        log = (self.workdir / f"server-{self.starts}.log").open("wb")
        cmd = [sys.executable, "-m", "ember.cli", "serve"]
        self.proc = subprocess.Popen(cmd, env=env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.base = f"http://127.0.0.1:{port}"
        self._wait_healthy()
        return self.base

    def _wait_healthy(self) -> None:
        assert self.proc is not None
        try:
            wait_healthy(self.proc, self.base, self.workdir / f"server-{self.starts}.log")
        except click.ClickException as exc:
            self.kill()
            raise DurabilityError(exc.message) from exc

    def kill(self) -> None:
        """SIGKILL: no shutdown handler, no flush, no goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


# --- the burst -----------------------------------------------------------------------------------------------


async def ask(http: httpx.AsyncClient, question: str, stream: bool) -> Received | None:
    """One chat; the answer if the client had it whole, None if the connection ended first."""
    body = {
        "model": MODE,
        "user": PERSON,
        "stream": stream,
        "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": question}],
    }
    async with http.stream("POST", "/v1/chat/completions", json=body) as resp:
        if resp.status_code != 200:
            raise DurabilityError(f"a chat failed with {resp.status_code}: {(await resp.aread())[:300]!r}")
        cid = resp.headers.get("x-ember-conversation-id")
        if not cid:
            raise DurabilityError("the server said it would not store this person's chat (history consent off?)")
        if not stream:
            data = json.loads(await resp.aread())
            return Received(cid, question, data["choices"][0]["message"]["content"], False)
        parts: list[str] = []
        async for line in resp.aiter_lines():
            if not line.startswith("data: {"):
                continue
            choices = json.loads(line[len("data: ") :]).get("choices") or [{}]
            parts.append(choices[0].get("delta", {}).get("content") or "")
            if choices[0].get("finish_reason"):
                return Received(cid, question, "".join(parts), True)
    return None  # the stream ended without its end: the server died mid-answer


@dataclass
class Burst:
    """The client's side of one round."""

    received: list[Received] = field(default_factory=list)
    sent: int = 0
    cut_off: int = 0
    in_flight: int = 0
    in_flight_at_kill: int = 0
    killed: bool = False


async def burst(base: str, server: Server, round_no: int, kill_after: int) -> Burst:
    """Chats from CONCURRENCY clients until `kill_after` answers have arrived; then SIGKILL, mid-burst."""
    state = Burst()
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT_S, limits=limits, trust_env=False) as http:

        async def client(worker: int) -> None:
            while not state.killed and state.sent < MAX_REQUESTS:
                n = state.sent
                state.sent += 1
                state.in_flight += 1
                question = f"durability probe {round_no}.{n}: name a colour for worker {worker}"
                try:
                    got = await ask(http, question, stream=n % 2 == 1)
                except (httpx.TransportError, json.JSONDecodeError):
                    got = None
                finally:
                    state.in_flight -= 1
                if got is None:
                    state.cut_off += 1
                    continue
                state.received.append(got)
                if len(state.received) >= kill_after and not state.killed:
                    state.in_flight_at_kill = state.in_flight
                    state.killed = True
                    server.kill()

        async with asyncio.timeout(ROUND_TIMEOUT_S):
            await asyncio.gather(*(client(w) for w in range(CONCURRENCY)))
    if not state.killed:  # every request was answered before the count was reached
        server.kill()
    return state


async def look_up(base: str, received: list[Received]) -> tuple[int, int, int]:
    """(found, missing, mismatched): each answer looked up by its conversation id on the restarted server."""
    found = missing = mismatched = 0
    async with httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT_S, trust_env=False) as http:
        for got in received:
            resp = await http.get(f"/v1/conversations/{got.conversation_id}", params={"user": PERSON})
            if resp.status_code == 404:
                missing += 1
                continue
            resp.raise_for_status()
            turns = [(m["role"], m["content"]) for m in resp.json()["messages"]]
            same = turns == [("user", got.question), ("assistant", got.answer)]
            found += same
            mismatched += not same
    return found, missing, mismatched


async def consent_on(base: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT_S, trust_env=False) as http:
        resp = await http.patch("/v1/me/consent", params={"user": PERSON}, json={"history": True})
        resp.raise_for_status()


# --- the rounds ----------------------------------------------------------------------------------------------


def run_backend(database_url: str, backend: str, engine: str, rounds: int, seed: int, workdir: Path) -> Report:
    """Kill and restart the server `rounds` times on one database; look everything up after each restart."""
    report = Report(backend, engine)
    rng = random.Random(seed)
    server = Server(database_url, workdir, engine, Settings().cache_dir)
    acknowledged: list[Received] = []
    try:
        base = server.start()
        asyncio.run(consent_on(base))
        for number in range(1, rounds + 1):
            kill_after = rng.randint(CONCURRENCY // 2, 3 * CONCURRENCY)
            state = asyncio.run(burst(base, server, number, kill_after))
            acknowledged += state.received
            base = server.start()
            found, missing, mismatched = asyncio.run(look_up(base, acknowledged))
            report.rounds.append(
                Round(
                    number,
                    state.sent,
                    len(state.received),
                    state.cut_off,
                    state.in_flight_at_kill,
                    len(acknowledged),
                    found,
                    missing,
                    mismatched,
                    integrity_of(database_url).as_dict(),
                )
            )
    finally:
        server.stop()
    report.final_integrity = integrity_of(database_url).as_dict()
    return report


def run(backends: tuple[str, ...], engine: str, rounds: int, seed: int, pg_admin_url: str) -> list[Report]:
    """Every backend asked for, each on a database made for this run; PostgreSQL skipped if unreachable."""
    reports = []
    with tempfile.TemporaryDirectory(prefix="ember-durability-") as tmp:
        for backend in backends:
            workdir = Path(tmp) / backend
            workdir.mkdir()
            databases = {
                "sqlite": partial(sqlite_database, workdir),
                "postgres": partial(postgres_database, pg_admin_url),
            }
            try:
                with databases[backend]() as url:
                    reports.append(run_backend(url, backend, engine, rounds, seed, workdir))
            except Unreachable as exc:
                reports.append(Report(backend, engine, skipped=f"PostgreSQL is not reachable: {exc}"))
    return reports


def table(reports: list[Report]) -> str:
    head = f"{'BACKEND':<9} {'ROUND':>5} {'SENT':>5} {'ACKED':>5} {'CUT':>4} {'INFLIGHT':>8} "
    head += f"{'CHECKED':>7} {'FOUND':>5} {'MISSING':>7} {'MISMATCH':>8}  INTEGRITY"
    lines = [head]
    for rep in reports:
        if rep.skipped:
            lines.append(f"{rep.backend:<9} skipped: {rep.skipped}")
            continue
        for r in rep.rounds:
            verdict = "ok" if r.integrity.get("ok") else "FAILED: " + "; ".join(r.integrity.get("problems", []))[:200]
            lines.append(
                f"{rep.backend:<9} {r.round:>5} {r.sent:>5} {r.acknowledged:>5} {r.cut_off:>4} "
                f"{r.in_flight_at_kill:>8} {r.checked:>7} {r.found:>5} {r.missing:>7} {r.mismatched:>8}  {verdict}"
            )
        final = rep.final_integrity
        settings = ", ".join(f"{k}={v}" for k, v in final.items() if k not in {"ok", "problems", "checks"})
        lines.append(f"{rep.backend:<9} final integrity: {'ok' if final.get('ok') else 'FAILED'} ({settings})")
    return "\n".join(lines)


@click.command()
@click.option("--rounds", type=click.IntRange(1, 20), default=DEFAULT_ROUNDS, show_default=True)
@click.option(
    "--backend",
    "backends",
    type=click.Choice(["sqlite", "postgres"]),
    multiple=True,
    default=("sqlite", "postgres"),
    show_default=True,
    help="repeat for several; postgres is skipped (and said so) when unreachable",
)
@click.option("--engine", type=click.Choice(sorted(ENGINES)), default="fake", show_default=True)
@click.option("--seed", default=DEFAULT_SEED, show_default=True, help="chooses when each kill comes")
@click.option("--postgres-url", default=PG_ADMIN_URL, show_default=True, help="a server to make a scratch db on")
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help="default: stdout"
)
def durability(
    rounds: int, backends: tuple[str, ...], engine: str, seed: int, postgres_url: str, json_path: Path | None
) -> None:
    """SIGKILL `ember serve` mid-burst, restart it, check every received answer is stored and the db is sound."""
    started = time.perf_counter()
    reports = run(backends, engine, rounds, seed, postgres_url)
    click.echo(table(reports))
    payload = {
        "seconds": round(time.perf_counter() - started, 1),
        "concurrency": CONCURRENCY,
        "seed": seed,
        "reports": [{**asdict(r), "ok": r.ok} for r in reports],
    }
    if json_path is None:
        click.echo(json.dumps(payload, indent=2))
    else:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(payload, indent=2))
        click.echo(f"wrote {json_path}")
    if not all(r.ok for r in reports):
        raise click.ClickException("answers the client received were lost, or the database failed its checks")
