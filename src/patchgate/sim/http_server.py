"""The server side of ``simulate --mode http`` (:class:`~.http_mode.ServerSide`): a fresh
data folder of the run's own, set up and driven through the ``patchgate`` commands of
docs/contract.md in child processes, and ``patchgate serve`` on a free loopback port.

* ``init`` there, the product ``simfleet`` added to the policy (``policy apply``), the
  known-good release ``1.0.0`` and the release under test created through the real release
  service (``release create`` with a generated artifact and the hardware ``sim-board``);
* the fleet provisioned in one transaction (``device import FILE.csv --json``, which prints
  each device's target token);
* ``campaign create RELEASE [--stages …] --soak … --json`` and ``campaign start``;
  the campaign's status over the management API (``GET /api/v1/campaigns/ID``, what
  ``campaign status --json`` prints) for the counts and the halt; ``campaign revert``
  after it.

Real time is compressed: the server answers polls with a short ``config.polling.sleep``
(``PATCHGATE_POLL_SLEEP``), evaluates gates every 30 simulated seconds
(``PATCHGATE_CAMPAIGN_TICK``) and the
soaks are given in compressed time (``--soak``).
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from .ddi_fleet import DeviceCredentials
from .scenario import GROUPS_OF, Fleet, Scenario, device_id

# ``PATCHGATE_CAMPAIGN_TICK``'s default (docs/deploy.md, "campaign timer").
SERVER_TICK_SECONDS = 30.0

PRODUCT = "simfleet"
HARDWARE = "sim-board"
OLD_VERSION = "1.0.0"
NEW_VERSION = "2.0.0"

_PRODUCT_TOML = f"""
[[products]]
name = "{PRODUCT}"
description = "The fleet simulator's virtual devices"
support_start = "2026-01"
support_end = "2036-12"
on_sale = true
member_states = ["DE"]
hardware = ["{HARDWARE}"]
"""


class ServerError(RuntimeError):
    """A command of the run's server side failed."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CliServerSide:
    """:class:`~.http_mode.ServerSide` over the ``patchgate`` CLI and ``patchgate serve``."""

    def __init__(
        self,
        *,
        data_dir: Path | None = None,
        poll_sleep: int = 15,
        campaign_tick: float = 1.0,
        soak: str = "60s",
        keep: bool = False,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.owned = data_dir is None
        self.root = Path(data_dir or tempfile.mkdtemp(prefix="patchgate-sim-"))
        self.keep = keep
        self.poll_sleep = poll_sleep
        self.campaign_tick = campaign_tick
        self.soak = soak
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("PATCHGATE_") or k in ("PATCHGATE_LOG_LEVEL",)
        }
        self.env.update(
            {
                "PATCHGATE_DATA_DIR": str(self.root / "var"),
                "PATCHGATE_POLL_SLEEP": str(poll_sleep),
                "PATCHGATE_CAMPAIGN_TICK": str(campaign_tick),
                **(extra_env or {}),
            }
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.release_ids: dict[str, int] = {}
        self.cli_seconds = 0.0
        self.api_token = ""

    # --- commands ----------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 600) -> str:
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "patchgate.entrypoints.cli", *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        self.cli_seconds += time.monotonic() - started
        if proc.returncode != 0:
            raise ServerError(f"patchgate {' '.join(args[:3])}: {proc.stderr.strip()[-800:]}")
        return proc.stdout

    def cli_json(self, *args: str) -> dict[str, Any]:
        out = json.loads(self.cli(*args, "--json"))
        if not isinstance(out, dict):
            raise ServerError(f"patchgate {' '.join(args[:2])}: not a JSON object")
        return out

    def setup(self) -> None:
        """``init``, the product in the policy, the known-good release."""
        self.cli("init")
        policy = self.root / "var" / "policy.toml"
        policy.write_text(policy.read_text() + _PRODUCT_TOML)
        self.cli("policy", "apply", str(policy))
        self.release_ids[OLD_VERSION] = self._release(OLD_VERSION, security_version=1)
        # The campaign's status is read over the management API every few seconds (a CLI
        # process each time would cost the machine more than the server's whole answer).
        self.api_token = str(self.cli_json("token", "create", "simulator")["token"])

    def _release(self, version: str, *, security_version: int) -> int:
        artifact = self.root / f"image-{version}.bin"
        artifact.write_bytes(secrets.token_bytes(4096))
        made = self.cli_json(
            "release",
            "create",
            PRODUCT,
            version,
            "--artifact",
            str(artifact),
            "--hardware",
            HARDWARE,
            "--security-version",
            str(security_version),
            "--type",
            "security",
        )
        return int(made["id"])

    # --- the server --------------------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        log = (self.root / "serve.log").open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "patchgate.entrypoints.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=self.env,
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"patchgate serve exited: {self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise ServerError(f"patchgate serve did not answer: {self.log_tail()}")

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) the server has used so far: the ``patchgate serve``
        process and its worker processes (granian serves from a child), from Linux
        ``/proc``."""
        if self.proc is None:
            return None
        return process_tree_cpu_seconds(self.proc.pid)

    def log_tail(self) -> str:
        path = self.root / "serve.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.owned and not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> CliServerSide:
        self.setup()
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- ServerSide --------------------------------------------------------------------

    def provision(self, scenario: Scenario, fleet: Fleet) -> Sequence[DeviceCredentials]:
        path = self.root / "fleet.csv"
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "groups", "hardware", "version"])
            for index in range(fleet.n):
                groups = ";".join(sorted(GROUPS_OF[int(fleet.mask[index])]))
                writer.writerow([device_id(index), groups, HARDWARE, OLD_VERSION])
        made = self.cli_json("device", "import", str(path))
        return [DeviceCredentials(str(d["id"]), str(d["token"])) for d in made["devices"]]

    def start_campaign(self, scenario: Scenario) -> str:
        release = self._release(NEW_VERSION, security_version=2)
        self.release_ids[NEW_VERSION] = release
        flags = ["--soak", self.soak]
        if scenario.stages:
            flags += ["--stages", scenario.stages]
        made = self.cli_json("campaign", "create", str(release), *flags)
        campaign = str(made["id"])
        self.cli("campaign", "start", campaign)
        return campaign

    def status(self, campaign_id: str) -> Mapping[str, Any]:
        """``GET /api/v1/campaigns/ID`` (what ``campaign status ID --json`` prints)."""
        try:
            response = httpx.get(
                f"{self.url}/api/v1/campaigns/{campaign_id}",
                headers={"Authorization": f"Bearer {self.api_token}"},
                timeout=60,
            )
        except httpx.HTTPError as exc:
            raise ServerError(f"campaign status {campaign_id}: {exc}") from exc
        if response.status_code != 200:
            raise ServerError(f"campaign status {campaign_id}: HTTP {response.status_code}")
        out = response.json()
        if not isinstance(out, dict):
            raise ServerError(f"campaign status {campaign_id}: not a JSON object")
        return out

    def revert(self, campaign_id: str) -> None:
        self.cli("campaign", "revert", campaign_id)


def simulate_http(
    scenario: Scenario,
    *,
    time_scale: float = 60.0,
    health_minutes: float = 60.0,
    timeout_seconds: float = 1800.0,
    soak_minutes: float = 60.0,
    campaign_tick: float | None = None,
    data_dir: Path | None = None,
    keep: bool = False,
    on_status: Any = None,
) -> dict[str, Any]:
    """One http-mode run: a fresh server, the fleet over DDI, the campaign, the revert after
    a halt; the ``simulate --json`` fields (:func:`.http_mode.result_json`)."""
    from .http_mode import Rehearsal, rehearse

    poll_sleep = max(1, round(scenario.poll_minutes * 60 / time_scale))
    if campaign_tick is None:
        # The server's default tick (30 s) in simulated time, as a deployment evaluates its
        # gates; a faster tick only adds work that a large fleet's server then lacks.
        campaign_tick = max(1.0, SERVER_TICK_SECONDS / time_scale)
    soak_seconds = max(1, round(soak_minutes * 60 / time_scale))
    wall0 = time.monotonic()
    with CliServerSide(
        data_dir=data_dir,
        poll_sleep=poll_sleep,
        campaign_tick=campaign_tick,
        soak=f"{soak_seconds}s",
        keep=keep,
    ) as server:
        settings = {
            "PATCHGATE_POLL_SLEEP": poll_sleep,
            "PATCHGATE_CAMPAIGN_TICK": campaign_tick,
            "soak": f"{soak_seconds}s real = {soak_minutes:g} min simulated",
        }
        rehearsal = Rehearsal(
            time_scale=time_scale,
            health_minutes=health_minutes,
            timeout_seconds=timeout_seconds,
            start_spread=float(poll_sleep),
            on_status=on_status,
        )
        cpu0 = server.cpu_seconds()
        fleet0 = time.process_time()
        out = rehearse(
            server,
            scenario,
            rehearsal,
            new_version=NEW_VERSION,
            old_version=OLD_VERSION,
            settings=settings,
        )
        cpu1 = server.cpu_seconds()
        # The virtual devices' side: this process (the CLI children it starts excluded).
        out["fleet_cpu_seconds"] = round(time.process_time() - fleet0, 1)
        if cpu0 is not None and cpu1 is not None:
            out["server_cpu_seconds"] = round(cpu1 - cpu0, 1)
    out["wall_seconds"] = round(time.monotonic() - wall0, 1)
    return out


def process_tree_cpu_seconds(root: int) -> float | None:
    """CPU time (user + system) used so far by process ``root`` and all its descendants,
    from Linux ``/proc``; None when ``root`` is gone."""
    stats = _proc_stats()
    if root not in stats:
        return None
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += stats[pid][1]
        todo.extend(children.get(pid, ()))
    return total / os.sysconf("SC_CLK_TCK")


def _proc_stats() -> dict[int, tuple[int, int]]:
    """Every process's parent and CPU ticks (user + system), from ``/proc/PID/stat``."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        out[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return out
