"""What a person allows (`Consent`) and reading it from the store. Changing it, and what it means for a
request, is `ember.policy.privacy`'s."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ember.store.sql import SqlStore
from ember.types import Person

FLAGS = ("history", "personalisation", "health_storage", "memory", "media_storage")


@dataclass(frozen=True)
class Consent:
    """What a person allows; these defaults hold until they change a flag."""

    history: bool = True  # store their conversations
    personalisation: bool = False  # let shopping mode use what it knows about them
    health_storage: bool = False  # let health mode keep what they tell it
    memory: bool = False  # let Ember keep facts they ask it to remember, and use them in answers
    media_storage: bool = False  # keep the images they send with their stored turns (not only descriptions)

    def as_dict(self) -> dict[str, bool]:
        return asdict(self)

    def given(self, flag: str) -> bool:
        """Whether the flag named `flag` is on (KeyError for a name that is no flag)."""
        return self.as_dict()[flag]


DEFAULT_CONSENT = Consent()


def consent_of(store: SqlStore, person: Person) -> Consent:
    flags = store.get_consent(person)
    return DEFAULT_CONSENT if flags is None else Consent(**flags)
