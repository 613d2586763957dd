"""Validation of shopping records (catalogue items, behaviour events, shared posts, friendships), one row at a
time, and reading them from CSV or JSONL files with line numbers.

A bad row becomes a `RowError` that names it (its line in a file, its index in an API batch) and says what
is wrong; the good rows go on. JSON rows (the API, JSONL) are typed strictly (a string is not a price);
CSV cells are all text and are converted. This module neither writes to the store nor checks that the
items an event or post names exist (`ember.shopping.data` does, with the database at hand).
"""

from __future__ import annotations

import csv
import json
import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ember.errors import InvalidRequest

EVENT_KINDS = ("view", "click", "like", "add_to_cart", "purchase", "rating", "share")
AUDIENCES = ("public", "friends", "people")
RATING_MIN, RATING_MAX = 0.0, 5.0
MAX_TEXT = 4000  # characters of a description or a post
MAX_TITLE = 300
MAX_LINKED = 20  # items one post may link, people one post may name
NAME = r"^\S(.*\S)?$"  # no leading or trailing whitespace
ITEM_ID = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$"
LIST_SEPARATOR = ";"  # between items or people in one CSV cell
FORMATS = ("csv", "jsonl")


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ItemIn(_Row):
    """A catalogue item; `attributes` is a flat JSON object (colour, size, brand…)."""

    id: str = Field(pattern=ITEM_ID)
    title: str = Field(min_length=1, max_length=MAX_TITLE)
    description: str = Field(default="", max_length=MAX_TEXT)
    category: str = Field(min_length=1, max_length=128)
    price: float = Field(ge=0)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    attributes: dict[str, str | int | float | bool | list[str]] = Field(default_factory=dict)

    @field_validator("price")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @field_validator("attributes", mode="before")
    @classmethod
    def _json_text(cls, value: Any) -> Any:
        if isinstance(value, str):  # a CSV cell
            try:
                return json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a JSON object ({exc.msg})") from exc
        return value


class EventIn(_Row):
    """One thing a person did with an item. `value` is the rating (0 to 5) and only for `rating`; `timestamp` is
    epoch seconds or ISO 8601 (default: now)."""

    user: str = Field(min_length=1, max_length=256, pattern=NAME)
    item: str = Field(pattern=ITEM_ID)
    type: Literal["view", "click", "like", "add_to_cart", "purchase", "rating", "share"]
    value: float | None = Field(default=None, ge=RATING_MIN, le=RATING_MAX)
    timestamp: float | str | None = Field(default=None, validate_default=True)

    @field_validator("timestamp")
    @classmethod
    def _epoch(cls, value: float | str | None) -> float:
        return time.time() if value is None else to_epoch(value)

    @model_validator(mode="after")
    def _rating_has_value(self) -> EventIn:
        if (self.type == "rating") != (self.value is not None):
            raise ValueError("`value` is required for a rating and only for a rating")
        return self

    @property
    def ts(self) -> float:
        assert isinstance(self.timestamp, float)
        return self.timestamp


class PostIn(_Row):
    """A post someone shared about items, seen by everyone in their tenant (`public`), by their friends
    (`friends`), or by the `people` it names (`people`)."""

    id: str = Field(default_factory=lambda: "post_" + uuid.uuid4().hex[:20], pattern=ITEM_ID, max_length=64)
    author: str = Field(min_length=1, max_length=256, pattern=NAME)
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    items: list[str] = Field(default_factory=list, max_length=MAX_LINKED)
    audience: Literal["public", "friends", "people"] = "friends"
    people: list[str] = Field(default_factory=list, max_length=MAX_LINKED)
    created_at: float | str | None = Field(default=None, validate_default=True)

    @field_validator("items", "people", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):  # a CSV cell: "a;b;c"
            return [part.strip() for part in value.split(LIST_SEPARATOR) if part.strip()]
        return value

    @field_validator("created_at")
    @classmethod
    def _epoch(cls, value: float | str | None) -> float:
        return time.time() if value is None else to_epoch(value)

    @model_validator(mode="after")
    def _named_audience(self) -> PostIn:
        if (self.audience == "people") != bool(self.people):
            raise ValueError("`people` names the audience when `audience` is 'people', and only then")
        return self


class FriendshipIn(_Row):
    """Two people who are friends (both ways)."""

    user: str = Field(min_length=1, max_length=256, pattern=NAME)
    friend: str = Field(min_length=1, max_length=256, pattern=NAME)

    @model_validator(mode="after")
    def _two_people(self) -> FriendshipIn:
        if self.user == self.friend:
            raise ValueError("a person cannot befriend themselves")
        return self


RECORDS: dict[str, type[_Row]] = {"catalog": ItemIn, "events": EventIn, "posts": PostIn, "friendships": FriendshipIn}
R = TypeVar("R", bound=_Row)


def to_epoch(value: float | str) -> float:
    """Epoch seconds from a number or an ISO 8601 text (a text without a zone is UTC)."""
    if isinstance(value, float | int):
        if not math.isfinite(value) or value < 0:
            raise ValueError("must be epoch seconds (a non-negative number)")
        return float(value)
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError("must be epoch seconds or an ISO 8601 date-time") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


@dataclass(frozen=True)
class RowError:
    """A rejected row: where it is (`line` in a file, or `index` in a batch) and why."""

    where: int
    message: str

    def as_dict(self, label: str = "line") -> dict[str, object]:
        return {label: self.where, "message": self.message}


def _message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def validate(
    kind: type[R], rows: Iterator[tuple[int, Any]], *, text: bool = False
) -> tuple[list[tuple[int, R]], list[RowError]]:
    """Validate numbered rows, keeping their numbers; `text` for CSV rows (cells are strings, converted)."""
    good: list[tuple[int, R]] = []
    bad: list[RowError] = []
    for where, row in rows:
        if isinstance(row, RowError):
            bad.append(row)
            continue
        if not isinstance(row, dict):
            bad.append(RowError(where, "a row must be a JSON object"))
            continue
        cells = {k: v for k, v in row.items() if not (text and v in ("", None))}
        try:
            good.append((where, kind.model_validate(cells, strict=not text)))
        except ValidationError as exc:
            bad.append(RowError(where, _message(exc)))
    return good, bad


def file_format(path: Path, given: str | None) -> str:
    fmt = given or path.suffix.lower().lstrip(".")
    if fmt == "ndjson":
        fmt = "jsonl"
    if fmt not in FORMATS:
        raise InvalidRequest(f"{path.name}: say --format csv or jsonl (the name ends in {path.suffix or 'nothing'})")
    return fmt


def read_rows(path: Path, fmt: str) -> Iterator[tuple[int, Any]]:
    """(line number, row) for each record of a CSV (with a header line) or JSONL file; a line that is not
    JSON is yielded as a RowError in place of its row."""
    with path.open(newline="", encoding="utf-8") as f:
        if fmt == "csv":
            reader = csv.DictReader(f)
            for row in reader:
                if None in row:
                    yield reader.line_num, RowError(reader.line_num, "more cells than the header has columns")
                else:
                    yield reader.line_num, row
            return
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, RowError(number, f"not JSON ({exc.msg})")
