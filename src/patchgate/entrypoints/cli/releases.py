"""Commands for releases and trust: ``release create|list|show|withdraw|sign`` and
``keys init|rotate|sign-targets|status``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer

from patchgate.domain.errors import InvalidInput, TooLarge
from patchgate.entrypoints.cli.common import (
    actor,
    add_group,
    app,
    emit_json,
    emit_view,
    read_text_file,
)
from patchgate.entrypoints.cli.targeting import metadata_commands

if TYPE_CHECKING:
    # Rich draws the upload's progress bar; imported by release create only.
    from rich.progress import Progress, TaskID

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
CHUNK = 1024 * 1024


def register(cli: typer.Typer) -> None:
    """Add the release and key commands to ``cli``."""
    rel = add_group(
        cli,
        "release",
        "Releases: signed, content-addressed artifacts.",
        {
            "create": release_create,
            "list": release_list,
            "show": release_show,
            "withdraw": release_withdraw,
            "sign": release_sign,
        },
    )
    rel.add_typer(metadata_commands("release"), name="meta")
    add_group(
        cli,
        "keys",
        "TUF keys and metadata.",
        {
            "init": keys_init,
            "rotate": keys_rotate,
            "sign-targets": keys_sign_targets,
            "status": keys_status,
        },
    )


def _read_chunks(handle: IO[bytes], progress: Progress, task: TaskID) -> Iterator[bytes]:
    while chunk := handle.read(CHUNK):
        progress.advance(task, len(chunk))
        yield chunk


def release_create(
    product: Annotated[str, typer.Argument(help="Product name as in the policy.")],
    version: Annotated[str, typer.Argument(help="Version (semantic or monotonic).")],
    artifact: Annotated[
        list[Path], typer.Option("--artifact", help="An artifact file (repeatable).")
    ],
    security_version: Annotated[
        int, typer.Option("--security-version", help="Anti-rollback counter.")
    ] = 0,
    update_type: Annotated[
        str, typer.Option("--type", help="security, feature or combined.")
    ] = "security",
    hardware: Annotated[
        list[str] | None,
        typer.Option("--hardware", help="Compatible hardware model (repeatable)."),
    ] = None,
    fixes: Annotated[
        str, typer.Option("--fixes", help="Fixed vulnerability IDs, comma-separated.")
    ] = "",
    notes: Annotated[Path | None, typer.Option("--notes", help="Release notes file.")] = None,
    sbom: Annotated[Path | None, typer.Option("--sbom", help="CycloneDX JSON SBOM.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Upload artifacts and create a release (signed at once in lab trust mode)."""
    from patchgate.entrypoints.presenters import releases as present
    from patchgate.services.releases import commands, views

    wired = app()
    limit = wired.settings.max_artifact_bytes
    handles: list[IO[bytes]] = []
    sizes: list[int] = []
    try:
        for path in artifact:
            try:
                handle: IO[bytes] = path.open("rb")
                size = os.fstat(handle.fileno()).st_size
            except OSError as exc:
                raise InvalidInput(f"cannot read artifact {path}: {exc.strerror}") from exc
            handles.append(handle)
            sizes.append(size)
            if size > limit:
                raise TooLarge(f"artifact {path} is over the limit of {limit} bytes")
        notes_text = read_text_file(str(notes), what="notes file") if notes else ""
        sbom_bytes: bytes | None = None
        if sbom is not None:
            try:
                sbom_bytes = sbom.read_bytes()
            except OSError as exc:
                raise InvalidInput(f"cannot read SBOM {sbom}: {exc.strerror}") from exc
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        with progress:
            uploads = []
            for path, handle, size in zip(artifact, handles, sizes, strict=True):
                task = progress.add_task(f"upload {path.name}", total=size)
                uploads.append(
                    commands.ArtifactUpload(path.name, _read_chunks(handle, progress, task))
                )
            record = commands.create_release(
                wired.context,
                product=product,
                version=version,
                artifacts=uploads,
                actor=actor(),
                security_version=security_version,
                update_type=update_type,
                hardware=hardware or [],
                fixes=[f for f in fixes.split(",") if f.strip()],
                notes=notes_text,
                sbom=sbom_bytes,
            )
    finally:
        for handle in handles:
            handle.close()
    detail = views.detail_of(wired.context, record)
    if as_json:
        emit_json(present.release_json(detail))
        return
    typer.echo(present.release_text(detail))
    if record.state != "signed":
        typer.echo(
            f"release {record.id} awaits its signature: "
            f"patchgate release sign {record.id} --key targets.key"
        )


