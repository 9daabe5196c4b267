"""The register's derived rows that a process keeps (services/vulnerabilities/register.py,
docs/console.md "Performance"): kept while nothing changed, derived again after any write
to the register (from this process or another), a new policy, or a moment at which an SLA
state changes with time; never a stale row. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from patchgate.bootstrap import App, Settings, build
from patchgate.services import policy as policy_service
from patchgate.services.setup import demo_policy_source
from patchgate.services.vulnerabilities import commands, register, views
from patchgate.services.vulnerability_ports import VulnerabilityRecord
from tests.conftest import Env

T0 = datetime(2026, 5, 6, 12, 0, tzinfo=UTC)
CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 72 hours in the demo policy
MEDIUM = "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:L/A:N"
PRODUCT = "Demo Gateway"


def _at(env: Env, when: datetime) -> None:
    env.ctx.clock = lambda: when


def _add(env: Env, vuln_id: str, cvss: str, aware: datetime) -> None:
    commands.add(
        env.ctx, vuln_id=vuln_id, title=f"flaw {vuln_id}", cvss=cvss, actor="t",
        aware_at=aware, products=[PRODUCT], affected=["<2.0.0"],
    )  # fmt: skip


def _agrees(env: Env) -> register.RegisterPage:
    """The page, after checking every row against the full view read afresh."""
    page = register.register_page(env.ctx, limit=500)
    full = {v.id: v for v in views.list_vulnerabilities(env.ctx).items}
    assert [r.id for r in page.rows] == list(full)
    for row in page.rows:
        v = full[row.id]
        assert (row.severity, row.sla_state, row.due_at, row.status, row.exploited) == (
            v.severity, v.sla_state, v.due_at, v.status, v.exploited,
        ), row.id  # fmt: skip
    return page


def _same_rows(rows: list[register.RegisterRow], kept: list[register.RegisterRow]) -> bool:
    """Whether ``rows`` are the very rows ``kept`` holds (kept, not derived again)."""
    return len(rows) == len(kept) and all(a is b for a, b in zip(rows, kept, strict=True))


@pytest.fixture
def other(demo_env: Env) -> Iterator[App]:
    """A second installation over the same database: another process, as the CLI is."""
    app = build(Settings(data_dir=demo_env.data_dir, database_url=demo_env.database_url))
    yield app
    app.close()


def test_rows_are_kept_until_the_register_changes(demo_env: Env) -> None:
    env = demo_env
    _at(env, T0)
    _add(env, "CVE-2026-0001", CRITICAL, T0 - timedelta(hours=10))
    _add(env, "CVE-2026-0002", MEDIUM, T0 - timedelta(days=3))
    _agrees(env)
    kept = register.register_rows(env.ctx)
    for _ in range(3):
        register.register_page(env.ctx)
        # Nothing changed: nothing derived (a derivation builds every row anew).
        assert _same_rows(register.register_rows(env.ctx), kept)

    commands.triage(env.ctx, "CVE-2026-0001", status="not_affected", actor="t",
                    justification="code_not_present")  # fmt: skip
    page = _agrees(env)
    assert {r.id: r.status for r in page.rows}["CVE-2026-0001"] == "not_affected"
    derived = register.register_rows(env.ctx)
    assert not _same_rows(derived, kept)  # the write: derived again
    assert _same_rows(register.register_rows(env.ctx), derived)  # then kept again

    commands.mark_exploited(env.ctx, "CVE-2026-0002", actor="t")
    page = _agrees(env)
    assert {r.id: r.exploited for r in page.rows}["CVE-2026-0002"] is True

    _add(env, "CVE-2026-0003", CRITICAL, T0)
    page = _agrees(env)
    assert page.total == 3
    assert "CVE-2026-0003" in {r.id for r in register.register_rows(env.ctx)}


def test_a_write_from_another_process_shows_on_the_next_page(demo_env: Env, other: App) -> None:
    env = demo_env
    _at(env, T0)
    _add(env, "CVE-2026-0001", CRITICAL, T0 - timedelta(hours=10))
    assert [r.status for r in _agrees(env).rows] == ["new"]
    other.context.clock = lambda: T0
    commands.triage(other.context, "CVE-2026-0001", status="triaged", actor="t")
    assert [r.status for r in _agrees(env).rows] == ["triaged"]


def test_the_version_rises_with_each_committed_write_only(demo_env: Env) -> None:
    env = demo_env
    with env.ctx.read_uow() as uow:
        before = uow.vulnerabilities.version()
    _add(env, "CVE-2026-0001", CRITICAL, T0)
    with env.ctx.read_uow() as uow:
        after = uow.vulnerabilities.version()
    assert after > before
    with env.ctx.uow() as uow:  # saved, then rolled back: the version goes back with it
        uow.vulnerabilities.save(VulnerabilityRecord("CVE-2026-0002", "t", T0, T0, T0))
        uow.rollback()
    with env.ctx.read_uow() as uow:
        assert uow.vulnerabilities.version() == after
        assert uow.vulnerabilities.get("CVE-2026-0002") is None


def test_time_moves_a_row_along_its_window_without_a_write(demo_env: Env) -> None:
    """72 hours from awareness, due soon in the last 20 % (from 57.6 hours on)."""
    env = demo_env
    _at(env, T0)
    _add(env, "CVE-2026-0001", CRITICAL, T0)
    soon = T0 + timedelta(hours=72) * (1 - 0.2)
    expected = [
        (T0, "on_track"),
        (soon - timedelta(microseconds=1), "on_track"),
        (soon, "due_soon"),
        (T0 + timedelta(hours=72), "due_soon"),
        (T0 + timedelta(hours=72, microseconds=1), "overdue"),
        (T0 + timedelta(days=30), "overdue"),
    ]
    for when, state in expected:
        _at(env, when)
        page = _agrees(env)
        assert [r.sla_state for r in page.rows] == [state], when
        assert dict(page.states) == {state: 1}
    _at(env, T0)  # a clock set back is never answered from rows derived later
    assert [r.sla_state for r in _agrees(env).rows] == ["on_track"]


def test_a_new_policy_derives_the_rows_again(demo_env: Env) -> None:
    env = demo_env
    _at(env, T0)
    _add(env, "CVE-2026-0001", CRITICAL, T0)
    assert [r.due_at for r in _agrees(env).rows] == [T0 + timedelta(hours=72)]
    source = demo_policy_source()
    assert "deadline_hours = 72" in source
    policy_service.apply(env.ctx, source.replace("deadline_hours = 72", "deadline_hours = 48"),
                         actor="t")  # fmt: skip
    assert [r.due_at for r in _agrees(env).rows] == [T0 + timedelta(hours=48)]
