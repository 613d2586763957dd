"""Red-flag triage and request limits for health questions, as rules a person can read and test.

`triage(text)` finds emergencies (heart attack signs, stroke signs, breathing trouble, severe allergic
reaction, suicidal thoughts, overdose or poisoning, heavy bleeding, unresponsiveness or seizures, serious
head injury, meningitis signs) and returns the plain instruction to show first. `asks_for_dose(text)`
finds requests for individual medication dosing, which Ember declines. Rules are regular expressions over
lower-cased text with apostrophes removed; a rule fires on any of its `alone` patterns, or on one pattern
from each of its `together` groups. Because wording varies more than patterns do, `Triager` adds a second,
equally readable layer: the message's embedding is compared with EXEMPLARS, short red-flag phrases per
category, and fires at cosine ≥ SIMILARITY (docs/health.md has the measured recall and false alarms of
each layer). Both layers match topics as much as situations, so a general question about a topic ("what
are the warning signs of a stroke?": a question that mentions nobody) does not fire, except for suicide
and overdose, which always do. Both read only what the message says is happening now: a negated clause
("no chest pain") and a past event ("had a stroke two years ago") are left out (`affirmed`), except for
suicide and overdose. Both err towards firing: a false alarm costs a sentence, a miss costs more. This module
does not call a language model and does not decide anything else about the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ember.engines.embeddings import Embedder

CALL = "Call your local emergency number now (911 in the US and Canada, 112 in the EU, 999 in the UK)"


def _p(*patterns: str) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(rf"\b(?:{p})") for p in patterns)


@dataclass(frozen=True)
class Rule:
    category: str
    advice: str
    alone: tuple[re.Pattern[str], ...] = ()
    together: tuple[tuple[re.Pattern[str], ...], ...] = ()

    def fires(self, text: str) -> bool:
        if any(p.search(text) for p in self.alone):
            return True
        return bool(self.together) and all(any(p.search(text) for p in group) for group in self.together)


CHEST = _p(
    r"chest (?:\w+ )?(?:pain|pressure|tight\w*|heav\w*|discomfort|hurts?|aches?)",
    r"(?:pain|pressure|tightness|heaviness|discomfort) (?:in|across) (?:my |his |her |the )?chest",
    r"(?:crushing|squeezing|tight) (?:feeling )?(?:in )?(?:my |his |her |the )?chest",
)
BREATH = r"breath|breathing|breathe"

RULES: tuple[Rule, ...] = (
    Rule(
        "heart attack signs",
        f"{CALL}: chest pain with these signs can be a heart attack. Do not drive yourself.",
        alone=_p(r"heart attack", r"cardiac arrest"),
        together=(CHEST, _p(BREATH, r"sweat", r"arm", r"jaw", r"faint", r"dizz", r"nause", r"vomit", r"clammy")),
    ),
    Rule(
        "breathing emergency",
        f"{CALL}: severe trouble breathing needs help immediately.",
        alone=_p(
            r"(?:cant|cannot|can not|unable to|struggling to|hard to|fighting to) (?:\w+ )?"
            r"(?:breathe|catch (?:my|his|her|their) breath)",
            r"not breathing|isnt breathing|stopped breathing|no longer breathing|gasping|choking",
            r"(?:lips|face|skin) (?:are |is |turning |went |going |look |looks |looking )?(?:blue|grey|gray)",
            r"(?:cant|cannot|can not) (?:finish|complete|say) (?:a |full |whole )?sentences?",
            r"turning blue",
        ),
    ),
    Rule(
        "stroke signs",
        f"{CALL}: these can be signs of a stroke; note the time they started. Every minute counts.",
        alone=_p(
            r"stroke",
            r"(?:face|mouth|smile) (?:is |has |started |seems )?(?:\w+ )?(?:droop|drooping|lopsided|fallen|uneven)",
            r"slurr",
            r"(?:weak|weakness|numb|numbness|paralys|cant move|cannot move)\w* (?:\w+ ){0,4}"
            r"(?:one side|left side|right side)",
            r"(?:one side|left side|right side) of (?:my |his |her |the )?(?:body|face) (?:\w+ )?(?:weak|numb|droop)",
            r"worst headache (?:of|in) (?:my|his|her|their) life|thunderclap headache",
            r"sudden(?:ly)? (?:\w+ )?(?:cant|cannot|unable to) (?:speak|talk|see|understand)",
            r"sudden(?:ly)? (?:loss of|lost) (?:vision|sight|speech|balance)",
            r"(?:cant|cannot|unable to) find (?:my|his|her|their|the) words",
            r"double vision|(?:vision|sight) (?:\w+ )?(?:went|goes|is|became|turned) (?:double|black)",
        ),
    ),
    Rule(
        "severe allergic reaction",
        f"{CALL}: this may be anaphylaxis. Use an adrenaline auto-injector (EpiPen) now if one is available.",
        alone=_p(r"anaphyla", r"throat (?:is |feels |started |keeps )?(?:\w+ )?(?:closing|swelling|swollen|tight)"),
        together=(
            _p(r"allerg", r"stung|sting|bee|wasp", r"peanut|nuts?\b|shellfish", r"swell|swollen|hives"),
            _p(BREATH, r"throat", r"tongue", r"swallow", r"faint|dizz", r"wheez"),
        ),
    ),
    Rule(
        "suicidal thoughts",
        (
            "If you might act on these thoughts, call your local emergency number now (911, 112 or 999). "
            "You can also call or text 988 (Suicide & Crisis Lifeline, US) or your local crisis line, any time. "
            "You don't have to go through this alone."
        ),
        alone=_p(
            r"suicid",
            r"kill(?:ing)? (?:my ?self|me)",
            r"end(?:ing)? (?:my|it all|my own) ?(?:life)?\b(?! of)",
            r"take my (?:own )?life",
            r"(?:want|wanting|wish) (?:\w+ )?(?:to die|i (?:was|were) dead|to not wake up)",
            r"(?:dont|do not) want to (?:live|be alive|wake up|be here)",
            r"better off (?:dead|without me)",
            r"(?:cant|cannot) go on(?! with)",
            r"jump(?:ing)? (?:off|from|in front of) (?:a |the )?(?:bridge|building|roof|train|cliff)",
            r"(?:no|any) (?:reason|point) (?:in |to )?(?:living|live|going on|being alive)",
            r"(?:hurt|harm|cut|cutting|harming|hurting) (?:my ?self)",
            r"self.?harm",
        ),
    ),
    Rule(
        "overdose or poisoning",
        f"{CALL}, or a poison control centre (US: 1-800-222-1222). Do not make the person vomit.",
        alone=_p(
            r"overdos",
            r"(?:took|taken|swallowed|ate|drank) (?:\w+ ){0,3}"
            r"(?:too many|too much|whole|entire|all (?:my|of my|the|his|her))",
            r"(?:swallowed|drank|ate) (?:\w+ ){0,3}"
            r"(?:bleach|poison|antifreeze|detergent|pod|battery|batteries|pills|tablets|rat)",
            r"poison(?:ed|ing)?",
        ),
    ),
    Rule(
        "heavy bleeding",
        f"{CALL}. Press firmly on the wound with a clean cloth and keep pressing.",
        alone=_p(
            r"bleeding (?:\w+ )?(?:heavily|a lot|badly|profusely|everywhere|nonstop)",
            r"(?:bleeding|blood) (?:\w+ ){0,6}(?:wont|will not|doesnt|does not|cant|cannot) stop",
            r"(?:cant|cannot|can not) stop (?:the |my |his |her )?bleeding",
            r"(?:spurting|gushing|pouring) (?:\w+ )?blood|blood (?:is )?(?:spurting|gushing|pouring)",
            r"(?:vomiting|throwing up|coughing up|coughed up|vomited|threw up) (?:\w+ )?blood",
            r"soak(?:ing|ed)? (?:through )?(?:a |one )?(?:pad|towel|bandage)",
        ),
    ),
    Rule(
        "unresponsive or seizure",
        f"{CALL}. Put the person on their side and stay with them.",
        alone=_p(
            r"unconscious|unresponsive|passed out and (?:\w+ )?(?:wont|will not|isnt|is not)",
            r"(?:wont|will not|cant|cannot) (?:\w+ )?wake (?:\w+ )?up",
            r"seizure|convuls|fitting",
        ),
    ),
    Rule(
        "serious head injury",
        f"{CALL}: a head injury with these signs needs checking now.",
        together=(
            _p(
                r"hit (?:my|his|her|their) head",
                r"head (?:injury|injured|trauma)",
                r"fell (?:\w+ )?on (?:my|his|her) head",
            ),
            _p(
                r"vomit|throwing up|threw up",
                r"confus",
                r"passed out|knocked out|blacked out",
                r"blood thinner",
                r"drows",
                r"fluid (?:\w+ ){0,4}(?:nose|ear)",
            ),
        ),
    ),
    Rule(
        "meningitis signs",
        f"{CALL}: fever with a stiff neck or a rash that does not fade under a glass can be meningitis.",
        together=(
            _p(r"stiff neck|neck (?:is |so |very |really )?stiff", r"rash (?:that )?(?:doesnt|does not|wont) fade"),
            _p(r"fever|temperature"),
        ),
    ),
)

DOSING = _p(
    r"how (?:much|many) (?:\w+ ){0,4}(?:should|can|could|do|may|must) (?:i|he|she|they|we|my \w+) "
    r"(?:\w+ ){0,2}(?:take|give|have|use)",
    r"how (?:much|many) (?:mg|milligrams|ml|millilitres|milliliters|pills|tablets|capsules|units|puffs|drops)",
    r"(?:what|which|right|correct|safe|maximum|max|recommended|usual) (?:\w+ )?(?:dose|dosage|dosing)",
    r"(?:dose|dosage) (?:of|for) ",
    r"can i (?:take|give) (?:\w+ )?\d+",
    r"how often (?:can|should|do) (?:i|he|she|they|we) (?:take|give|use)",
)
DOSE_REFUSAL = (
    "I can't recommend a dose for you personally: the right dose depends on age, weight, other conditions "
    "and other medicines. Please ask a pharmacist or your doctor, or follow the package label."
)


@dataclass(frozen=True)
class Triage:
    categories: tuple[str, ...]
    advice: tuple[str, ...]

    @property
    def urgent(self) -> bool:
        return bool(self.categories)

    def without(self, categories: frozenset[str]) -> Triage:
        """This triage less `categories` (e.g. the crisis resources another layer already showed)."""
        kept = [(c, a) for c, a in zip(self.categories, self.advice, strict=True) if c not in categories]
        return Triage(tuple(c for c, _ in kept), tuple(a for _, a in kept))

    def message(self) -> str:
        """The text shown before anything else, or '' if nothing is urgent."""
        return "" if not self.urgent else "**This may be an emergency.** " + " ".join(dict.fromkeys(self.advice))


ADVICE = {rule.category: rule.advice for rule in RULES}


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower().replace("'", "").replace("\u2019", ""))


QUESTION = re.compile(
    r"^\W*(?:what|whats|how|why|which|when|where|who|is|are|can|could|does|do|should|would|tell me|explain|describe)\b"
)
# Polite phrases that mention the asker without describing them ("when should I see a doctor?").
ASKER = re.compile(r"\b(?:should|do|can|would|could) i (?:see|call|go|ask|tell|know|learn|help|do)\b")
PERSON = re.compile(
    r"\b(?:i|im|ive|id|me|my|mine|we|were|our|us|he|hes|she|shes|him|his|her|they|theyre|their|them|someone|"
    r"somebody|friend|child|kid|son|daughter|baby|toddler|mum|mom|dad|husband|wife|partner|grandma|grandpa|"
    r"grandmother|grandfather|sister|brother|patient|right now|suddenly)\b"
)
ALWAYS = frozenset({"suicidal thoughts", "overdose or poisoning"})  # never suppressed, however it is phrased


# Said not to be so ("no chest pain", "I'm not suicidal", "without a fever"): from the negation to the end of its
# clause is not read. "no longer" and "no pulse" are not negations of a sign; "not" alone is not read as one
# ("he is not breathing" is a sign). Suicide and overdose are read in the whole text all the same.
NEGATED = re.compile(
    r"\b(?:no(?! longer| pulse)|without|never|denies|denied|im not|i am not|dont have|do not have|havent had|"
    r"have not had|free of)\b[^.,;!?]*?(?=[.,;!?]|\b(?:but|just|and|only|though)\b|$)"
)
# Over and in the past ("had a stroke two years ago", "had a seizure years ago"): not happening now.
PAST = re.compile(
    r"\b(?:had|suffered|survived|recovered from|was diagnosed with)\b[^.,;!?]*?"
    r"\b(?:ago|last (?:year|month|week)|in (?:19|20)\d\d|as a (?:child|kid|baby|teenager))\b"
)


def affirmed(plain: str) -> str:
    """`plain` without what it says is not so, or was so in the past: what is happening now."""
    return PAST.sub(" ", NEGATED.sub(" ", plain))


def _fired(plain: str) -> list[str]:
    """The rules that fire on what `plain` says is happening now, and suicide and overdose on all of it."""
    now = affirmed(plain)
    return [r.category for r in RULES if r.fires(now) or (r.category in ALWAYS and r.fires(plain))]


def general_question(plain: str) -> bool:
    """A question about a topic ("what are the signs of a stroke?"), not about someone's situation now."""
    return bool(QUESTION.search(plain)) and not PERSON.search(ASKER.sub(" ", plain))


