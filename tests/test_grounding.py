"""The second check on a call under `tool_choice` auto: are its required arguments taken from what the
person wrote (`ember.grounding`)? Plain functions, no model."""

from __future__ import annotations

import json

import pytest

from ember.grounding import Said, grounded, value_grounded
from ember.types import Tool, ToolCall

AREA = Tool(
    "triangle_area",
    "The area of a triangle",
    {
        "type": "object",
        "properties": {
            "base": {"type": "number"},
            "height": {"type": "number"},
            "unit": {"type": "string", "enum": ["cm", "m"]},
            "label": {"type": "string"},
        },
        "required": ["base", "height"],
    },
)


def call(**arguments: object) -> ToolCall:
    return ToolCall("call_1", AREA.name, json.dumps(arguments))


@pytest.mark.parametrize(
    ("text", "arguments", "expected"),
    [
        ("Find the area of a triangle with base 10 and height 5.", {"base": 10, "height": 5}, True),
        ("Base 1,200.50 m and height 3", {"base": 1200.5, "height": 3.0}, True),
        ("a triangle with a base of ten and a height of four", {"base": 10, "height": 4}, True),
        ("What's the weather in Paris?", {"base": 10, "height": 5}, False),
        ("base 10 please", {"base": 10, "height": 5}, False),  # one made-up number is enough
        ("base 10 and height 5", {"base": 10}, False),  # a required argument is missing
        ("base 10 and height 5", {"base": 10, "height": 5, "label": "invented", "unit": "m"}, True),  # optional
    ],
)
def test_required_numbers_must_come_from_the_text(text: str, arguments: dict[str, object], expected: bool) -> None:
    assert grounded(call(**arguments), AREA, Said.of(text)) is expected


def test_strings_lists_enums_and_percents() -> None:
    said = Said.of("Book a table at Luigi's in New York for 4 people; tip 15%.")
    assert value_grounded("New York, NY", {"type": "string"}, said)
    assert not value_grounded("San Francisco", {"type": "string"}, said)
    assert value_grounded("x**2", {"type": "string"}, said)  # nothing in it can be checked
    assert value_grounded(0.15, {"type": "number"}, said)
    assert value_grounded("c", {"enum": ["c", "f"]}, said)
    assert value_grounded([4, "new york"], {"type": "array"}, said)
    assert not value_grounded([4, 7], {"type": "array", "items": {"type": "integer"}}, said)
    assert value_grounded({"city": "York"}, {"type": "object", "properties": {}}, said)
    assert value_grounded(True, {"type": "boolean"}, said) and value_grounded(None, {}, said)


def test_arguments_that_are_not_an_object_are_not_grounded() -> None:
    assert not grounded(ToolCall("c", AREA.name, "[1, 2]"), AREA, Said.of("1 2"))
    assert not grounded(ToolCall("c", AREA.name, "not json"), AREA, Said.of("not json"))
