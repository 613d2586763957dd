"""The shopper's intent: what they want (`query`), in which `category`, for how much (`budget`), and any
`constraints` (colour, size, use…), from their own words only.

The model is asked for JSON matching `schema(categories)`; engines that support it constrain decoding to
that schema. Its reply is parsed leniently (the first JSON object in the text), each field is checked on
its own, and readable rules fill in or overrule what the model got wrong: a category or budget the
shopper actually wrote wins over the model's, a budget the shopper never wrote is dropped, and with no
usable JSON the shopper's text itself is the query. Catalogue text never reaches this step, so nothing
in a product description can change the intent. A follow-up ("cheaper?", "in blue?", "and for kids?")
refines the intent of the shopper's earlier message (`refine`) instead of starting over. This module does
not call engines.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

MAX_QUERY = 200
MAX_CONSTRAINTS = 6
SYSTEM_PROMPT = (
    "You turn a shopper's message into JSON with exactly these keys: "
    '"query" (what they are looking for, a few words), "category" (one of: {categories}; or null), '
    '"budget" (the most they will pay, a number, or null) and "constraints" (a list of short requirements). '
    "Reply with the JSON object only."
)
BUDGET = re.compile(
    r"(?:under|below|less than|no more than|not more than|max(?:imum)?|up to|within|budget(?: of| is)?|"
    r"at most|cheaper than|<=?)\s*(?:[$€£]|usd|eur|gbp)?\s*(\d+(?:[.,]\d{1,2})?)",
    re.IGNORECASE,
)
BUDGET_AFTER = re.compile(
    r"(\d+(?:[.,]\d{1,2})?)\s*(?:[$€£]|dollars|euros|pounds|usd|eur|gbp)?\s*(?:or less|max)\b", re.I
)
NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
FILLER = re.compile(
    r"\b(?:i(?:'m| am)? (?:looking|searching) for|i (?:want|need)|can you|could you|please|recommend|suggest|"
    r"show me|find me|some|any|a|an|the|me)\b",
    re.IGNORECASE,
)


def schema(categories: list[str]) -> dict[str, object]:
    """The JSON schema of an intent, with the catalogue's categories as the only allowed ones."""
    return {
        "type": "object",
        "properties": {
            "query": {"type": "string", "maxLength": MAX_QUERY},
            "category": {"anyOf": [{"type": "string", "enum": categories}, {"type": "null"}]}
            if categories
            else {"type": "null"},
            "budget": {"anyOf": [{"type": "number", "minimum": 0}, {"type": "null"}]},
            "constraints": {
                "type": "array",
                "items": {"type": "string", "maxLength": 60},
                "maxItems": MAX_CONSTRAINTS,
            },
        },
        "required": ["query", "category", "budget", "constraints"],
        "additionalProperties": False,
    }


@dataclass(frozen=True)
class Intent:
    query: str
    category: str | None = None
    budget: float | None = None
    constraints: tuple[str, ...] = ()
    source: str = "rules"  # "model", "rules" or "model+rules": where the fields came from
    notes: tuple[str, ...] = field(default=(), compare=False)  # what the checks changed, for traces
    category_stated: bool = False  # the shopper named the category (not only the model)

    def search_text(self) -> str:
        return " ".join([self.query, *self.constraints]).strip()

    def without_category(self, why: str) -> Intent:
        return replace(self, category=None, notes=(*self.notes, why))

    def as_dict(self) -> dict[str, object]:
        return {
            "query": self.query,
            "category": self.category,
            "budget": self.budget,
            "constraints": list(self.constraints),
            "source": self.source,
        }


def first_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in `text` (after code fences or chatter), or None."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text[match.start() :])
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    if isinstance(value, str) and (found := NUMBER.search(value)):
        return float(found.group().replace(",", "."))
    return None


def _category_in(text: str, categories: list[str]) -> str | None:
    """A category the text names (also in the singular), the longest name first."""
    lowered = text.lower()
    for name in sorted(categories, key=len, reverse=True):
        stem = name.lower().rstrip("s")
        if re.search(rf"\b{re.escape(stem)}s?\b", lowered):
            return name
    return None


def _match_category(value: Any, categories: list[str]) -> str | None:
    if not isinstance(value, str):
        return None
    return next((c for c in categories if c.lower() == value.strip().lower()), None) or _category_in(value, categories)


def rule_budget(text: str) -> float | None:
    found = BUDGET.search(text) or BUDGET_AFTER.search(text)
    return float(found.group(1).replace(",", ".")) if found else None


def rule_query(text: str) -> str:
    """The shopper's words without budget phrases and filler."""
    stripped = BUDGET.sub(" ", text)
    stripped = FILLER.sub(" ", stripped)
    stripped = re.sub(r"[^\w\s'-]", " ", stripped)
    return " ".join(stripped.split())[:MAX_QUERY] or text.strip()[:MAX_QUERY]


def from_rules(text: str, categories: list[str]) -> Intent:
    category = _category_in(text, categories)
    return Intent(rule_query(text), category, rule_budget(text), category_stated=category is not None)


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2}


