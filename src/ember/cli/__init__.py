"""The `ember` command: serve · chat · transcribe · models · health · keys · privacy · conversations · import,
and the tooling commands eval · bench · reliability (package `ember_tools`).

Each command's module is imported only when that command runs; `ember --help` lists them from the table below
without importing any, so `ember serve` loads no tooling and no command loads another's dependencies.
User errors get readable messages, never tracebacks."""

from __future__ import annotations

from typing import Any

import click

from ember.cli.lazy import Lazy, LazyGroup
from ember.errors import EmberError

COMMANDS = {
    "serve": Lazy("ember.cli.serve:serve", "Run the API server."),
    "chat": Lazy("ember.cli.chat:chat", "Chat in the terminal, streaming answers."),
    "transcribe": Lazy("ember.cli.chat:transcribe", "Print what is said in an audio FILE."),
    "models": Lazy("ember.cli.models:models", "List model roles, their files and status."),
    "health": Lazy("ember.cli.models:health", "The health knowledge index behind ember-health."),
    "keys": Lazy("ember.cli.admin:keys", "API keys: create (shown once), list, revoke."),
    "privacy": Lazy("ember.cli.admin:privacy", "Privacy chores on the server's database."),
    "conversations": Lazy(
        "ember.cli.conversations:conversations",
        "A person's stored conversations: list or search, show a branch, rename, delete, export.",
    ),
    "import": Lazy(
        "ember.shopping.commands:import_",
        "Load shopping data: catalog, events, posts or friendships from CSV / JSONL; or the demo data.",
    ),
    "eval": Lazy("ember_tools.eval.cli:eval_", "Quality evaluations on real data (numbers, not pass/fail)."),
    "bench": Lazy("ember_tools.bench.cli:bench", "Benchmarks (ratios against a reference measured in the same run)."),
    "reliability": Lazy(
        "ember_tools.reliability.cli:reliability",
        "Load, soak and crash-durability checks against a server on loopback (bounded in count and time).",
    ),
}


class _Main(LazyGroup):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EmberError as exc:
            raise click.ClickException(exc.message) from exc


@click.group(cls=_Main, lazy=COMMANDS)
@click.version_option(package_name="ember")
def main() -> None:
    """Ember: a private, self-hosted assistant with an OpenAI-compatible API."""
