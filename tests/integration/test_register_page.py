"""The register's paged table (services/vulnerabilities/register.py) says what the full
views say: the same severity, deadline, SLA state and exposure per vulnerability, filtered,
sorted and paged as asked, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from patchgate.domain.errors import InvalidInput
from patchgate.services import devices as device_service
from patchgate.services.devices import DeviceRow
from patchgate.services.vulnerabilities import commands, register, views
from tests.conftest import Env
from tests.factories import make_release

CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
MEDIUM = "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:L/A:N"
LOW = "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:L/I:N/A:N"


def _register(env: Env) -> None:
    rows = [DeviceRow(f"gw-{i:03d}", (), "demo-gw-1", ("1.0.0", "1.1.0", "2.0.0")[i % 3])
            for i in range(30)]  # fmt: skip
    device_service.import_devices(env.ctx, rows, actor="t")
    now = env.ctx.clock()
    cases = [
        ("CVE-2026-0001", CRITICAL, 400, ["<1.1.0"], False),  # long overdue
        ("CVE-2026-0002", CRITICAL, 150, ["<2.0.0"], False),  # due soon
        ("CVE-2026-0003", MEDIUM, 24, [], False),  # on track; every version before the fix
        ("CVE-2026-0004", LOW, 2, [">=1.1.0|<2.0.0"], True),  # exploited: escalated
        ("CVE-2026-0005", MEDIUM, 900, ["<1.0.0"], False),
    ]
    for vuln_id, cvss, hours, affected, exploited in cases:
        commands.add(
            env.ctx, vuln_id=vuln_id, title=f"flaw {vuln_id}", cvss=cvss, actor="t",
            aware_at=now - timedelta(hours=hours), products=["Demo Gateway"],
            affected=affected, exploited=exploited,
        )  # fmt: skip
    commands.triage(env.ctx, "CVE-2026-0005", status="not_affected", actor="t",
                    justification="code_not_present")  # fmt: skip
    make_release(env, "1.2.0", {"fw.bin": b"x"}, security_version=2, fixes=["CVE-2026-0003"])


def test_every_row_agrees_with_the_full_view(demo_env: Env) -> None:
    env = demo_env
    _register(env)
    page = register.register_page(env.ctx, limit=50)
    full = {v.id: v for v in views.list_vulnerabilities(env.ctx).items}
    assert [r.id for r in page.rows] == [v.id for v in views.list_vulnerabilities(env.ctx).items]
    for row in page.rows:
        v = full[row.id]
        assert (row.severity, row.sla_state, row.due_at, row.status, row.score) == (
            v.severity, v.sla_state, v.due_at, v.status, v.score,
        ), row.id  # fmt: skip
        assert row.exposed_devices == v.exposed_devices, row.id
    assert page.total == 5
    assert sum(page.states.values()) == 5
    assert page.states.get("overdue", 0) == sum(
        1 for v in full.values() if v.sla_state == "overdue"
    )


def test_filters_sorts_and_pages(demo_env: Env) -> None:
    env = demo_env
    _register(env)
    full = {v.id: v for v in views.list_vulnerabilities(env.ctx).items}
    where = register.RegisterFilter
    critical = register.register_page(env.ctx, where(severity="critical"))
    assert {r.id for r in critical.rows} == {i for i, v in full.items() if v.severity == "critical"}
    overdue = register.register_page(env.ctx, where(overdue=True))
    assert {r.id for r in overdue.rows} == {i for i, v in full.items() if v.sla_state == "overdue"}
    urgent = register.register_page(env.ctx, where(urgent=True))
    assert {r.sla_state for r in urgent.rows} <= {"overdue", "due_soon"}
    assert register.register_page(env.ctx, where(product="No Such Product")).total == 0
    by_score = register.register_page(env.ctx, where(sort="score"))
    scores = [r.score or 0.0 for r in by_score.rows]
    assert scores == sorted(scores, reverse=True)
    by_exposure = register.register_page(env.ctx, where(sort="exposure"))
    exposed = [r.exposed_devices or 0 for r in by_exposure.rows]
    assert exposed == sorted(exposed, reverse=True)
    first = register.register_page(env.ctx, limit=2)
    second = register.register_page(env.ctx, offset=2, limit=2)
    last = register.register_page(env.ctx, offset=4, limit=2)
    assert (first.next_offset, second.next_offset, last.next_offset) == (2, 4, None)
    assert [r.id for r in (*first.rows, *second.rows, *last.rows)] == list(full)


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (register.RegisterFilter(sort="colour"), "unknown sort"),
        (register.RegisterFilter(severity="urgent"), "unknown severity"),
        (register.RegisterFilter(state="late"), "unknown SLA state"),
    ],
)
def test_an_unknown_filter_value_is_refused(
    demo_env: Env, where: register.RegisterFilter, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        register.register_page(demo_env.ctx, where)
