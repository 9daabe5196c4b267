"""The policy in force, stored in the database and changed through the CLI."""

from __future__ import annotations

from pathlib import Path

from patchgate.services import audit
from patchgate.services import policy as policy_service
from patchgate.services.setup import demo_policy_source
from tests.conftest import Env


def test_apply_puts_a_policy_in_force_and_audits_it(env: Env, tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(demo_policy_source())
    result = env.cli("policy", "apply", str(path))
    assert result.code == 0, result.stderr
    current = policy_service.in_force(env.ctx)
    assert current.policy.product("Demo Gateway") is not None
    assert audit.entries(env.ctx, limit=1)[0].action == "policy.apply"


def test_applying_the_same_policy_twice_records_nothing(env: Env, tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(demo_policy_source())
    env.cli("policy", "apply", str(path))
    count = len(audit.entries(env.ctx, limit=1000))
    assert "unchanged" in env.cli("policy", "apply", str(path)).stdout
    assert len(audit.entries(env.ctx, limit=1000)) == count


def test_an_invalid_policy_changes_nothing(env: Env, tmp_path: Path) -> None:
    before = policy_service.in_force(env.ctx).sha256
    entries = len(audit.entries(env.ctx, limit=1000))
    path = tmp_path / "bad.toml"
    path.write_text(demo_policy_source().replace("[cadence.high]", "[cadence.severe]"))
    result = env.cli("policy", "apply", str(path))
    assert result.code == 2
    assert "cadence.high: missing" in result.stderr
    assert "Traceback" not in result.stderr
    assert policy_service.in_force(env.ctx).sha256 == before
    assert len(audit.entries(env.ctx, limit=1000)) == entries


def test_policy_check_exits_2_with_one_line_per_problem(env: Env, tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        demo_policy_source().replace("[cadence.low]", "[cadence.tiny]")
        + '\n[[products]]\nname = "Short"\nsupport_start = "2026-01"\nsupport_end = "2027-06"\n'
        + '\n[[products]]\nname = "Gone"\nsupport_start = "2010-01"\nsupport_end = "2020-06"\n'
    )
    result = env.cli("policy", "check", str(path))
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert any("cadence.low: missing" in line for line in lines)
    assert any("cadence.tiny" in line and "unknown severity" in line for line in lines)
    assert any("(Short).support_end" in line and "13(8)" in line for line in lines)
    assert any("(Gone).support_end" in line and "in the past" in line for line in lines)
    assert all(line.startswith("error: ") for line in lines)


def test_policy_render_json_has_the_interface_fields(demo_env: Env) -> None:
    result = demo_env.cli("policy", "render", "--format", "json")
    assert result.code == 0
    body = result.json()
    assert {"organisation", "contact", "products", "cadence"} <= set(body)
    assert body["products"][0]["support_end"] == "2031-12"
    assert body["cadence"]["critical"]["deadline_hours"] == 72


def test_init_demo_adds_a_few_devices_once_with_their_tokens(tmp_path: Path) -> None:
    from tests.support import run_cli

    env = {"PATCHGATE_DATA_DIR": str(tmp_path / "d"), "PATCHGATE_DATABASE_URL": ""}
    first = run_cli(["init", "--demo", "--json"], env)
    assert first.code == 0, first.stderr
    tokens = first.json()["device_tokens"]
    assert len(tokens) == 6
    listed = run_cli(["device", "show", "demo-gw-0003", "--json"], env).json()
    assert listed["groups"] == ["canary-optin"]
    assert listed["installed_version"] == "1.0.0"
    again = run_cli(["init", "--demo", "--json"], env)
    assert again.code == 0
    assert again.json()["device_tokens"] == {}


def test_the_policy_in_force_follows_each_apply_though_parses_are_kept(env: Env) -> None:
    """``in_force`` reuses a parse of the same text and date; a new text in force, or the
    earlier text applied again, is what the next read returns."""
    first = demo_policy_source()
    second = first.replace('organisation = "', 'organisation = "Renamed ', 1)
    assert second != first
    policy_service.apply(env.ctx, first, actor="t")
    before = policy_service.in_force(env.ctx)
    assert policy_service.in_force(env.ctx).policy is before.policy  # kept, not parsed again
    policy_service.apply(env.ctx, second, actor="t")
    changed = policy_service.in_force(env.ctx)
    assert changed.policy.organisation.startswith("Renamed ")
    assert changed.sha256 != before.sha256
    policy_service.apply(env.ctx, first, actor="t")
    again = policy_service.in_force(env.ctx)
    assert again.sha256 == before.sha256
    assert again.policy == before.policy
