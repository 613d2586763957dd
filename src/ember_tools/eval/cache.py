"""What the resumable evaluations (`ember eval tools`, `ember eval reasoning`) share: the per-item JSONL cache,
what its keys are made of (a digest of JSON-able parts, a model file's identity, module sources), and the
fixed-seed order that splits a question set into a dev slice and the reported sample, cut into shards.

A key names what an answer depends on, so an answer is reused exactly while that holds: a changed prompt,
model file or piece of code gives a new key, and the old record is simply not counted any more.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import click

from ember.assets.assemble import resolve_model
from ember.config import Settings
from ember.errors import ConfigError

T = TypeVar("T")
RECORD_START = '{"key": '  # how every record's JSON begins


def digest(*parts: object) -> str:
    """The sha256 of `parts` as JSON (keys sorted; anything else as its str)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def model_id(path: Path) -> str:
    """The model file as the cache knows it: its name and size, and its sha256 from the `.verified` stamp
    Ember's assets write beside it (modification time if there is none)."""
    stamp = path.with_name(path.name + ".verified")
    try:
        return f"{path.name}:{path.stat().st_size}:{json.loads(stamp.read_text())['sha256']}"
    except (OSError, ValueError, KeyError):
        return f"{path.name}:{path.stat().st_size}:{path.stat().st_mtime_ns}"


def model_file(settings: Settings, role: str) -> Path | None:
    """The role's model file here; None when its engine names a model it serves itself (remote, fake)."""
    try:
        return resolve_model(settings.roles[role].model, settings.cache_dir)
    except ConfigError:
        return None


def role_models(settings: Settings, roles: tuple[str, ...]) -> list[str]:
    """Each role's model as the cache knows it: its file's `model_id`, or, for a model that is no file here
    (a remote engine's model name, the fake engine's), the engine and the name."""
    files = [(role, model_file(settings, role)) for role in roles]
    return [model_id(f) if f else f"{settings.roles[r].engine}:{settings.roles[r].model}" for r, f in files]


def sources(*code: ModuleType | Callable[..., object]) -> list[str]:
    """The source text of each module or function, in order (what a prompt-writing piece of code is, for a key)."""
    return [inspect.getsource(piece) for piece in code]


class Cache:
    """Scored items, one JSON object a line under its "key", appended as they are scored. Each line goes to
    the file in one `O_APPEND` write and is fsynced, so several processes (shards) can append to one file and
    a killed run loses only what it had not written yet. A killed run's torn last line is skipped; the next
    record, written after it on the same line, is still read (records start with their key)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, dict[str, Any]] = {}
        text = path.read_text() if path.is_file() else ""
        for line in text.split("\n"):  # not splitlines(): answers may hold U+2028 and its kin
            record = _record(line)
            if record is not None:
                self.records[record["key"]] = record

    def add(self, record: dict[str, Any]) -> None:
        self._append((json.dumps(record, ensure_ascii=False) + "\n").encode())
        self.records[record["key"]] = record

    def _append(self, line: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, line)
            if written != len(line):  # a regular file takes it whole; anything less is a torn line
                raise OSError(f"{self.path}: wrote {written} of {len(line)} bytes")
            os.fsync(fd)
        finally:
            os.close(fd)


def _record(line: str) -> dict[str, Any] | None:
    """The record on `line`, or the one after a torn record's remains on it; None if there is none."""
    start = 0
    while start >= 0:
        try:
            record = json.loads(line[start:])
            if isinstance(record, dict) and "key" in record:
                return record
        except ValueError:
            pass
        start = line.find(RECORD_START, start + 1)
    return None


def split(
    items: list[T], key: Callable[[T], str], salt: str, dev_items: int, limit: int, dev: bool, dev_tail: int = 0
) -> list[T]:
    """The reported sample: `limit` items after the first `dev_items` of an order shuffled with `salt` (from
    `items` sorted by `key`); with `dev`, the dev slice: those first `dev_items` and the last `dev_tail`. The
    two never overlap (a `limit` that would reach the tail is refused), and a smaller `limit` is a prefix of a
    larger one."""
    order = sorted(items, key=key)
    random.Random(salt).shuffle(order)
    tail = order[len(order) - dev_tail :] if dev_tail else []
    if dev:
        return order[:dev_items] + tail
    if dev_items + limit > len(order) - len(tail):
        raise click.BadParameter(f"at most {len(order) - len(tail) - dev_items} items", param_hint="--limit")
    return order[dev_items : dev_items + limit]


def shard_of(items: list[T], shard: str) -> list[T]:
    """Shard `i/n` of `items`: every n-th item from the i-th (0 <= i < n)."""
    try:
        index, count = (int(x) for x in shard.split("/"))
    except ValueError:
        index, count = -1, 0
    if not 0 <= index < count:
        raise click.BadParameter(f"shard {shard!r}: want i/n with 0 <= i < n", param_hint="--shard")
    return items[index::count]


def interleaved(groups: dict[str, list[T]]) -> Iterator[T]:
    """Item 1 of every group, then item 2 of every group, …"""
    for i in range(max((len(g) for g in groups.values()), default=0)):
        for group in groups.values():
            if i < len(group):
                yield group[i]
