"""``patchgate agent``, ``agent boot`` and ``agent status`` as a user runs them, against the
hawkBit double served on a real loopback port."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from patchgate.entrypoints.cli import main
from tests.support import free_port
from tests.unit.agent_device import FACTORY, UPDATE, sha
from tests.unit.agent_doubles import HawkbitDouble, ServedOverHttp, TufRepo

TARGET = "firmware/2.0.0/image.img"


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main.main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[ServedOverHttp, Path]]:
    repo = TufRepo()
    repo.add_target(TARGET, UPDATE, version="2.0.0", security_version=2)
    double = HawkbitDouble(repo)
    double.add_device("dev-1", "secret")
    double.offer("dev-1", "2.0.0", UPDATE, tuf_target=TARGET)
    served = ServedOverHttp(double, free_port())
    (tmp_path / "root.json").write_bytes(repo.root_bytes())
    (tmp_path / "a.img").write_bytes(FACTORY)
    (tmp_path / "b.img").write_bytes(b"")
    yield served, tmp_path
    served.close()


def agent_args(served: ServedOverHttp, tmp: Path, *extra: str) -> list[str]:
    return [
        "agent",
        "--server",
        served.url,
        "--device-id",
        "dev-1",
        "--token",
        "secret",
        "--state-dir",
        str(tmp / "state"),
        "--trusted-root",
        str(tmp / "root.json"),
        "--slot-a",
        str(tmp / "a.img"),
        "--slot-b",
        str(tmp / "b.img"),
        "--initial-version",
        "1.0.0",
        "--once",
        *extra,
    ]


def test_the_agent_command_installs_boots_and_commits_a_release(
    world: tuple[ServedOverHttp, Path],
) -> None:
    served, tmp = world
    code, _, err = cli(*agent_args(served, tmp))
    assert code == 0, err
    assert "reboot required" in err
    code, out, _ = cli("agent", "boot", "--state-dir", str(tmp / "state"))
    assert code == 0 and "booted slot b" in out
    code, _, err = cli(*agent_args(served, tmp))
    assert code == 0, err
    code, out, _ = cli("agent", "status", "--state-dir", str(tmp / "state"), "--json")
    data = json.loads(out)
    assert (data["active_slot"], data["booted_slot"], data["installed_version"]) == (
        "b",
        "b",
        "2.0.0",
    )
    assert data["upgrade_available"] is False and data["bootcount"] == 0
    assert data["slots"]["b"]["sha256"] == sha(UPDATE) and data["slots"]["b"]["state"] == "good"
    assert data["slots"]["a"]["state"] == "good"
    assert data["slots"]["a"]["image_matches"] and data["slots"]["b"]["image_matches"]
    assert (tmp / "b.img").read_bytes() == UPDATE
    action = served.double.devices["dev-1"].actions[0]
    assert (action.status, action.result) == ("closed", "success")


def test_a_failing_health_command_reverts_to_the_known_good_slot(
    world: tuple[ServedOverHttp, Path],
) -> None:
    served, tmp = world
    failing = f"{sys.executable} -c 'import sys; sys.exit(3)'"
    assert cli(*agent_args(served, tmp))[0] == 0
    cli("agent", "boot", "--state-dir", str(tmp / "state"))
    code, _, err = cli(*agent_args(served, tmp, "--health-cmd", failing))
    assert code == 0 and "health check failed" in err
    cli("agent", "boot", "--state-dir", str(tmp / "state"))
    assert cli(*agent_args(served, tmp, "--health-cmd", failing))[0] == 0
    data = json.loads(cli("agent", "status", "--state-dir", str(tmp / "state"), "--json")[1])
    assert (data["active_slot"], data["installed_version"]) == ("a", "1.0.0")
    assert data["slots"]["b"]["state"] == "bad"
    assert (tmp / "a.img").read_bytes() == FACTORY
    action = served.double.devices["dev-1"].actions[0]
    assert (action.status, action.result) == ("closed", "failure")
    assert "exited 3" in " ".join(action.feedback[-1]["status"]["details"])


def test_the_agent_refuses_to_start_without_a_valid_trusted_root(
    world: tuple[ServedOverHttp, Path],
) -> None:
    served, tmp = world
    (tmp / "root.json").write_text('{"signed": {}}')
    code, _, err = cli(*agent_args(served, tmp))
    assert code == 2 and "refusing to start" in err and "Traceback" not in err
    (tmp / "root.json").unlink()
    code, _, err = cli(*agent_args(served, tmp))
    assert code == 2 and "cannot read trusted root" in err
    assert not served.double.requests  # nothing was asked of the server


def test_the_agent_names_every_missing_option(tmp_path: Path) -> None:
    code, _, err = cli("agent", "--once")
    assert code == 2
    for flag in ("--server", "--device-id", "--token", "--state-dir", "--trusted-root"):
        assert f"missing option {flag}" in err


def test_status_of_an_unprovisioned_folder_is_a_readable_error(tmp_path: Path) -> None:
    code, _, err = cli("agent", "status", "--state-dir", str(tmp_path), "--json")
    assert code == 2 and "no valid boot environment" in err
    code, _, err = cli("agent", "boot", "--state-dir", str(tmp_path))
    assert code == 2 and "no valid boot environment" in err
