"""``patchgate report checklist``, ``techfile export`` and ``support show``: compliance
evidence (docs/compliance.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from patchgate.entrypoints.cli.advisories import public_url
from patchgate.entrypoints.cli.common import actor, add_group, app, emit_view
from patchgate.entrypoints.presenters import compliance as present

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
ProductOption = Annotated[
    str | None, typer.Option("--product", help="Only this product of the policy.")
]


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

    view = checklist.view(app().context, base_url=public_url(), product=product)
    emit_view(view, as_json, json=present.checklist_json, text=present.checklist_text)


def support_show(
    product: Annotated[str, typer.Argument(metavar="PRODUCT")], as_json: JsonFlag = False
) -> None:
    """A product's support statement."""
    from patchgate.services.compliance import support

    view = support.view(app().context, product)
    emit_view(view, as_json, json=present.support_json, text=present.support_text)


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
    emit_view(out, as_json, json=present.export_json, text=present.export_text)
