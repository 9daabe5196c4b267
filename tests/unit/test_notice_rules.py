"""Which events deserve a notice, once each, and how delivery retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from patchgate.domain import notices as rules
from patchgate.domain.errors import InvalidInput
from patchgate.domain.policy import Month

NOW = datetime(2030, 6, 15, 9, 0, tzinfo=UTC)


def _eos(end: Month, now: datetime = NOW) -> list[rules.Notice]:
    return rules.derive([], [], [rules.ProductFacts("Gw", end)], now)


@pytest.mark.parametrize(
    ("end", "notice"),
    [
        (Month(2031, 6), None),  # the twelve-month notice falls due on 1 July 2030
        (Month(2031, 5), "12 months"),
        (Month(2030, 12), "12 months"),  # six months before: from 1 July 2030
        (Month(2030, 11), "6 months"),
        (Month(2030, 6), "1 month"),
        (Month(2030, 5), "end of support"),  # ended: the day-of notice, once
    ],
)
def test_end_of_support_notices_name_the_latest_threshold_reached(
    end: Month, notice: str | None
) -> None:
    found = _eos(end)
    if notice is None:
        assert found == []
        return
    [made] = found
    assert made.kind is rules.Kind.END_OF_SUPPORT
    assert made.facts["notice"] == notice
    assert made.key == f"end_of_support:Gw:{end}:{notice}"
    assert made.link == "/products/Gw"
    assert made.facts["event"] == (
        "support.ended" if notice == "end of support" else "support.ending"
    )


def test_a_resolved_vulnerability_gets_no_deadline_notice() -> None:
    v = rules.VulnerabilityFacts("CVE-1", "t", "high", NOW - timedelta(days=1), resolved=True)
    assert rules.derive([v], [], [], NOW) == []


def test_a_submitted_art14_report_gets_no_notice_and_an_open_one_turns_overdue() -> None:
    clocks = (
        rules.ReportClock("early_warning", NOW - timedelta(hours=1), submitted=True),
        rules.ReportClock("notification", NOW + timedelta(hours=40), submitted=False),
        rules.ReportClock("final_report", None, submitted=False),
    )
    v = rules.VulnerabilityFacts("CVE-1", "t", "critical", None, resolved=False, reports=clocks)
    [due] = rules.derive([v], [], [], NOW)
    assert due.key == "art14_due:CVE-1:notification"
    [overdue] = rules.derive([v], [], [], NOW + timedelta(hours=41))
    assert overdue.key == "art14_overdue:CVE-1:notification"


def test_campaign_notices_follow_its_state() -> None:
    base = {"id": 3, "product": "Gw", "release": "2.0", "stage_index": 1, "stage_name": "canary"}
    halted = rules.CampaignFacts(**base, state="halted", halted_at=NOW, halt_reason="crashes")
    waiting = rules.CampaignFacts(**base, state="running", awaiting_approval=True)
    at_risk = rules.CampaignFacts(
        **base, state="running", deadline_at=NOW + timedelta(days=2), deadline_at_risk=True
    )
    done = rules.CampaignFacts(**base, state="completed", finished_at=NOW)
    found = rules.derive([], [halted, waiting, at_risk, done], [], NOW)
    assert [n.kind for n in found] == [
        rules.Kind.CAMPAIGN_HALTED,
        rules.Kind.STAGE_AWAITING_APPROVAL,
        rules.Kind.CAMPAIGN_DEADLINE_AT_RISK,
        rules.Kind.CAMPAIGN_COMPLETED,
    ]
    assert found[0].facts["reason"] == "crashes"
    assert "patchgate campaign approve 3" in found[1].body
    # A second halt of the same campaign (after a resume) is a new event.
    again = rules.CampaignFacts(
        **base, state="halted", halted_at=NOW + timedelta(hours=5), halt_reason="again"
    )
    assert rules.derive([], [again], [], NOW)[0].key != found[0].key


def test_webhook_payloads_name_the_event_and_keep_the_facts() -> None:
    payload = rules.webhook_payload(
        "campaign_halted", "k", "s", "https://x/console/campaigns/3", NOW, {"campaign_id": 3}
    )
    assert payload == {
        "campaign_id": 3,
        "event": "campaign.halted",
        "key": "k",
        "subject": "s",
        "link": "https://x/console/campaigns/3",
        "at": "2030-06-15T09:00:00Z",
    }


def test_retries_back_off_from_thirty_seconds_to_at_most_an_hour() -> None:
    delays = [rules.next_attempt(n, NOW) - NOW for n in (1, 2, 3, 7, 8, 50)]
    assert delays == [
        timedelta(seconds=30),
        timedelta(seconds=60),
        timedelta(seconds=120),
        timedelta(seconds=1920),
        timedelta(hours=1),
        timedelta(hours=1),
    ]


def test_routes_send_each_kind_to_its_list_or_the_default() -> None:
    routes = rules.parse_routes(
        "psirt@example.com, ops@example.com", "campaign_halted=rm@example.com;vuln_due_soon="
    )
    assert routes.addresses(rules.Kind.VULN_OVERDUE) == ("psirt@example.com", "ops@example.com")
    assert routes.addresses(rules.Kind.CAMPAIGN_HALTED) == ("rm@example.com",)
    assert routes.addresses(rules.Kind.VULN_DUE_SOON) == ()


@pytest.mark.parametrize(
    ("default", "routes", "message"),
    [
        ("not-an-address", None, "'not-an-address' is not an e-mail address"),
        (None, "campaign_exploded=a@b.c", "unknown notice 'campaign_exploded'"),
        (None, "campaign_halted", "needs kind=addresses"),
        (None, "campaign_halted=a@b", "'a@b' is not an e-mail address"),
    ],
)
def test_bad_routing_settings_are_refused_with_the_reason(
    default: str | None, routes: str | None, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        rules.parse_routes(default, routes)
