"""The revert target rule (docs/campaigns.md "Revert"): which release a reverting campaign
offers to one device, from what that device ran.

A revert undoes a halted release on the devices that run it. Each device goes back to the
last release *it* ran successfully, newest first through its own history, skipping any
release that is halted (its last campaign halted or is reverting), withdrawn, not signed,
or below the product's security floor (devices refuse a rollback below the floor). A
device with no such release in its history is not moved: the revert reports it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from patchgate.domain.campaigns import ReleaseRef

# Why a release in a device's history is not a revert target.
SKIP_BAD: Final = "the halted release itself"
SKIP_HALTED: Final = "halted"
SKIP_WITHDRAWN: Final = "withdrawn"
SKIP_UNSIGNED: Final = "not signed"
SKIP_FLOOR: Final = "below the security floor"
NO_HISTORY: Final = "no release it ran before is known"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A release as the rule weighs it: the release and whether it is signed."""

    release: ReleaseRef
    signed: bool = True


@dataclass(frozen=True, slots=True)
class RevertTarget:
    """One device's revert target, or why it has none (``release`` None)."""

    release: ReleaseRef | None
    reason: str | None = None


def skip_reason(
    candidate: Candidate, bad: ReleaseRef, *, halted: Collection[int], floor: int
) -> str | None:
    """Why ``candidate`` may not be offered by a revert of ``bad``; None when it may."""
    release = candidate.release
    if release.id == bad.id or release.version == bad.version:
        return SKIP_BAD
    if release.withdrawn:
        return SKIP_WITHDRAWN
    if release.id in halted:
        return SKIP_HALTED
    if not candidate.signed:
        return SKIP_UNSIGNED
    if release.security_version < floor:
        return SKIP_FLOOR
    return None


def target_for(
    ran: Sequence[Candidate], bad: ReleaseRef, *, halted: Collection[int], floor: int
) -> RevertTarget:
    """The revert target of a device whose history is ``ran`` (releases of ``bad``'s product
    it ran successfully, oldest first): the newest one that may be offered, else none with
    the reasons each was skipped."""
    skipped: list[str] = []
    for candidate in reversed(ran):
        why = skip_reason(candidate, bad, halted=halted, floor=floor)
        if why is None:
            return RevertTarget(candidate.release)
        if why != SKIP_BAD:
            skipped.append(f"{candidate.release.version} {why}")
    if not skipped:
        return RevertTarget(None, NO_HISTORY)
    return RevertTarget(None, "no eligible release: " + ", ".join(dict.fromkeys(skipped)))


def explicit_target(
    candidate: Candidate, bad: ReleaseRef, *, halted: Collection[int], floor: int
) -> str | None:
    """Why the release named with ``--to`` may not be the revert's target (None: it may)."""
    release = candidate.release
    if release.product != bad.product:
        return f"release {release.id} is for {release.product}, not {bad.product}"
    why = skip_reason(candidate, bad, halted=halted, floor=floor)
    if why is None:
        return None
    if why == SKIP_FLOOR:
        return (
            f"release {release.id} ({release.version}) has security version "
            f"{release.security_version}, below the security floor {floor} of {bad.product}; "
            "devices would refuse it as a rollback"
        )
    if why == SKIP_BAD:
        return "the known-good release must differ from the halted one"
    if why == SKIP_HALTED:
        return f"release {release.id} was halted; name a known-good release"
    return f"release {release.id} is {why}"


def halted_releases(campaigns: Iterable[tuple[int, str]]) -> frozenset[int]:
    """Releases whose last started campaign is halted or reverting, from (release id,
    state) pairs oldest first; a later campaign that ran on clears an earlier halt."""
    last: dict[int, str] = {}
    for release_id, state in campaigns:
        if state != "draft":
            last[release_id] = state
    return frozenset(r for r, state in last.items() if state in ("halted", "reverting"))
