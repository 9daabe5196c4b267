"""The interfaces services need from storage and key material (implemented in adapters)."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from patchgate.domain.audit import AuditRecord, Checkpoint


class StateRepository(abc.ABC):
    """The state version that server processes watch."""

    @abc.abstractmethod
    def bump(self, now: datetime) -> int:
        """Raise the version in the current transaction; return the new value."""

    @abc.abstractmethod
    def current(self) -> int:
        """The committed version."""

    @abc.abstractmethod
    def claim(self, key: str, since: datetime, now: datetime) -> bool:
        """Claim the job ``key`` for the tick that began at ``since``: True (and the claim
        moved to ``now``) unless some process claimed it at or after ``since``."""


class AuditRepository(abc.ABC):
    """Append-only storage for the audit chain."""

    @abc.abstractmethod
    def lock_head(self) -> tuple[int, str]:
        """Lock the chain head for this transaction; return (seq, hash) of the last entry."""

    @abc.abstractmethod
    def append(self, record: AuditRecord) -> None:
        """Store ``record`` and move the head to it."""

    @abc.abstractmethod
    def all(self) -> Sequence[AuditRecord]:
        """Every entry, in sequence order."""

    @abc.abstractmethod
    def page(
        self,
        *,
        limit: int,
        before_seq: int | None = None,
        subject: str | None = None,
        action_prefix: str | None = None,
    ) -> Sequence[AuditRecord]:
        """Newest first, at most ``limit`` entries, optionally filtered."""

    @abc.abstractmethod
    def checkpoints(self) -> Sequence[Checkpoint]:
        """Checkpoints stored in the database."""

    @abc.abstractmethod
    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Store a checkpoint."""


@dataclass(frozen=True)
class TokenRecord:
    """A management API token as stored (the hash, never the token)."""

    id: int
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None


class TokenRepository(abc.ABC):
    """Management API tokens."""

    @abc.abstractmethod
    def add(self, *, name: str, role: str, token_hash: str, now: datetime) -> TokenRecord:
        """Store a new token."""

    @abc.abstractmethod
    def by_hash(self, token_hash: str) -> TokenRecord | None:
        """The live (not revoked) token with this hash."""

    @abc.abstractmethod
    def by_name(self, name: str) -> TokenRecord | None:
        """The live token called ``name``."""

    @abc.abstractmethod
    def list(self) -> Sequence[TokenRecord]:
        """All tokens."""

    @abc.abstractmethod
    def revoke(self, name: str, now: datetime) -> bool:
        """Revoke the named token; False when there is none."""


@dataclass(frozen=True)
class PolicyRecord:
    """A policy that was in force, with its source text."""

    id: int
    sha256: str
    source: str
    applied_at: datetime
    applied_by: str


class PolicyRepository(abc.ABC):
    """Versions of the policy in force."""

    @abc.abstractmethod
    def current(self) -> PolicyRecord | None:
        """The newest policy version."""

    @abc.abstractmethod
    def add(self, *, source: str, sha256: str, now: datetime, actor: str) -> PolicyRecord:
        """Store a new version, which is in force from commit."""


@dataclass(frozen=True)
class TenantRecord:
    """A DDI tenant."""

    id: int
    name: str
    anonymous_ddi: bool


class TenantRepository(abc.ABC):
    """DDI tenants and their gateway tokens."""

    @abc.abstractmethod
    def get(self, name: str) -> TenantRecord | None:
        """The tenant called ``name``."""

    @abc.abstractmethod
    def add(self, name: str, now: datetime) -> TenantRecord:
        """Create a tenant."""

    @abc.abstractmethod
    def set_gateway_token_hash(self, name: str, token_hash: str | None) -> None:
        """Set or clear the tenant's gateway token."""

    @abc.abstractmethod
    def set_anonymous(self, name: str, enabled: bool) -> None:
        """Allow or forbid unauthenticated DDI for the tenant (labs only)."""

    @abc.abstractmethod
    def list(self) -> Sequence[TenantRecord]:
        """All tenants."""


class Signer(abc.ABC):
    """Signs and verifies with a key the database does not hold (audit checkpoints)."""

    @abc.abstractmethod
    def sign(self, message: bytes) -> str:
        """Signature over ``message``, hex-encoded."""

    @abc.abstractmethod
    def verify(self, message: bytes, signature: str) -> bool:
        """True when ``signature`` is this key's signature over ``message``."""


@dataclass(frozen=True)
class JournalContents:
    """What a checkpoint journal holds: the checkpoints it could read, and a description
    of each line it could not (torn by a crash mid-write, or damaged)."""

    checkpoints: Sequence[Checkpoint]
    damaged: Sequence[str] = ()


class CheckpointJournal(abc.ABC):
    """A copy of the checkpoints kept outside the database (append-only file)."""

    @abc.abstractmethod
    def append(self, checkpoint: Checkpoint) -> None:
        """Record ``checkpoint`` durably."""

    @abc.abstractmethod
    def read(self) -> JournalContents:
        """Every recorded checkpoint; damaged lines are reported, never raised."""


class Witnesses(abc.ABC):
    """Endpoints that keep a copy of each audit checkpoint (``PATCHGATE_AUDIT_WITNESS``)."""

    @abc.abstractmethod
    def post(self, notice: dict[str, Any]) -> None:
        """Deliver ``notice`` as JSON to every endpoint, retrying failures; never raises
        and never blocks the caller for long (delivery may continue in the background)."""

    def wait(self, timeout: float = 30.0) -> None:  # noqa: B027 - optional hook
        """Wait up to ``timeout`` seconds for deliveries still in flight (a short-lived
        process, the CLI, calls it before it exits). Nothing to wait for by default."""