def release_list(
    product: Annotated[str | None, typer.Option(help="Only this product.")] = None,
    metadata: Annotated[
        list[str] | None,
        typer.Option(
            "--metadata",
            metavar="KEY=VALUE",
            help="Only releases whose metadata KEY is VALUE (* a wildcard; repeatable).",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List releases, newest first."""
    from patchgate.entrypoints.presenters import releases as present
    from patchgate.services.releases import views

    listing = views.release_list(app().context, product=product, metadata=metadata or ())
    emit_view(listing, as_json, json=present.release_list_json, text=present.release_list_text)


def release_show(
    release_id: Annotated[int, typer.Argument(help="Release ID.")], as_json: JsonFlag = False
) -> None:
    """Show a release, its artifacts, what their own signatures said, and its trust state."""
    from patchgate.entrypoints.presenters import releases as present
    from patchgate.services.releases import views

    detail = views.release_detail(app().context, release_id)
    emit_view(detail, as_json, json=present.release_json, text=present.release_text)


def release_withdraw(
    release_id: Annotated[int, typer.Argument(help="Release ID.")],
    reason: Annotated[str, typer.Option("--reason", help="Why it is withdrawn.")],
    key: Annotated[
        Path | None,
        typer.Option("--key", help="Targets key to re-sign the TUF targets now."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Withdraw a release for good: out of the TUF targets and never offered again."""
    from patchgate.entrypoints.presenters import releases as present
    from patchgate.services.releases import commands, views

    ctx = app().context
    result = commands.withdraw_release(ctx, release_id, reason=reason, actor=actor(), key_file=key)
    if as_json:
        emit_json(
            present.withdrawal_json(
                views.detail_of(ctx, result.release),
                targets_resigned=result.targets_resigned,
                still_in_targets=result.still_in_targets,
            )
        )
        return
    typer.echo(f"release {release_id} withdrawn; it is never offered again")
    if result.targets_resigned:
        typer.echo("TUF targets re-signed without it")
    elif result.still_in_targets:
        typer.echo(
            "the TUF targets still list it until re-signed: "
            "patchgate keys sign-targets --key targets.key"
        )


def release_sign(
    release_id: Annotated[int, typer.Argument(help="Release ID.")],
    key: Annotated[Path, typer.Option("--key", help="The targets key file (PEM).")],
    as_json: JsonFlag = False,
) -> None:
    """Sign the TUF targets metadata listing this release with the offline targets key."""
    from patchgate.entrypoints.presenters import releases as present
    from patchgate.services.releases import commands, views

    ctx = app().context
    record = commands.sign_release(ctx, release_id, key_file=key, actor=actor())
    if as_json:
        emit_json(present.release_json(views.detail_of(ctx, record)))
    else:
        typer.echo(f"release {release_id} signed: it is installable now")


# --- keys ----------------------------------------------------------------------------------


def keys_init(as_json: JsonFlag = False) -> None:
    """Create the TUF repository, its online keys and the offline keys (once)."""
    from patchgate.services import setup
    from patchgate.services.releases.rules import trust_mode

    wired = app()
    result = setup.InitResult()
    setup._initialise_trust(wired.context, result, actor=actor())
    if as_json:
        emit_json(
            {
                "created": result.created,
                "warnings": result.warnings,
                "trust": trust_mode(wired.context),
            }
        )
        return
    for item in result.created or ["nothing: the TUF repository exists"]:
        typer.echo(f"created: {item}")
    for warning in result.warnings:
        typer.echo(f"WARNING: {warning}", err=True)


def keys_rotate(
    role: Annotated[str, typer.Argument(help="root, targets, snapshot or timestamp.")],
    root_key: Annotated[
        list[Path] | None,
        typer.Option("--root-key", help="A current root key (repeatable; default: offline-keys/)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for new root/targets keys (default: offline-keys/)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Replace a role's keys: a new root version signed by old and new root keys."""
    from patchgate.services.releases import commands

    wired = app()
    version = commands.rotate_keys(
        wired.context, role, root_key_files=root_key or [], actor=actor(), keys_out=out
    )
    offline = out or wired.settings.offline_keys_dir
    if as_json:
        emit_json({"role": role, "root_version": version})
        return
    typer.echo(f"{role} keys rotated; root is now version {version}")
    if role in ("root", "targets"):
        typer.echo(f"WARNING: the new {role} key(s) are in {offline}: move them offline", err=True)


def keys_sign_targets(
    key: Annotated[
        Path | None, typer.Option("--key", help="Targets key (default: lab key).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Re-sign the targets metadata from the releases in force."""
    from patchgate.services.releases import commands

    version = commands.sign_targets(app().context, key_file=key, actor=actor())
    if as_json:
        emit_json({"targets_version": version})
    else:
        typer.echo(f"targets metadata version {version} signed")


def keys_status(as_json: JsonFlag = False) -> None:
    """Trust mode, metadata versions and the timestamp's expiry."""
    from patchgate.entrypoints.presenters import releases as present
    from patchgate.services.releases import views

    view = views.trust_status(app().context)
    if view is None:
        raise InvalidInput("no TUF repository; run `patchgate init` or `patchgate keys init`")
    emit_view(view, as_json, json=present.trust_json, text=present.trust_text)
