"""Campaign views as JSON (``campaign create|status --json`` and the management API) and
as the CLI's text."""

from __future__ import annotations

from typing import Any

from patchgate.domain.clock import rfc3339
from patchgate.services.campaigns.views import CampaignPage, CampaignStatus, CampaignSummary


def status_json(view: CampaignStatus) -> dict[str, Any]:
    """A campaign's status as one JSON object (the view's own JSON form, which the
    compliance evidence and notices read too)."""
    return view.to_json()


def summary_json(view: CampaignSummary) -> dict[str, Any]:
    """A campaign in a list, as JSON."""
    return view.to_json()


def page_json(page: CampaignPage) -> dict[str, Any]:
    """One page of the campaign list: ``campaigns`` and, when there are more, ``next_after``."""
    return {
        "campaigns": [summary_json(c) for c in page.campaigns],
        "next_after": page.next_after,
    }


def status_text(view: CampaignStatus) -> list[str]:
    """``campaign status`` as lines of text."""
    lines = [
        f"campaign {view.id}: release {view.release_id} ({view.product} {view.release_version})",
        f"  state: {view.state}   stage {view.stage_index + 1}: {view.stage_name}",
        f"  stages: {view.stage_spec}",
    ]
    if view.selector.get("versions"):
        lines.append(f"  target versions: {view.selector['versions']}")
    lines.extend(_timing_lines(view))
    if view.selector.get("filter"):
        saved = view.selector.get("saved_filter")
        named = f" (saved filter {saved})" if saved else ""
        lines.append(f"  target filter: {view.selector['filter']}{named}, evaluated at each poll")
    counts = view.counts.to_json()
    lines.append(
        "  counts: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v or k == "eligible")
    )
    for s in view.stages:
        c = s.counts
        lines.append(
            f"    {s.index + 1}. {s.name:<12} eligible {c.eligible:>6}  "
            f"succeeded {c.succeeded:>6}  failed {c.failed:>4}  "
            f"timed out {c.timed_out:>4}  soak {s.gates['min_soak']}"
        )
    lines.extend(_outcome_lines(view))
    lines.extend(f"  warning: {warning}" for warning in view.warnings)
    return lines


def _timing_lines(view: CampaignStatus) -> list[str]:
    """The timeout, the retry budget and the schedule (docs/campaigns.md)."""
    timing = view.timing_json()
    parts = [f"retries {timing['retries']}"]
    if timing["timeout"]:
        parts.insert(0, f"timeout {timing['timeout']}")
    if timing["start_at"]:
        parts.append(f"starts {timing['start_at']}")
    if timing["end_at"]:
        parts.append(f"ends {timing['end_at']}")
    return ["  timing: " + ", ".join(parts)]


def _outcome_lines(view: CampaignStatus) -> list[str]:
    lines = []
    gate = view.last_gate
    if gate:
        lines.append(f"  last gate: {gate['verdict']} — {'; '.join(gate['reasons'])}")
    if view.halt_reason:
        lines.append(f"  HALTED at {rfc3339(view.halted_at)}: {view.halt_reason}")
    lines.extend(_revert_lines(view))
    if view.deadline_at:
        risk = " — AT RISK" if view.deadline_at_risk else ""
        lines.append(f"  deadline: {rfc3339(view.deadline_at)}{risk}")
    if view.forecast_complete_at:
        lines.append(f"  forecast complete: {rfc3339(view.forecast_complete_at)}")
    return lines


def _revert_lines(view: CampaignStatus) -> list[str]:
    """The revert plan: devices per target release, and those not moved with why."""
    plan = view.revert
    if not plan:
        return []
    targets = ", ".join(
        f"release {t['release_id']} ({t['version']}): {t['devices']} devices"
        for t in plan["targets"]
    )
    lines = [f"  revert: {targets or 'no device has a target'}"]
    for reason, count in plan["not_moved_reasons"].items():
        lines.append(f"    not moved: {count} devices — {reason}")
    return lines


def summary_text(view: CampaignSummary) -> str:
    """One line of ``campaign list``."""
    reason = f"  ({view.halt_reason})" if view.halt_reason else ""
    return (
        f"{view.id:>5}  release {view.release_id:>5}  {view.state:<10} "
        f"stage {view.stage_index + 1} {view.stage_name}{reason}"
    )
