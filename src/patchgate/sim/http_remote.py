"""``simulate --mode http --server URL --token T``: rehearse a rollout against an existing
patchgate deployment (a staging installation, say) through its own APIs only
(docs/simulator.md "Against a deployment").

:class:`ApiServerSide` is the :class:`~.http_mode.ServerSide` of such a run: it reads the
public ``/policy.json`` and refuses an installation whose policy does not mark it
``[instance] kind = "staging"`` or ``"test"`` (unless told it is production on purpose);
provisions the virtual fleet under a prefix with ``POST /api/v1/devices/import``, creates
the known-good and the test release (``POST /api/v1/releases``, security version 0, so
that completing the rehearsal raises no device's anti-rollback floor) and a campaign that
targets only the fleet's own group; watches it with ``GET /api/v1/campaigns/ID`` and
reverts after a halt. :meth:`ApiServerSide.cleanup` removes what the run made: the
campaign is cancelled if still open, both releases withdrawn, every virtual device removed
(``DELETE /api/v1/devices/ID``: its token stops at once, its history stays in the audit
log).
"""

from __future__ import annotations

import csv
import io
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from patchgate.domain.policy import INSTANCE_KINDS

from .ddi_fleet import DeviceCredentials
from .http_mode import Rehearsal, rehearse
from .http_server import ServerError
from .scenario import GROUPS_OF, Fleet, Scenario

SAFE_INSTANCES = frozenset(INSTANCE_KINDS) - {"production"}


class ProductionRefused(ServerError):
    """The server's policy does not mark it as a staging or test instance."""


def device_ids(prefix: str, n: int) -> list[str]:
    """The controller ids of the virtual fleet under ``prefix``."""
    return [f"{prefix}{index:07d}" for index in range(n)]