def _query(data: dict[str, Any], text: str, rules: Intent, notes: list[str]) -> str:
    """The model's query if it is made of the shopper's words, else the rules' one."""
    value = data.get("query")
    if isinstance(value, str) and value.strip() and _words(value) & _words(text):
        return " ".join(BUDGET.sub(" ", value).split())[:MAX_QUERY] or rules.query
    notes.append("query from the shopper's words")
    return rules.query


def _budget(data: dict[str, Any], text: str, rules: Intent, notes: list[str]) -> float | None:
    """The budget the shopper wrote; the model's only if that number is in their text."""
    if rules.budget is not None:
        return rules.budget
    budget = _number(data.get("budget"))
    if budget is not None and not any(float(n.replace(",", ".")) == budget for n in NUMBER.findall(text)):
        notes.append("dropped a budget the shopper did not state")
        return None
    return budget


def parse(reply: str, text: str, categories: list[str]) -> Intent:
    """The intent from the model's `reply` to the shopper's `text`, checked field by field against `text`."""
    rules = from_rules(text, categories)
    data = first_json_object(reply)
    if data is None:
        return replace(rules, notes=("no JSON in the reply",))
    notes: list[str] = []
    query = _query(data, text, rules, notes)
    category = rules.category or _match_category(data.get("category"), categories)
    budget = _budget(data, text, rules, notes)
    constraints = _constraints(data, text, notes)
    source = "model+rules" if notes or rules.category or rules.budget is not None else "model"
    stated = rules.category is not None
    return Intent(query, category, budget, constraints, source, tuple(notes), category_stated=stated)


def _constraints(data: dict[str, Any], text: str, notes: list[str]) -> tuple[str, ...]:
    """The model's constraints that use the shopper's words (a small model may list anything)."""
    raw = data.get("constraints")
    given = [str(c).strip()[:60] for c in raw if str(c).strip()] if isinstance(raw, list) else []
    kept = [c for c in given if _words(c) & _words(text)]
    if len(kept) < len(given):
        notes.append("dropped constraints the shopper did not state")
    return tuple(kept[:MAX_CONSTRAINTS])


FOLLOW_UP = re.compile(
    r"^\s*(?:and|also|what about|how about|any|cheaper|less expensive|in|for|with|without|but|maybe|or)\b",
    re.IGNORECASE,
)
CHEAPER = re.compile(r"\b(?:cheaper|less expensive|lower price|more affordable|too expensive)\b", re.IGNORECASE)
CHEAPER_FACTOR = 0.75  # "cheaper" with an earlier budget but no prices shown: a quarter under it
CENT = 0.01  # "cheaper" than a price shown: at least this much under it
FOLLOW_UP_WORDS = 6


def is_follow_up(text: str, categories: list[str]) -> bool:
    """Whether `text` reads as a change to an earlier ask: it starts like one ("cheaper?", "and in blue?") or
    is a few words naming no category."""
    words = re.findall(r"\w+", text)
    return bool(FOLLOW_UP.match(text)) or (len(words) <= FOLLOW_UP_WORDS and _category_in(text, categories) is None)


def _new_words(text: str) -> str:
    """A follow-up's own words: without its opening ("and", "what about"), budget, "cheaper" and filler."""
    for pattern in (FOLLOW_UP, BUDGET, CHEAPER, FILLER):
        text = pattern.sub(" ", text)
    return " ".join(re.sub(r"[^\w\s'-]", " ", text).split())[:MAX_QUERY]


def _cheaper(earlier: Intent, shown: list[float], notes: list[str]) -> float | None:
    """The budget "cheaper" means: under the lowest price the earlier answer showed, or with none shown a
    quarter under the earlier budget (None when there is neither)."""
    if shown:
        notes.append(f"cheaper than the lowest price shown ({min(shown):g})")
        return round(min(shown) - CENT, 2)
    if earlier.budget is None:
        notes.append("cheaper: no earlier price or budget to go under")
        return None
    notes.append("cheaper than the earlier budget")
    return round(earlier.budget * CHEAPER_FACTOR, 2)


def refine(earlier: Intent, text: str, categories: list[str], shown: list[float] | None = None) -> Intent:
    """`earlier`'s intent changed by the follow-up `text`: a budget it states replaces the earlier one,
    "cheaper" goes under the lowest of the prices `shown` in the earlier answer (or a quarter under an earlier
    budget), a new category starts a new ask in it (its words the query), and otherwise its words are added
    as a constraint."""
    stated = _category_in(text, categories)
    budget = rule_budget(text)
    notes = ["refined the earlier ask"]
    if budget is None and CHEAPER.search(text):
        budget = _cheaper(earlier, shown or [], notes)
    words = _new_words(text)
    constraints: tuple[str, ...]
    if stated is not None and stated != earlier.category:
        query, constraints = words or stated, ()
    else:
        query, constraints = earlier.query, (*earlier.constraints, words) if words else earlier.constraints
    return replace(
        earlier,
        query=query,
        category=stated or earlier.category,
        budget=budget if budget is not None else earlier.budget,
        constraints=tuple(constraints[-MAX_CONSTRAINTS:]),
        source=f"{earlier.source}+follow-up",
        notes=(*earlier.notes, *notes),
        category_stated=earlier.category_stated or stated is not None,
    )
