"""``patchgate db prune-actions``: action history past its retention (docs/deploy.md,
"Pruning action history")."""

from __future__ import annotations

from typing import Annotated

import typer

from patchgate.domain.durations import parse_duration
from patchgate.entrypoints.cli.common import actor, app, emit_json


def prune_actions(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            help="Delete closed actions closed longer ago than this (e.g. 400d), of finished "
            "campaigns or assigned by hand; never a device's open or installed action.",
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would go; delete nothing.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Prune action history by the documented retention rule; each batch is audited."""
    from patchgate.services import retention

    age = parse_duration(older_than, what="--older-than")
    result = retention.prune_actions(app().context, age, actor=actor(), dry_run=dry_run)
    if json_out:
        emit_json(result.to_json())
        return
    verb = "would delete" if dry_run else "deleted"
    typer.echo(f"{verb} {result.actions} actions closed before {result.cutoff}")
    for campaign, counts in result.by_campaign.items():
        shown = ", ".join(f"{status} {n}" for status, n in counts.items())
        typer.echo(f"  campaign {campaign}: {shown}")
