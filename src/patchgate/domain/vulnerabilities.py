"""The rules of the vulnerability register (docs/vulnerability-register.md), pure and
clock-free.

Everything here takes ``now`` (or the relevant instants) as arguments, so every rule can be
tested exactly and with Hypothesis:

- ``severity_for``: the qualitative band of a CVSS base score;
- ``choose_score``: which of several scores sets the deadline (``SCORE_PRECEDENCE``);
- ``effective_severity`` and ``patch_deadline``: the cadence that applies, with the
  escalation of actively exploited vulnerabilities;
- ``sla_state``: on_track / due_soon / overdue / met / missed;
- ``check_transition``: the lifecycle state machine;
- ``art14_clocks``: the CRA Art. 14 reporting deadlines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from patchgate.domain.errors import InvalidInput, TransitionRefused
from patchgate.domain.policy import DEFAULT_CADENCE, CadenceRule

# --- severity -------------------------------------------------------------------------------

SEVERITY_ORDER: tuple[str, ...] = ("none", "low", "medium", "high", "critical")

# CVSS v3.1 specification §5 and CVSS v4.0 §2 "Qualitative Severity Rating Scale": ``none``
# for 0.0 and the bands of the default cadence, which are the specification's.
CVSS_BANDS: tuple[tuple[str, float, float], ...] = (
    ("none", 0.0, 0.0),
    *sorted(((sev, row[0], row[1]) for sev, row in DEFAULT_CADENCE.items()), key=lambda b: b[1]),
)


def severity_for(score: float, cadence: Iterable[CadenceRule] = ()) -> str:
    """The severity band of a CVSS base score (one decimal, bounds inclusive).

    The policy's ``cadence`` rule that contains the score decides; a score in no given
    rule's band (a policy with gaps) takes the specification's scale, and 0.0 is always
    ``none``.
    """
    if not 0.0 <= score <= 10.0:
        raise InvalidInput(f"a CVSS score lies between 0.0 and 10.0, not {score}")
    rounded = round(score, 1)
    if rounded == 0.0:
        return "none"
    for rule in cadence:
        if rule.contains(rounded):
            return rule.severity
    # The specification's bands are contiguous at one decimal: the highest one starting at
    # or below the score is its band.
    return next(sev for sev, low, _high in reversed(CVSS_BANDS) if rounded >= low)


def more_severe(a: str, b: str) -> str:
    """The more severe of two severities."""
    return a if SEVERITY_ORDER.index(a) >= SEVERITY_ORDER.index(b) else b


# --- score precedence -----------------------------------------------------------------------

# Which assessment sets the deadline when a record carries several: the
# manufacturer's own first, then the CNA's, then an ADP's, then any other database's; within
# one source CVSS v3.1, then v4.0, then v3.0. v3.1 comes before v4.0 because the policy's
# bands and most published cadences were calibrated on v3.x scores.
SOURCE_RANK: Mapping[str, int] = {"manufacturer": 0, "cna": 1, "adp": 2, "other": 3}
VERSION_RANK: Mapping[str, int] = {"3.1": 0, "4.0": 1, "3.0": 2}


@dataclass(frozen=True)
class ScoreCandidate:
    """One CVSS assessment found in a record: who made it and what it says."""

    source: str  # manufacturer | cna | adp | other
    provider: str  # e.g. "GitLab", "CISA-ADP", "NVD"
    version: str  # 3.0 | 3.1 | 4.0
    vector: str
    score: float

    @property
    def label(self) -> str:
        """``score_source``: ``cna:GitLab`` (or ``manufacturer``)."""
        if self.source == "manufacturer" or not self.provider:
            return self.source
        return f"{self.source}:{self.provider}"


def choose_score(candidates: Iterable[ScoreCandidate]) -> ScoreCandidate | None:
    """The candidate that sets the deadline under ``SOURCE_RANK`` then ``VERSION_RANK``;
    the first listed wins a tie (records list their primary assessment first)."""
    ranked = [
        (SOURCE_RANK.get(c.source, 9), VERSION_RANK.get(c.version, 9), i, c)
        for i, c in enumerate(candidates)
    ]
    if not ranked:
        return None
    return min(ranked, key=lambda r: r[:3])[3]


# --- deadline and escalation -----------------------------------------------------------------


def effective_severity(
    severity: str, *, exploited: bool, exploited_severity: str = "critical"
) -> str:
    """The severity whose cadence applies: an actively exploited vulnerability is handled at
    least as urgently as the policy's escalation severity, whatever its score."""
    if exploited:
        return more_severe(severity, exploited_severity)
    return severity


