"""What Ember's logs may hold: paths, names, types and counts; never a query string, request content or an
exception's message (which can quote either).

- `install_filters()` puts `PathOnly` on uvicorn's access logger: each request line keeps the path and drops
  the query string (`?user=…&q=…` would keep a person's name and searches after their data is erased); and
  `FramesOnly` on its error logger, which logs again each error Starlette re-raises after Ember's handler
  answered it. `create_app` calls it, so whatever server runs the app logs this way.
- `one_line(text, limit)`: a value fit for a log line: control and non-ASCII characters escaped as `ascii()`
  writes them (a newline in a field name cannot forge a line) and cut short.
- `field_names(names)`: unknown request fields for a log line: sorted, each `one_line`, the first few only.
- `frames_only(exc)`: an exception chain's types and frames without its messages.

This module formats; it decides nothing about what is logged.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable

ACCESS_LOGGER = "uvicorn.access"
SERVER_LOGGER = "uvicorn.error"
REQUEST_FAILURE = "Exception in ASGI application"  # how uvicorn's record of a request's error begins
MAX_NAME_CHARS = 64  # a field name as logged
MAX_NAMES = 16  # unknown fields listed in one line; the rest are counted
CUT = "..."


def one_line(text: str, limit: int) -> str:
    """`text` escaped onto one line of ASCII (`\\n`, `\\x1b`, `\\u2028`…) and cut to about `limit` characters."""
    escaped = ascii(text[: limit + 1])[1:-1]  # ascii() quotes what it escapes; a longer text needs no more
    return escaped if len(escaped) <= limit else escaped[: max(limit - len(CUT), 0)] + CUT


def field_names(names: Iterable[str]) -> str:
    """The names, sorted, escaped and cut short: the first MAX_NAMES, then how many more there were."""
    ordered = sorted(names)
    listed = ", ".join(one_line(name, MAX_NAME_CHARS) for name in ordered[:MAX_NAMES])
    rest = len(ordered) - MAX_NAMES
    return f"{listed} and {rest} more" if rest > 0 else listed


class PathOnly(logging.Filter):
    """Drops the query string from every string argument of a record (uvicorn's access line passes the
    client, method, path with query, HTTP version and status as arguments; only the path has a `?`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(arg.split("?", 1)[0] if isinstance(arg, str) else arg for arg in record.args)
        return True


class FramesOnly(logging.Filter):
    """Rewrites the server's record of an error raised while answering a request: its traceback as
    `frames_only` writes it instead of the exception (start-up failures keep their messages: no request
    content, and they tell an operator what to fix)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and str(record.msg).startswith(REQUEST_FAILURE):
            record.msg, record.args = f"{REQUEST_FAILURE}\n%s", (frames_only(exc),)
            record.exc_info, record.exc_text = None, None
        return True


_PATH_ONLY = PathOnly()
_FRAMES_ONLY = FramesOnly()


def install_filters() -> None:
    """Put `PathOnly` and `FramesOnly` on uvicorn's loggers (once each; uvicorn's logging set-up keeps a
    logger's filters)."""
    logging.getLogger(ACCESS_LOGGER).addFilter(_PATH_ONLY)
    logging.getLogger(SERVER_LOGGER).addFilter(_FRAMES_ONLY)


def frames_only(exc: BaseException) -> str:
    """`exc`'s traceback as Python prints it (causes and contexts first, groups' members indented), with each
    exception shown by its type alone."""
    return "".join(_chain(exc, set())).rstrip("\n")


def _chain(exc: BaseException, seen: set[int]) -> list[str]:
    seen.add(id(exc))
    lines: list[str] = []
    context = None if exc.__suppress_context__ else exc.__context__
    if exc.__cause__ is not None and id(exc.__cause__) not in seen:
        lines += [*_chain(exc.__cause__, seen), "\nThe above exception was the direct cause of the following:\n\n"]
    elif context is not None and id(context) not in seen:
        lines += [*_chain(context, seen), "\nDuring handling of the above exception, another occurred:\n\n"]
    kind = (
        type(exc).__qualname__
        if type(exc).__module__ == "builtins"
        else f"{type(exc).__module__}.{type(exc).__qualname__}"
    )
    lines += [
        "Traceback (most recent call last):\n",
        *traceback.format_tb(exc.__traceback__),
        f"{kind} (message not logged)\n",
    ]
    if isinstance(exc, BaseExceptionGroup):
        for number, member in enumerate(exc.exceptions, 1):
            nested = "".join(_chain(member, seen)).splitlines(keepends=True)
            lines += [f"  +-- {number} --\n", *(f"  | {line}" for line in nested)]
    return lines
