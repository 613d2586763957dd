"""A stored conversation (as the conversations API shows it) written as Markdown, for an export to keep."""

from __future__ import annotations

from typing import Any


def _part(part: dict[str, Any]) -> str:
    """One line for an image or audio part (an audio clip's transcript is already the turn's text)."""
    if part["type"] == "audio":
        return f"*audio, {part['duration']:g} s ({part['language']})*"
    where = f"stored as `{part['sha256']}`" if part["stored"] else f"not stored: {part['not_stored']}"
    return f"*image, {part['mime']}, {part['width']}x{part['height']}, {where}*"


def as_markdown(detail: dict[str, Any]) -> str:
    """A conversation as Markdown: its title, then each turn of the branch shown under its role (with "(2/3)"
    when it is one of several versions; its image and audio parts as a line each, an answer's reasoning quoted,
    tool calls and results as code)."""
    lines = [f"# {detail['title']}", "", f"{detail['mode']} · {detail['id']}", ""]
    for message in detail["messages"]:
        lines += [f"## {message['role']}{_version(message)}", ""]
        lines += [line for part in message.get("parts") or [] for line in (_part(part), "")]
        if message.get("reasoning_content"):
            lines += ["> " + line for line in message["reasoning_content"].splitlines()] + [""]
        if message.get("content"):
            lines += [message["content"], ""]
        for call in message.get("tool_calls") or []:
            lines += [f"`{call['function']['name']}({call['function']['arguments']})`", ""]
    return "\n".join(lines)


def _version(message: dict[str, Any]) -> str:
    siblings = message["siblings"]
    return f" ({siblings.index(message['seq']) + 1}/{len(siblings)})" if len(siblings) > 1 else ""