def patch_deadline(
    aware_at: datetime, severity: str, cadence_hours: Mapping[str, int]
) -> datetime | None:
    """Awareness time + the cadence of ``severity`` (guide §2); None for severity ``none``,
    which the cadence does not cover."""
    hours = cadence_hours.get(severity)
    if hours is None:
        return None
    return aware_at + timedelta(hours=hours)


# --- SLA state -----------------------------------------------------------------------------


def sla_state(
    *,
    now: datetime,
    aware_at: datetime,
    due_at: datetime | None,
    resolved_at: datetime | None,
    due_soon_fraction: float = 0.2,
    applicable: bool = True,
) -> str:
    """The SLA state at ``now``.

    ``resolved_at`` is when the fix reached every affected device (or the vulnerability was
    otherwise settled); then the state is ``met`` or ``missed`` for good. Before that:
    ``overdue`` after the deadline, ``due_soon`` in the last ``due_soon_fraction`` of the
    window, else ``on_track``. No deadline (severity none) or not applicable (not affected,
    will not fix) gives ``not_applicable``.
    """
    if not applicable or due_at is None:
        return "not_applicable"
    if resolved_at is not None:
        return "met" if resolved_at <= due_at else "missed"
    if now > due_at:
        return "overdue"
    window = due_at - aware_at
    if now >= due_at - window * due_soon_fraction:
        return "due_soon"
    return "on_track"


SLA_SEVERITY: Mapping[str, int] = {
    "not_applicable": 0,
    "met": 1,
    "on_track": 2,
    "due_soon": 3,
    "missed": 4,
    "overdue": 5,
}


def worst_sla_state(states: Iterable[str]) -> str:
    """The state that needs attention most, for a vulnerability with several products."""
    items = list(states)
    if not items:
        return "not_applicable"
    return max(items, key=lambda s: SLA_SEVERITY.get(s, 0))


# --- lifecycle ------------------------------------------------------------------------------

MAIN_LINE: tuple[str, ...] = (
    "new",
    "triaged",
    "fix_in_progress",
    "fix_released",
    "fix_deployed",
    "closed",
)
SIDE_STATES: tuple[str, ...] = ("not_affected", "will_not_fix")
STATUSES: tuple[str, ...] = MAIN_LINE + SIDE_STATES

# CycloneDX 1.4+ ``analysis.justification`` values (the VEX justifications patchgate
# records and exports), and the CISA VEX names accepted as their synonyms.
VEX_JUSTIFICATIONS: tuple[str, ...] = (
    "code_not_present",
    "code_not_reachable",
    "requires_configuration",
    "requires_dependency",
    "requires_environment",
    "protected_by_compiler",
    "protected_at_runtime",
    "protected_at_perimeter",
    "protected_by_mitigating_control",
)
CISA_JUSTIFICATIONS: Mapping[str, str] = {
    "component_not_present": "requires_dependency",
    "vulnerable_code_not_present": "code_not_present",
    "vulnerable_code_not_in_execute_path": "code_not_reachable",
    "vulnerable_code_cannot_be_controlled_by_adversary": "protected_at_runtime",
    "inline_mitigations_already_exist": "protected_by_mitigating_control",
}


def allowed_transitions(status: str) -> tuple[str, ...]:
    """Where ``status`` may go: forward along the main line (steps may be skipped, as when
    a fix ships without having been tracked as in progress); to ``not_affected`` or
    ``will_not_fix`` from any state before a fix is released; back to ``triaged`` from
    those two (a reopened analysis). ``closed`` is final."""
    if status in MAIN_LINE:
        index = MAIN_LINE.index(status)
        forward = MAIN_LINE[index + 1 :]
        side = SIDE_STATES if index <= MAIN_LINE.index("fix_in_progress") else ()
        return forward + side
    if status in SIDE_STATES:
        other = tuple(s for s in SIDE_STATES if s != status)
        return ("triaged", *other, "closed")
    return ()


def normalise_justification(text: str) -> str:
    """A VEX justification in CycloneDX spelling, or ``InvalidInput`` naming the known ones."""
    value = text.strip().lower().replace("-", "_").replace(" ", "_")
    value = CISA_JUSTIFICATIONS.get(value, value)
    if value not in VEX_JUSTIFICATIONS:
        raise InvalidInput(
            f"{text!r} is not a VEX justification (known: {', '.join(VEX_JUSTIFICATIONS)})"
        )
    return value


