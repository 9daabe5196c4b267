"""The SQLAlchemy unit of work: one session, one transaction, every repository on it."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.orm import Session, sessionmaker

from patchgate.adapters.db import (
    advisory_repos,
    campaign_repos,
    core_repos,
    device_repos,
    fleet_queries,
    notice_repos,
    release_repos,
    retention_repos,
    revert_repos,
    session_repos,
    targeting_repos,
    vulnerability_repos,
)
from patchgate.services.unit_of_work import UnitOfWork


class SqlUnitOfWork(UnitOfWork):
    """A unit of work on a fresh session; rolled back unless ``commit()`` is called."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory

    def __enter__(self) -> SqlUnitOfWork:
        super().__enter__()
        self.session = self._session_factory()
        self.state = core_repos.SqlStateRepository(self.session)
        self.audit = core_repos.SqlAuditRepository(self.session)
        self.tokens = core_repos.SqlTokenRepository(self.session)
        self.policies = core_repos.SqlPolicyRepository(self.session)
        self.tenants = core_repos.SqlTenantRepository(self.session)
        self.vulnerabilities = vulnerability_repos.SqlVulnerabilityRepository(self.session)
        self.releases = release_repos.SqlReleaseRepository(self.session)
        self.devices = device_repos.SqlDeviceRepository(self.session)
        self.actions = device_repos.SqlActionRepository(self.session)
        self.health = device_repos.SqlHealthRepository(self.session)
        self.catalog = device_repos.SqlReleaseCatalog(self.session)
        self.campaigns = campaign_repos.SqlCampaignRepository(self.session)
        self.reverts = revert_repos.SqlRevertRepository(self.session)
        self.advisories = advisory_repos.SqlAdvisoryRepository(self.session)
        self.notices = notice_repos.SqlNoticeOutbox(self.session)
        self.sessions = session_repos.SqlSessionRepository(self.session)
        self.fleet = fleet_queries.SqlFleetQueries(self.session)
        self.targeting = targeting_repos.SqlTargetingRepository(self.session)
        self.retention = retention_repos.SqlActionRetention(self.session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        super().__exit__(exc_type, exc, tb)
        self.session.close()

    def commit(self) -> None:
        self.session.commit()
        self._run_after_commit()

    def rollback(self) -> None:
        self.session.rollback()
