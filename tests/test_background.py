"""`python -m ember_tools.background`: the job runs in a session of its own at nice 19 with its autogroup
niced too (where the kernel has autogroup), its exit status comes back, and stopping the wrapper stops it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ember.engines import priority

WRAP = [sys.executable, "-m", "ember_tools.background"]
REPORT = """
import os
from ember.engines import priority
print(os.getsid(0), os.nice(0), priority.group_nice())
"""


PROBE = """
import pathlib
group = pathlib.Path("/proc/self/autogroup")
group.write_text("19")
print(group.read_text().split()[-1])
"""


def groups_can_be_niced() -> bool:
    """Whether this kernel has autogroup and lets a new session nice its group (a container may forbid it)."""
    probe = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, start_new_session=True)
    return probe.returncode == 0 and probe.stdout.strip() == "19"


def test_the_job_runs_alone_at_the_lowest_priority() -> None:
    before = priority.group_nice()  # None in the kernel's root group too (a session begun before autogroup)
    out = subprocess.run([*WRAP, sys.executable, "-c", REPORT], capture_output=True, text=True, check=True)
    session, nice, group_nice = out.stdout.split()
    assert int(session) != os.getsid(0)
    assert int(nice) == 19
    if groups_can_be_niced():
        assert group_nice == "19"
        assert priority.group_nice() == before, "this session's group is left as it was"


def test_exit_status_and_a_missing_program() -> None:
    assert subprocess.run([*WRAP, sys.executable, "-c", "raise SystemExit(3)"]).returncode == 3
    missing = subprocess.run([*WRAP, "/nonexistent/program"], capture_output=True, text=True)
    assert missing.returncode == 1 and "cannot run /nonexistent/program" in missing.stderr
    bare = subprocess.run(WRAP, capture_output=True, text=True)
    assert bare.returncode == 1 and "usage:" in bare.stderr


def test_interrupting_the_wrapper_stops_the_job_and_its_children(tmp_path: Path) -> None:
    """SIGINT (Ctrl-C) reaches the job's whole process group, a grandchild included."""
    pids = tmp_path / "pids"
    job = (
        "import os, subprocess, sys, time, pathlib\n"
        "kid = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"pathlib.Path({str(pids)!r}).write_text(f'{{os.getpid()}} {{kid.pid}}')\n"
        "time.sleep(60)\n"
    )
    wrapper = subprocess.Popen([*WRAP, sys.executable, "-c", job])
    deadline = time.monotonic() + 30
    while not pids.exists() or len(pids.read_text().split()) < 2:
        assert time.monotonic() < deadline and wrapper.poll() is None
        time.sleep(0.05)
    wrapper.send_signal(signal.SIGINT)
    assert wrapper.wait(30) == 128 + signal.SIGINT
    for pid in map(int, pids.read_text().split()):
        deadline = time.monotonic() + 10
        while running(pid):
            assert time.monotonic() < deadline, f"process {pid} still runs"
            time.sleep(0.05)


def running(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie (its state, after the parenthesised name, is not Z)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