def check_transition(current: str, target: str, *, justification: str | None) -> str | None:
    """Refuse a step the lifecycle does not allow, naming the allowed ones; returns the
    justification to store (normalised for ``not_affected``).

    ``not_affected`` needs a VEX justification; ``will_not_fix`` needs a written reason.
    """
    if target not in STATUSES:
        raise InvalidInput(f"unknown status {target!r} (known: {', '.join(STATUSES)})")
    allowed = allowed_transitions(current)
    if target not in allowed:
        names = ", ".join(allowed) if allowed else "none, it is final"
        raise TransitionRefused(f"{current} → {target} is not allowed (from {current}: {names})")
    if target == "not_affected":
        if not justification:
            raise InvalidInput(
                "not_affected needs a VEX justification "
                f"(--justification: {', '.join(VEX_JUSTIFICATIONS)})"
            )
        return normalise_justification(justification)
    if target == "will_not_fix":
        if not justification or not justification.strip():
            raise InvalidInput("will_not_fix needs a reason (--justification)")
        return justification.strip()
    return justification.strip() if justification else None


def least_advanced(statuses: Sequence[str]) -> str:
    """The overall status of a vulnerability with several products: the open status least
    far along the line, else the first settled one (closed, not_affected, will_not_fix)."""
    open_ones = [s for s in statuses if s in MAIN_LINE and s != "closed"]
    if open_ones:
        return min(open_ones, key=MAIN_LINE.index)
    for status in ("will_not_fix", "not_affected", "closed"):
        if status in statuses:
            return status
    return "new"


# --- CRA Art. 14 ------------------------------------------------------------------------------

ART14_KINDS: tuple[str, ...] = (
    "early_warning",
    "notification",
    "final_report",
    "incident_early_warning",
    "incident_notification",
    "incident_final_report",
)


@dataclass(frozen=True)
class Art14Clock:
    """One report the CRA asks for: when it is due and whether it was submitted."""

    kind: str
    due_at: datetime | None  # None while its starting event has not happened
    submitted_at: datetime | None

    def state(self, now: datetime) -> str:
        """``submitted``, ``overdue``, ``due`` or ``waiting`` (its clock has not started)."""
        if self.submitted_at is not None:
            return "submitted"
        if self.due_at is None:
            return "waiting"
        return "overdue" if now > self.due_at else "due"


def art14_clocks(
    *,
    exploited_at: datetime | None,
    fix_available_at: datetime | None,
    severe_incident_at: datetime | None,
    submitted: Mapping[str, datetime],
) -> list[Art14Clock]:
    """The Art. 14 reporting deadlines that apply.

    Actively exploited vulnerability (Art. 14(2)): early warning within 24 h of becoming
    aware (a), vulnerability notification within 72 h (b), final report no later than 14
    days after a corrective or mitigating measure is available (c). Severe incident having
    an impact on the security of the product (Art. 14(3)/(4)): early warning within 24 h
    (a), incident notification within 72 h (b), final report within one month after the
    incident notification was submitted (c). One month is taken as 30 days.
    """
    clocks: list[Art14Clock] = []
    if exploited_at is not None:
        clocks.append(
            Art14Clock(
                "early_warning", exploited_at + timedelta(hours=24), submitted.get("early_warning")
            )
        )
        clocks.append(
            Art14Clock(
                "notification", exploited_at + timedelta(hours=72), submitted.get("notification")
            )
        )
        final_due = fix_available_at + timedelta(days=14) if fix_available_at else None
        clocks.append(Art14Clock("final_report", final_due, submitted.get("final_report")))
    if severe_incident_at is not None:
        clocks.append(
            Art14Clock(
                "incident_early_warning",
                severe_incident_at + timedelta(hours=24),
                submitted.get("incident_early_warning"),
            )
        )
        clocks.append(
            Art14Clock(
                "incident_notification",
                severe_incident_at + timedelta(hours=72),
                submitted.get("incident_notification"),
            )
        )
        notified = submitted.get("incident_notification")
        clocks.append(
            Art14Clock(
                "incident_final_report",
                notified + timedelta(days=30) if notified else None,
                submitted.get("incident_final_report"),
            )
        )
    return clocks
