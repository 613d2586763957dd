"""Responses API items and Ember's turns and answers, both ways; plain functions and one builder, no I/O.

Items are JSON objects as OpenAI shapes them (the API layer validates and normalises what a client sends;
the store keeps the same shapes). Input items become intake's `Turn`s (`turns_of`): a `message` is a turn of
its role (`developer` is `system`), its parts in order (`input_text` / `output_text` text, `input_image` an
`ImageRef`, `input_audio` a `Spoken` part); a `function_call` is a call on the assistant turn before it (or a
new one); a `function_call_output` is a `tool` turn answering its `call_id`, which an earlier
`function_call` must have made; a `reasoning` item is the model's own earlier thinking and is not replayed.

An answer becomes output items (`Output`): a `reasoning` item (its text as one `summary_text`), a `message`
with one `output_text` part (citations as `url_citation` annotations on their `[n]` markers), and one
`function_call` per call, in the order their first pieces come. `Output` also says, as it goes, which stream
events tell a client so (each a JSON object without its `sequence_number`, which the API layer numbers).
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ember.errors import InvalidRequest, shown
from ember.intake.chat import ImageRef, Part, Spoken, Turn
from ember.store.responses import Item
from ember.types import Answer, Citation, Delta, Role, ServerCall, ToolCall, ToolCallPiece

Event = dict[str, Any]  # one stream event: `type` and its fields


def new_item_id(prefix: str) -> str:
    """An item id as OpenAI's look: `msg_…`, `rs_…`, `fc_…`, `fco_…`, `call_…`."""
    return f"{prefix}_{uuid.uuid4().hex}"


# -- input items → turns -----------------------------------------------------------------------------------


_PARTS: dict[str, Callable[[Item], Part]] = {
    "input_text": lambda part: str(part["text"]),
    "output_text": lambda part: str(part["text"]),
    "input_image": lambda part: ImageRef(str(part["image_url"])),
    "input_audio": lambda part: Spoken(part["input_audio"]["data"], part["input_audio"]["format"]),
}
_ROLES: dict[str, Role] = {"user": "user", "system": "system", "developer": "system", "assistant": "assistant"}


@dataclass
class _Reading:
    """The turns read so far, the item each began with, and the call ids made so far."""

    first: int  # items before this index are earlier responses' (their positions are not the request's)
    turns: list[Turn] = field(default_factory=list)
    sources: list[int] = field(default_factory=list)
    calls: set[str] = field(default_factory=set)

    def add(self, turn: Turn, source: int) -> None:
        self.turns.append(turn)
        self.sources.append(source)


def _message(reading: _Reading, item: Item, i: int) -> None:
    reading.add(Turn(_ROLES[item["role"]], tuple(_PARTS[p["type"]](p) for p in item["content"])), i)


def _function_call(reading: _Reading, item: Item, i: int) -> None:
    call = ToolCall(item["call_id"], item["name"], item["arguments"])
    reading.calls.add(call.id)
    last = reading.turns[-1] if reading.turns else None
    if last is not None and last.role == "assistant":
        reading.turns[-1] = replace(last, tool_calls=(*last.tool_calls, call))
    else:
        reading.add(Turn("assistant", (), (call,)), i)


def _function_call_output(reading: _Reading, item: Item, i: int) -> None:
    call_id = item["call_id"]
    if call_id not in reading.calls:
        raise InvalidRequest(
            f"No function_call with call_id {shown(call_id)} comes before this function_call_output "
            "(in input, or in the responses previous_response_id continues).",
            param=f"input.{i - reading.first}.call_id",
        )
    output = item["output"]
    text = output if isinstance(output, str) else "".join(str(p.get("text", "")) for p in output)
    reading.add(Turn("tool", (text,), tool_call_id=call_id), i)


def _specialist_call(reading: _Reading, item: Item, i: int) -> None:
    """A specialist the server ran: the call on an assistant turn, then its output as the tool's turn."""
    _function_call(reading, item, i)
    reading.add(Turn("tool", (item["output"],), tool_call_id=item["call_id"]), i)


def _not_replayed(reading: _Reading, item: Item, i: int) -> None:
    """A reasoning item: the model's own earlier thinking, which Ember does not show it again."""


_TURNS: dict[str, Callable[[_Reading, Item, int], None]] = {
    "message": _message,
    "function_call": _function_call,
    "function_call_output": _function_call_output,
    "specialist_call": _specialist_call,
    "reasoning": _not_replayed,
}


