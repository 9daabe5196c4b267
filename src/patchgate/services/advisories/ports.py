"""Ports of the advisories capability: stored advisories and the OpenPGP signing key."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class AdvisoryRecord:
    """A CSAF advisory as stored. ``text`` and ``signature`` are set once it is published:
    the exact bytes served, hashed and signed (CSAF 2.0 §7.1.18, §7.1.19)."""

    id: str
    state: str  # draft | final
    title: str
    vulnerability_ids: tuple[str, ...]
    document: dict[str, Any]
    created_at: datetime
    created_by: str
    published_at: datetime | None = None
    published_by: str | None = None
    path: str | None = None  # YYYY/FILENAME.json below the TLP:WHITE folder
    text: str | None = None
    signature: str | None = None


class AdvisoryRepository(abc.ABC):
    """Stored advisories, by tracking ID."""

    @abc.abstractmethod
    def get(self, advisory_id: str, *, for_update: bool = False) -> AdvisoryRecord | None:
        """One advisory, or None."""

    @abc.abstractmethod
    def list(self) -> Sequence[AdvisoryRecord]:
        """Every advisory, newest first."""

    @abc.abstractmethod
    def by_path(self, path: str) -> AdvisoryRecord | None:
        """The published advisory served at ``YYYY/FILENAME.json``, or None."""

    @abc.abstractmethod
    def count_with_prefix(self, prefix: str) -> int:
        """How many advisory IDs start with ``prefix`` (for numbering)."""

    @abc.abstractmethod
    def save(self, record: AdvisoryRecord) -> None:
        """Insert or replace the advisory."""


class OpenPgpKey(abc.ABC):
    """The provider's OpenPGP key (CSAF 2.0 §7.1.19, §7.1.20)."""

    @abc.abstractmethod
    def exists(self) -> bool:
        """True once the key has been created."""

    @abc.abstractmethod
    def create(self, user_id: str) -> bool:
        """Create the key if there is none; True when one was created."""

    @abc.abstractmethod
    def sign(self, data: bytes) -> str:
        """An ASCII-armoured detached signature of ``data``."""

    @abc.abstractmethod
    def public_key(self) -> str:
        """The ASCII-armoured public key."""

    @abc.abstractmethod
    def fingerprint(self) -> str:
        """The key's fingerprint (40 hex digits, upper case)."""
