"""The command line's surface: help, version, usage errors, start-up cost."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest

from patchgate.entrypoints.cli import main as cli_main
from tests.support import run_cli


def _all_commands() -> list[tuple[str, Any]]:
    """Every command of the tree with its path (``device add``), loaded."""
    out: list[tuple[str, Any]] = []

    def walk(path: str, command: Any) -> None:
        out.append((path, command))
        for name, sub in getattr(command, "commands", {}).items():
            walk(f"{path} {name}", sub)

    for name, (module, _) in cli_main.COMMANDS.items():
        walk(name, cli_main._load(module)[name])
    return out


@pytest.mark.parametrize(
    "args",
    [
        ["device", "add"],  # a missing argument
        ["device", "add", "d-1", "--bogus"],  # an unknown option
        ["device", "assign", "d-1", "not-a-number"],  # a value of the wrong type
        ["devic"],  # an unknown command
        ["token", "create", "x", "--role"],  # an option without its value
    ],
)
def test_a_usage_error_is_one_line_on_stderr_and_exit_2(args: list[str]) -> None:
    result = run_cli(args, {})
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert result.stdout == ""


def test_a_usage_error_names_the_commands_help() -> None:
    result = run_cli(["device", "add"], {})
    assert (
        result.stderr.strip() == "error: Missing argument 'ID' (see 'patchgate device add --help')"
    )


def test_an_unknown_command_suggests_the_nearest_one() -> None:
    result = run_cli(["devic"], {})
    assert "did you mean 'device'" in result.stderr


def test_version_prints_the_package_version() -> None:
    from importlib.metadata import version

    result = run_cli(["--version"], {})
    assert result.code == 0
    assert result.stdout.strip() == f"patchgate {version('patchgate')}"


def test_help_never_shows_python_type_names() -> None:
    python_types = re.compile(r"<(bool|str|int|float|list\[[a-z]+\]|path|file|datetime)>")
    for path, _ in _all_commands():
        result = run_cli([*path.split(), "--help"], {})
        assert result.code == 0, (path, result.stderr)
        assert not python_types.search(result.stdout), (path, result.stdout)
        assert "╭" not in result.stdout, path  # plain text, no Rich panels


def test_the_root_help_lists_each_command_with_its_own_summary() -> None:
    for name, (module, summary) in cli_main.COMMANDS.items():
        command = cli_main._load(module)[name]
        assert command.get_short_help_str(300) == summary, name
    every = {name for module, _ in cli_main.COMMANDS.values() for name in cli_main._load(module)}
    assert every == set(cli_main.COMMANDS)  # no registered command is left out of the table


def test_help_imports_none_of_the_servers_modules() -> None:
    # ``patchgate --help`` and ``patchgate device --help`` must not pay for SQLAlchemy,
    # FastAPI or the simulator, nor ``simulate --help`` for the simulator it describes;
    # measured by what a fresh interpreter has imported.
    script = (
        "import sys\n"
        "from patchgate.entrypoints.cli.main import main\n"
        "for args in (['--help'], ['device', '--help'], ['device', 'add', '--help'],\n"
        "             ['simulate', '--help'], ['release', 'create', '--help']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'sqlalchemy', 'fastapi', 'starlette', 'numpy', 'rich', 'alembic', 'httpx'})\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert "HEAVY []" in proc.stderr, proc.stderr
