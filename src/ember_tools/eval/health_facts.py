"""Questions a person would ask, built from the health knowledge index's own entries, each with the entry's
key facts; and the matcher that says whether a text states a fact.

Templates (`TEMPLATES`), each for the entries whose text holds a list to check against:
- `features`: an OMIM or Orphanet disease, "What are the typical features of <its name>?"; its key facts are
  the phenotypes the entry lists under "Features" (HPO term names, at most 12).
- `code`: an ICD-10-CM category (three characters), "What does ICD-10 code <code> cover?"; its key facts are
  the code's description, then the terms it lists under "Also called", "Includes" and "Subdivisions" (not
  "Excludes": what the code does not cover).

Matching (`words`, `states`): a text's words are its runs of letters and digits, lowercased, without stop
words or ICD-10-CM's filler ("unspecified", "other", …), a plural's "s" dropped ("ies" becomes "y"). A fact's
words are its own words less the question's (naming the disease asked about states nothing); a fact left with
none, or with the same words as an earlier one, is dropped, and an entry with fewer than MIN_FACTS facts is not
asked about. A text states a fact when it holds every one of the fact's words, in any order.

Sampling (`sample`): per template, its questions in entry-id order shuffled with `random.Random(f"{seed}:
{template}")`; the first DEV_ITEMS of each are the dev slice (for debugging, never reported), the next
`limit / len(TEMPLATES)` are the reported sample; the sample alternates templates, so any prefix of it is
balanced. Nothing here asks a model.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ember.medical.knowledge import STOPWORDS, WORD, Entry, listed
from ember_tools.eval.cache import interleaved

MIN_FACTS = 3
DEV_ITEMS = 10  # per template
FILLER = frozenset(
    {"unspecified", "other", "specified", "certain", "classified", "elsewhere", "nec", "nos", "s"}
)  # "s": of "(s)", "'s"
ICD = "ICD-10-CM:"


@dataclass(frozen=True)
class Fact:
    text: str  # as the entry writes it
    words: frozenset[str]  # what a text must hold to state it


@dataclass(frozen=True)
class Question:
    id: str  # template:entry id
    template: str
    entry_id: str
    text: str
    facts: tuple[Fact, ...]


def stem(word: str) -> str:
    """`word` without a plural ending: "ies" becomes "y"; a final "s" goes, but not from "ss", "us" or "is"."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def words(text: str) -> frozenset[str]:
    """The normalised content words of `text`."""
    return frozenset(stem(w) for w in WORD.findall(text.lower()) if w not in STOPWORDS and w not in FILLER)


def states(said: frozenset[str], fact: Fact) -> bool:
    """Whether a text with the words `said` states `fact`: it holds all of the fact's words."""
    return fact.words <= said


def _question(template: str, entry: Entry, text: str, terms: list[str]) -> Question | None:
    asked = words(text)
    facts: dict[frozenset[str], Fact] = {}
    for term in terms:
        if (needed := words(term) - asked) and needed not in facts:
            facts[needed] = Fact(term, needed)
    if len(facts) < MIN_FACTS:
        return None
    return Question(f"{template}:{entry.id}", template, entry.id, text, tuple(facts.values()))


def features_question(entry: Entry) -> Question | None:
    if not entry.id.startswith(("OMIM:", "ORPHA:")):
        return None
    text = f"What are the typical features of {entry.title}?"
    return _question("features", entry, text, listed(entry.text).get("Features", []))


def code_question(entry: Entry) -> Question | None:
    code = entry.id.removeprefix(ICD)
    if code == entry.id or "." in code:
        return None
    lists = listed(entry.text)
    terms = [entry.title.removeprefix(code).strip()]
    terms += [term for label in ("Also called", "Includes", "Subdivisions") for term in lists.get(label, [])]
    return _question("code", entry, f"What does ICD-10 code {code} cover?", terms)


TEMPLATES: dict[str, Callable[[Entry], Question | None]] = {"features": features_question, "code": code_question}


def questions(entries: Iterable[Entry]) -> dict[str, list[Question]]:
    """Every question the templates make of `entries`, per template, in entry-id order."""
    found: dict[str, list[Question]] = {name: [] for name in TEMPLATES}
    for entry in entries:
        for name, template in TEMPLATES.items():
            if (question := template(entry)) is not None:
                found[name].append(question)
    return {name: sorted(qs, key=lambda q: q.entry_id) for name, qs in found.items()}


def sample(by_template: dict[str, list[Question]], limit: int, seed: int, dev: bool = False) -> list[Question]:
    """The reported sample of `limit` questions (or, with `dev`, at most `limit` of the dev slice), templates
    alternating."""
    per = -(-limit // len(by_template)) if by_template else 0
    chosen = {}
    for name, found in by_template.items():
        order = list(found)
        random.Random(f"{seed}:{name}").shuffle(order)
        chosen[name] = order[:DEV_ITEMS] if dev else order[DEV_ITEMS : DEV_ITEMS + per]
    return list(interleaved(chosen))[:limit]
