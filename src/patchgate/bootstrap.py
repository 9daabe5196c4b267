"""The composition root: settings from the environment, and the one place that wires real
adapters to the services. Nothing here runs at import time."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from patchgate.adapters.artifact_store import LocalArtifactStore
from patchgate.adapters.db.engine import Engines, make_engines
from patchgate.adapters.db.uow import SqlUnitOfWork
from patchgate.adapters.keys import Ed25519Signer, FileCheckpointJournal, WitnessedJournal
from patchgate.adapters.native_signatures import NativeSignatures
from patchgate.adapters.notice_channels import HttpWebhookSender, SmtpMailer, parse_endpoints
from patchgate.adapters.openpgp import FileOpenPgpKey
from patchgate.adapters.tuf_repo import FileTrustRepository
from patchgate.domain.actions import ClientKind, parse_client_kinds
from patchgate.domain.errors import InvalidInput
from patchgate.domain.notices import parse_routes
from patchgate.services.context import Context
from patchgate.services.notice_ports import Channels

if TYPE_CHECKING:
    # Imported where they are wired, so a CLI command pays only for what it uses: the
    # MQTT client, the witnesses' HTTP client and the hot paths' readers are for servers
    # and for installations that configure them (docs/cli.md, "Start-up").
    from patchgate.adapters.mqtt_push import MqttWakeups
    from patchgate.services.artifact_ports import ArtifactStore
    from patchgate.services.device_ports import AsyncDeviceAuthReader, DeviceAuthReader
    from patchgate.services.downloads import DownloadReader
    from patchgate.services.ports import CheckpointJournal
    from patchgate.services.state import StateFeed

DEFAULT_DATA_DIR = "./var"


@dataclass(frozen=True)
class Settings:
    """Where patchgate keeps its data, and the knobs operators set by environment."""

    data_dir: Path
    database_url: str
    public_url: str | None = None
    max_request_bytes: int = 1024 * 1024
    max_artifact_bytes: int = 4 * 1024 * 1024 * 1024
    poll_sleep_seconds: int = 300
    tuf_timestamp_expiry_seconds: int = 24 * 3600
    tuf_refresh_seconds: float = 300
    swu_certificate: Path | None = None
    rauc_keyring: Path | None = None
    # Optional push (docs/push.md): the MQTT broker for wake-ups; None turns push off.
    mqtt_url: str | None = None
    webhooks: tuple[str, ...] = ()
    # Witnesses of the audit log: each new checkpoint is POSTed to these URLs.
    audit_witnesses: tuple[str, ...] = ()
    campaign_tick_seconds: float = 30
    # Notices (docs/notifications.md): SMTP server, default recipients, per-kind routes.
    smtp_url: str | None = None
    notify_email: str | None = None
    notify_routes: str | None = None
    notify_from: str = "patchgate@localhost"
    notify_tick_seconds: float = 60
    # DDI behind a TLS-terminating proxy: the addresses (or networks) whose client
    # certificate headers are believed, and the certificate authorities they may name.
    trusted_proxies: tuple[str, ...] = ()
    ddi_trusted_authorities: tuple[str, ...] = ()
    # DDI requests a device may make per minute, polls and feedback counted apart (0: off).
    ddi_quota_per_minute: int = 0
    # group=after-boot|before-boot|detect: when each group's DDI client reports success.
    client_kinds: str = ""
    # How often each server process refreshes the figures behind the /metrics gauges
    # (docs/metrics.md); 0 turns the gauges off.
    metrics_refresh_seconds: float = 30
    # PostgreSQL connections each process keeps (and as many again at peaks); docs/deploy.md
    # "PostgreSQL at scale" weighs them against max_connections.
    db_pool_size: int = 10
    # Where artifacts live (docs/storage.md): ``file:`` (the data folder) or
    # ``s3://BUCKET/PREFIX``; how an S3 store's blobs reach devices, and for how long a
    # presigned link holds.
    artifact_url: str = "file:"
    artifact_delivery: str = "redirect"
    artifact_presign_seconds: int = 300
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, data_dir: str | Path | None = None) -> Settings:
        """``--data-dir`` if given, else ``PATCHGATE_DATA_DIR``, else ``./var``;
        ``PATCHGATE_DATABASE_URL`` or a SQLite file in the data folder."""
        root = Path(data_dir or os.environ.get("PATCHGATE_DATA_DIR") or DEFAULT_DATA_DIR)
        root = root.expanduser().resolve()
        url = os.environ.get("PATCHGATE_DATABASE_URL") or f"sqlite:///{root / 'patchgate.db'}"
        return cls(
            data_dir=root,
            database_url=url,
            public_url=os.environ.get("PATCHGATE_PUBLIC_URL") or None,
            max_request_bytes=int(os.environ.get("PATCHGATE_MAX_REQUEST_BYTES", 1024 * 1024)),
            max_artifact_bytes=int(
                os.environ.get("PATCHGATE_MAX_ARTIFACT_BYTES", 4 * 1024 * 1024 * 1024)
            ),
            poll_sleep_seconds=int(os.environ.get("PATCHGATE_POLL_SLEEP", 300)),
            tuf_timestamp_expiry_seconds=int(
                os.environ.get("PATCHGATE_TUF_TIMESTAMP_EXPIRY", 24 * 3600)
            ),
            tuf_refresh_seconds=float(os.environ.get("PATCHGATE_TUF_REFRESH", 300)),
            swu_certificate=_optional_path(os.environ.get("PATCHGATE_SWU_CERT")),
            rauc_keyring=_optional_path(os.environ.get("PATCHGATE_RAUC_KEYRING")),
            mqtt_url=os.environ.get("PATCHGATE_MQTT_URL") or None,
            webhooks=tuple(parse_endpoints(os.environ.get("PATCHGATE_WEBHOOKS"))),
            audit_witnesses=tuple(parse_endpoints(os.environ.get("PATCHGATE_AUDIT_WITNESS"))),
            campaign_tick_seconds=float(os.environ.get("PATCHGATE_CAMPAIGN_TICK", 30)),
            smtp_url=os.environ.get("PATCHGATE_SMTP_URL") or None,
            notify_email=os.environ.get("PATCHGATE_NOTIFY_EMAIL") or None,
            notify_routes=os.environ.get("PATCHGATE_NOTIFY_ROUTES") or None,
            notify_from=os.environ.get("PATCHGATE_NOTIFY_FROM") or "patchgate@localhost",
            notify_tick_seconds=float(os.environ.get("PATCHGATE_NOTIFY_TICK", 60)),
            trusted_proxies=_list(os.environ.get("PATCHGATE_TRUSTED_PROXIES")),
            ddi_trusted_authorities=_list(os.environ.get("PATCHGATE_DDI_TRUSTED_AUTHORITIES")),
            ddi_quota_per_minute=int(os.environ.get("PATCHGATE_DDI_QUOTA", 0)),
            client_kinds=os.environ.get("PATCHGATE_CLIENT_KINDS", ""),
            metrics_refresh_seconds=float(os.environ.get("PATCHGATE_METRICS_REFRESH", 30)),
            db_pool_size=int(os.environ.get("PATCHGATE_DB_POOL_SIZE", 10)),
            artifact_url=os.environ.get("PATCHGATE_ARTIFACT_URL") or "file:",
            artifact_delivery=os.environ.get("PATCHGATE_ARTIFACT_DELIVERY") or "redirect",
            artifact_presign_seconds=int(
                os.environ.get("PATCHGATE_ARTIFACT_PRESIGN_SECONDS") or 300
            ),
        )

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def offline_keys_dir(self) -> Path:
        return self.data_dir / "offline-keys"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def policy_file(self) -> Path:
        return self.data_dir / "policy.toml"


def _list(value: str | None) -> tuple[str, ...]:
    """A comma-separated setting as its non-empty items."""
    return tuple(item.strip() for item in (value or "").split(",") if item.strip())


def _optional_path(value: str | None) -> Path | None:
    return Path(value).expanduser().resolve() if value else None


def trust_repository(settings: Settings, engines: Engines | None = None) -> FileTrustRepository:
    """The TUF repository with the configured expiries: keys in the data folder; metadata
    there too on SQLite (one host), in the database on PostgreSQL, so every process on
    every host serves the same versions (docs/storage.md)."""
    metadata = None
    if engines is not None and engines.write.dialect.name == "postgresql":
        from patchgate.adapters.db.tuf_metadata import DbMetadata

        folder = settings.data_dir / "tuf"
        metadata = DbMetadata(engines.write, folder / ".lock", legacy_folder=folder / "metadata")
    return FileTrustRepository(
        settings.data_dir,
        timestamp_expiry=timedelta(seconds=settings.tuf_timestamp_expiry_seconds),
        metadata=metadata,
    )


def artifact_store(settings: Settings) -> ArtifactStore:
    """The store ``PATCHGATE_ARTIFACT_URL`` names (docs/storage.md): ``file:`` (the
    default: the data folder's ``artifacts``; ``file:/path`` another folder) or
    ``s3://BUCKET/PREFIX`` with the standard AWS variables."""
    url = settings.artifact_url
    if url.startswith("s3://"):
        from patchgate.adapters.s3_store import S3ArtifactStore, parse_s3_url

        bucket, prefix = parse_s3_url(url)
        return S3ArtifactStore(
            bucket,
            prefix,
            delivery=settings.artifact_delivery,
            presign_seconds=settings.artifact_presign_seconds,
        )
    if url == "file:" or url.startswith("file:/"):
        folder = url.removeprefix("file:").removeprefix("//")
        return LocalArtifactStore(Path(folder) if folder else settings.artifacts_dir)
    raise InvalidInput(f"PATCHGATE_ARTIFACT_URL: {url!r} is neither file: nor s3://BUCKET/PREFIX")


@dataclass
class App:
    """Everything a running entrypoint holds: settings, engines and the service context."""

    settings: Settings
    engines: Engines
    context: Context
    read_sessions: sessionmaker  # type: ignore[type-arg]  # Session type varies by engine

    def close(self) -> None:
        if self.context.wakeups is not None:
            self.context.wakeups.close()
        self.engines.dispose()


def owner_only(settings: Settings) -> None:
    """Run whenever the data folder is opened (``build``: every command, ``serve``,
    ``init``, migrations). The data folder holds the database (token hashes, the fleet),
    signing keys, the audit journal and the artifacts: its folders are made 0700 (the
    artifact store's too), the SQLite file 0600 (created so when missing; SQLite gives
    its -wal and -shm files the same mode, and the access mark is created so), and the
    key files and the audit checkpoint journal 0600. Paths owned by another user are left
    as they are."""
    folders = [settings.data_dir, settings.keys_dir, settings.artifacts_dir]
    folders += [p for p in (settings.offline_keys_dir, settings.data_dir / "tmp") if p.exists()]
    for folder in folders:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        _chmod_own(folder, 0o700)
    files = [settings.data_dir / "audit-checkpoints.jsonl"]
    for folder in (settings.keys_dir, settings.offline_keys_dir):
        if folder.is_dir():
            files += [p for p in folder.iterdir() if p.is_file()]
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        database = Path(url.database)
        if database.parent.is_dir():
            if not database.exists():
                # Created owner-only before SQLite creates it. Never open an existing
                # database here: closing any descriptor of the file drops every POSIX lock
                # this process's SQLite connections hold on it (SQLite's "How To Corrupt
                # An SQLite Database File", §2.2).
                os.close(os.open(database, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
            files += [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
            files.append(Path(f"{database}-access"))  # the access mark (docs/downloads.md)
    for path in files:
        _chmod_own(path, 0o600)


def _chmod_own(path: Path, mode: int) -> None:
    try:
        if path.stat().st_uid == os.getuid():
            path.chmod(mode)
    except FileNotFoundError:
        pass


def build(settings: Settings) -> App:
    """Wire the real adapters. Connects lazily; creates the audit key on first use."""
    owner_only(settings)
    engines = make_engines(settings.database_url, pool_size=settings.db_pool_size)
    write_sessions = sessionmaker(engines.write, expire_on_commit=False)
    read_sessions = sessionmaker(engines.read, expire_on_commit=False)
    context = Context(
        uow=lambda: SqlUnitOfWork(write_sessions),
        read_uow=lambda: SqlUnitOfWork(read_sessions),
        audit_signer=Ed25519Signer.load_or_create(settings.keys_dir / "audit-checkpoint.key"),
        checkpoint_journal=_journal(settings),
        data_dir=settings.data_dir,
        artifacts=artifact_store(settings),
        trust=trust_repository(settings, engines),
        max_artifact_bytes=settings.max_artifact_bytes,
        native_signatures=NativeSignatures(
            settings.swu_certificate, settings.rauc_keyring, work_dir=settings.data_dir / "tmp"
        ),
        wakeups=_wakeups(settings.mqtt_url),
        openpgp=FileOpenPgpKey(settings.keys_dir),
        client_kinds=_client_kinds(settings.client_kinds),
    )
    return App(settings, engines, context, read_sessions)


def _client_kinds(text: str) -> dict[str, ClientKind]:
    try:
        return parse_client_kinds(text)
    except ValueError as exc:
        raise InvalidInput(f"PATCHGATE_CLIENT_KINDS: {exc}") from exc


def _journal(settings: Settings) -> CheckpointJournal:
    journal = FileCheckpointJournal(settings.data_dir / "audit-checkpoints.jsonl")
    if settings.audit_witnesses:
        from patchgate.adapters.webhooks import HttpWebhooks

        return WitnessedJournal(journal, HttpWebhooks(settings.audit_witnesses))
    return journal


def _wakeups(url: str | None) -> MqttWakeups | None:
    """Push over MQTT when ``PATCHGATE_MQTT_URL`` is set; nothing connects until a wake-up."""
    if not url:
        return None
    from patchgate.adapters.mqtt_push import MqttWakeups

    try:
        return MqttWakeups(url)
    except ValueError as exc:
        raise InvalidInput(f"PATCHGATE_MQTT_URL: {exc}") from exc


def notice_channels(settings: Settings) -> Channels | None:
    """The channels notices travel by, or None when neither SMTP nor webhooks are set.
    Links in notices start with ``PATCHGATE_PUBLIC_URL`` (bare paths without it)."""
    if not settings.smtp_url and not settings.webhooks:
        return None
    mailer = SmtpMailer(settings.smtp_url, settings.notify_from) if settings.smtp_url else None
    return Channels(
        routes=parse_routes(settings.notify_email, settings.notify_routes),
        mailer=mailer,
        webhook_urls=settings.webhooks,
        webhooks=HttpWebhookSender() if settings.webhooks else None,
        base_url=settings.public_url or "",
    )


def make_device_auth_reader(app: App, *, dedicated: bool = False) -> DeviceAuthReader:
    """The poll's prepared one-statement read on the read engine (the DDI hot path);
    ``dedicated``: a connection of its own for the one thread that answers polls."""
    from patchgate.adapters.db.poll_reads import SqlDeviceAuthReader

    return SqlDeviceAuthReader(app.engines.read, dedicated=dedicated)


def make_download_reader(app: App, *, dedicated: bool = False) -> DownloadReader:
    """The download hot path's prepared reads (device, TUF target, DDI artifact) on the
    read engine; ``dedicated`` as for :func:`make_device_auth_reader`."""
    from patchgate.adapters.db.download_reads import SqlDownloadReader

    return SqlDownloadReader(app.engines.read, dedicated=dedicated, write=app.engines.write)


def make_async_device_auth_reader(app: App) -> AsyncDeviceAuthReader | None:
    """The poll's read awaited on the event loop (PostgreSQL); None on SQLite, whose read
    is a local call faster than any hop."""
    if app.engines.read.dialect.name != "postgresql":
        return None
    from patchgate.adapters.db.pg_poll_reads import AsyncPgDeviceAuthReader

    return AsyncPgDeviceAuthReader(app.engines.read, connections=2)


def make_state_feed(app: App) -> StateFeed | None:
    """State versions pushed at their commit (PostgreSQL ``LISTEN/NOTIFY``); None on
    SQLite, where the poll's version read is the only way (one host, one file)."""
    if app.engines.write.dialect.name != "postgresql":
        return None
    from patchgate.adapters.db.pg_notify import PgStateFeed

    return PgStateFeed(app.engines.url)
