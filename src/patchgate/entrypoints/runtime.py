"""Per-process state of a running server: the wired app and caches that follow the state
version. Created by ``http.create_app``; never at import time."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request
from prometheus_client import CollectorRegistry

from patchgate.bootstrap import App
from patchgate.services import policy as policy_service
from patchgate.services import releases, state
from patchgate.services.context import Context
from patchgate.services.policy import PolicyInForce

log = logging.getLogger("patchgate")

if TYPE_CHECKING:
    from patchgate.entrypoints.campaign_timer import CampaignTimer
    from patchgate.entrypoints.fleet_metrics import FleetCollector
    from patchgate.entrypoints.notice_timer import NoticeTimer
    from patchgate.services.campaigns.poll import PollEngine
    from patchgate.services.ddi import Poller


@dataclass
class Runtime:
    """What request handlers share inside one server process."""

    app: App
    registry: CollectorRegistry
    policy_cache: state.VersionedCache[PolicyInForce]
    # What ``create_app`` wires behind the requests, kept for the process's life: the DDI
    # poll's state, the campaign engine behind it and its timer, and the event that stops
    # the TUF refresher (None when it is off).
    ddi_poller: Poller | None = None
    campaign_engine: PollEngine | None = None
    campaign_timer: CampaignTimer | None = None
    tuf_refresher_stop: threading.Event | None = None
    notice_timer: NoticeTimer | None = None
    fleet_metrics: FleetCollector | None = None
    # State versions pushed at their commit (PostgreSQL); None: the version read only.
    state_feed: state.StateFeed | None = None

    def close(self) -> None:
        """The server's shutdown: stop the timers, write the last-seen times still buffered,
        close the database pools and the push client."""
        if self.state_feed is not None:
            self.state_feed.stop()
        if self.campaign_timer is not None:
            self.campaign_timer.stop()
        if self.tuf_refresher_stop is not None:
            self.tuf_refresher_stop.set()
        if self.notice_timer is not None:
            self.notice_timer.stop()
        if self.fleet_metrics is not None:
            self.fleet_metrics.stop()
        if self.ddi_poller is not None:
            try:
                self.ddi_poller.last_seen.flush(self.ctx)
            except Exception:
                log.exception("writing last-seen times at shutdown failed")
        self.app.close()

    def follow(self, feed: state.StateFeed) -> None:
        """Rebuild the caches of this process whenever ``feed`` hears a new version."""
        self.state_feed = feed
        feed.start(self.state_changed)

    def state_changed(self, version: int | None) -> None:
        """A version was committed (None: maybe several were missed): rebuild the caches
        that follow it now, so the requests after the commit find them ready. The version
        each request reads stays the check, so a late notice costs nothing but a rebuild
        on the request path."""
        if version is None:
            version = state.current_version(self.ctx)
        try:
            if self.ddi_poller is not None:
                self.ddi_poller.snapshots.get(version)
            self.policy_cache.get(version)
            log.info(
                "state version %s: caches rebuilt at its commit", version,
                extra={"state_version": version, "pid": os.getpid()},
            )  # fmt: skip
        except Exception:  # the next request that reads the version rebuilds instead
            log.exception("rebuilding caches for state version %s failed", version)

    @property
    def ctx(self) -> Context:
        return self.app.context

    def policy(self) -> PolicyInForce:
        """The policy in force, re-read when the state version has moved."""
        return self.policy_cache.get(state.current_version(self.ctx))

    def trust_mode(self) -> releases.TrustMode:
        """``lab`` while the offline keys sit in the data folder, else ``production``;
        checked on each call, so moving the keys away takes effect without a restart."""
        return releases.trust_mode(self.ctx)

    def base_url(self, request: Request) -> str:
        """The public base URL: configured, or what the request came in on."""
        if self.app.settings.public_url:
            return self.app.settings.public_url.rstrip("/")
        return str(request.base_url).rstrip("/")


def make_runtime(app: App) -> Runtime:
    return Runtime(
        app=app,
        registry=CollectorRegistry(),
        policy_cache=state.VersionedCache(lambda _version: policy_service.in_force(app.context)),
    )


def runtime(request: Request) -> Runtime:
    """FastAPI dependency: the runtime of the process serving ``request``."""
    rt: Runtime = request.app.state.runtime
    return rt
