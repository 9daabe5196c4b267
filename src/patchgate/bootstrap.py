"""The composition root: settings from the environment, and the one place that wires real
adapters to the services. Nothing here runs at import time."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from patchgate.adapters.artifact_store import LocalArtifactStore
from patchgate.adapters.db.engine import Engines, make_engines
from patchgate.adapters.db.uow import SqlUnitOfWork
from patchgate.adapters.keys import Ed25519Signer, FileCheckpointJournal
from patchgate.adapters.mqtt_push import MqttWakeups
from patchgate.adapters.native_signatures import NativeSignatures
from patchgate.adapters.tuf_repo import FileTrustRepository
from patchgate.adapters.webhooks import HttpWebhooks, parse_endpoints
from patchgate.domain.errors import InvalidInput
from patchgate.services.context import Context
from patchgate.services.device_ports import AsyncDeviceAuthReader, DeviceAuthReader

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
    # Optional push (PRODUCT.md §4): the MQTT broker for wake-ups; None turns push off.
    mqtt_url: str | None = None
    webhooks: tuple[str, ...] = ()
    campaign_tick_seconds: float = 30
    # How often each server process refreshes the figures behind the /metrics gauges
    # (docs/metrics.md); 0 turns the gauges off.
    metrics_refresh_seconds: float = 30
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
            campaign_tick_seconds=float(os.environ.get("PATCHGATE_CAMPAIGN_TICK", 30)),
            metrics_refresh_seconds=float(os.environ.get("PATCHGATE_METRICS_REFRESH", 30)),
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


def _optional_path(value: str | None) -> Path | None:
    return Path(value).expanduser().resolve() if value else None


def trust_repository(settings: Settings) -> FileTrustRepository:
    """The TUF repository in the data folder, with the configured expiries."""
    return FileTrustRepository(
        settings.data_dir,
        timestamp_expiry=timedelta(seconds=settings.tuf_timestamp_expiry_seconds),
    )


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


def build(settings: Settings) -> App:
    """Wire the real adapters. Connects lazily; creates the audit key on first use."""
    engines = make_engines(settings.database_url)
    write_sessions = sessionmaker(engines.write, expire_on_commit=False)
    read_sessions = sessionmaker(engines.read, expire_on_commit=False)
    context = Context(
        uow=lambda: SqlUnitOfWork(write_sessions),
        read_uow=lambda: SqlUnitOfWork(read_sessions),
        audit_signer=Ed25519Signer.load_or_create(settings.keys_dir / "audit-checkpoint.key"),
        checkpoint_journal=FileCheckpointJournal(settings.data_dir / "audit-checkpoints.jsonl"),
        data_dir=settings.data_dir,
        artifacts=LocalArtifactStore(settings.artifacts_dir),
        trust=trust_repository(settings),
        max_artifact_bytes=settings.max_artifact_bytes,
        native_signatures=NativeSignatures(settings.swu_certificate, settings.rauc_keyring),
        wakeups=_wakeups(settings.mqtt_url),
        webhooks=HttpWebhooks(settings.webhooks) if settings.webhooks else None,
    )
    return App(settings, engines, context, read_sessions)


def _wakeups(url: str | None) -> MqttWakeups | None:
    """Push over MQTT when ``PATCHGATE_MQTT_URL`` is set; nothing connects until a wake-up."""
    if not url:
        return None
    try:
        return MqttWakeups(url)
    except ValueError as exc:
        raise InvalidInput(f"PATCHGATE_MQTT_URL: {exc}") from exc


def make_device_auth_reader(app: App, *, dedicated: bool = False) -> DeviceAuthReader:
    """The poll's prepared one-statement read on the read engine (the DDI hot path);
    ``dedicated``: a connection of its own for the one thread that answers polls."""
    from patchgate.adapters.db.poll_reads import SqlDeviceAuthReader

    return SqlDeviceAuthReader(app.engines.read, dedicated=dedicated)


def make_async_device_auth_reader(app: App) -> AsyncDeviceAuthReader | None:
    """The poll's read awaited on the event loop (PostgreSQL); None on SQLite, whose read
    is a local call faster than any hop."""
    if app.engines.read.dialect.name != "postgresql":
        return None
    from patchgate.adapters.db.pg_poll_reads import AsyncPgDeviceAuthReader

    return AsyncPgDeviceAuthReader(app.engines.read, connections=2)
