"""``patchgate report checklist``, ``techfile export`` and ``support show``: compliance
evidence (docs/compliance.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from patchgate.entrypoints.cli.advisories import public_url
from patchgate.entrypoints.cli.common import actor, add_group, app, emit_json

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
ProductOption = Annotated[
    str | None, typer.Option("--product", help="Only this product of the policy.")
]
MARK = {"pass": "PASS", "warn": "WARN", "fail": "FAIL"}


def register(cli: typer.Typer) -> None:
    """Add ``techfile`` and ``support`` to ``cli``."""
    add_group(cli, "techfile", "The technical file.", {"export": techfile_export})
    add_group(cli, "support", "End of support.", {"show": support_show})


def register_reports(report: typer.Typer) -> None:
    """Add ``checklist`` to the ``report`` group."""
    report.command("checklist")(report_checklist)


def report_checklist(product: ProductOption = None, as_json: JsonFlag = False) -> None:
    """The guide's six compliance checks from live data."""
    from patchgate.services.compliance import checklist

    out = checklist.report(app().context, base_url=public_url(), product=product)
    if as_json:
        emit_json(out)
        return
    for item in out["items"]:
        typer.echo(f"{MARK[item['state']]}  {item['id']:<22} {item['summary']}")
        for e in item["evidence"]:
            typer.echo(f"      {e['label']}" + (f" <{e['url']}>" if e["url"] else ""))
    typer.echo(f"{out['passed']} of {out['total']} passed")


def support_show(
    product: Annotated[str, typer.Argument(metavar="PRODUCT")], as_json: JsonFlag = False
) -> None:
    """A product's support statement."""
    from patchgate.services.compliance import support

    out = support.statement(app().context, product)
    if as_json:
        emit_json(out)
        return
    state = "supported" if out["supported"] else "no longer supported"
    typer.echo(f"{out['product']}: security updates until {out['support_end_human']} ({state})")


def techfile_export(
    folder: Annotated[str, typer.Argument(metavar="DIR")],
    product: ProductOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Write the technical file into DIR (which must not exist or be empty)."""
    from patchgate.services.compliance import techfile

    out = techfile.export(
        app().context, folder, product=product, base_url=public_url(), actor=actor()
    )
    if as_json:
        emit_json(out)
    else:
        typer.echo(f"technical file written to {out['path']} ({len(out['files'])} files)")
