"""Deterministic cohorts (docs/campaigns.md, docs/architecture.md): arithmetic, not lists.

Rules implemented here:

* **Bucket.** ``bucket = int(blake2b(salt ‖ 0x00 ‖ device_id, 8 bytes)) mod 10000``. The
  campaign salt makes cohorts independent between campaigns (the same devices are not
  always first); BLAKE2b makes buckets uniform and stable across processes and Python
  versions (``hash()`` is not). The 64-bit digest reduced mod 10000 has a bias below 1e-15.
* **Percentage stage.** A stage at ``p`` % admits every targeted device whose bucket is
  below ``round(p × 100)``: resolution 0.01 %.
* **Group stage.** Admits every targeted device in any of its groups.
* **Canary stage** (``canary:p``). Aims at ``n = ceil(p/100 × F)`` devices, where ``F`` is
  the number of targeted devices, drawn only from the opt-in group (``canary-optin``) of
  ``K`` targeted devices: an opt-in device is admitted when its bucket is below
  ``ceil(10000 × min(1, n/K))``. So ``p`` % is a share *of the fleet*, delivered by a
  uniform share ``n/K`` *of the opt-in devices*. When ``K < n`` every opt-in device is
  admitted, and only if the campaign allows filling from others, a non-opt-in device is
  admitted when its bucket is below ``ceil(10000 × (n−K)/(F−K))``; otherwise the canary is
  smaller than ``p`` % and the plan says so (:attr:`CohortCut.shortfall`). The cut-offs
  are fixed when the stage starts (:func:`canary_cut`), so devices that register later join
  by the same rule and later registrations never push a device out.
* **Widening never removes a device.** Stages are cumulative: a device is admitted at stage
  ``k`` when any stage ``j ≤ k`` admits it (:func:`first_admitting_stage`). Together with
  percentage cut-offs that only increase (enforced by stage parsing), a device admitted
  once stays admitted for the rest of the campaign.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

BUCKETS = 10_000
CANARY_OPTIN_GROUP = "canary-optin"


def cohort_bucket(salt: str, device_id: str) -> int:
    """The device's bucket in ``[0, 10000)`` for a campaign salt (module rule "Bucket")."""
    return _bucket(f"{salt}\x00{device_id}")


def cohort_buckets(salt: str, device_ids: Iterable[str]) -> list[int]:
    """The buckets of many devices for one campaign salt, in order: each one's
    :func:`cohort_bucket`, with the salt's part of the hashed text made once."""
    prefix = f"{salt}\x00"
    return [_bucket(prefix + device_id) for device_id in device_ids]


def _bucket(text: str) -> int:
    """The bucket of ``salt ‖ 0x00 ‖ device_id`` given as one text (UTF-8 encodes each
    part to the same bytes as the whole)."""
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def percent_cutoff(percent: float) -> int:
    """The bucket cut-off of a ``percent`` stage (module rule "Percentage stage")."""
    return max(0, min(BUCKETS, round(percent * 100)))


@dataclass(frozen=True, slots=True)
class CohortCut:
    """How one stage admits devices: by group, by bucket, or canary-style by both.

    A device is admitted when it is in ``groups``, or its bucket is below ``cutoff``, or it
    is in ``optin_group`` with a bucket below ``optin_cutoff``. ``shortfall`` is how many
    devices a canary stage lacks against its aim (0 when met or not a canary).
    """

    groups: frozenset[str] = frozenset()
    cutoff: int = 0
    optin_group: str | None = None
    optin_cutoff: int = 0
    shortfall: int = 0

    def admits(self, bucket: int, groups: frozenset[str]) -> bool:
        """Whether a device with this bucket and these groups is in this stage."""
        if bucket < self.cutoff:
            return True
        if bucket < self.optin_cutoff and self.optin_group in groups:
            return True
        return bool(self.groups) and not self.groups.isdisjoint(groups)


def group_cut(groups: Sequence[str]) -> CohortCut:
    """The cut of a group stage (module rule "Group stage")."""
    return CohortCut(groups=frozenset(groups))


def percent_cut(percent: float) -> CohortCut:
    """The cut of a percentage stage (module rule "Percentage stage")."""
    return CohortCut(cutoff=percent_cutoff(percent))


def canary_cut(
    percent: float,
    *,
    fleet: int,
    optin: int,
    fill_from_others: bool = False,
    optin_group: str = CANARY_OPTIN_GROUP,
) -> CohortCut:
    """The cut of a canary stage for ``fleet`` targeted devices of which ``optin`` opted in
    (module rule "Canary stage"). Call it when the stage starts and keep the result."""
    if fleet <= 0 or percent <= 0:
        return CohortCut(optin_group=optin_group)
    optin = max(0, min(optin, fleet))
    aim = math.ceil(percent / 100 * fleet - 1e-9)
    optin_cutoff = BUCKETS if optin <= aim else math.ceil(BUCKETS * aim / optin)
    if optin >= aim:
        return CohortCut(optin_group=optin_group, optin_cutoff=optin_cutoff)
    missing = aim - optin
    if not fill_from_others:
        return CohortCut(optin_group=optin_group, optin_cutoff=BUCKETS, shortfall=missing)
    other_cutoff = math.ceil(BUCKETS * missing / (fleet - optin))
    return CohortCut(optin_group=optin_group, optin_cutoff=BUCKETS, cutoff=other_cutoff)


def first_admitting_stage(
    cuts: Sequence[CohortCut], bucket: int, groups: frozenset[str]
) -> int | None:
    """The index of the first stage that admits the device, or ``None``; the device is in
    every stage from there on (module rule "Widening never removes a device")."""
    for index, cut in enumerate(cuts):
        if cut.admits(bucket, groups):
            return index
    return None
