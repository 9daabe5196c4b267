"""PostgreSQL restarting under load (docs/deploy.md, "When PostgreSQL restarts").

The database is a private PostgreSQL cluster made for this test (Debian's
``pg_createcluster`` on a free port), so restarting it disturbs no other test. Devices keep
polling and writing their attributes over DDI through a real ``patchgate serve`` while the
cluster restarts. While it is away, every answer is an ordinary one or a 503 that says the
database is not reachable, never a 500; once it is back the server answers again without
being restarted; every write the server acknowledged is still there; and the command line
says the same in one line with exit code 1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from patchgate.adapters.db import migrate
from patchgate.adapters.db.engine import make_throwaway_engine
from patchgate.bootstrap import Settings, build
from patchgate.domain.clock import utcnow
from patchgate.services import devices as device_service
from patchgate.services import setup
from tests.support import PG_ADMIN_URL, LiveServer, free_port, run_cli

pytestmark = pytest.mark.skipif(
    not PG_ADMIN_URL or shutil.which("pg_createcluster") is None or os.geteuid() != 0,
    reason="needs PATCHGATE_TEST_POSTGRES, Debian's postgresql-common and root",
)

DEVICES = 12


def _pg_version() -> str:
    return sorted(os.listdir("/etc/postgresql"))[-1]


@dataclass
class Cluster:
    """A PostgreSQL cluster of the test's own, run by Debian's cluster tools."""

    name: str
    port: int
    version: str

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def ctl(self, *action: str) -> None:
        subprocess.run(
            ["pg_ctlcluster", self.version, self.name, *action],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    made = Cluster(f"pgtest_{uuid.uuid4().hex[:8]}", free_port(), _pg_version())
    subprocess.run(
        ["pg_createcluster", made.version, made.name, "--port", str(made.port),
         "--", "--auth=trust"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    try:
        made.ctl("start")
        made.wait_ready()
        yield made
    finally:
        subprocess.run(
            ["pg_dropcluster", made.version, made.name, "--stop"],
            capture_output=True, timeout=120,
        )  # fmt: skip


@dataclass
class Fleet:
    """What the polling devices saw: answers by status, the 503 bodies, and for each device
    the highest attribute value the server acknowledged (200)."""

    statuses: Counter[int]
    unavailable: list[str]
    acknowledged: dict[str, int]
    lock: threading.Lock

    def record(self, answer: httpx.Response) -> None:
        with self.lock:
            self.statuses[answer.status_code] += 1
            if answer.status_code == 503 and len(self.unavailable) < 5:
                self.unavailable.append(answer.text)


def _drive(url: str, devices: dict[str, str], fleet: Fleet, stop: threading.Event) -> None:
    """Poll and write an increasing attribute, device after device, until ``stop``."""
    seq = 0
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            seq += 1
            for cid, token in devices.items():
                headers = {"Authorization": f"TargetToken {token}"}
                base = f"{url}/DEFAULT/controller/v1/{cid}"
                try:
                    fleet.record(client.get(base, headers=headers))
                    written = client.put(
                        f"{base}/configData", headers=headers,
                        json={"mode": "merge", "data": {"seq": str(seq)}},
                    )  # fmt: skip
                except httpx.TransportError:
                    continue  # no answer at all is not one of the server's answers
                fleet.record(written)
                if written.status_code == 200:
                    with fleet.lock:
                        fleet.acknowledged[cid] = seq


def _count_ok(fleet: Fleet) -> int:
    with fleet.lock:
        return fleet.statuses[200]


def test_polls_survive_a_postgresql_restart_and_nothing_acknowledged_is_lost(
    cluster: Cluster, tmp_path: Path
) -> None:
    database = f"{cluster.url.rsplit('/', 1)[0]}/patchgate"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE patchgate")
    engine = make_throwaway_engine(database)
    migrate.upgrade(engine, utcnow())
    engine.dispose()
    data_dir = tmp_path / "data"
    app = build(Settings(data_dir=data_dir, database_url=database))
    setup.initialise(app.context, demo=False, actor="test", demo_devices=False)
    devices = {
        f"dev-{i}": device_service.add_device(
            app.context, f"dev-{i}", hardware="hw-a", version="1.0.0", actor="test"
        ).token
        for i in range(DEVICES)
    }
    app.close()
    settings = {"PATCHGATE_DATA_DIR": str(data_dir), "PATCHGATE_DATABASE_URL": database}

    server = LiveServer(settings, tmp_path / "server.log").start()
    fleet = Fleet(Counter(), [], {}, threading.Lock())
    stop = threading.Event()
    halves = [dict(list(devices.items())[i::2]) for i in range(2)]
    threads = [
        threading.Thread(target=_drive, args=(server.url, half, fleet, stop)) for half in halves
    ]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while _count_ok(fleet) < 100 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _count_ok(fleet) >= 100, fleet.statuses

        # Away long enough for the devices to be answered while it is down.
        cluster.ctl("stop", "-m", "fast")
        time.sleep(2)
        down = run_cli(["device", "list"], settings)
        cluster.ctl("start")
        cluster.wait_ready()
        back = _count_ok(fleet)
        deadline = time.monotonic() + 60
        while _count_ok(fleet) < back + 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        recovered = _count_ok(fleet) - back
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
        server.stop()

    # While the database was away: a 503 that says so, never a 500 or a traceback.
    assert set(fleet.statuses) <= {200, 503}, fleet.statuses
    assert fleet.statuses[503] > 0, fleet.statuses
    for body in fleet.unavailable:
        assert "database is not reachable" in json.loads(body)["message"], body
    log = (tmp_path / "server.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
    # The command line: exit 1 and one readable line.
    assert down.code == 1, (down.stdout, down.stderr)
    assert down.stderr.strip().count("\n") == 0, down.stderr
    assert "database is not reachable" in down.stderr, down.stderr
    # Back without a restart of the server.
    assert recovered >= 200, fleet.statuses

    # Every acknowledged write is there (a later one, unacknowledged, may be too).
    with psycopg.connect(database, autocommit=True) as conn:
        stored: dict[str, dict[str, str]] = dict(
            conn.execute(
                "SELECT controller_id, attributes FROM devices WHERE controller_id LIKE 'dev-%'"
            ).fetchall()
        )
    assert set(fleet.acknowledged) == set(devices)
    for cid, seq in fleet.acknowledged.items():
        assert int(stored[cid]["seq"]) >= seq, (cid, stored[cid], seq)
