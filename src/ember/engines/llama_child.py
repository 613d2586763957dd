"""The llama.cpp child process: `python -m ember.engines.llama_child CONFIG_JSON`.

It loads one GGUF model into llama.cpp's own HTTP server (xllamacpp's `Server`, listening on a free
loopback port), prints `{"url": ...}` as one line on stdout, and then serves OpenAI-compatible chat
completions from llama.cpp's C++ threads: no Python runs per token. It exits when its standard input
reaches end of file or its parent process goes away, so it never outlives the Ember that started it,
even one killed with SIGKILL. `CONFIG_JSON` holds the role's `spec` (an EngineSpec), the `model` path and
an optional `mmproj` path; this program resolves, downloads and verifies nothing itself.
"""

from __future__ import annotations

import json
import os
import select
import sys

import xllamacpp as xlc

from ember.config import EngineSpec
from ember.engines.llama_params import server_params

LOOPBACK = "127.0.0.1"
PARENT_POLL_S = 1.0


def wait_for_parent(parent: int) -> None:
    """Return when standard input is closed or the parent process `parent` is gone."""
    stdin = sys.stdin.fileno()
    while os.getppid() == parent:
        ready, _, _ = select.select([stdin], [], [], PARENT_POLL_S)
        if ready and not os.read(stdin, 4096):
            return


def main(argv: list[str]) -> None:
    parent = os.getppid()
    config = json.loads(argv[1])
    params = server_params(EngineSpec.model_validate(config["spec"]), config["model"], config.get("mmproj"))
    params.hostnames = [LOOPBACK]
    params.port = 0  # llama.cpp binds a free port and reports it
    server = xlc.Server(params)
    sys.stdout.write(json.dumps({"url": server.listening_address}) + "\n")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # anything printed later goes to the log, not the pipe
    wait_for_parent(parent)
    os._exit(0)  # skip the destructors: llama.cpp's threads stop with the process


if __name__ == "__main__":
    main(sys.argv)
