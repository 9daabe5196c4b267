"""``patchgate simulate --mode http``: a real server on a fresh data folder of its own, a
few hundred asyncio devices over DDI, a release that fails to boot on 30 %."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.timeout(240)
def test_a_release_that_fails_to_boot_halts_over_http_and_every_exposed_device_returns() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATCHGATE_")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "patchgate.entrypoints.cli",
            "simulate",
            "--mode",
            "http",
            "--devices",
            "300",
            "--fault",
            "boot:0.3",
            "--power-loss",
            "0.01",
            "--time-scale",
            "180",
            "--http-timeout",
            "150",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=230,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["mode"] == "http" and out["devices"] == 300
    assert out["halted"] is True and out["false_halt"] is False
    assert out["halted_at_stage"] in ("internal", "canary")
    assert out["campaign_state"] == "reverting"
    assert out["bricked"] == 0
    assert 0 < out["exposed"] < 300 * 0.1
    assert out["every_exposed_on_known_good"] is True
    assert out["exposed_on_known_good"] == out["exposed"]
    assert out["versions"] == {"1.0.0": 300}
    assert out["settings"]["time_scale"] == 180
    for key in ("exposed_fraction", "reverted", "minutes_to_halt", "patched_fraction_at_deadline"):
        assert key in out
