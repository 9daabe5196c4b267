"""Commands of the foundation: init, serve, db, policy, audit, token."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from patchgate.domain.clock import utcnow
from patchgate.domain.errors import PolicyInvalid
from patchgate.entrypoints.cli.common import (
    actor,
    add_group,
    app,
    emit_json,
    emit_view,
    fail,
    read_text_file,
    settings,
)
from patchgate.entrypoints.cli.retention import prune_actions

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


class RenderFormat(StrEnum):
    html = "html"
    md = "md"
    json = "json"


def register(cli: typer.Typer) -> None:
    """Add the foundation's commands to ``cli``."""
    cli.command("init")(init)
    cli.command("serve")(serve)
    db = add_group(
        cli,
        "db",
        "Database schema.",
        {"upgrade": db_upgrade, "check": db_check, "prune-actions": prune_actions},
    )
    db.command("revision", hidden=True)(db_revision)
    add_group(
        cli,
        "policy",
        "The patch management policy.",
        {"check": policy_check, "render": policy_render, "apply": policy_apply},
    )
    add_group(
        cli,
        "audit",
        "The tamper-evident audit log.",
        {"verify": audit_verify, "list": audit_list, "checkpoint": audit_checkpoint},
    )
    add_group(
        cli,
        "token",
        "Management API tokens.",
        {"create": token_create, "list": token_list, "revoke": token_revoke},
    )


# --- init, db, serve -----------------------------------------------------------------------


def _upgrade_schema() -> None:
    from patchgate.adapters.db import migrate
    from patchgate.adapters.db.engine import make_throwaway_engine

    cfg = settings()
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_throwaway_engine(cfg.database_url)
    try:
        migrate.upgrade(engine, utcnow())
    finally:
        engine.dispose()