def turns_of(items: list[Item], first: int = 0) -> tuple[list[Turn], list[int]]:
    """The turns `items` make, and the index of the item each turn began with. Items before `first` are
    earlier responses' (replayed before the request's own): an error's `param` counts from `first`."""
    reading = _Reading(first)
    for i, item in enumerate(items):
        _TURNS[item["type"]](reading, item, i)
    return reading.turns, reading.sources


def with_transcripts(items: list[Item], heard: list[dict[str, Any]], item_of: list[int | None]) -> list[Item]:
    """`items` with each spoken part that was heard replaced by its transcript as `input_text` (what is stored,
    as chat stores transcripts, not recordings). `item_of[t]` is the index of the item turn `t` came from
    (None: not one of `items`)."""
    out = [dict(item) for item in items]
    for entry in heard:
        where = item_of[entry["message"]]
        if where is None:
            continue
        content = list(out[where]["content"])
        content[entry["part"]] = {"type": "input_text", "text": entry["text"]}
        out[where] = {**out[where], "content": content}
    return out


# -- answer → output items and stream events ---------------------------------------------------------------


def status_of(answer: Answer) -> str:
    """A response's status: `incomplete` when the answer stopped on its length limit, else `completed`."""
    return "incomplete" if answer.finish_reason == "length" else "completed"


def url_citations(text: str, citations: tuple[Citation, ...]) -> list[Item]:
    """A `url_citation` on every `[n]` marker in `text` of a citation with a URL, in text order."""
    found = []
    for citation in citations:
        if citation.url:
            for match in re.finditer(re.escape(f"[{citation.index}]"), text):
                found.append(
                    {
                        "type": "url_citation",
                        "start_index": match.start(),
                        "end_index": match.end(),
                        "url": citation.url,
                        "title": citation.title,
                    }
                )
    return sorted(found, key=lambda a: (a["start_index"], a["url"]))


class Output:
    """An answer's output items, built from its deltas as they come, with the stream events saying so.

    `add(delta)` returns the events for one delta; `finish(answer)` closes every open item (`incomplete` when
    the answer stopped on length), puts the citations on the message, and returns the closing events;
    `items` is the output. A reasoning or message item is closed when another item opens; calls stay open
    until the end (their pieces may interleave)."""

    def __init__(self) -> None:
        self.items: list[Item] = []
        self._text: int | None = None  # the open reasoning or message item
        self._calls: dict[int, int] = {}  # a call's index in the answer → its output index
        self._open_calls: list[int] = []

    def add(self, delta: Delta) -> list[Event]:
        events: list[Event] = []
        if delta.reasoning:
            events += self._text_piece("reasoning", delta.reasoning)
        if delta.content:
            events += self._text_piece("message", delta.content)
        for piece in delta.tool_calls:
            events += self._call_piece(piece)
        for call in delta.server_calls:
            events += self._server_call(call)
        return events

    def finish(self, answer: Answer) -> list[Event]:
        status = status_of(answer)
        for item in self.items:
            if item["type"] == "message":
                part = item["content"][0]
                part["annotations"] = url_citations(part["text"], answer.citations)
        events = self._close_text(status)
        for n in self._open_calls:
            events += _close_call(self.items[n], n, status)
        self._open_calls = []
        return events

    def _open(self, item: Item) -> tuple[int, list[Event]]:
        events = self._close_text("completed")
        self.items.append(item)
        n = len(self.items) - 1
        return n, [*events, {"type": "response.output_item.added", "output_index": n, "item": _copy(item)}]

    def _text_piece(self, kind: str, text: str) -> list[Event]:
        events: list[Event] = []
        if self._text is None or self.items[self._text]["type"] != kind:
            n, events = self._open(_OPENED[kind]())
            part = copy.deepcopy(_PART_ADDED[kind]["part"])
            self.items[n][_PARTS_KEY[kind]].append(part)
            events.append({**_PART_ADDED[kind], "item_id": self.items[n]["id"], "output_index": n, "part": _copy(part)})
            self._text = n
        item = self.items[self._text]
        item[_PARTS_KEY[kind]][0]["text"] += text
        where = {"item_id": item["id"], "output_index": self._text}
        return [*events, {**where, **_DELTA[kind], "delta": text}]

    def _call_piece(self, piece: ToolCallPiece) -> list[Event]:
        events: list[Event] = []
        if piece.index not in self._calls:
            call_id = piece.id or new_item_id("call")
            opened = {"id": new_item_id("fc"), "type": "function_call", "status": "in_progress"}
            n, events = self._open({**opened, "call_id": call_id, "name": piece.name or "", "arguments": ""})
            self._calls[piece.index] = n
            self._open_calls.append(n)
        n = self._calls[piece.index]
        item = self.items[n]
        item["name"] = item["name"] or piece.name or ""
        if piece.arguments:
            item["arguments"] += piece.arguments
            delta = {"type": "response.function_call_arguments.delta", "delta": piece.arguments}
            events.append({**delta, "item_id": item["id"], "output_index": n})
        return events

    def _server_call(self, call: ServerCall) -> list[Event]:
        """A specialist call the server ran: added and done at once (it is over when the answer hears of it)."""
        item = {
            "id": new_item_id("sc"),
            "type": "specialist_call",
            "call_id": call.id,
            "name": call.name,
            "arguments": call.arguments,
            "output": call.output,
            "status": "completed" if call.ok else "failed",
        }
        n, events = self._open(item)
        return [*events, {"type": "response.output_item.done", "output_index": n, "item": _copy(item)}]

    def _close_text(self, status: str) -> list[Event]:
        if self._text is None:
            return []
        n, self._text = self._text, None
        item = self.items[n]
        item["status"] = status
        kind = item["type"]
        where = {"item_id": item["id"], "output_index": n, **_INDEX[kind]}
        part = item[_PARTS_KEY[kind]][0]
        text_done, part_done = _DONE[kind]
        return [
            {"type": text_done, **where, "text": part["text"], **_TEXT_DONE_EXTRA[kind]},
            {"type": part_done, **where, "part": _copy(part)},
            {"type": "response.output_item.done", "output_index": n, "item": _copy(item)},
        ]


