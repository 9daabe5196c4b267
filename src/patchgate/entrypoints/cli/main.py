"""The ``patchgate`` command. Each capability registers its commands from its own module.

Start-up is lazy: ``patchgate --help`` lists the commands from the table below without
importing any of their modules, and ``patchgate device add`` imports the device commands
only. The server's modules (SQLAlchemy, FastAPI, the simulator) cost about a second to
import, which a user should pay only when a command needs them; ``patchgate agent …`` runs
on devices and never imports them at all.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from functools import cache
from typing import Any

import typer
from typer.core import TyperGroup

from patchgate.domain.errors import PatchgateError
from patchgate.entrypoints.cli import common, values
from patchgate.entrypoints.errors import exit_code

# The process umask of server-side commands: new files 0600, new folders 0700.
OWNER_ONLY_UMASK = 0o077
HELP = "Vulnerability deadlines, signed releases, phased rollouts with health gates."

# Each top-level command: the module whose ``register(cli)`` defines it, and the line
# ``patchgate --help`` shows for it (a test keeps these equal to the commands' own help).
COMMANDS: dict[str, tuple[str, str]] = {
    "init": (
        "core",
        "Create the database, data folder, keys, default policy and admin token (idempotent).",
    ),
    "serve": ("core", "Serve the device API, the management API and the pages."),
    "policy": ("core", "The patch management policy."),
    "vuln": ("vulns", "The vulnerability register."),
    "report": ("vulns", "Reports."),
    "release": ("releases", "Releases: signed, content-addressed artifacts."),
    "keys": ("releases", "TUF keys and metadata."),
    "device": ("devices", "Devices: provisioning, groups and tags, actions."),
    "ddi": ("devices", "Device API settings of a tenant."),
    "campaign": ("campaigns", "Campaigns: phased rollouts with health gates."),
    "filter": ("targeting", "Saved device queries (hawkBit target filters)."),
    "simulate": (
        "sim",
        "Simulate a campaign on a virtual fleet and report blast radius, bricked devices, "
        "reverts, time to halt and patched share at the deadline.",
    ),
    "agent": ("agent", "The reference device agent (A/B slots, DDI, TUF)."),
    "audit": ("core", "The tamper-evident audit log."),
    "token": ("core", "Management API tokens."),
    "db": ("core", "Database schema."),
    "advisory": ("advisories", "CSAF 2.0 security advisories."),
    "techfile": ("compliance", "The technical file."),
    "support": ("compliance", "End of support."),
    "notify": ("notify", "Notices by e-mail and webhook, and their delivery state."),
}


# What a value stands for in help, in words (Typer prints Python's type names: ``<str>``).
_VALUE_WORDS = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "bool": "BOOLEAN"}


def _value_word(label: str | None) -> str | None:
    """``<int>`` → ``INTEGER``, ``<list[str]>`` → ``TEXT`` (the option repeats), a choice's
    ``<a|b>`` → ``a|b``; anything else upper-cased (``<path>`` → ``PATH``)."""
    if label is None:
        return None
    inner = label.removesuffix("...").strip("<>")
    inner = inner.removeprefix("list[").removesuffix("]")
    if "|" in inner:
        return inner
    return _VALUE_WORDS.get(inner, inner.upper())


def _plain_values(param: Any) -> None:
    display = getattr(param, "display_type_rich", None)
    if display is None or getattr(param, "is_flag", False):
        return
    param.display_type_rich = lambda ctx: _value_word(display(ctx))


def _plain(command: Any) -> Any:
    """``command`` and everything under it with plain-text help: no Rich panels (slow to
    import, and they print flags as ``<bool>``), values named in words."""
    if hasattr(command, "rich_markup_mode"):
        command.rich_markup_mode = None
    for param in getattr(command, "params", ()):
        _plain_values(param)
    for sub in getattr(command, "commands", {}).values():
        _plain(sub)
    return command


@cache
def _load(module: str) -> dict[str, Any]:
    """The top-level commands that ``entrypoints/cli/MODULE.py`` registers, by name."""
    holder = typer.Typer(rich_markup_mode=None)
    importlib.import_module(f"patchgate.entrypoints.cli.{module}").register(holder)
    group = typer.main.get_group(holder)
    return {name: _plain(cmd) for name, cmd in group.commands.items()}


class LazyGroup(TyperGroup):
    """The root command: subcommands are imported when named, not when listed."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        entry = COMMANDS.get(cmd_name)
        return _load(entry[0]).get(cmd_name) if entry else None

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except typer.TyperException as exc:  # an unknown command: suggest the nearest
            close = difflib.get_close_matches(args[0], list(COMMANDS)) if args else []
            if close and hasattr(exc, "message"):
                exc.message = f"{exc.message.rstrip('.')}; did you mean {close[0]!r}?"
            raise

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, text) for name, (_, text) in COMMANDS.items()])


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("patchgate")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"patchgate {_version()}")
        raise typer.Exit(0)


def _root(
    show_version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        is_eager=True,
        callback=_show_version,
    ),
) -> None:
    """Vulnerability deadlines, signed releases, phased rollouts with health gates."""


def build_cli() -> Any:
    """The command tree (a Click group whose subcommands load on first use)."""
    values.install()
    cli = typer.Typer(
        name="patchgate",
        cls=LazyGroup,
        help=HELP,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode=None,
    )
    cli.callback()(_root)
    return _plain(typer.main.get_group(cli))


def _take_data_dir(argv: list[str]) -> list[str]:
    """Remove ``--data-dir DIR`` (or ``--data-dir=DIR``) from anywhere in ``argv``, so the
    flag works before or after the command name."""
    out: list[str] = []
    skip = False
    for index, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg == "--data-dir" and index + 1 < len(argv):
            common.DATA_DIR["value"] = argv[index + 1]
            skip = True
        elif arg.startswith("--data-dir="):
            common.DATA_DIR["value"] = arg.split("=", 1)[1]
        else:
            out.append(arg)
    return out


def usage_line(exc: Any) -> str:
    """A usage error (missing argument, unknown option, bad value) as one readable line
    naming the command's help."""
    message = str(exc.format_message()).rstrip(".")
    ctx = getattr(exc, "ctx", None)
    if ctx is None:
        return f"error: {message}"
    return f"error: {message} (see '{ctx.command_path} --help')"


def _usage_error(exc: Exception) -> None:
    """Report a Click/Typer usage error: help for a bare group, else one line; exit 2."""
    if type(exc).__name__ == "NoArgsIsHelpError":  # a group named without a subcommand
        typer.echo(exc.format_message(), err=True)  # type: ignore[attr-defined]
    elif hasattr(exc, "format_message"):
        typer.echo(usage_line(exc), err=True)
    else:
        typer.echo(f"error: {exc}", err=True)
    sys.exit(getattr(exc, "exit_code", 2) or 2)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: exit 0 on success, 2 on bad input or refusal, 1 on internal error."""
    args = _take_data_dir(list(sys.argv[1:] if argv is None else argv))
    if args[:1] != ["agent"]:  # the device agent keeps its own file modes
        # Every file and folder a server-side command (serve included, and its worker
        # processes, which inherit it) creates is owner-only (docs/security.md).
        os.umask(OWNER_ONLY_UMASK)
    try:
        code = build_cli()(args=args, prog_name="patchgate", standalone_mode=False)
    except PatchgateError as exc:
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        sys.exit(exit_code(exc))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    except SystemExit:
        raise
    except typer.TyperException as exc:  # Typer's own Click: usage errors, bad files
        _usage_error(exc)
    except Exception as exc:  # the last line of defence: one line, never a traceback
        typer.echo(f"internal error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
