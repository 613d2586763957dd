"""`ember reliability …`: the command group that gathers the reliability checks (each in its own module)."""

from __future__ import annotations

import click


@click.group()
def reliability() -> None:
    """Load, soak and crash-durability checks against a server on loopback (bounded in count and time)."""
