"""What every CLI command shares: the wired app, the actor, JSON output, error exits."""

from __future__ import annotations

import gc
import getpass
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer

from patchgate.domain.errors import InvalidInput

if TYPE_CHECKING:
    # Imported lazily below: the agent's commands run on devices and must not pay for the
    # server's imports (SQLAlchemy, FastAPI) at every start.
    from patchgate.bootstrap import App, Settings

V = TypeVar("V")

# Whether this process has set its start-up objects aside from the cycle collector.
_FROZEN: list[bool] = []

# Set by main() from --data-dir, wherever it appears on the command line.
DATA_DIR: dict[str, str | None] = {"value": None}


def settings() -> Settings:
    from patchgate.bootstrap import Settings

    return Settings.from_env(DATA_DIR["value"])


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector paused for the block, then running as it did before; the
    first time in a process, what exists by then is set aside from its later runs
    (``gc.freeze``).

    Importing the application and wiring it make about 140,000 objects that live as long
    as the process (modules, classes, functions) and next to no garbage, yet their
    allocations start the collector some 200 times over them (about 0.1 s of a command's
    start-up), and each later run would walk them again. Set aside once: a process that
    wires the app again (the tests) does not keep setting aside what it made since."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if not _FROZEN:
                _FROZEN.append(True)
                gc.freeze()
            gc.enable()


@cache
def app() -> App:
    """The wired app for this command, built on first use and checked to be migrated."""
    with _collector_paused():
        from patchgate.adapters.db import migrate
        from patchgate.bootstrap import build

        wired = build(settings())
        current = migrate.current_revision(wired.engines.write)
    if current != migrate.head_revision():
        hint = "patchgate init" if current is None else "patchgate db upgrade"
        fail(f"the database is not at the current schema ({current or 'empty'}); run `{hint}`")
    return wired


def actor() -> str:
    """Who the audit log names for a CLI action: the local user."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"cli:{user}"


def emit_json(payload: dict[str, Any]) -> None:
    """Exactly one JSON object on stdout."""
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")


def add_group(
    cli: typer.Typer, name: str, about: str, commands: Mapping[str, Callable[..., Any]]
) -> typer.Typer:
    """Add the command group ``name`` (``about``: its help, shown when it is called without
    a command) to ``cli``, each command under its name; the group, for more."""
    group = typer.Typer(help=about, no_args_is_help=True)
    for command, fn in commands.items():
        group.command(command)(fn)
    cli.add_typer(group, name=name)
    return group


def emit_view(
    view: V,
    as_json: bool,
    *,
    json: Callable[[V], dict[str, Any]],
    text: Callable[[V], str | Iterable[str]],
) -> None:
    """A view on stdout: one JSON object (``--json``) or the presenter's text (a string,
    or lines)."""
    if as_json:
        emit_json(json(view))
        return
    shown = text(view)
    if isinstance(shown, str):
        typer.echo(shown)
    else:
        emit_lines(shown)


def fail(*problems: str, code: int = 2) -> NoReturn:
    """One readable line per problem on stderr, then exit (2: bad input or refused)."""
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    raise typer.Exit(code)


def read_text_file(path: str, *, what: str = "file", limit: int = 16 * 1024 * 1024) -> str:
    """Read a UTF-8 text file given on the command line, with readable errors."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise InvalidInput(f"cannot read {what} {path}: {exc.strerror}") from exc
    if len(data) > limit:
        raise InvalidInput(f"{what} {path} is over {limit} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{what} {path} is not UTF-8 text") from exc


def emit_lines(lines: Iterable[str]) -> None:
    """Lines of human-readable output on stdout."""
    for line in lines:
        typer.echo(line)
