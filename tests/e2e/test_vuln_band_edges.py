"""CVSS scores exactly on the edges of the severity bands, through ``vuln add``: the band
the policy draws decides, and the deadline is that band's (CVSS v3.1 §5 qualitative
scale in the default policy; a policy may draw its bands elsewhere)."""

from __future__ import annotations

from datetime import timedelta

from patchgate.domain.clock import parse_rfc3339, rfc3339
from patchgate.services.setup import default_policy_source
from tests.conftest import Env

AWARE = "2026-03-04T12:00:00Z"
# Real CVSS v3.1 vectors that the cvss library scores exactly on each band edge.
EDGES = {
    9.0: "CVSS:3.1/AV:N/AC:L/PR:L/UI:R/S:C/C:H/I:H/A:H",
    8.9: "CVSS:3.1/AV:N/AC:L/PR:L/UI:R/S:C/C:H/I:H/A:L",
    7.0: "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:L/A:L",
    6.9: "CVSS:3.1/AV:N/AC:L/PR:H/UI:R/S:C/C:H/I:L/A:N",
    4.0: "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:C/C:L/I:N/A:N",
    3.9: "CVSS:3.1/AV:N/AC:H/PR:H/UI:R/S:U/C:L/I:L/A:L",
}
DEFAULT_BANDS = {9.0: "critical", 8.9: "high", 7.0: "high", 6.9: "medium", 4.0: "medium"}
DEFAULT_BANDS[3.9] = "low"
# Every band moved down by 0.1: each edge score now falls in the next band up.
SHIFTED_CADENCE = """
[cadence.critical]
cvss_min = 8.9
cvss_max = 10.0
deadline_hours = 48

[cadence.high]
cvss_min = 6.9
cvss_max = 8.8
deadline_days = 14

[cadence.medium]
cvss_min = 3.9
cvss_max = 6.8
deadline_days = 60

[cadence.low]
cvss_min = 0.1
cvss_max = 3.8
deadline_days = 180
"""
SHIFTED_BANDS = {9.0: "critical", 8.9: "critical", 7.0: "high", 6.9: "high", 4.0: "medium"}
SHIFTED_BANDS[3.9] = "medium"


def deadlines(env: Env) -> dict[str, int]:
    """Hours per severity of the policy in force, as it publishes them."""
    rendered = env.cli("policy", "render", "--format", "json")
    assert rendered.code == 0, rendered.stderr
    return {sev: rule["deadline_hours"] for sev, rule in rendered.json()["cadence"].items()}


def add_each_edge(env: Env, bands: dict[float, str]) -> None:
    hours = deadlines(env)
    for number, (score, vector) in enumerate(sorted(EDGES.items(), reverse=True)):
        added = env.cli(
            "vuln", "add", f"CVE-2026-{9100 + number}", "--title", f"scores {score}",
            "--cvss", vector, "--aware-at", AWARE, "--json",
        )  # fmt: skip
        assert added.code == 0, added.stderr
        body = added.json()
        severity = bands[score]
        due = parse_rfc3339(AWARE) + timedelta(hours=hours[severity])
        assert (body["score"], body["severity"]) == (score, severity), vector
        assert (body["deadline_severity"], body["due_at"]) == (severity, rfc3339(due)), vector


def test_edge_scores_take_the_default_policys_bands_and_deadlines(env: Env) -> None:
    assert deadlines(env) == {"critical": 72, "high": 672, "medium": 2160, "low": 8760}
    add_each_edge(env, DEFAULT_BANDS)


def test_edge_scores_follow_bands_a_policy_draws_elsewhere(env: Env) -> None:
    text = default_policy_source()
    start = text.index("[cadence.critical]")
    end = text.index("[escalation]")
    shifted = env.data_dir / "shifted.toml"
    shifted.write_text(text[:start] + SHIFTED_CADENCE.lstrip() + "\n" + text[end:])
    applied = env.cli("policy", "apply", str(shifted))
    assert applied.code == 0, applied.stderr
    assert deadlines(env) == {"critical": 48, "high": 336, "medium": 1440, "low": 4320}
    add_each_edge(env, SHIFTED_BANDS)
