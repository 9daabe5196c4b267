"""What every use case may need besides its arguments, wired once in ``bootstrap``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from patchgate.domain.actions import ClientKind
from patchgate.domain.clock import utcnow
from patchgate.services import ports
from patchgate.services.advisories.ports import OpenPgpKey
from patchgate.services.artifact_ports import ArtifactStore
from patchgate.services.notice_ports import NoticePass
from patchgate.services.push_ports import Wakeups
from patchgate.services.release_ports import NativeSignatureChecker, TrustRepository
from patchgate.services.unit_of_work import UnitOfWork


@dataclass
class Context:
    """Dependencies of the services: unit-of-work factories, the clock, key material.

    ``uow`` is for use cases that write (on SQLite it takes the write lock at once);
    ``read_uow`` is for queries and never waits for a writer.
    """

    uow: Callable[[], UnitOfWork]
    read_uow: Callable[[], UnitOfWork]
    audit_signer: ports.Signer
    checkpoint_journal: ports.CheckpointJournal
    data_dir: Path
    # Releases and distribution.
    artifacts: ArtifactStore
    trust: TrustRepository
    native_signatures: NativeSignatureChecker
    clock: Callable[[], datetime] = field(default=utcnow)
    max_artifact_bytes: int = 4 * 1024 * 1024 * 1024
    # Optional push (docs/push.md): None when PATCHGATE_MQTT_URL is unset.
    wakeups: Wakeups | None = None
    # Campaign notices (PATCHGATE_WEBHOOKS); None: no endpoint configured.
    # The server's notice timer, kicked when a change calls for a prompt notice (a halt);
    # None in the CLI, which runs a notice pass itself after such a command.
    notices: NoticePass | None = None
    # The CSAF provider's OpenPGP signing key (docs/compliance.md); None: not wired.
    openpgp: OpenPgpKey | None = None
    # When each device group's DDI client reports success (PATCHGATE_CLIENT_KINDS); a
    # group not named here is detected from its feedback (docs/campaigns.md).
    client_kinds: Mapping[str, ClientKind] = field(default_factory=dict)
