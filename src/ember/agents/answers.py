"""Reading the short, checkable answer ("Answer: 42", "Answer: B") a solution commits to: what the
reasoning strategies vote on and the evaluations score. Plain text functions; no model calls.

`short_answer` reads only a last "Answer: ..." line; `final_number` and `final_letter` also read what a
solution says less formally ("the answer is 18", its last number; "B. Because ...", "(B)").
"""

from __future__ import annotations

import re

ANSWER_FORMAT = 'End with a last line of the form "Answer: <the short final answer>".'
_ANSWER_LINE = re.compile(r"answer(?:\s+is)?\s*[:=]?\s*(.+)", re.IGNORECASE)
_LETTER = re.compile(r"^\(?([A-J])(?:[\).:]|\s|$)")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def number_of(text: str) -> str | None:
    """The first number in `text`, normalised ("1,200.50" -> "1200.5", "18.0" -> "18"); None if none."""
    match = _NUMBER.search(text)
    if match is None:
        return None
    raw = match.group().replace(",", "")
    return raw.rstrip("0").rstrip(".") if "." in raw else raw


def short_answer(text: str) -> str | None:
    """The short, checkable answer a solution commits to on its last "Answer: ..." line: a choice letter
    (A-J) or a normalised number. None when there is no such line or it holds anything longer."""
    matches = _ANSWER_LINE.findall(text)
    if not matches:
        return None
    said = str(matches[-1]).strip().strip("*").strip()
    if letter := _LETTER.match(said):
        return letter.group(1)
    said = said.removeprefix("$").rstrip(".")
    number = number_of(said)
    if number is None or len(said) > len(number) + 12:  # a sentence that merely contains a number
        return None
    return number


_SAID = re.compile(r"answer is\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)", re.IGNORECASE)
_OPTION = re.compile(r"(?m)^\s*\(?([A-J])[).:]\s+\S")


def final_number(text: str) -> str | None:
    """The number a solution commits to: its "Answer:" line, else "the answer is N", else its last number."""
    said = short_answer(text)
    if said is not None and said not in "ABCDEFGHIJ":
        return said
    if match := _SAID.findall(text):
        return number_of(match[-1])
    numbers = _NUMBER.findall(text)
    return number_of(numbers[-1]) if numbers else None


def letters_in(question: str) -> str:
    """The option letters a multiple-choice question lists ("A) ...", "(B) ...", "C. ..."), in order."""
    return "".join(dict.fromkeys(_OPTION.findall(question)))


def final_letter(text: str, letters: str) -> str | None:
    """The option (one of `letters`) a solution commits to: its "Answer:" line, else "answer is X", else a line
    starting "X." / "(X)", else the first standalone "X." / "X)" in the text."""
    said = short_answer(text)
    if said is not None and said in letters:
        return said
    options = f"[{letters}]"
    for pattern in (
        rf"answer(?: is|:)\s*(?:option\s*)?\(?({options})\b",
        rf"(?m)^\W*\(?({options})[\.\):](?:\s|$)",
        rf"(?m)^\W*\(?({options})\)?\s*$",
        rf"\b({options})[\.\)](?:\s|$)",
    ):
        if m := re.search(pattern, text):
            return m.group(1)
    return None
