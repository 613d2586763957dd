"""The CPU-sharing group of this process's session (sched(7) "autogroup"): where the kernel has it on, CPU
time is shared between sessions first and a process's nice value counts only within its session, so a
child started in a session of its own, or a job meant to yield to everything else, sets its group's nice
value too. Raising it needs no privilege; a kernel without autogroup has no such file and nice alone counts."""

from __future__ import annotations

import contextlib
from pathlib import Path

AUTOGROUP = Path("/proc/self/autogroup")  # "/autogroup-N nice K"


def group_nice() -> str | None:
    """This process's group's nice value; None where the kernel has no autogroup, or where this process is in
    the kernel's root group (its session began before autogroup took effect: the file is then empty)."""
    try:
        return AUTOGROUP.read_text().split()[-1]
    except (OSError, IndexError):
        return None


def set_group_nice(value: str | int) -> None:
    """Set this process's group's nice value; left as it is where that is not allowed (lower than the
    current value without privilege) or there is no autogroup."""
    with contextlib.suppress(OSError):
        AUTOGROUP.write_text(f"{value}\n")
