"""Campaign stages: the ``--stages`` spec, the guide's default plan, and each stage's gates
(guide §3.1 "Phased Rollouts"; docs/contract.md ``campaign create --stages SPEC``).

Spec grammar, comma-separated, in rollout order:

* ``GROUP`` — a stage of the devices in that group (``internal``); ``G1+G2`` a stage of
  several groups; ``NAME=G1+G2`` names it (the default ``internal=internal+qa``).
* ``P`` or ``P%`` — a stage that admits ``P`` % of the targeted fleet by bucket (0.01 %
  resolution), named ``P%``; ``NAME:P`` names it.
* ``canary:P`` — the canary: ``P`` % of the fleet drawn from the ``canary-optin`` group
  (:mod:`cohorts`, rule "Canary stage").

Rules (each refused with a message naming it, all problems reported at once): at least one
stage; percentages above 0 and at most 100; each percentage larger than the one before
(stages are cumulative, so a smaller one would admit nobody new); groups must exist in the
given set (``canary-optin`` need not: an empty opt-in group only leaves the canary short);
stage names unique.

Default plan, from the guide: ``internal=internal+qa,canary:2,10,50,100``, with soaks of
1 h, 24 h, 12 h, 6 h and 24 h (the last soak ends before completion raises the security
floor). Each stage also has a minimum soak that deadline planning may shrink it to
(:data:`MIN_SOAK`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Final

from patchgate.domain.cohorts import (
    CANARY_OPTIN_GROUP,
    CohortCut,
    canary_cut,
    group_cut,
    percent_cut,
    percent_cutoff,
)
from patchgate.domain.errors import InvalidInput
from patchgate.domain.gates import StageGates

DEFAULT_SPEC: Final = "internal=internal+qa,canary:2,10,50,100"
CANARY: Final = "canary"

# Soak floors that deadline planning may shrink soaks to, by stage kind: enough for a
# device to reboot, report health and for a crash or two to show (docs/campaign-core.md).
MIN_SOAK: Final = {
    "groups": timedelta(minutes=30),
    "canary": timedelta(hours=4),
    "percent": timedelta(hours=1),
    "last": timedelta(0),
}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_PERCENT = re.compile(r"^(\d+(?:\.\d+)?)%?$")


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage: a group stage (``groups``), a percentage stage (``percent``), or the
    canary (``percent`` with ``canary`` set), with its gates."""

    name: str
    groups: tuple[str, ...] = ()
    percent: float | None = None
    canary: bool = False
    gates: StageGates = field(default_factory=StageGates)

    @property
    def kind(self) -> str:
        """``groups``, ``canary`` or ``percent``."""
        if self.percent is None:
            return "groups"
        return "canary" if self.canary else "percent"

    def cut(self, *, fleet: int, optin: int, fill_from_others: bool) -> CohortCut:
        """This stage's cohort cut, for ``fleet`` targeted devices of which ``optin`` are in
        ``canary-optin`` (only the canary needs the two numbers)."""
        if self.percent is None:
            return group_cut(self.groups)
        if self.canary:
            return canary_cut(
                self.percent, fleet=fleet, optin=optin, fill_from_others=fill_from_others
            )
        return percent_cut(self.percent)

    def spec(self) -> str:
        """This stage written back in spec grammar."""
        if self.percent is None:
            joined = "+".join(self.groups)
            return joined if joined == self.name else f"{self.name}={joined}"
        amount = f"{self.percent:g}"
        return amount if self.name == f"{amount}%" else f"{self.name}:{amount}"


def format_stages(stages: Sequence[Stage]) -> str:
    """The spec that :func:`parse_stages` reads back into ``stages``' shape."""
    return ",".join(stage.spec() for stage in stages)


