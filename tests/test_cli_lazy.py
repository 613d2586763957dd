"""The `ember` command loads lazily: its help lists every command from the tables without importing them, the
tables agree with the commands, and neither the CLI's start nor the server imports the tooling package."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from ember.cli import COMMANDS, main
from ember.cli.lazy import Lazy, LazyGroup

SRC = Path(__file__).resolve().parents[1] / "src"


def _entries(group: LazyGroup, prefix: str = "") -> list[tuple[str, Lazy]]:
    """Every lazy entry under `group`, loading each to reach the groups nested in it."""
    found = []
    for name, entry in group.lazy.items():
        found.append((prefix + name, entry))
        command = entry.load()
        if isinstance(command, LazyGroup):
            found += _entries(command, f"{prefix}{name} ")
    return found


def test_every_lazy_entry_loads_the_command_it_names_with_its_short_help() -> None:
    assert isinstance(main, LazyGroup)
    entries = _entries(main)
    assert {"eval speech", "bench first-run", "reliability soak", "serve", "import"} <= {n for n, _ in entries}
    for path, entry in entries:
        command = entry.load()
        assert command.name == path.split()[-1], path
        assert command.get_short_help_str(10_000) == entry.help, path
        for limit in (30, 45, 70):  # what `--help` shows at several terminal widths
            assert click.Command("x", help=entry.help).get_short_help_str(limit) == command.get_short_help_str(limit)


def _python(code: str) -> list[str]:
    """Run `code` in a fresh interpreter; it prints a JSON list, returned."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return list(json.loads(done.stdout.splitlines()[-1]))


def test_help_lists_every_command_and_imports_none_of_them() -> None:
    code = """if True:
        import json, sys
        from click.testing import CliRunner
        from ember.cli import main
        out = [CliRunner().invoke(main, [*group, "--help"]).output for group in ([], ["eval"], ["bench"])]
        loaded = sorted(m for m in sys.modules if m.startswith("ember"))
        print(json.dumps([*out, "LOADED", *loaded]))"""
    top, evals, benches, marker, *loaded = _python(code)
    assert marker == "LOADED"
    assert all(f"  {name} " in top for name in COMMANDS)
    assert all(f"  {name} " in evals for name in ("speech", "health", "reasoning", "vision", "auto", "recs"))
    assert all(f"  {name} " in benches for name in ("engine", "recs", "first-run"))
    groups_only = {
        "ember_tools",
        "ember_tools.eval",
        "ember_tools.eval.cli",
        "ember_tools.bench",
        "ember_tools.bench.cli",
    }
    assert set(loaded) == {"ember", "ember.cli", "ember.cli.lazy", "ember.errors"} | groups_only


def test_serve_command_and_the_app_import_no_tooling(tmp_path: Path) -> None:
    code = f"""if True:
        import json, sys
        from fastapi.testclient import TestClient
        from ember.cli import main
        from ember.config import Settings
        assert main.get_command(None, "serve") is not None
        from ember.api.app import create_app
        fake = {{"engine": "fake", "model": "fake"}}
        roles = {{"chat-fast": fake, "chat": fake, "asr": fake}}
        settings = Settings(data_dir={str(tmp_path)!r}, cache_dir={str(tmp_path)!r}, roles=roles,
                            build_health_index=False)
        with TestClient(create_app(settings)) as client:
            assert client.get("/health/live").status_code == 200
        print(json.dumps(sorted(m for m in sys.modules if m.startswith("ember"))))"""
    loaded = _python(code)
    assert "ember.cli.serve" in loaded
    assert not [m for m in loaded if m.startswith(("ember_tools", "ember.eval", "ember.bench", "ember.reliability"))]


def test_the_runtime_package_never_imports_the_tooling() -> None:
    wrong = []
    for path in (SRC / "ember").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            wrong += [f"{path.relative_to(SRC)}: {n}" for n in names if n.split(".")[0] == "ember_tools"]
            cli = path.is_relative_to(SRC / "ember" / "cli")
            wrong += [f"{path.relative_to(SRC)}: {n}" for n in names if cli and n.startswith("ember.api.routes")]
    assert wrong == []


def test_an_ember_error_in_a_lazily_loaded_command_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    env = {"EMBER_DATA_DIR": str(tmp_path), "EMBER_CONFIG": str(tmp_path / "none.toml")}
    result = CliRunner().invoke(main, ["keys", "revoke", "nope"], env=env)
    assert result.exit_code == 1
    assert "Error: no active key 'nope'" in result.output
    assert "Traceback" not in result.output
