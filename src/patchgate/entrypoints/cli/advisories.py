"""``patchgate advisory …``: CSAF 2.0 security advisories (docs/compliance.md)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from patchgate.domain.errors import InvalidInput
from patchgate.entrypoints.cli.common import actor, add_group, app, emit_view
from patchgate.entrypoints.presenters import advisories as present

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"
FORMATS = ("csaf", "md", "html")


def register(cli: typer.Typer) -> None:
    """Add ``advisory`` to ``cli``."""
    add_group(
        cli,
        "advisory",
        "CSAF 2.0 security advisories.",
        {"create": create, "publish": publish, "list": list_advisories, "show": show},
    )


def public_url() -> str:
    """Where the server is reached (``PATCHGATE_PUBLIC_URL``), for the URLs in documents."""
    return (app().settings.public_url or DEFAULT_PUBLIC_URL).rstrip("/")


def create(
    vuln_ids: Annotated[list[str], typer.Argument(metavar="VULN_ID...")],
    title: Annotated[str | None, typer.Option("--title", help="The advisory's title.")] = None,
    acknowledge: Annotated[
        list[str] | None,
        typer.Option("--acknowledge", help="A name to thank (repeatable)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Draft a CSAF security advisory for one or more vulnerabilities of the register."""
    from patchgate.services.advisories import commands, views

    base = public_url()
    made = commands.create(
        app().context,
        vuln_ids,
        title=title,
        acknowledgments=acknowledge or (),
        base_url=base,
        actor=actor(),
    )
    view = views.advisory(app().context, made, base)
    emit_view(view, as_json, json=present.advisory_json, text=present.drafted_text)


def publish(
    advisory_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JsonFlag = False
) -> None:
    """Validate, sign and publish a draft advisory (tracking status final)."""
    from patchgate.services.advisories import commands, views

    base = public_url()
    commands.publish(app().context, advisory_id, base_url=base, actor=actor())
    view = views.advisory(app().context, advisory_id, base)
    emit_view(view, as_json, json=present.advisory_json, text=present.published_text)


def list_advisories(as_json: JsonFlag = False) -> None:
    """Every advisory, newest first."""
    from patchgate.services.advisories import views

    items = views.advisories(app().context, public_url())
    emit_view(items, as_json, json=present.list_json, text=present.list_text)


def show(
    advisory_id: Annotated[str, typer.Argument(metavar="ID")],
    fmt: Annotated[str, typer.Option("--format", help="csaf, md or html.")] = "csaf",
) -> None:
    """The advisory: the CSAF document itself, or Markdown or HTML."""
    from patchgate.services.advisories import views

    if fmt not in FORMATS:
        raise InvalidInput(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    record = views.get(app().context, advisory_id)
    if fmt == "csaf":
        typer.echo(
            record.text.rstrip("\n") if record.text else json.dumps(record.document, indent=2)
        )
    elif fmt == "md":
        typer.echo(present.markdown(record.document), nl=False)
    else:
        typer.echo(present.html(record.document))


def export_csaf_vex(product: str) -> None:
    """``vuln export-vex PRODUCT --format csaf``: the product's CSAF VEX on stdout."""
    from patchgate.services.advisories import views

    document = views.vex_document(app().context, product, base_url=public_url())
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