def init(
    demo: Annotated[
        bool, typer.Option("--demo", help="Add a demo product, devices and a release.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Create the database, data folder, keys, default policy and admin token (idempotent)."""
    from patchgate.bootstrap import owner_only

    owner_only(settings())
    from patchgate.services import setup

    _upgrade_schema()
    wired = app()
    result = setup.initialise(wired.context, demo=demo, actor=actor())
    policy_file = wired.settings.policy_file
    if not policy_file.exists():
        policy_file.write_text(_in_force_source())
        result.created.append(f"editable policy file {policy_file}")
    if as_json:
        emit_json(
            {
                "data_dir": str(wired.settings.data_dir),
                "created": result.created,
                "admin_token": result.admin_token,
                "device_tokens": result.device_tokens,
                "warnings": result.warnings,
            }
        )
        for warning in result.warnings:
            typer.echo(f"WARNING: {warning}", err=True)
        return
    typer.echo(f"data folder: {wired.settings.data_dir}")
    for item in result.created or ["nothing: already initialised"]:
        typer.echo(f"created: {item}")
    if result.admin_token:
        typer.echo(f"admin token (shown once, store it now): {result.admin_token}")
    for device_id, token in result.device_tokens.items():
        typer.echo(f"demo device {device_id}: target token (shown once) {token}")
    for warning in result.warnings:
        typer.echo(f"WARNING: {warning}", err=True)


def _in_force_source() -> str:
    with app().context.read_uow() as uow:
        record = uow.policies.current()
    return record.source if record else ""


def db_upgrade() -> None:
    """Migrate the database to the current schema."""
    _upgrade_schema()
    typer.echo("database is at the current schema")


def db_check() -> None:
    """Exit 2 unless the models and the migrations agree (run on a freshly migrated database)."""
    import tempfile

    from patchgate.adapters.db import migrate
    from patchgate.adapters.db.engine import make_throwaway_engine

    url = os.environ.get("PATCHGATE_DRIFT_URL")
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_throwaway_engine(url or f"sqlite:///{Path(tmp) / 'drift.db'}")
        try:
            migrate.upgrade(engine, utcnow())
            differences = migrate.drift(engine)
        finally:
            engine.dispose()
    if differences:
        fail(*(f"models and migrations differ: {d}" for d in differences))
    typer.echo("models and migrations agree")


def db_revision(
    message: str,
    rev_id: Annotated[str | None, typer.Option(help="Revision id to use.")] = None,
) -> None:
    """(developers) Autogenerate a migration from the models against a scratch database."""
    import tempfile

    from patchgate.adapters.db import migrate
    from patchgate.adapters.db.engine import make_throwaway_engine

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_throwaway_engine(f"sqlite:///{Path(tmp) / 'rev.db'}")
        try:
            from alembic import command

            cfg = migrate._config()
            with engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
            migrate.revision(engine, message, rev_id)
        finally:
            engine.dispose()


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    policy_file: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            help="Policy file to put in force at start "
            "(default: policy.toml in the data folder, if present).",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Server processes sharing the port (a dead one is restarted); with "
            "PostgreSQL any number of hosts may serve one database (docs/deploy.md).",
        ),
    ] = 1,
    reuse_port: Annotated[
        bool,
        typer.Option(
            "--reuse-port",
            help="Share the port with another patchgate server on the same data "
            "(default: a port in use is an error).",
        ),
    ] = False,
) -> None:
    """Serve the device API, the management API and the pages."""
    from patchgate.services import policy as policy_service

    if not reuse_port:
        _refuse_busy_port(host, port)
    cfg = settings()
    if not cfg.public_url and not _is_loopback(host):
        typer.echo(
            f"warning: PATCHGATE_PUBLIC_URL is not set; links for devices will name the "
            f"address each connection reached on {host}, never the Host header. Set it to "
            "the URL devices use.",
            err=True,
        )
    wired = app()  # refuses on an outdated schema, naming the command to run
    source_path = policy_file or (cfg.policy_file if cfg.policy_file.exists() else None)
    if source_path is not None:
        source = read_text_file(str(source_path), what="policy file")
        try:
            _, changed = policy_service.apply(wired.context, source, actor=actor())
        except PolicyInvalid as exc:
            fail(*exc.problems)
        if changed:
            typer.echo(f"policy from {source_path} put in force")
    wired.close()
    from granian.constants import Interfaces
    from granian.server import Server

    # The worker builds its own app from the environment, so hand it the data folder.
    os.environ["PATCHGATE_DATA_DIR"] = str(cfg.data_dir)
    typer.echo(f"patchgate serving on http://{host}:{port}/", err=True)
    Server(
        "patchgate.entrypoints.http:serve_app",
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        factory=True,
        workers=workers,
        # A worker that dies (killed, out of memory) is started again; the others keep
        # answering meanwhile (docs/deploy.md).
        respawn_failed_workers=True,
        respawn_interval=1.0,
        # A worker told to stop while it was still starting may miss it: killed then.
        workers_kill_timeout=30,
        log_access=False,
        backlog=2048,
    ).serve()


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _refuse_busy_port(host: str, port: int) -> None:
    """Exit 2 when something listens on ``host:port`` already. The server binds with
    SO_REUSEPORT (its workers share one port), so without this check a second server
    would start beside the first and the kernel would split the requests between them."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror}")
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no user
        try:
            probe.bind(address)
        except OSError as exc:
            fail(
                f"cannot listen on {host}:{port}: {exc.strerror} (another server? "
                "--reuse-port shares the port on purpose)"
            )


# --- policy --------------------------------------------------------------------------------


def policy_check(file: Annotated[str, typer.Argument(help="Policy TOML file.")]) -> None:
    """Validate a policy file: exit 2 with one line per problem."""
    from patchgate.services import policy as policy_service

    source = read_text_file(file, what="policy file")
    try:
        policy = policy_service.check(source, today=utcnow())
    except PolicyInvalid as exc:
        fail(*(f"{file}: {p}" for p in exc.problems))
    from patchgate.entrypoints.presenters.policy import summary_text

    typer.echo(f"{file}: {summary_text(policy)}")


def policy_render(
    file: Annotated[
        str | None, typer.Argument(help="Policy TOML file (default: in force).")
    ] = None,
    fmt: Annotated[RenderFormat, typer.Option("--format", help="Output format.")] = RenderFormat.md,
    base_url: Annotated[
        str | None,
        typer.Option(
            help="Public URL used in links (default: PATCHGATE_PUBLIC_URL; without either, "
            "links are relative to the site's root)."
        ),
    ] = None,
) -> None:
    """Render a policy (or the one in force) as HTML, Markdown or JSON."""
    import json

    from patchgate.entrypoints.web import render
    from patchgate.services import policy as policy_service

    if file is not None:
        try:
            policy = policy_service.check(read_text_file(file, what="policy file"), today=utcnow())
        except PolicyInvalid as exc:
            fail(*(f"{file}: {p}" for p in exc.problems))
    else:
        policy = policy_service.in_force(app().context).policy
    if base_url is None:
        base_url = settings().public_url or ""
    if fmt is RenderFormat.json:
        typer.echo(json.dumps(policy.to_json(), indent=2))
    elif fmt is RenderFormat.md:
        typer.echo(render.policy_markdown(policy, base_url), nl=False)
    else:
        typer.echo(render.policy_html(policy, base_url))


def policy_apply(
    file: Annotated[str, typer.Argument(help="Policy TOML file.")],
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Replace the data folder's policy.toml when it differs from FILE (the old "
            "one is kept as policy.toml.bak).",
        ),
    ] = False,
) -> None:
    """Validate a policy and put it in force (audited); the server publishes it at once.
    FILE becomes the data folder's policy.toml (what `serve` puts in force at start): a
    different policy.toml there is replaced only with --replace, after a backup."""
    from patchgate.services import policy as policy_service

    source = read_text_file(file, what="policy file")
    wired = app()
    try:
        policy_service.check(source, today=utcnow())
    except PolicyInvalid as exc:
        fail(*(f"{file}: {p}" for p in exc.problems))
    kept = wired.settings.policy_file
    differs = kept.exists() and kept.read_bytes() != source.encode()
    if differs and Path(file).resolve() != kept and not replace:
        fail(
            f"{kept} holds a different policy, which `serve` puts in force at start; "
            "pass --replace to replace it (a backup is kept)"
        )
    _, changed = policy_service.apply(wired.context, source, actor=actor())
    if differs and Path(file).resolve() != kept:
        backup = kept.with_name(kept.name + ".bak")
        backup.write_bytes(kept.read_bytes())
        typer.echo(f"{kept} replaced; the previous one is in {backup}")
    if not kept.exists() or differs:
        kept.write_text(source)
    typer.echo("policy put in force" if changed else "policy unchanged (already in force)")


# --- audit ---------------------------------------------------------------------------------


def audit_verify(
    against: Annotated[
        list[Path] | None,
        typer.Option(
            "--against",
            metavar="FILE",
            help="Checkpoints kept elsewhere (a witness's copy, `audit checkpoint` "
            "output): a chain truncated behind one of them is reported.",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Check the audit chain and its signed checkpoints; exit 2 naming the first problem."""
    from patchgate.domain.audit import parse_checkpoints
    from patchgate.services import audit

    external = []
    for file in against or []:
        found, damaged = parse_checkpoints(read_text_file(str(file), what="checkpoint file"))
        if damaged or not found:
            fail(f"{file}: {damaged[0] if damaged else 'holds no checkpoint'}")
        external.extend(found)
    count, finding = audit.verify(app().context, against=external)
    if as_json:
        emit_json(
            {
                "entries": count,
                "ok": finding is None,
                "finding": None if finding is None else finding.__dict__,
            }
        )
        if finding is not None:
            raise typer.Exit(2)
        return
    if finding is not None:
        fail(f"audit log: {finding.message}")
    typer.echo(f"audit log intact: {count} entries, chain and checkpoints verified")