def _kept(plain: str, categories: list[str]) -> tuple[str, ...]:
    general = general_question(plain)
    return tuple(dict.fromkeys(c for c in categories if c in ALWAYS or not general))


def triage(text: str) -> Triage:
    """Which red-flag rules fire on `text` (patterns only)."""
    plain = normalise(text)
    fired = _kept(plain, _fired(plain))
    return Triage(fired, tuple(ADVICE[c] for c in fired))


SIMILARITY = 0.45
EXEMPLARS: dict[str, tuple[str, ...]] = {
    "heart attack signs": (
        "severe chest pain and shortness of breath",
        "pain in my chest going down my arm",
        "heavy pressure on my chest and cold sweat",
        "I think my heart is giving out, chest pain",
    ),
    "stroke signs": (
        "one side of his face is drooping",
        "suddenly cannot move one arm and speech is garbled",
        "she can't find her words and her arm is weak",
        "sudden confusion and numbness on one side",
    ),
    "breathing emergency": (
        "I cannot get enough air",
        "struggling for every breath",
        "so breathless I can barely talk",
        "severe asthma attack, inhaler not helping",
    ),
    "severe allergic reaction": (
        "face and lips swelling after eating, feel faint",
        "allergic reaction and throat feels tight",
        "swelling of the tongue after a sting",
    ),
    "suicidal thoughts": (
        "I want to end my life",
        "I am going to kill myself",
        "I have a plan to die",
        "I can't go on living like this",
        "thinking of jumping off a building",
        "I don't want to live anymore",
    ),
    "overdose or poisoning": (
        "took an overdose of pills",
        "swallowed too many tablets",
        "child ate medicine from the cabinet",
        "drank a poisonous chemical",
    ),
    "heavy bleeding": (
        "there is a lot of blood and it keeps coming",
        "deep wound bleeding heavily",
        "blood pouring from the cut",
    ),
    "unresponsive or seizure": (
        "he collapsed and is not responding",
        "baby is limp and not responding",
        "having a fit and shaking uncontrollably",
    ),
}


