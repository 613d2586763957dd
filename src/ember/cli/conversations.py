"""`ember conversations`: a person's stored conversations on the server's database, from the terminal: list
(or search with --search), show one's active branch, show another branch, rename, delete, export as Markdown
or JSON. The person is `--user` (a local
name, as `ember chat --user`; `--tenant` for an API key's owner's people). Identities are matched exactly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import click

from ember.cli.common import load_settings

USER = click.option("--user", default="anonymous", show_default=True, help="whose history (as `ember chat --user`)")
SHOWN_CHARS = 100  # of a turn's first line, in `show`
TENANT = click.option("--tenant", default="", help="the API key owner the person belongs to ('' : local use)")


@contextmanager
def _store() -> Iterator[Any]:
    from ember.store.sql import SqlStore

    store = SqlStore(load_settings().db_url)
    try:
        yield store
    finally:
        store.close()


def _person(tenant: str, user: str) -> Any:
    from ember.types import Person

    return Person(tenant, user)


@click.group("conversations")
def conversations() -> None:
    """A person's stored conversations: list or search, show a branch, rename, delete, export."""


@conversations.command("list")
@USER
@TENANT
@click.option("--search", "text", default=None, help="only those whose title or a message holds this text")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
def list_(user: str, tenant: str, text: str | None, limit: int) -> None:
    """Newest first: id, when, mode and title."""
    with _store() as store:
        rows = store.list_conversations(_person(tenant, user), limit, text=text)
    for row in rows:
        when = datetime.fromtimestamp(row["updated_at"]).strftime("%Y-%m-%d %H:%M")
        click.echo(f"{row['id']}  {when}  {row['mode']:<20} {row['title']}")
    if not rows:
        click.echo("no conversations" + (" hold that text" if text else ""), err=True)


def _print_branch(detail: dict[str, Any]) -> None:
    """The title, then one line per turn of the branch shown: its seq, role, version (of how many) and the
    start of its first line."""
    click.echo(detail["title"])
    for turn in detail["messages"]:
        siblings = turn["siblings"]
        version = f"{siblings.index(turn['seq']) + 1}/{len(siblings)}"
        first = next(iter(turn["content"].splitlines()), "")
        click.echo(f"{turn['seq']:>4}  {turn['role']:<9} {version:>5}  {first[:SHOWN_CHARS]}")


@conversations.command("show")
@click.argument("conversation_id")
@USER
@TENANT
def show(conversation_id: str, user: str, tenant: str) -> None:
    """The turns of a conversation's active branch: seq, role, version (2/3: the second of three) and text."""
    with _store() as store:
        _print_branch(store.get_conversation(conversation_id, _person(tenant, user)))


@conversations.command("branch")
@click.argument("conversation_id")
@click.argument("seq", type=click.IntRange(0))
@USER
@TENANT
def branch(conversation_id: str, seq: int, user: str, tenant: str) -> None:
    """Show the branch through turn SEQ from now on (on the web UI and the API too), and print it."""
    with _store() as store:
        _print_branch(store.show_branch(conversation_id, _person(tenant, user), seq))


@conversations.command("export")
@click.argument("conversation_id")
@USER
@TENANT
@click.option("--format", "fmt", type=click.Choice(["markdown", "json"]), default="markdown", show_default=True)
def export(conversation_id: str, user: str, tenant: str, fmt: str) -> None:
    """Print one conversation as Markdown or JSON."""
    from ember.api.wire import ConversationDetail
    from ember.store.markdown import as_markdown

    with _store() as store:
        detail = ConversationDetail.model_validate(store.get_conversation(conversation_id, _person(tenant, user)))
    body = detail.wire()
    click.echo(json.dumps(body, ensure_ascii=False, indent=2) if fmt == "json" else as_markdown(body))


@conversations.command("rename")
@click.argument("conversation_id")
@click.argument("title")
@USER
@TENANT
def rename(conversation_id: str, title: str, user: str, tenant: str) -> None:
    """Give a conversation a new TITLE."""
    if not title.strip() or len(title) > 200:
        raise click.BadParameter("a title has 1 to 200 characters, not only spaces", param_hint="TITLE")
    with _store() as store:
        row = store.rename_conversation(conversation_id, _person(tenant, user), title.strip())
    click.echo(f"{row['id']}  {row['title']}")


@conversations.command("delete")
@click.argument("conversation_id")
@USER
@TENANT
@click.confirmation_option(prompt="Delete this conversation and its messages for good?")
def delete(conversation_id: str, user: str, tenant: str) -> None:
    """Delete a conversation and its messages, for good."""
    with _store() as store:
        gone = store.delete_conversation(conversation_id, _person(tenant, user))
    click.echo(f"deleted {conversation_id} ({gone} messages)")
