"""The fleet and register gauges on ``/metrics`` of a real server equal what its
management API reports for the same things (docs/metrics.md)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from patchgate.entrypoints.fleet_metrics import FleetCollector
from patchgate.services import devices as device_service
from tests.conftest import Env
from tests.factories import make_release
from tests.support import live_server

HW = "demo-gw-1"
CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
LOW = "CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"


def _scrape(client: httpx.Client) -> dict[str, dict[tuple[str, ...], float]]:
    text = client.get("/metrics").text
    gauges: dict[str, dict[tuple[str, ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(v for _, v in sorted(sample.labels.items()))
            gauges.setdefault(sample.name, {})[labels] = sample.value
    return gauges


def _fresh_scrape(client: httpx.Client, since: float) -> dict[str, dict[tuple[str, ...], float]]:
    """A scrape whose figures were read after ``since`` (the refresher runs on its own)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        gauges = _scrape(client)
        read_at = gauges.get("patchgate_fleet_figures_timestamp_seconds", {}).get(())
        if read_at is not None and read_at > since:
            return gauges
        time.sleep(0.1)
    raise AssertionError("the gauges were not refreshed in time")


def _fleet(env: Env) -> None:
    for cid, version in (("gw-1", "1.0.0"), ("gw-2", "1.0.0"), ("gw-3", "2.0.0"), ("gw-4", None)):
        device_service.add_device(env.ctx, cid, hardware=HW, version=version, actor="t")
    device_service.add_device(env.ctx, "bench-1", version="1.0.0", actor="t")
    device_service.add_device(env.ctx, "gw-5", hardware=HW, version="1.0.0", actor="t")
    device_service.remove_device(env.ctx, "gw-5", actor="t")
    product = ("--product", "Demo Gateway", "--affected", "<2.0.0")
    for args in (
        ("CVE-2026-0001", "--title", "a", "--cvss", CRITICAL, *product, "--exploited"),
        ("CVE-2026-0002", "--title", "b", "--cvss", LOW, *product),
        ("CVE-2026-0003", "--title", "c", "--cvss", CRITICAL, "--aware-at", "2026-01-01T00:00:00Z"),
    ):
        assert env.cli("vuln", "add", *args).code == 0


def _api_counts(client: httpx.Client) -> dict[str, Counter[tuple[str, ...]]]:
    vulns = client.get("/api/v1/vulnerabilities").json()["vulnerabilities"]
    due = client.get("/api/v1/vulnerabilities/reports/due").json()["reports"]
    products = {
        model: p["name"]
        for p in client.get("/policy.json").json()["products"]
        for model in p.get("hardware", [])
    }
    devices: list[dict[str, Any]] = client.get("/api/v1/devices").json()["devices"]
    campaigns: Counter[tuple[str, ...]] = Counter()
    for short in client.get("/api/v1/campaigns").json()["campaigns"]:
        if short["state"] not in ("completed", "cancelled"):
            counts = client.get(f"/api/v1/campaigns/{short['id']}").json()["counts"]
            for state, n in counts.items():
                campaigns[(str(short["id"]), state)] = n
    return {
        "patchgate_vulnerabilities": Counter((v["severity"], v["sla_state"]) for v in vulns),
        "patchgate_art14_reports_due": Counter((r["report"], r["state"]) for r in due),
        "patchgate_campaign_devices": campaigns,
        "patchgate_devices": Counter(
            (products.get(d["hardware"], "unknown"), d["installed_version"] or "unknown")
            for d in devices
        ),
    }


def test_the_gauges_equal_the_counts_the_api_reports(env: Env, tmp_path: Path) -> None:
    release = make_release(env, "2.0.0", {"fw.bin": b"new"}, hardware=[HW])
    _fleet(env)
    made = env.cli("campaign", "create", str(release.id), "--stages", "50,100", "--json")
    assert made.code == 0, made.stderr
    assert env.cli("campaign", "start", str(made.json()["id"])).code == 0
    done = time.time()
    variables = {**env.vars, "PATCHGATE_METRICS_REFRESH": "0.2"}
    with (
        live_server(variables, tmp_path / "server.log") as server,
        server.client(env.admin_token) as client,
    ):
        gauges = _fresh_scrape(client, done)
        expected = _api_counts(client)
        for name, counts in expected.items():
            # Label values in the order of the label names, as _scrape keys them.
            want = {key: float(n) for key, n in counts.items()}
            assert gauges.get(name, {}) == want, name
        # What the fleet holds, spelled out: the removed device counts nowhere.
        assert gauges["patchgate_devices"] == {
            ("Demo Gateway", "1.0.0"): 2.0,
            ("Demo Gateway", "2.0.0"): 1.0,
            ("Demo Gateway", "unknown"): 1.0,
            ("unknown", "1.0.0"): 1.0,
        }
        assert sum(expected["patchgate_vulnerabilities"].values()) == 3
        assert expected["patchgate_art14_reports_due"]  # the exploited one's clocks run
        assert expected["patchgate_campaign_devices"]
        # A change shows in the next refresh: removing a device.
        assert client.delete("/api/v1/devices/gw-3").status_code == 200
        after = _fresh_scrape(client, time.time())
        assert ("Demo Gateway", "2.0.0") not in after["patchgate_devices"]
        took = after["patchgate_fleet_figures_refresh_seconds"][()]
        assert took > 0  # a refresh was timed (how long it takes is benchmarked)


def test_the_gauges_are_off_with_a_refresh_of_zero(env: Env, tmp_path: Path) -> None:
    variables = {**env.vars, "PATCHGATE_METRICS_REFRESH": "0"}
    with live_server(variables, tmp_path / "server.log") as server, server.client() as client:
        time.sleep(0.5)
        assert "patchgate_devices" not in _scrape(client)


def test_a_slow_reading_spaces_out_the_next_one() -> None:
    collector = FleetCollector(None, 30)  # type: ignore[arg-type]  # never reads here
    assert collector.pause() == 30
    collector._refresh_seconds = 12.0
    assert collector.pause() == 120.0
