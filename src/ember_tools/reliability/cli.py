"""`ember reliability …`: the command group that gathers the reliability checks (each in its own module)."""

from __future__ import annotations

import click

from ember_tools.reliability.durability import durability
from ember_tools.reliability.load import load
from ember_tools.reliability.report import report
from ember_tools.reliability.soak import soak


@click.group()
def reliability() -> None:
    """Load, soak and crash-durability checks against a server on loopback (bounded in count and time)."""


reliability.add_command(durability)
reliability.add_command(load)
reliability.add_command(soak)
reliability.add_command(report)