def audit_checkpoint() -> None:
    """Print the signed checkpoint of the current head as JSON, to keep somewhere the data
    folder's writers cannot reach (then `audit verify --against FILE`)."""
    import json

    from patchgate.services import audit

    checkpoint = audit.latest_checkpoint(app().context)
    if checkpoint is None:
        fail("the audit log is empty: no checkpoint yet")
    typer.echo(json.dumps(checkpoint.__dict__, sort_keys=True))


def audit_list(
    as_json: JsonFlag = False,
    limit: Annotated[int, typer.Option(metavar="N", help="Newest entries to show.")] = 50,
    subject: Annotated[
        str | None, typer.Option(metavar="SUBJECT", help="Only entries about this subject.")
    ] = None,
) -> None:
    """List audit entries, newest first."""
    from patchgate.entrypoints.presenters import audit as present
    from patchgate.services import audit

    rows = audit.entries(app().context, limit=limit, subject=subject)
    emit_view(rows, as_json, json=present.entries_json, text=present.entries_text)


# --- tokens --------------------------------------------------------------------------------


def token_create(
    name: Annotated[str, typer.Argument(help="A name for the token.")],
    role: Annotated[
        str,
        typer.Option(metavar="ROLE", help="admin, release_manager, security_analyst or viewer."),
    ] = "viewer",
    replace: Annotated[
        bool, typer.Option("--replace", help="Revoke an existing token of this name first.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Create a management API token and print it once."""
    from patchgate.entrypoints.presenters import tokens as present
    from patchgate.services import access

    ctx = app().context
    if replace and any(t.name == name and t.revoked_at is None for t in access.list_tokens(ctx)):
        access.revoke_token(ctx, name=name, actor=actor())
    record, token = access.create_token(ctx, name=name, role=role, actor=actor())
    if as_json:
        emit_json(present.created_json(record, token))
    else:
        typer.echo(token)


def token_list(as_json: JsonFlag = False) -> None:
    """List tokens (names and roles, never the tokens)."""
    from patchgate.entrypoints.presenters import tokens as present
    from patchgate.services import access

    tokens = access.list_tokens(app().context)
    emit_view(tokens, as_json, json=present.tokens_json, text=present.tokens_text)


def token_revoke(name: Annotated[str, typer.Argument(help="The token's name.")]) -> None:
    """Revoke a token at once."""
    from patchgate.services import access

    access.revoke_token(app().context, name=name, actor=actor())
    typer.echo(f"token {name} revoked")