def _close_call(item: Item, n: int, status: str) -> list[Event]:
    item["status"] = status
    done = {"type": "response.function_call_arguments.done", "arguments": item["arguments"]}
    return [
        {**done, "item_id": item["id"], "output_index": n},
        {"type": "response.output_item.done", "output_index": n, "item": _copy(item)},
    ]


def _copy(item: Item) -> Item:
    """The item (or part) as it is now: an event keeps what was sent, whatever the item becomes later."""
    return copy.deepcopy(item)


_OPENED: dict[str, Callable[[], Item]] = {
    "reasoning": lambda: {"id": new_item_id("rs"), "type": "reasoning", "summary": [], "status": "in_progress"},
    "message": lambda: {
        "id": new_item_id("msg"),
        "type": "message",
        "role": "assistant",
        "status": "in_progress",
        "content": [],
    },
}
_PART_ADDED: dict[str, Event] = {
    "reasoning": {
        "type": "response.reasoning_summary_part.added",
        "summary_index": 0,
        "part": {"type": "summary_text", "text": ""},
    },
    "message": {
        "type": "response.content_part.added",
        "content_index": 0,
        "part": {"type": "output_text", "text": "", "annotations": []},
    },
}
_PARTS_KEY = {"reasoning": "summary", "message": "content"}  # where an item holds its text part
_INDEX: dict[str, Event] = {"reasoning": {"summary_index": 0}, "message": {"content_index": 0}}  # of that part
_DELTA: dict[str, Event] = {
    "reasoning": {"type": "response.reasoning_summary_text.delta", "summary_index": 0},
    "message": {"type": "response.output_text.delta", "content_index": 0, "logprobs": []},
}
_DONE = {
    "reasoning": ("response.reasoning_summary_text.done", "response.reasoning_summary_part.done"),
    "message": ("response.output_text.done", "response.content_part.done"),
}
_TEXT_DONE_EXTRA: dict[str, Event] = {"reasoning": {}, "message": {"logprobs": []}}


def output_items(answer: Answer) -> list[Item]:
    """The output items of a whole answer: the specialists the server ran, its reasoning, its text, then its
    calls."""
    output = Output()
    pieces = tuple(ToolCallPiece(i, call.id, call.name, call.arguments) for i, call in enumerate(answer.tool_calls))
    output.add(Delta(server_calls=tuple(answer.server_calls)))
    output.add(Delta(content=answer.text, reasoning=answer.thought, tool_calls=pieces))
    output.finish(answer)
    return output.items
