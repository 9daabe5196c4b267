"""The campaign engine behind the device poll (docs/ddi.md "seam"): the snapshot loader,
the decision on the poll's one row, and the action creator."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from patchgate.domain import campaigns as core
from patchgate.domain.ratelimit import FULL, TokenBucket
from patchgate.services import actions as action_service
from patchgate.services.campaigns.plans import get_campaign, plan_of
from patchgate.services.context import Context
from patchgate.services.device_ports import ActionRecord, DeviceAuthRow, DeviceRecord
from patchgate.services.policy import in_force
from patchgate.services.unit_of_work import UnitOfWork


class PollEngine:
    """What the device poll plugs in (``Poller.plug(engine.decide, engine.load,
    engine.create)``): the snapshot loader, ``decide`` over the poll's one row, and the
    action creator, which checks what the row does not hold (campaigns the device already
    finished, the shared rate-limit bucket) under the device's row lock."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._latest = core.EMPTY_SNAPSHOT
        # The (campaign, release) pairs of each device's closed actions, as :meth:`create`
        # last read them. Closed actions never reopen, so ``decide`` can use them as they
        # stand: a device that failed a rollout is then answered without the write path,
        # instead of being offered the release again on every poll and refused under its
        # row lock. A pair closed since is missing until the next refusal reads it again.
        self._finished: dict[int, frozenset[tuple[int, int]]] = {}

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
        finished: Iterable[tuple[int, int]] = (),
    ) -> core.DeviceFacts:
        """The device as ``decide`` sees it; ``finished`` holds (campaign, release) pairs of
        the device's closed actions."""
        product = snapshot.products.get(row.hardware or "")
        if product is None and row.hardware is None and len(snapshot.by_product) == 1:
            product = next(iter(snapshot.by_product))  # a device that never named its model
        done = list(finished)
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
            finished_campaigns=rollouts,
            finished_reverts=reverts,
        )

    def decide(
        self, row: DeviceAuthRow, snapshot: core.Snapshot, now: datetime
    ) -> core.Offer | None:
        """``decide`` on the poll's row (no read); the offer is checked again in
        :meth:`create` against what only a read can tell."""
        self._latest = (
            snapshot if snapshot.state_version >= self._latest.state_version else self._latest
        )
        finished = self._finished.get(row.device_id, frozenset()) if row.device_id else ()
        return core.decide(self.facts(row, snapshot, finished), snapshot, now).offer

    def create(self, ctx: Context, row: DeviceAuthRow, offer: core.Offer) -> ActionRecord | None:
        """Create the offered action unless the device finished this campaign already or
        the campaign's shared rate limit has no token left."""
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
            pairs = frozenset(
                (a.campaign_id, a.release_id)
                for a in uow.actions.for_device(device.id, limit=1000)
                if a.campaign_id is not None and not a.active
            )
            self._finished[device.id] = pairs
            facts = self.facts(row, snapshot, pairs)
            tokens: dict[int, TokenBucket] = {}
            rate = plan.delivery.rate
            rec = None
            if rate is not None:
                rec = get_campaign(uow, plan.id, lock=True)
                tokens[plan.id] = (
                    TokenBucket(rec.rate_tokens or 0.0, rec.rate_at) if rec.rate_at else FULL
                )
            decision = core.decide(facts, snapshot, now, tokens)
            if decision.offer is None or decision.offer.campaign_id != offer.campaign_id:
                return False
            if rate is not None and decision.tokens is not None:
                uow.campaigns.update(
                    plan.id, rate_tokens=decision.tokens.tokens, rate_at=decision.tokens.updated_at
                )
            return True

        new = action_service.from_offer(offer, window_start=window_start, window_end=window_end)
        return action_service.create_from_offer(
            ctx, row.device_id, new, actor=f"campaign:{offer.campaign_id}", check=check
        )
