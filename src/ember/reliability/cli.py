"""`ember reliability …`: the command group that gathers the reliability checks (each in its own module)."""

from __future__ import annotations

import click

from ember.reliability.durability import durability
from ember.reliability.load import load
from ember.reliability.report import report
from ember.reliability.soak import soak


@click.group()
def reliability() -> None:
    """Load, soak and crash-durability checks against a server on loopback (bounded in count and time)."""


reliability.add_command(durability)
reliability.add_command(load)
reliability.add_command(soak)
reliability.add_command(report)
