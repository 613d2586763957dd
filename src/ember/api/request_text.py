"""Refuse request text Ember cannot keep: a lone UTF-16 surrogate in a JSON body (`"\\ud800"`, or its
bytes smuggled in raw) parses in Python but cannot be encoded again, and PostgreSQL cannot store or even
compare a NUL character (`"\\u0000"`, `?user=%00`); either would fail deep inside the store or an engine
as a 500. An app-wide dependency: it reads the body FastAPI already parsed, and walks it only when a
quick byte scan finds a suspect escape. (Starlette already decodes bad bytes in URLs as U+FFFD.)
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request

from ember.errors import InvalidRequest, shown

# a surrogate or NUL escape, or a surrogate's raw UTF-8 bytes (which Python's JSON reader lets through)
_SUSPECT = re.compile(rb"\\u[dD][89a-fA-F]|\\u0000|\xed[\xa0-\xbf]")
_JSON_BODY_METHODS = {"POST", "PUT", "PATCH"}


def _problem(text: str) -> str | None:
    if "\x00" in text:
        return "a NUL character (\\u0000), which cannot be stored; remove it"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "a lone UTF-16 surrogate (such as \\ud800), which is not a Unicode character; send valid UTF-8"
    return None


def unkeepable_text(value: Any) -> str | None:
    """What is wrong with the first string in `value` (a parsed JSON document) that Ember cannot keep."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            problem = _problem(item)
            if problem is not None:
                return problem
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _is_json(request: Request) -> bool:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return not content_type or content_type == "application/json" or content_type.endswith("+json")


async def require_text(request: Request) -> None:
    """400 when the URL's parameters or a JSON body hold text Ember cannot keep (see the module docstring)."""
    for name, value in [*request.query_params.multi_items(), *request.path_params.items()]:
        if "\x00" in name or "\x00" in str(value):
            raise InvalidRequest(f"The request's parameter {shown(name)} contains a NUL character; remove it.")
    if request.method not in _JSON_BODY_METHODS or not _is_json(request):
        return
    try:
        body = await request.body()  # already read and cached by FastAPI
    except RuntimeError:  # a form route consumed the stream: not JSON
        return
    if not _SUSPECT.search(body):
        return
    try:
        parsed = await request.json()
    except ValueError:
        return  # not JSON: the route's own validation says so
    problem = unkeepable_text(parsed)
    if problem is not None:
        raise InvalidRequest(f"The JSON body contains {problem}.")