class ApiServerSide:
    """:class:`~.http_mode.ServerSide` over a running deployment's management API."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        prefix: str | None = None,
        soak: str = "60s",
        allow_production: bool = False,
        timeout: float = 120.0,
    ) -> None:
        self.url = url.rstrip("/")
        stamp = f"{int(time.time())}{secrets.randbelow(1000):03d}"
        self.prefix = prefix or f"sim-{stamp}-"
        self.group = f"{self.prefix}fleet"
        self.soak = soak
        self.allow_production = allow_production
        self.client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        )
        self.product = ""
        self.hardware = ""
        self.old_version = f"0.{stamp}.0"
        self.new_version = f"0.{stamp}.1"
        self.release_ids: dict[str, int] = {}
        self.devices: list[str] = []
        self.campaign_id: str | None = None
        self.instance_kind = ""

    # --- requests ----------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServerError(f"{method} {path}: {exc}") from exc
        if response.status_code >= 400:
            message = response.text[:300].strip()
            raise ServerError(f"{method} {path}: HTTP {response.status_code} {message}")
        return response.json() if response.content else None

    # --- set-up ------------------------------------------------------------------------

    def check_instance(self) -> str:
        """The server's ``[instance] kind``; ``ProductionRefused`` unless it is staging or
        test (or production was allowed)."""
        policy = self._call("GET", "/policy.json")
        instance = policy.get("instance") if isinstance(policy, dict) else None
        kind = str((instance or {}).get("kind") or "production")
        self.instance_kind = kind
        if kind not in SAFE_INSTANCES and not self.allow_production:
            raise ProductionRefused(
                f"{self.url} is a {kind} instance (its policy has no [instance] kind = "
                '"staging" or "test"); pass --i-know-this-is-production to rehearse there'
            )
        self._choose_product(policy)
        return kind

    def _choose_product(self, policy: Mapping[str, Any]) -> None:
        for product in policy.get("products") or []:
            hardware = product.get("hardware") or []
            if hardware:
                self.product, self.hardware = str(product["name"]), str(hardware[0])
                return
        raise ServerError(f"{self.url}: the policy names no product with a hardware model")

    def _release(self, version: str) -> int:
        form = {
            "product": self.product,
            "version": version,
            "security_version": "0",
            "type": "security",
            "hardware": self.hardware,
            "notes": f"fleet simulator rehearsal {self.prefix}",
        }
        files = {"artifact": (f"sim-{version}.bin", secrets.token_bytes(4096))}
        made = self._call("POST", "/api/v1/releases", data=form, files=files)
        return int(made["id"])

    # --- ServerSide --------------------------------------------------------------------

    def provision(self, scenario: Scenario, fleet: Fleet) -> Sequence[DeviceCredentials]:
        self.release_ids[self.old_version] = self._release(self.old_version)
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(["id", "groups", "hardware", "version"])
        ids = device_ids(self.prefix, fleet.n)
        for index, controller in enumerate(ids):
            groups = sorted(GROUPS_OF[int(fleet.mask[index])] | {self.group})
            writer.writerow([controller, ";".join(groups), self.hardware, self.old_version])
        made = self._call(
            "POST",
            "/api/v1/devices/import",
            content=text.getvalue().encode(),
            headers={"Content-Type": "text/csv"},
        )
        self.devices = ids
        return [DeviceCredentials(str(d["id"]), str(d["token"])) for d in made["devices"]]

    def start_campaign(self, scenario: Scenario) -> str:
        release = self._release(self.new_version)
        self.release_ids[self.new_version] = release
        body: dict[str, Any] = {"release_id": release, "soak": self.soak, "groups": [self.group]}
        if scenario.stages:
            body["stages"] = scenario.stages
        made = self._call("POST", "/api/v1/campaigns", json=body)
        self.campaign_id = str(made["id"])
        self._call("POST", f"/api/v1/campaigns/{self.campaign_id}/start")
        return self.campaign_id

    def status(self, campaign_id: str) -> Mapping[str, Any]:
        out = self._call("GET", f"/api/v1/campaigns/{campaign_id}")
        if not isinstance(out, dict):
            raise ServerError(f"campaign status {campaign_id}: not a JSON object")
        return out

    def revert(self, campaign_id: str) -> None:
        old = self.release_ids[self.old_version]
        self._call("POST", f"/api/v1/campaigns/{campaign_id}/revert", json={"to_release_id": old})

    # --- clean-up ----------------------------------------------------------------------

    def cleanup(self) -> dict[str, int]:
        """Remove what the run made (module docstring); what was removed, counted."""
        done = {"devices_removed": 0, "releases_withdrawn": 0}
        if self.campaign_id is not None:
            state = self.status(self.campaign_id).get("state")
            if state in ("draft", "running", "paused", "reverting"):
                body = {"reason": "fleet simulator rehearsal finished"}
                self._call("POST", f"/api/v1/campaigns/{self.campaign_id}/cancel", json=body)
        for controller in self.devices:
            self._call(
                "DELETE",
                f"/api/v1/devices/{controller}",
                params={"reason": "fleet simulator rehearsal finished"},
            )
            done["devices_removed"] += 1
        for release in self.release_ids.values():
            body = {"reason": "fleet simulator rehearsal finished"}
            self._call("POST", f"/api/v1/releases/{release}/withdraw", json=body)
            done["releases_withdrawn"] += 1
        self.client.close()
        return done


def simulate_remote(
    scenario: Scenario,
    server: ApiServerSide,
    rehearsal: Rehearsal,
    *,
    soak_minutes: float = 60.0,
) -> dict[str, Any]:
    """One rehearsal against a running deployment (module docstring): checked, run, and
    cleaned up whatever happens once the first device was provisioned."""
    wall0 = time.monotonic()
    kind = server.check_instance()
    settings = {
        "instance": kind,
        "prefix": server.prefix,
        "group": server.group,
        "product": server.product,
        "hardware": server.hardware,
        "soak": f"{server.soak} real = {soak_minutes:g} min simulated",
        "poll_sleep": "the server's own (config.polling.sleep)",
    }
    try:
        out = rehearse(
            server,
            scenario,
            rehearsal,
            new_version=server.new_version,
            old_version=server.old_version,
            settings=settings,
        )
    finally:
        cleanup = server.cleanup()
    out["cleanup"] = cleanup
    out["wall_seconds"] = round(time.monotonic() - wall0, 1)
    return out
