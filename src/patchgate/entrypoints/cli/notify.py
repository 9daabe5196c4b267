"""``patchgate notify``: the notice outbox (docs/notifications.md)."""

from __future__ import annotations

import typer

from patchgate.entrypoints.cli import common


def register(cli: typer.Typer) -> None:
    group = typer.Typer(help="Notices by e-mail and webhook, and their delivery state.")
    cli.add_typer(group, name="notify")

    @group.command("list")
    def list_notices(
        limit: int = typer.Option(50, min=1, max=1000, help="How many, newest first."),
        before: int | None = typer.Option(None, "--before", help="Page: notices before this id."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    ) -> None:
        """Notices newest first, with each delivery's state and last error."""
        from patchgate.entrypoints.presenters import notifications as present
        from patchgate.services import notifications

        found = notifications.page(common.app().context, limit=limit, before_id=before)
        if as_json:
            common.emit_json(present.notices_json(found))
        else:
            typer.echo(present.notices_text(found))

    @group.command("run")
    def run(as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
        """Derive the notices the current state calls for and send what is due now (the
        server does this on its own timer)."""
        from patchgate.bootstrap import notice_channels
        from patchgate.services import notifications

        wired = common.app()
        result = notifications.run_once(
            wired.context, notice_channels(wired.settings), quick_retries=2
        )
        payload = {"stored": result.stored, "sent": result.sent, "failed": result.failed}
        if as_json:
            common.emit_json(payload)
        else:
            typer.echo(f"{result.stored} new notices, {result.sent} sent, {result.failed} failed")
