"""The campaign engine behind the device poll (docs/ddi.md "seam", docs/campaign-core.md
"The poll"): the snapshot loader, the decision on the poll's one row, and the action
creator.

The decision is the campaign core's whole ``decide`` (the one the simulator runs): the
device's open action from the poll's row (so an action of a halted or superseded campaign
is cancelled at the device's next poll), and its closed campaign actions as this process
last read them (campaigns it finished, and a failed attempt the execution policy retries).
``decide`` runs once per poll; :meth:`PollEngine.create` then checks under locks only what
the row cannot tell (the campaign's state at this instant, the device's record, the shared
rate-limit bucket) and decides again only when the device's record moved since it was
read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from patchgate.domain import campaigns as core
from patchgate.domain import executions as ex
from patchgate.domain import filters
from patchgate.domain.ratelimit import FULL, TokenBucket
from patchgate.services import actions as action_service
from patchgate.services.campaign_ports import CampaignAction, CampaignChanges
from patchgate.services.campaigns.figures import EXECUTION_POLICY, execution_of
from patchgate.services.campaigns.plans import plan_of
from patchgate.services.context import Context
from patchgate.services.device_ports import ActionRecord, DeviceAuthRow, DeviceRecord
from patchgate.services.policy import in_force
from patchgate.services.unit_of_work import UnitOfWork

# How many of a device's latest campaign actions its history is read from.
HISTORY_ACTIONS = 200


@dataclass(frozen=True)
class History:
    """What a device's closed campaign actions tell ``decide``: the (campaign, release)
    pairs it finished, and the failed attempt the execution policy retries, if any."""

    finished: frozenset[tuple[int, int]] = frozenset()
    retry: core.OpenAction | None = None


NO_HISTORY = History()


class StoredJson(Mapping[str, object]):
    """A JSON object as the poll's row holds it (text), parsed at its first read: only a
    campaign whose device query reads ``attribute.NAME`` or ``metadata.KEY`` pays for it
    (docs/device-filters.md "Campaigns on a filter")."""

    __slots__ = ("_parsed", "_text")

    def __init__(self, text: str | None) -> None:
        self._text = text
        self._parsed: dict[str, object] | None = None

    def _value(self) -> dict[str, object]:
        if self._parsed is None:
            loaded = json.loads(self._text) if self._text else {}
            self._parsed = loaded if isinstance(loaded, dict) else {}
        return self._parsed

    def __getitem__(self, key: str) -> object:
        return self._value()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._value())

    def __len__(self) -> int:
        return len(self._value())


def _security_version(snapshot: core.Snapshot, campaign_id: int, release_id: int) -> int:
    plan = snapshot.by_id.get(campaign_id)
    if plan is None:
        return 0
    if plan.release.id == release_id:
        return plan.release.security_version
    if plan.revert_to is not None and plan.revert_to.id == release_id:
        return plan.revert_to.security_version
    return 0


def _policy(snapshot: core.Snapshot, campaign_id: int) -> ex.ExecutionPolicy:
    """The campaign's execution policy (its timeout and retry budget), as the snapshot
    holds it."""
    plan = snapshot.by_id.get(campaign_id)
    return EXECUTION_POLICY if plan is None else plan.timing.policy(EXECUTION_POLICY)


def history_of(
    actions: Sequence[CampaignAction], snapshot: core.Snapshot, now: datetime
) -> History:
    """The device's history from its campaign actions (oldest first): each closed
    (campaign, release) pair is finished unless its last attempt failed transiently within
    the retry budget; the device's latest such attempt is the one to retry."""
    attempts: dict[tuple[int, int], int] = {}
    last: dict[tuple[int, int], CampaignAction] = {}
    for action in actions:
        key = (action.campaign_id, action.release_id)
        attempts[key] = attempts.get(key, 0) + 1
        last[key] = action
    finished: set[tuple[int, int]] = set()
    retry: core.OpenAction | None = None
    for key, action in sorted(last.items(), key=lambda item: item[1].id):
        if action.active:
            continue
        execution = execution_of(
            action, "", (), now, attempts=attempts[key] - 1, policy=_policy(snapshot, key[0])
        )
        if execution.status != ex.S_RETRYING:
            finished.add(key)
            continue
        ref = core.ReleaseRef(key[1], "", "", _security_version(snapshot, *key))
        retry = core.open_action_of(execution, action.id, key[0], ref)
    if retry is not None and any(a.id > retry.action_id for a in last.values()):
        retry = None  # a later action superseded the failed attempt
    return History(frozenset(finished), retry)