def parse_stages(
    spec: str,
    known_groups: Collection[str],
    *,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[Stage, ...]:
    """Parse ``spec`` (module grammar and rules). Each stage gets the default gates of its
    position (:func:`default_gates`) with ``overrides`` applied: :class:`StageGates` field
    names and values, as ``campaign create`` flags give them (``max_failure_rate``,
    ``min_finished``, ``min_soak``, ``manual``); unknown names are refused."""
    problems: list[str] = []
    stages: list[Stage] = []
    tokens = [t.strip() for t in spec.split(",")]
    if not spec.strip():
        raise InvalidInput("stages: at least one stage is needed")
    last_percent: float | None = None
    for position, token in enumerate(tokens, 1):
        where = f"stages: stage {position} ({token!r})" if token else f"stages: stage {position}"
        if not token:
            problems.append(f"{where} is empty")
            continue
        name, sep, amount = token.partition(":")
        bare = _PERCENT.match(token)
        if bare or sep:
            text = token if bare else amount
            match = _PERCENT.match(text.strip())
            if not match:
                problems.append(f"{where}: {text!r} is not a percentage")
                continue
            percent = float(match.group(1))
            stage_name = f"{percent:g}%" if bare else name.strip()
            if not bare and not _NAME.match(stage_name):
                problems.append(f"{where}: {stage_name!r} is not a stage name")
            if percent <= 0 or percent > 100:
                problems.append(f"{where}: {percent:g}% is outside 0–100 % (over 100 % or none)")
                continue
            if abs(percent * 100 - percent_cutoff(percent)) > 1e-6:
                problems.append(f"{where}: {percent:g}% is finer than the 0.01 % resolution")
            if last_percent is not None and percent <= last_percent:
                problems.append(
                    f"{where}: {percent:g}% does not increase on the previous {last_percent:g}%"
                )
            last_percent = percent
            stages.append(Stage(stage_name, percent=percent, canary=stage_name == CANARY))
            continue
        stages.append(_group_stage(token, where, known_groups, problems))
    seen: set[str] = set()
    for stage in stages:
        if stage.name in seen:
            problems.append(f"stages: the name {stage.name!r} is used twice")
        seen.add(stage.name)
    if problems:
        raise InvalidInput(problems[0], problems=problems)
    count = len(stages)
    return tuple(
        replace(s, gates=_with_overrides(default_gates(s, i == count - 1), overrides))
        for i, s in enumerate(stages)
    )


def _group_stage(
    token: str, where: str, known_groups: Collection[str], problems: list[str]
) -> Stage:
    """A stage of named groups (``a+b`` or ``name=a+b``); problems are appended."""
    stage_name, eq, group_text = token.partition("=")
    groups = tuple(g.strip() for g in (group_text if eq else token).split("+"))
    stage_name = stage_name.strip() if eq else "+".join(groups)
    for group in groups:
        if not group or not _NAME.match(group):
            problems.append(f"{where}: {group!r} is not a group name")
        elif group not in known_groups and group != CANARY_OPTIN_GROUP:
            problems.append(f"{where}: unknown group {group!r}")
    return Stage(stage_name, groups=groups)


def default_stages(
    known_groups: Collection[str] = ("internal", "qa"),
    *,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[Stage, ...]:
    """The guide's plan (module docstring); a missing ``internal`` or ``qa`` group is
    simply left out of the first stage, and the stage dropped when both are missing."""
    groups = [g for g in ("internal", "qa") if g in known_groups]
    spec = DEFAULT_SPEC if groups else DEFAULT_SPEC.split(",", 1)[1]
    if groups:
        spec = spec.replace("internal=internal+qa", "internal=" + "+".join(groups))
    return parse_stages(spec, known_groups, overrides=overrides)


_DEFAULT_SOAK: Final = {
    "groups": timedelta(hours=1),
    "canary": timedelta(hours=24),
    "percent": timedelta(hours=6),
}


def default_gates(stage: Stage, last: bool) -> StageGates:
    """The gates a stage gets unless the campaign says otherwise: group stages need one
    finished device and a 1 h soak; the canary ten and 24 h; 10 % stages 12 h, 50 % 6 h; the
    last stage 24 h before completion."""
    if last:
        soak = timedelta(hours=24)
    elif stage.kind == "percent" and stage.percent is not None and stage.percent <= 10:
        soak = timedelta(hours=12)
    else:
        soak = _DEFAULT_SOAK[stage.kind]
    return StageGates(min_finished=1 if stage.kind == "groups" else 10, min_soak=soak)


def _with_overrides(base: StageGates, overrides: Mapping[str, Any] | None) -> StageGates:
    if not overrides:
        return base
    unknown = sorted(set(overrides) - set(StageGates.__dataclass_fields__))
    if unknown:
        raise InvalidInput(f"gates: unknown setting {', '.join(unknown)}")
    return replace(base, **overrides)


def min_soak(stage: Stage, last: bool) -> timedelta:
    """The soak floor of ``stage`` for deadline planning (:data:`MIN_SOAK`)."""
    return MIN_SOAK["last"] if last else MIN_SOAK[stage.kind]
