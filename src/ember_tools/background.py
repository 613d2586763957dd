"""`python -m ember_tools.background COMMAND [ARG...]`: run a long job (an evaluation) at the lowest CPU
priority, so that whatever else runs on the machine comes first.

`nice -n 19` alone is not enough where the kernel shares CPU time between sessions first (autogroup, on by
default in many distributions' kernels): a niced job still competes as an equal with work started in another
terminal. So the command runs in a session of its own whose group is niced too (`ember.engines.priority`; the
llama.cpp children it starts give their own sessions that value), while this process stays in the foreground
and passes Ctrl-C, SIGTERM and SIGHUP on to the command's process group, so stopping it stops the job as
before. Exits with the command's status (128 + the signal's number when a signal ended it)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from types import FrameType

from ember.engines import priority

LOWEST = 19
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def lower_priority() -> None:
    """In the command's new process: its own nice value and its new session's group's both to `LOWEST`."""
    os.nice(LOWEST - os.nice(0))
    priority.set_group_nice(LOWEST)


def run(command: list[str]) -> int:
    """Run `command` in its own session at the lowest priority, forwarding stop signals; its exit status."""
    started: list[subprocess.Popen[bytes]] = []  # set once the job runs; the handlers are in place before

    def forward(signum: int, _frame: FrameType | None) -> None:
        if not started:  # before the job exists: it is not started
            sys.exit(128 + signum)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(started[0].pid, signum)

    for signum in FORWARDED:
        signal.signal(signum, forward)
    started.append(subprocess.Popen(command, start_new_session=True, preexec_fn=lower_priority))
    status = started[0].wait()
    return 128 - status if status < 0 else status


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m ember_tools.background COMMAND [ARG...]")
    try:
        sys.exit(run(sys.argv[1:]))
    except OSError as error:  # no such program, not executable
        sys.exit(f"cannot run {sys.argv[1]}: {error.strerror or error}")


if __name__ == "__main__":
    main()
