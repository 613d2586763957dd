"""The shape of a stored conversation: a tree of turns.

Each turn names the turn it follows (`parent_seq`, None for a first turn); turns are numbered (`seq`) in the
order they were stored, so a turn always comes after the one it follows. Regenerating an answer or editing a
message stores the new turns beside the old ones (siblings: turns that follow the same turn) instead of
overwriting them, so nothing said is lost; the conversation shows one branch at a time, the one that ends at
its `active_seq`. This module reads the shape; `ember.store.sql` reads and writes the rows.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, select

from ember.store.schema import messages


class Tree:
    """Which turn follows which, in one conversation."""

    def __init__(self, parents: Iterable[tuple[int, int | None]]) -> None:
        self.parents: dict[int, int | None] = dict(parents)
        self._children: dict[int | None, list[int]] = {}
        for seq in sorted(self.parents):
            self._children.setdefault(self.parents[seq], []).append(seq)

    @classmethod
    def read(cls, conn: Connection, conversation_id: str) -> Tree:
        query = select(messages.c.seq, messages.c.parent_seq).where(messages.c.conversation_id == conversation_id)
        return cls((row.seq, row.parent_seq) for row in conn.execute(query))

    def __contains__(self, seq: object) -> bool:
        return seq in self.parents

    def siblings(self, seq: int) -> list[int]:
        """The turns that follow the same turn as `seq` (itself included), oldest first."""
        return self._children[self.parents[seq]]

    def path(self, end: int | None) -> list[int]:
        """The branch from the first turn to `end` (none for None), in order."""
        out = []
        while end is not None:
            out.append(end)
            end = self.parents[end]
        return out[::-1]

    def latest_under(self, seq: int) -> int:
        """The newest turn among `seq` and the turns after it: where the branch through `seq` ends when it is
        shown (a turn with no later turn under it is a branch's end)."""
        latest, todo = seq, [seq]
        while todo:
            later = self._children.get(todo.pop(), [])
            todo += later
            latest = max([latest, *later])
        return latest