class Triager:
    """Pattern rules, then similarity to EXEMPLARS; a category fires if either layer says so."""

    def __init__(self, embedder: Embedder, threshold: float = SIMILARITY) -> None:
        self.embedder = embedder
        self.threshold = threshold
        self.labels = [category for category, phrases in EXEMPLARS.items() for _ in phrases]
        self.bank = embedder.embed([p for phrases in EXEMPLARS.values() for p in phrases])

    def similar(self, text: str) -> tuple[str, ...]:
        """Categories whose exemplars are within the threshold of `text`."""
        scores = self.bank @ self.embedder.embed([text])[0]
        return tuple(dict.fromkeys(c for c, s in zip(self.labels, scores, strict=True) if s >= self.threshold))

    def __call__(self, text: str) -> Triage:
        plain = normalise(text)
        now = affirmed(plain)
        said = text if now == plain else now  # the words as written, unless some were left out
        similar = self.similar(said) if said.strip(" ,.;!?") else ()
        categories = _kept(plain, [*_fired(plain), *similar])
        return Triage(categories, tuple(ADVICE[c] for c in categories))


def asks_for_dose(text: str) -> bool:
    plain = normalise(text)
    return any(p.search(plain) for p in DOSING)


def crisis_notice(text: str) -> str:
    """For modes that do no triage of their own: the instruction for suicidal thoughts or an overdose in
    `text` (pattern rules only), or ''."""
    found = triage(text)
    kept = tuple(c for c in found.categories if c in ALWAYS)
    return Triage(kept, tuple(ADVICE[c] for c in kept)).message()
