"""A generated block inside a hand-written Markdown document, between two marker comments: the prose around
the block is the author's, the block is the tool's. Reads and writes text only."""

from __future__ import annotations

import re
from pathlib import Path


def replace_block(doc: Path, begin: str, end: str, block: str, heading: str, section: str | None = None) -> None:
    """Replace the part of `doc` from `begin` to `end` (markers included) by `block`, which starts with `begin`
    and ends with `end`; with no such part, put `block` at the end of the section the line `section` heads
    (before the next heading of its level or above) when `doc` has that line, else append it (to `heading`
    alone if `doc` does not exist)."""
    text = doc.read_text() if doc.is_file() else heading
    start, stop = text.find(begin), text.find(end)
    at = None if section is None else section_end(text, section)
    if start >= 0 and stop > start:
        text = text[:start] + block + text[stop + len(end) :]
    elif at is not None:
        text = text[:at].rstrip("\n") + "\n\n" + block + "\n" + ("\n" + text[at:] if at < len(text) else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    doc.write_text(text)


def section_end(text: str, section: str) -> int | None:
    """Where the section that the heading line `section` ("## Name") starts ends in `text`: the start of the
    next heading of its level or above, or the end of `text`; None when no line is `section`."""
    found = re.search(rf"^{re.escape(section)}[ \t]*$", text, re.MULTILINE)
    if found is None:
        return None
    level = max(len(section) - len(section.lstrip("#")), 1)
    after = re.compile(rf"^#{{1,{level}}}\s", re.MULTILINE).search(text, found.end())
    return len(text) if after is None else after.start()
