"""Memory a person can see and control: with their `memory` consent on (off by default), a message that asks
Ember to remember something ("remember that I'm vegetarian") keeps that fact, and modes that use memory
(`Mode.memory`: instant, thinking, shopping, ember-auto's routes to them) are given the person's facts with the
request, cited as "from your memory". A mode with its own consent flag (ember-health: `health_storage`)
gets them only with that flag on too. The facts are listed, added and deleted through `/v1/me/memories`,
and are in the privacy export and hard deletion. Nothing is ever saved without the person's own words.

A message that states a durable fact about the person without asking ("I'm vegetarian", "my budget is usually
50 EUR", "I live in Lyon") is not kept: Ember proposes it (`proposal`, `request.proposed`), and the person saves
it or not. The rules below are the whole of it: a first-person statement of diet, allergies, budget, location,
family or preferences, at the start of a clause; not a question, not negated, not hypothetical ("if", "imagine",
"would", or a story before it), not passing ("today", "this week").
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ember.errors import InvalidRequest
from ember.store.consent import Consent
from ember.store.memories import MemoryStore
from ember.store.sql import SqlStore
from ember.types import ChatRequest, MemoryProposal, Message, last_user_text

MAX_FACT_CHARS = 300
REMEMBER = re.compile(
    r"^\s*(?:please\s+)?(?:remember|keep in mind|note)\s+(?:that\s+)?(?P<fact>.{3,300}?)[\s.!]*$",
    re.IGNORECASE | re.DOTALL,
)
NOTE = (
    "What the person asked you to remember about them (their memory; use it where it helps, and say "
    '"from your memory" when you do):\n{facts}'
)


# -- proposals: what a message states about the person, offered to be remembered ------------------------------

I_AM = r"(?:i'm|im|i\s+am)"
HABIT = r"(?:usually|normally|typically|generally|always|mostly|often)"
NOT_A_THING = (  # "I like this", "I love you", "I prefer the second one": about the conversation, not the person
    r"(?!(?:it|this|that|these|those|you|your|yours|him|her|them|what|how|the\s+(?:first|second|third|last|"
    r"other|former|latter|previous|next|above|one|idea|answer|suggestion))\b)"
)
KINSHIP = (
    r"(?:wife|husband|partner|spouse|son|daughter|kids?|children|mother|father|mum|mom|dad|brother|sister|"
    r"dog|cat)"
)
PROPOSAL_RULES: tuple[tuple[str, str], ...] = (  # (kind, pattern at the start of a clause)
    (
        "diet",
        rf"{I_AM}\s+(?:an?\s+)?(?:(?:strict|lifelong)\s+)?(?:vegetarian|vegan|pescatarian|pescetarian|"
        r"flexitarian|teetotal(?:ler)?|coeliac|celiac)\b",
    ),
    ("diet", rf"{I_AM}\s+on\s+an?\s+[\w-]+(?:\s+[\w-]+)?\s+diet\b"),
    (
        "diet",
        r"i\s+(?:only\s+)?(?:eat|keep|follow)\s+(?:an?\s+)?(?:strictly\s+)?(?:halal|kosher|vegan|vegetarian|"
        r"plant[- ]based|gluten[- ]free|keto|paleo|low[- ]carb|pescatarian)\b",
    ),
    ("allergy", rf"{I_AM}\s+(?:(?:very|severely|mildly|highly)\s+)?allergic\s+to\s+\S"),
    ("allergy", rf"{I_AM}\s+[\w-]+[- ]intolerant\b"),
    ("allergy", r"i\s+have\s+(?:an?\s+)?(?:[\w-]+\s+){0,2}(?:allergy|allergies|intolerance)\b"),
    ("budget", rf"my\s+(?:[\w-]+\s+)?budget\b(?:\s+for\s+[\w\s-]{{1,30}}?)?\s+is\s+{HABIT}\b.*\d"),
    ("budget", r"my\s+(?:usual|typical|normal|regular|monthly|weekly|yearly|annual|average)\s+budget\b.*\bis\b.*\d"),
    ("budget", rf"i\s+{HABIT}\s+(?:spend|pay)\b.*\d"),
    ("location", r"(?:i|we)\s+(?:(?:still|now)\s+)?live\s+(?:in|near|outside|on)\s+\S"),
    ("location", rf"(?:{I_AM}|we're|we\s+are)\s+(?:based|living)\s+in\s+\S"),
    ("location", rf"{I_AM}\s+from\s+(?-i:[A-Z])"),
    ("location", r"my\s+home\s*(?:town|city)?\s+is\s+(?:in\s+)?(?-i:[A-Z])"),
    (
        "family",
        r"(?:i|we)\s+have\s+(?:a|an|one|two|three|four|five|six|\d+)\s+(?:[\w-]+\s+)?(?:kids?|children|"
        r"child|sons?|daughters?|bab(?:y|ies)|twins|grandchildren|grandkids|cats?|dogs?|pets?|brothers?|sisters?|"
        r"siblings)\b",
    ),
    (
        "family",
        rf"{I_AM}\s+(?:happily\s+)?(?:married|divorced|widowed|engaged|a\s+(?:single\s+)?(?:mother|father|"
        r"parent|mum|mom|dad|grandmother|grandfather|grandparent))\b",
    ),
    ("family", rf"my\s+{KINSHIP}(?:'s\s+name\s+is|\s+is\s+(?:called|named))\s+(?-i:[A-Z])"),
    ("preference", r"my\s+favou?rite\s+[\w\s-]{1,30}?\s+(?:is|are)\s+\S"),
    (
        "preference",
        r"i\s+(?:(?:really|much|strongly|always|usually|generally|definitely)\s+)?(?:prefer|love|like|"
        rf"enjoy|hate|dislike|adore|loathe)\s+{NOT_A_THING}\S",
    ),
)
RULES = tuple((kind, re.compile(pattern, re.IGNORECASE)) for kind, pattern in PROPOSAL_RULES)
LEAD_IN = re.compile(
    r"^(?:(?:also|and|oh|well|btw|fyi|ps|actually|anyway|hi|hello|hey|by the way|for the record|just so you know|"
    r"for context|fwiw)\b[,:!.]?\s*)+",
    re.IGNORECASE,
)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
CLAUSE_BREAK = re.compile(
    r",\s+|;\s*|:\s+|\s+(?:but|so|because|though|although)\s+"
    r"|\s+and\s+(?=(?:i|i'm|i'd|my|you|we|please|can|could|would|what|how|which|any)\b)",
    re.IGNORECASE,
)
NEGATED = re.compile(r"\b(?:not|never|no|none|nothing|nobody|neither|nor)\b|n't\b", re.IGNORECASE)
HYPOTHETICAL = re.compile(  # in the clause or anywhere before it in its sentence
    r"\b(?:if|unless|suppose|supposing|imagine|pretend|hypothetically|let's say|what if|were|would|could|might|"
    r"maybe|perhaps|wish|story|novel|character|role-?play|game|dream)\b|'d\b",
    re.IGNORECASE,
)
PASSING = re.compile(
    r"\b(?:today|tonight|tomorrow|yesterday|right now|at the moment|for now|for the moment|temporarily|"
    r"(?:this|next|last)\s+(?:morning|afternoon|evening|week|weekend|month|year|time)"
    r"|for an?\s+(?:week|month|while))\b",
    re.IGNORECASE,
)
MAX_SCANNED_CHARS = 2_000  # a durable fact comes early in a message; pasted documents are not read for one


def _clauses(text: str) -> Iterator[tuple[str, str, bool]]:
    """(the sentence before it, the clause, whether it asks) for each clause of `text`."""
    for sentence in SENTENCE_END.split(text[:MAX_SCANNED_CHARS].replace("\u2019", "'")):
        parts = CLAUSE_BREAK.split(sentence.strip())
        for i, part in enumerate(parts):
            asks = i == len(parts) - 1 and sentence.rstrip().endswith("?")
            yield " ".join(parts[:i]), part.strip(), asks


def proposal(text: str) -> MemoryProposal | None:
    """The first durable fact `text` states about its writer without asking Ember to remember it, or None:
    "I'm vegetarian, what should I cook?" → "I'm vegetarian" (diet); "If I were vegan…", "I'm not vegetarian",
    "Am I vegetarian?", "I'm in Lyon this week", "My friend is vegetarian" → None."""
    if remembered(text) is not None:
        return None
    for before, clause, asks in _clauses(text):
        clause = LEAD_IN.sub("", clause).rstrip(" .!")
        if asks or not 3 <= len(clause) <= MAX_FACT_CHARS or NEGATED.search(clause) or PASSING.search(clause):
            continue
        if HYPOTHETICAL.search(f"{before} {clause}"):
            continue
        kind = next((kind for kind, rule in RULES if rule.match(clause)), None)
        if kind is not None:
            return MemoryProposal(re.sub(r"^i\b", "I", clause), kind)
    return None


class MemoryOff(InvalidRequest):
    code = "memory_off"


def remembered(text: str) -> str | None:
    """The fact a message asks Ember to remember ("remember that I'm vegetarian" → "I'm vegetarian"), or None."""
    match = REMEMBER.match(text)
    return match.group("fact").strip() if match else None


def uses_memory(consent: Consent, memory: bool, flag: str | None) -> bool:
    """Whether a mode that uses `memory` (with its own consent `flag`, if any) is given the person's facts."""
    return consent.memory and memory and (flag is None or consent.given(flag))


