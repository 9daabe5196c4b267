"""The ``patchgate`` command. Each capability registers its commands from its own module."""

from __future__ import annotations

import sys

import typer

from patchgate.domain.errors import PatchgateError
from patchgate.entrypoints.cli import common


def build_cli(argv: list[str]) -> typer.Typer:
    """The command tree. ``patchgate agent …`` runs on devices, so it gets a tree with the
    agent's commands only and never imports the server's modules (SQLAlchemy, FastAPI),
    which would cost about a second at every start."""
    cli = typer.Typer(
        name="patchgate",
        help="Vulnerability deadlines, signed releases, phased rollouts with health gates.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    from patchgate.entrypoints.cli.agent import register as register_agent

    if argv[:1] == ["agent"]:
        register_agent(cli)
        return cli
    from patchgate.entrypoints.cli.advisories import register as register_advisories
    from patchgate.entrypoints.cli.campaigns import register as register_campaigns
    from patchgate.entrypoints.cli.compliance import register as register_compliance
    from patchgate.entrypoints.cli.core import register as register_core
    from patchgate.entrypoints.cli.devices import register as register_devices
    from patchgate.entrypoints.cli.releases import register as register_releases
    from patchgate.entrypoints.cli.sim import register as register_sim
    from patchgate.entrypoints.cli.vulns import register as register_vulns

    register_core(cli)
    register_agent(cli)
    register_vulns(cli)
    register_releases(cli)
    register_devices(cli)
    register_sim(cli)
    register_campaigns(cli)
    register_advisories(cli)
    register_compliance(cli)
    return cli


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


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: exit 0 on success, 2 on bad input or refusal, 1 on internal error."""
    args = _take_data_dir(list(sys.argv[1:] if argv is None else argv))
    try:
        code = build_cli(args)(args=args, prog_name="patchgate", standalone_mode=False)
    except PatchgateError as exc:
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    except SystemExit:
        raise
    except Exception as exc:  # the last line of defence: one line, never a traceback
        import click

        # typer >= 0.20 raises its vendored click's exceptions (TyperException subclasses).
        if isinstance(exc, click.ClickException | typer.TyperException) and hasattr(exc, "show"):
            exc.show()
            sys.exit(2)
        typer.echo(f"internal error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
