"""The conversation of `ember bench engine`'s turn-2 case: about 1,500 tokens of earlier turns, then a new
question. Sent after its own first turn, llama.cpp's prompt cache holds the history (warm); sent as a
conversation nobody has seen, every token is processed again (cold). Fixed text, no randomness."""

from __future__ import annotations

from typing import Any

from ember.modes.instant import SYSTEM_PROMPT

TURNS = 7  # earlier exchanges: about 220 tokens each with the Qwen2.5 and SmolLM2 tokenizers
TURN_TOKENS = 4  # tokens generated per turn: the case measures time to the first one
CHAPTER = (
    "The keeper climbed the hundred and twelve steps at dusk, trimmed the wick, wound the clockwork that "
    "turned the great lens, and wrote the weather in the log: wind from the south-west, a long swell, a "
    "fishing boat far out rounding the point before the tide turned. He ate bread and smoked fish by the "
    "window and watched the beam sweep the water, counting the seconds between flashes as his father had "
    "taught him, because a light that kept poor time was worse than no light at all. Near midnight the "
    "fog came in from the sea and he started the horn, two long notes every minute, and sat with his coat "
    "on the iron stairs listening for an answer from the water. None came, but in the grey morning he "
    "found a green bottle wedged between the rocks below the tower, its cork sealed with red wax, and "
    "inside it a folded letter in a hand he did not know, addressed to whoever keeps the light."
)
FIRST = "Now tell me what the letter said."
FIRST_ANSWER = "The letter asked the keeper to leave the light burning for one more night, whatever happened."
SECOND = "Who do you think wrote it, and why?"

Body = dict[str, Any]


def history(conversation: int) -> list[dict[str, str]]:
    """The earlier turns of conversation number `conversation` (its number makes its first tokens unique)."""
    messages = [{"role": "system", "content": f"[conversation {conversation:04d}] {SYSTEM_PROMPT}"}]
    for n in range(1, TURNS + 1):
        messages.append({"role": "user", "content": f"Tell me chapter {n} of the lighthouse story."})
        messages.append({"role": "assistant", "content": f"Chapter {n}. {CHAPTER}"})
    return messages


def body(messages: list[dict[str, str]], seed: int) -> Body:
    return {
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": TURN_TOKENS,
        "temperature": 0.0,
        "seed": seed,
    }


def first_turn(conversation: int, seed: int) -> Body:
    return body([*history(conversation), {"role": "user", "content": FIRST}], seed)


def second_turn(conversation: int, seed: int) -> Body:
    """The next turn: the history, the first question and its answer, and a new question."""
    extra = [
        {"role": "user", "content": FIRST},
        {"role": "assistant", "content": FIRST_ANSWER},
        {"role": "user", "content": SECOND},
    ]
    return body([*history(conversation), *extra], seed)
