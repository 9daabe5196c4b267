"""The unit of work: one transaction around one use case (cosmicpython chapter 6).

``with uow:`` opens it; leaving the block without ``uow.commit()`` rolls everything back,
so a use case that raises halfway leaves nothing half-written.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from types import TracebackType

from patchgate.services import (
    campaign_ports,
    device_ports,
    fleet_ports,
    notice_ports,
    ports,
    release_ports,
    retention_ports,
    revert_ports,
    session_ports,
    targeting_ports,
    vulnerability_ports,
)
from patchgate.services.advisories import ports as advisory_ports


class UnitOfWork(abc.ABC):
    """Repositories that share one transaction."""

    state: ports.StateRepository
    audit: ports.AuditRepository
    tokens: ports.TokenRepository
    policies: ports.PolicyRepository
    tenants: ports.TenantRepository
    vulnerabilities: vulnerability_ports.VulnerabilityRepository
    releases: release_ports.ReleaseRepository
    devices: device_ports.DeviceRepository
    actions: device_ports.ActionRepository
    health: device_ports.HealthRepository
    catalog: device_ports.ReleaseCatalog
    campaigns: campaign_ports.CampaignRepository
    reverts: revert_ports.RevertRepository
    advisories: advisory_ports.AdvisoryRepository
    notices: notice_ports.NoticeOutbox
    sessions: session_ports.SessionRepository
    fleet: fleet_ports.FleetQueries
    targeting: targeting_ports.TargetingRepository
    retention: retention_ports.ActionRetention

    def __enter__(self) -> UnitOfWork:
        self._after_commit: list[Callable[[], None]] = []
        return self

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once this unit has committed (never if it rolls back).

        For side effects outside the database, such as the checkpoint journal file or a
        webhook, which must not happen for a transaction that is later undone.
        """
        self._after_commit.append(callback)

    def _run_after_commit(self) -> None:
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.rollback()

    @abc.abstractmethod
    def commit(self) -> None:
        """Make every change of this unit durable at once."""

    @abc.abstractmethod
    def rollback(self) -> None:
        """Discard every uncommitted change (harmless after a commit)."""
