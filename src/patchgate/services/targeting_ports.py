"""The repository of saved device queries and operator metadata (docs/device-filters.md)."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class SavedFilterRecord:
    """A named device query of a tenant, as stored (``query`` in canonical form)."""

    id: int
    tenant: str
    name: str
    query: str
    description: str
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True)
class NewSavedFilter:
    """A saved filter to store."""

    tenant_id: int
    name: str
    query: str
    description: str
    actor: str


class TargetingRepository(abc.ABC):
    """Saved filters per tenant, and the metadata of devices and releases."""

    @abc.abstractmethod
    def saved_filter(
        self, tenant: str, name: str, *, lock: bool = False
    ) -> SavedFilterRecord | None:
        """The tenant's saved filter called ``name``."""

    @abc.abstractmethod
    def saved_filters(self, tenant: str) -> Sequence[SavedFilterRecord]:
        """The tenant's saved filters by name."""

    @abc.abstractmethod
    def add_saved_filter(self, new: NewSavedFilter, now: datetime) -> int:
        """Store a saved filter; returns its id."""

    @abc.abstractmethod
    def update_saved_filter(
        self, filter_id: int, *, query: str, description: str, actor: str, now: datetime
    ) -> None:
        """Change a saved filter's query and description."""

    @abc.abstractmethod
    def delete_saved_filter(self, filter_id: int) -> None:
        """Forget a saved filter."""

    @abc.abstractmethod
    def set_device_metadata(self, device_id: int, metadata: Mapping[str, str]) -> None:
        """Replace a device's metadata (the caller holds the device's row lock)."""

    @abc.abstractmethod
    def set_release_metadata(self, release_id: int, metadata: Mapping[str, str]) -> None:
        """Replace a release's metadata (the caller holds the release's row lock)."""