def prepare(store: SqlStore, request: ChatRequest, consent: Consent, memory: bool, flag: str | None) -> None:
    """With the person's memory on (`consent`, read by the caller): keep what the last message asks to remember
    (`request.remembered`), give the request the person's facts if its mode uses `memory` (`request.memories`;
    `flag`: the mode's own consent flag), and propose a fact the message states that is not kept yet
    (`request.proposed`; with the mode's own flag on too). A proposal is only offered: nothing is stored."""
    if not consent.memory:
        return
    kept = MemoryStore(store.db)
    said = last_user_text(request.messages)
    fact = remembered(said)
    if fact is not None:
        request.remembered = kept.add(request.user, fact).text
    facts = tuple(m.text for m in kept.of(request.user))
    if uses_memory(consent, memory, flag):
        request.memories = facts
    offered = proposal(said) if uses_memory(consent, True, flag) else None
    if offered is not None and offered.text.casefold() not in {f.casefold() for f in facts}:
        request.proposed = offered


def with_memories(messages: list[Message], memories: tuple[str, ...]) -> list[Message]:
    """`messages` with the person's facts as a system turn after the system prompt (none: unchanged)."""
    if not memories:
        return messages
    note = Message("system", NOTE.format(facts="\n".join(f"- {fact}" for fact in memories)))
    first = next((i for i, m in enumerate(messages) if m.role != "system"), len(messages))
    return [*messages[:first], note, *messages[first:]]


def require_on(consent: Consent) -> None:
    """MemoryOff (400) unless the person's memory consent is on."""
    if not consent.memory:
        raise MemoryOff('this person\'s memory is off: turn it on (PATCH /v1/me/consent {"memory": true}) first')
