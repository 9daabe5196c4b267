"""The CRA Art. 14 report drafts in Markdown read as a person would write them: lists as
lists, products as a table, no Python literals (``['mailto:…']``, ``{'name': …}``,
``None``, ``True``)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import Env
from tests.factories import make_release

CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
PRODUCT = "Demo Gateway"
PYTHON_LITERALS = re.compile(r"\['|\{'|': |\bNone\b|\bTrue\b|\bFalse\b|\[\]|\(\)")


@pytest.mark.parametrize("kind", ["early_warning", "notification", "final_report"])
def test_each_art14_draft_in_markdown_has_no_python_literal(demo_env: Env, kind: str) -> None:
    added = demo_env.cli(
        "vuln", "add", "CVE-2026-8001", "--title", "Command injection in the web UI",
        "--cvss", CRITICAL, "--product", PRODUCT, "--affected", "<1.5", "--exploited",
    )  # fmt: skip
    assert added.code == 0, added.stderr
    fix = make_release(demo_env, "1.5", {"fw.bin": b"fixed"}, fixes=["CVE-2026-8001"])
    result = demo_env.cli("vuln", "art14", "CVE-2026-8001", kind)
    assert result.code == 0, result.stderr
    text = result.stdout
    assert not PYTHON_LITERALS.search(text), PYTHON_LITERALS.search(text)
    assert "Contact: security@devices.example, https://devices.example/security" in text
    assert "## Member States where the product is made available\n\nDE, FR, NL" in text
    assert "| Product | Status | Affected versions | Fixing release | Exposed devices |" in text
    assert f"| {PRODUCT} | new | `vers:semver/<1.5` | release {fix.id} | 0 |" in text
    assert "CVE-2026-8001: Command injection in the web UI" in text
    if kind == "early_warning":
        assert "## Actively exploited\n\nYes" in text
        assert "## Suspected unlawful or malicious act\n\n_to be completed_" in text
    if kind == "notification":
        assert "## Corrective measures taken\n\n| Product |" in text
    if kind == "final_report":
        assert f"## Security update\n\n- {PRODUCT}: release {fix.id}" in text
        assert "## Score\n\n9.8" in text
    as_json = demo_env.cli("vuln", "art14", "CVE-2026-8001", kind, "--format", "json").json()
    assert as_json["manufacturer"] == {
        "name": "Example Devices Ltd",
        "contact": ["mailto:security@devices.example", "https://devices.example/security"],
    }
    assert as_json["products"][0]["name"] == PRODUCT
