"""What ``vuln list``, ``vuln show``, ``vuln due`` and ``report sla`` print for people:
aligned tables with a header, values as a person writes them (no ``None``, no Python
literals)."""

from __future__ import annotations

import re

from tests.conftest import Env

CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 9.8
MEDIUM = "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:H"  # 5.9
PYTHON_LITERALS = re.compile(r"\['|\{'|\bNone\b|\bTrue\b|\bFalse\b|\[\]")
HEADERS = ["ID", "SEVERITY", "SCORE", "STATUS", "SLA", "DUE", "EXPOSED", "TITLE"]


def test_vuln_list_prints_an_aligned_table_of_severity_score_sla_due_and_exposure(
    demo_env: Env,
) -> None:
    for cid, version in (("gw-1", "1.0.0"), ("gw-2", "1.0.0"), ("gw-3", "2.0.0")):
        assert (
            demo_env.cli("device", "add", cid, "--hardware", "demo-gw-1", "--version", version).code
            == 0
        )
    rows = [
        ("CVE-2026-1", CRITICAL, ["--product", "Demo Gateway", "--affected", "<2.0"]),
        ("GHSA-aaaa-bbbb-cccc", MEDIUM, []),
        ("CVE-2026-123456", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", []),
    ]
    for vid, vector, extra in rows:
        added = demo_env.cli(
            "vuln", "add", vid, "--title", f"title of {vid}", "--cvss", vector,
            "--aware-at", "2026-03-04T12:00:00Z", *extra,
        )  # fmt: skip
        assert added.code == 0, added.stderr
    listed = demo_env.cli("vuln", "list")
    assert listed.code == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == HEADERS
    assert len(lines) == 4 and not PYTHON_LITERALS.search(listed.stdout)
    header = lines[0]
    cells = {}
    for line in lines[1:]:
        # Every value starts under its heading (left-aligned) or ends under its end.
        for name in ("SEVERITY", "STATUS", "SLA", "DUE", "TITLE"):
            at = header.index(name)
            assert line[at] != " " and line[at - 1] == " ", (name, line)
        cells[line.split()[0]] = line.split()
    assert cells["CVE-2026-1"][1:7] == [
        "critical", "9.8", "new", "overdue", "2026-03-07T12:00:00Z", "2",
    ]  # fmt: skip
    assert cells["GHSA-aaaa-bbbb-cccc"][1:7] == [
        "medium", "5.9", "new", "overdue", "2026-06-02T12:00:00Z", "0",
    ]  # fmt: skip
    # Score 0.0 has no deadline: shown as "-", listed last.
    assert cells["CVE-2026-123456"][1:7] == ["none", "0.0", "new", "not_applicable", "-", "0"]
    assert lines[-1].startswith("CVE-2026-123456")
    for name in ("SCORE", "EXPOSED"):  # numbers line up on their right edge
        end = header.index(name) + len(name)
        assert {
            line[end - 1] != " " and line[end : end + 1] in ("", " ") for line in lines[1:]
        } == {True}


def test_vuln_show_due_and_report_sla_print_no_python_literals(demo_env: Env) -> None:
    added = demo_env.cli(
        "vuln", "add", "CVE-2026-2", "--title", "Heap overflow", "--cvss", CRITICAL,
        "--product", "Demo Gateway", "--exploited",
    )  # fmt: skip
    assert added.code == 0
    assert not PYTHON_LITERALS.search(added.stdout), added.stdout
    assert "exploited:" in added.stdout and "early_warning" in added.stdout
    for args in (("vuln", "show", "CVE-2026-2"), ("vuln", "due"), ("report", "sla")):
        result = demo_env.cli(*args)
        assert result.code == 0, result.stderr
        assert not PYTHON_LITERALS.search(result.stdout), (args, result.stdout)
    due = demo_env.cli("vuln", "due").stdout.splitlines()
    assert due[0].split() == ["ID", "REPORT", "STATE", "DUE"]
    assert [line.split()[1] for line in due[1:]] == ["early_warning", "notification"]
    sla = demo_env.cli("report", "sla").stdout.splitlines()
    assert sla[0].split()[:4] == ["SEVERITY", "N", "OPEN", "OVERDUE"]
    assert sla[1].split()[:4] == ["critical", "1", "1", "0"]
