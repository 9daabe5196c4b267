"""Pruning action history (docs/deploy.md, "Pruning action history").

The rule: a closed action may be deleted, with its events, once it was closed before the
cutoff and its campaign (if any) was completed or cancelled before the cutoff, unless it
is a device's open action or the action that installed what the device runs now. What the
audit and the compliance evidence need stays: the audit log is never touched, halted
campaigns keep every action, each device keeps the action behind its installed version,
and each batch deleted is recorded in the audit log with its counts per campaign, release
and outcome, so a campaign's figures after pruning can still be traced.

Batches are small transactions, so devices keep polling and reporting while it runs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from patchgate.domain.clock import rfc3339
from patchgate.domain.errors import InvalidInput
from patchgate.services import audit
from patchgate.services.context import Context

# The shortest retention accepted: less would delete the history of rollouts that an
# operator may still be looking at.
MIN_RETENTION = timedelta(days=1)
BATCH = 5000
_ALL = 2**31 - 1


@dataclass(frozen=True)
class PruneResult:
    """What a pruning run deleted (or, with ``dry_run``, would delete)."""

    cutoff: str
    actions: int
    batches: int
    dry_run: bool
    by_campaign: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "cutoff": self.cutoff,
            "actions": self.actions,
            "batches": self.batches,
            "dry_run": self.dry_run,
            "by_campaign": self.by_campaign,
        }


def prune_actions(
    ctx: Context,
    older_than: timedelta,
    *,
    actor: str,
    dry_run: bool = False,
    batch: int = BATCH,
) -> PruneResult:
    """Delete the actions the rule allows (module docstring), ``batch`` at a time."""
    if older_than < MIN_RETENTION:
        raise InvalidInput("--older-than must be at least 1d")
    cutoff = ctx.clock() - older_than
    totals: Counter[tuple[str, str]] = Counter()
    deleted = batches = 0
    while True:
        with ctx.uow() as uow:
            # A dry run counts the whole candidate set in one read.
            found = uow.retention.prunable(cutoff, _ALL if dry_run else batch)
            if not found:
                break
            counts = Counter((_campaign(a.campaign_id), a.status) for a in found)
            if not dry_run:
                gone = uow.retention.delete([a.id for a in found])
                audit.record(
                    ctx,
                    uow,
                    actor=actor,
                    action="actions.pruned",
                    subject="actions",
                    details={
                        "closed_before": rfc3339(cutoff),
                        "actions": gone,
                        "first_id": found[0].id,
                        "last_id": found[-1].id,
                        "by_campaign": _nest(counts),
                        "releases": sorted({a.release_id for a in found}),
                    },
                )
                uow.commit()
            totals.update(counts)
            deleted += len(found)
            batches += 1
            if dry_run or len(found) < batch:
                break
    return PruneResult(rfc3339(cutoff) or "", deleted, batches, dry_run, _nest(totals))


def _campaign(campaign_id: int | None) -> str:
    return str(campaign_id) if campaign_id is not None else "manual"


def _nest(counts: Counter[tuple[str, str]]) -> dict[str, dict[str, int]]:
    nested: dict[str, dict[str, int]] = {}
    for (campaign, status), n in sorted(counts.items()):
        nested.setdefault(campaign, {})[status] = n
    return nested