class PollEngine:
    """What the device poll plugs in (``Poller.plug(engine.decide, engine.load,
    engine.create)``): the snapshot loader, ``decide`` over the poll's one row, and the
    action creator, which checks what the row does not hold under the device's row lock.
    ``decisions`` counts the core decisions made (one per poll)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._latest = core.EMPTY_SNAPSHOT
        # Each device's history as :meth:`create` last read it. Closed actions never
        # reopen, so ``decide`` can use it as it stands: a device that failed a rollout is
        # answered without the write path instead of being offered the release on every
        # poll and refused under its row lock. What closed since is read at the next offer.
        self._history: dict[int, History] = {}
        self.decisions = 0

    def load(self, version: int) -> core.Snapshot:
        """The snapshot of every non-draft campaign, for state version ``version``."""
        policy = in_force(self.ctx).policy
        products: dict[str, str] = {}
        for product in policy.products:
            for model in product.hardware:
                products.setdefault(model, product.name)
        with self.ctx.read_uow() as uow:
            plans = [plan_of(uow, rec) for rec in uow.campaigns.list() if rec.state != core.DRAFT]
            floors = {
                p.selector.product: uow.releases.security_floor(p.selector.product) for p in plans
            }
        snapshot = core.Snapshot.build(version, plans, products=products, floors=floors)
        self._latest = snapshot
        return snapshot

    def facts(
        self,
        row: DeviceAuthRow,
        snapshot: core.Snapshot,
        history: History = NO_HISTORY,
        now: datetime | None = None,
    ) -> core.DeviceFacts:
        """The device as ``decide`` sees it: the poll's row (its open action included) and
        its history. A polling device is seen ``now`` (its stored last-seen is written in
        batches, so a device query reads the poll's own time)."""
        product = snapshot.products.get(row.hardware or "")
        if product is None and row.hardware is None and len(snapshot.by_product) == 1:
            product = next(iter(snapshot.by_product))  # a device that never named its model
        done = history.finished
        rollouts = frozenset(
            c for c, r in done if c in snapshot.by_id and snapshot.by_id[c].release.id == r
        )
        reverts = frozenset(c for c, _ in done) - rollouts
        return core.DeviceFacts(
            device_id=row.controller_id or "",
            product=product,
            hardware=row.hardware,
            groups=frozenset(row.groups),
            installed_version=row.installed_version,
            security_floor=snapshot.floors.get(product or "", 0),
            open_action=_open_action(row, snapshot) if row.action_id else history.retry,
            finished_campaigns=rollouts,
            finished_reverts=reverts,
            attributes=StoredJson(row.attributes_json),
            metadata=StoredJson(row.metadata_json),
            last_seen=now or row.last_seen,
        )

    def decide(self, row: DeviceAuthRow, snapshot: core.Snapshot, now: datetime) -> core.Decision:
        """The core's decision on the poll's row and the device's known history (no read)."""
        if snapshot.state_version >= self._latest.state_version:
            self._latest = snapshot
        history = self._history.get(row.device_id, NO_HISTORY) if row.device_id else NO_HISTORY
        self.decisions += 1
        return core.decide(self.facts(row, snapshot, history, now), snapshot, now)

    def refresh(self, device_id: int, snapshot: core.Snapshot, now: datetime) -> History:
        """Read the device's history now (the poll otherwise reads it at its next offer)."""
        with self.ctx.read_uow() as uow:
            actions = uow.campaigns.device_actions(device_id, limit=HISTORY_ACTIONS)
        history = history_of(actions, snapshot, now)
        self._history[device_id] = history
        return history

    def create(self, ctx: Context, row: DeviceAuthRow, offer: core.Offer) -> ActionRecord | None:
        """Create the offered action, unless (under the device's row lock) the campaign's
        state moved since the snapshot, the device's record says otherwise, or the
        campaign's shared rate limit has no token left."""
        assert row.device_id is not None
        snapshot = self._latest
        plan = snapshot.by_id.get(offer.campaign_id)
        if plan is None:
            return None
        now = ctx.clock()
        window_start = window_end = None
        window = plan.delivery.window
        if window is not None and offer.kind != "revert":
            window_start = window.latest_start(now)
            window_end = None if window_start is None else window_start + window.duration

        def check(uow: UnitOfWork, device: DeviceRecord) -> bool:
            return self._check(uow, device, row, snapshot, plan, offer, now)

        new = action_service.from_offer(offer, window_start=window_start, window_end=window_end)
        return action_service.create_from_offer(
            ctx, row.device_id, new, actor=f"campaign:{offer.campaign_id}", check=check
        )

    def _check(
        self,
        uow: UnitOfWork,
        device: DeviceRecord,
        row: DeviceAuthRow,
        snapshot: core.Snapshot,
        plan: core.CampaignPlan,
        offer: core.Offer,
        now: datetime,
    ) -> bool:
        rate = plan.delivery.rate
        # A shared lock: a halt (which takes the row for update) waits for this offer to
        # commit, and this offer sees a halt that committed first.
        rec = uow.campaigns.get(plan.id, lock=rate is not None, share=rate is None)
        if rec is None or rec.state != plan.state:
            return False  # the campaign moved since the snapshot: the next poll decides anew
        if offer.kind != "revert" and not still_selected(plan, device, now):
            return False  # changed since the poll's read: it no longer matches the query
        history = history_of(
            uow.campaigns.device_actions(device.id, limit=HISTORY_ACTIONS), snapshot, now
        )
        if history != self._history.get(device.id, NO_HISTORY):
            self._history[device.id] = history
            self.decisions += 1
            again = core.decide(self.facts(row, snapshot, history, now), snapshot, now)
            if again.offer is None or again.offer.campaign_id != offer.campaign_id:
                return False
        if rate is None:
            return True
        bucket = TokenBucket(rec.rate_tokens or 0.0, rec.rate_at) if rec.rate_at else FULL
        spent = bucket.take(rate, now)
        if spent is None:
            return False
        uow.campaigns.update(
            plan.id, CampaignChanges(rate_tokens=spent.tokens, rate_at=spent.updated_at)
        )
        return True


def still_selected(plan: core.CampaignPlan, device: DeviceRecord, now: datetime) -> bool:
    """Whether the campaign's device query (if it has one) selects the device as its
    locked record stands (its groups or metadata may have changed since the poll read its
    row). A revert offer is not subject to it: it goes to whoever runs the bad release."""
    if plan.selector.query is None:
        return True
    facts = core.DeviceFacts(
        device.controller_id,
        plan.selector.product,
        device.hardware,
        frozenset(device.groups),
        device.installed_version,
        attributes=device.attributes,
        metadata=device.metadata,
        last_seen=now,
    )
    return filters.matches(plan.selector.query, facts)


def _open_action(row: DeviceAuthRow, snapshot: core.Snapshot) -> core.OpenAction | None:
    """The poll row's open action as the core names it (None for one no campaign made)."""
    if row.action_id is None or row.action_campaign_id is None:
        return None
    release_id = row.action_release_id or 0
    status = row.action_status or ""
    return core.OpenAction(
        row.action_id,
        row.action_campaign_id,
        release_id,
        _security_version(snapshot, row.action_campaign_id, release_id),
        ex.FROM_DDI_STATUS.get(status, status),
    )
