"""A click group whose subcommands are imported only when one is run: each is named by a "module:attribute"
string with its short help beside it, so `--help` lists them all without importing any.

It imports nothing of Ember's; the tables of commands live with the groups that use it."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click


@dataclass(frozen=True)
class Lazy:
    """Where a command is (`"package.module:attribute"`) and its short help (the first sentence of its
    docstring, as click would show it; tests check the two agree)."""

    target: str
    help: str

    def load(self) -> click.Command:
        """Import the module and return the command it defines."""
        module, _, attribute = self.target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.target} is not a click command")
        return command


class LazyGroup(click.Group):
    """A group whose `lazy` commands are imported on first use by `get_command`, and listed with the short
    help of their `Lazy` entry until then."""

    def __init__(self, *args: Any, lazy: Mapping[str, Lazy] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(self.lazy[cmd_name].load(), cmd_name)
        return super().get_command(ctx, cmd_name)

    def listed_help(self, ctx: click.Context, name: str, limit: int) -> str | None:
        """`name`'s short help in at most `limit` characters, from its `Lazy` entry unless it is loaded;
        None for a hidden or unknown command."""
        if name not in self.commands and name in self.lazy:
            return click.Command(name, help=self.lazy[name].help).get_short_help_str(limit)
        command = self.get_command(ctx, name)
        return None if command is None or command.hidden else command.get_short_help_str(limit)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The "Commands" section as click writes it, without importing the commands not yet loaded."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, text) for name in names if (text := self.listed_help(ctx, name, limit)) is not None]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
