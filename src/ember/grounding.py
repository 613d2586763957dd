"""Whether a tool call's required arguments come from the conversation, or were made up.

Under `tool_choice` `auto`, a small model asked to call a function calls one even when nothing the person
said fits it, and fills its required arguments with invented values (a triangle's base and height for a
question about the weather). `grounded` is the second check after the relevance gate: every required
argument's value must be traceable to what the person wrote. Rules a reader can follow:
- a number counts when the same number is in the text (digits, or a number word up to twenty, or a percent
  as a fraction: "5%" grounds 0.05);
- a string that is a number counts as that number; any other string counts when one of its words (3+
  letters, not a stop word) is in the text, or when it has no such word (a symbol like "x**2" cannot be
  checked);
- a value from the parameter's `enum`, a boolean and null always count (the model chose, it did not invent);
- lists and objects count when every item counts.
Optional arguments are not checked: a model may fill them with defaults.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ember.types import Tool, ToolCall

_NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*(?:%|percent)")
_WORD = re.compile(r"[^\W_]{3,}")
_LETTERS = re.compile(r"[^\W\d_]{3,}")
_BARE_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
NUMBER_WORDS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
]
STOP = frozenset(
    [
        "the",
        "and",
        "for",
        "with",
        "from",
        "that",
        "this",
        "what",
        "which",
        "are",
        "was",
        "were",
        "has",
        "have",
        "had",
        "not",
        "but",
        "you",
        "your",
        "its",
        "into",
        "per",
        "all",
        "any",
        "can",
        "get",
        "set",
        "use",
        "using",
        "value",
        "values",
    ]
)


def _norm(number: float) -> str:
    """A number as compared: no thousands separators, no trailing zeros ("1,200.50" and 1200.5 alike)."""
    text = f"{number:.10f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


@dataclass(frozen=True)
class Said:
    """What the person wrote, as `grounded` compares it: the numbers and content words in it."""

    numbers: frozenset[str]
    words: frozenset[str]

    @classmethod
    def of(cls, text: str) -> Said:
        lowered = text.lower()
        numbers = {_norm(float(n.replace(",", ""))) for n in _NUMBER.findall(lowered)}
        numbers |= {_norm(float(p) / 100) for p in _PERCENT.findall(lowered)}
        words = set(_WORD.findall(lowered))
        numbers |= {str(i) for i, word in enumerate(NUMBER_WORDS) if word in words}
        return cls(frozenset(numbers), frozenset(words))


def value_grounded(value: object, schema: object, said: Said) -> bool:
    """Whether one argument's `value` (under its JSON `schema`) can be traced to `said`."""
    if isinstance(schema, dict) and value in (schema.get("enum") or ()):
        return True
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int | float):
        return _norm(float(value)) in said.numbers
    if isinstance(value, str):
        if _BARE_NUMBER.fullmatch(value.strip()):
            return _norm(float(value.strip().replace(",", ""))) in said.numbers
        words = set(_LETTERS.findall(value.lower())) - STOP
        return not words or bool(words & said.words)
    items = schema.get("items") if isinstance(schema, dict) else None
    if isinstance(value, list):
        return all(value_grounded(v, items, said) for v in value)
    if isinstance(value, dict):
        fields = schema.get("properties", {}) if isinstance(schema, dict) else {}
        return all(value_grounded(v, fields.get(k), said) for k, v in value.items())
    return True


def grounded(call: ToolCall, tool: Tool, said: Said) -> bool:
    """Whether every required argument of `call` (to `tool`) is present and traceable to `said`."""
    try:
        arguments = json.loads(call.arguments)
    except ValueError:
        return False
    if not isinstance(arguments, dict):
        return False
    properties = tool.parameters.get("properties")
    fields = properties if isinstance(properties, dict) else {}
    required = tool.parameters.get("required")
    names = [str(n) for n in required] if isinstance(required, list) else []
    return all(name in arguments and value_grounded(arguments[name], fields.get(name), said) for name in names)
