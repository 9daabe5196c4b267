"""The campaign: the snapshot the device poll reads, and ``decide``
(docs/architecture.md; docs/campaigns.md).

The state machine lives in :mod:`patchgate.domain.campaign_states` (re-exported here).

``decide(device, snapshot, now, tokens)`` is the pure function behind every DDI poll. Rules
in the order applied (each no-offer answer names its rule in ``Decision.reason``):

1. **One open action per device.** A device with an open action gets no new offer. If that
   action's campaign is halted or cancelled (or its release withdrawn) and the action has
   not started installing, the answer is ``cancel`` (DDI ``cancelAction``); an action
   already installing finishes and its outcome is recorded. A ``retrying`` action is
   offered again once its back-off has passed.
2. **Supersession.** A pending action (offered or downloading, not installing) for release
   A is superseded by release B when B is for the same product, B's type is ``security``
   or ``combined``, B's security version is higher than A's, and B's running campaign
   would offer B to this device now; the answer is ``cancel`` for A, and the poll after the
   cancellation is acknowledged gets B. An action already installing is never superseded.
3. **Campaign state.** Only ``running`` campaigns (and ``reverting`` ones, for their
   revert offers) offer; ``draft``, ``paused``, ``halted``, ``cancelled`` offer nothing,
   and neither does a rollout past its scheduled end (:mod:`campaign_timing`).
   A ``completed`` rollout keeps offering its release to stragglers its last stage admits
   (devices offline during the campaign still get the fix).
4. **Target.** Product, hardware (the release's models and the selector's), groups (any
   of the selector's), installed-version range, the device query if the campaign has one
   (:mod:`filters`, evaluated on the device as this poll reads it); never the version
   already installed; never a release below the device's security floor; never a
   campaign the device already finished (succeeded, failed, reverted, timed out or cancelled).
5. **Stage.** The device's first admitting stage (:mod:`cohorts`) is at or below the
   current stage. Roll-forward: devices on a superseded halted release (``priority``)
   are admitted from the first stage.
6. **Maintenance window** (new rollout offers only; reverts are urgent and ignore it).
7. **Rate limit**: one token from the campaign's bucket, whose new state is returned.
8. **Revert plan.** A reverting campaign offers each device running the bad release its
   own target (``revert_targets``: the last release that device ran successfully that is
   not halted or withdrawn, :mod:`reverts`), or the release named with ``--to``, when
   its security version is at least the device's floor, once per device (a failed revert
   is not offered again; the device stays on record).
   The floor rises only when a rollout completes after its last soak
   (:func:`floor_after`), so a revert stays possible until then.

Several campaigns for one product are tried in a fixed order: reverting ones first, then by
security version (highest first), then newest first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Final

from patchgate.domain import filters

# The state machine, re-exported: callers import the whole campaign core from here.
from patchgate.domain.campaign_states import (  # noqa: F401 - re-exported
    ALLOWED,
    CAMPAIGN_CANCELLED,
    CAMPAIGN_COMPLETED,
    CAMPAIGN_HALTED,
    CAMPAIGN_PAUSED,
    CAMPAIGN_RESUMED,
    CAMPAIGN_STARTED,
    CANCELLED,
    COMPLETED,
    DRAFT,
    HALTED,
    PAUSED,
    REVERT_STARTED,
    REVERTING,
    RUNNING,
    STAGE_ADVANCED,
    STAGE_APPROVED,
    STATES,
    AdvanceStage,
    ApproveStage,
    CampaignEvent,
    CancelCampaign,
    Command,
    CompleteCampaign,
    HaltCampaign,
    PauseCampaign,
    Progress,
    ResumeCampaign,
    RevertCampaign,
    StartCampaign,
    Transition,
    apply_verdict,
    awaiting_approval,
    floor_after,
    transition,
)
from patchgate.domain.campaign_stops import (  # noqa: F401 - re-exported
    AWAITING_CANCEL,
    StopFacts,
    cancel_detail,
    stop_cancel,
)
from patchgate.domain.campaign_timing import NO_TIMING, CampaignTiming
from patchgate.domain.cohorts import CohortCut, cohort_bucket, first_admitting_stage
from patchgate.domain.errors import Conflict, InvalidInput
from patchgate.domain.executions import CANCELLABLE, S_RETRYING, Execution
from patchgate.domain.ratelimit import FULL, RateLimit, TokenBucket
from patchgate.domain.records import quick_init
from patchgate.domain.stages import Stage
from patchgate.domain.versions import VersionRange
from patchgate.domain.windows import MaintenanceWindow

# ---- the snapshot the poll reads ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReleaseRef:
    """What ``decide`` needs of a release."""

    id: int
    product: str
    version: str
    security_version: int = 0
    type: str = "security"
    hardware: frozenset[str] = frozenset()
    withdrawn: bool = False


def release_problems(release: ReleaseRef, *, signed: bool, artifacts: int) -> list[str]:
    """Why a campaign may not be created for ``release``."""
    problems = []
    if release.withdrawn:
        problems.append(f"release {release.id} is withdrawn; a campaign cannot offer it")
    if not signed:
        problems.append(
            f"release {release.id} is not signed; sign it first (release sign {release.id})"
        )
    if artifacts <= 0:
        problems.append(f"release {release.id} has no artifacts to offer")
    return problems


@dataclass(frozen=True, slots=True)
class Selector:
    """Which devices a campaign targets: product, hardware models, groups (any of them),
    installed-version range, device query. Empty fields do not restrict."""

    product: str
    hardware: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    versions: VersionRange | None = None  # None: any version, even an unknown one
    query: filters.Expression | None = None

    def matches(self, device: DeviceFacts) -> bool:
        """Whether ``device`` is targeted (rule 4, apart from the release's own checks)."""
        if device.product != self.product:
            return False
        if self.hardware and device.hardware not in self.hardware:
            return False
        if self.groups and self.groups.isdisjoint(device.groups):
            return False
        if self.versions is not None and not self.versions.contains(device.installed_version):
            return False
        return self.query is None or filters.matches(self.query, device)


@dataclass(frozen=True, slots=True)
class Delivery:
    """How offers are made: forced or soft, download only, user confirmation, window,
    rate limit (docs/campaigns.md)."""

    forced: bool = False
    download_only: bool = False
    confirm_required: bool = False
    window: MaintenanceWindow | None = None
    rate: RateLimit | None = None


@dataclass(frozen=True, slots=True)
class CampaignPlan:
    """One campaign as the snapshot holds it: everything ``decide`` reads, nothing more.
    ``cuts`` are the stages' cohort cuts fixed when each stage started (a stage not yet
    started may hold a provisional cut; only stages up to ``stage_index`` are used)."""

    id: int
    salt: str
    release: ReleaseRef
    selector: Selector
    stages: tuple[Stage, ...]
    cuts: tuple[CohortCut, ...]
    progress: Progress
    delivery: Delivery = Delivery()
    revert_to: ReleaseRef | None = None
    priority_versions: frozenset[str] = frozenset()
    timing: CampaignTiming = NO_TIMING  # timeout, retries, schedule (campaign_timing)
    # A reverting campaign's plan: each device's own target by controller id (rule 8);
    # ``revert_to`` (named with ``--to``) serves a device the plan does not hold yet.
    revert_targets: Mapping[str, ReleaseRef] = field(
        default_factory=dict, hash=False, compare=False
    )

    def __post_init__(self) -> None:
        if len(self.cuts) != len(self.stages):
            raise InvalidInput("campaign plan: one cohort cut per stage is needed")

    @property
    def state(self) -> str:
        """The campaign's state."""
        return self.progress.state

    def stage_of(self, device_id: str, groups: frozenset[str]) -> int | None:
        """The stage that first admits the device (its stage for per-stage counts), or
        ``None`` when no stage does."""
        return first_admitting_stage(self.cuts, cohort_bucket(self.salt, device_id), groups)

    def window_state(self, now: datetime) -> str | None:
        """DDI ``maintenanceWindow`` for this campaign's actions: ``available``,
        ``unavailable``, or ``None`` without a window."""
        window = self.delivery.window
        if window is None:
            return None
        return "available" if window.is_open(now) else "unavailable"


@dataclass(frozen=True, slots=True)
class OpenAction:
    """The device's one open action, as its row records it."""

    action_id: int
    campaign_id: int
    release_id: int
    security_version: int
    status: str
    retry_after: datetime | None = None


def open_action_of(
    execution: Execution, action_id: int, campaign_id: int, release: ReleaseRef
) -> OpenAction | None:
    """The device's open action as ``decide`` reads it, from its execution folded from
    events (:mod:`executions`); None once the execution has ended. A ``retrying``
    execution stays open: its next offer waits for the back-off (rule 1). The server and
    the simulator build a device's open action with this one function."""
    if not execution.is_open:
        return None
    return OpenAction(
        action_id,
        campaign_id,
        release.id,
        release.security_version,
        execution.status,
        execution.retry_after,
    )


_NO_VALUES: Final[Mapping[str, object]] = MappingProxyType({})


@quick_init
@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """What the poll knows of the device from its row (one indexed read).
    ``finished_campaigns`` and ``finished_reverts`` are the campaigns whose rollout,
    respectively revert, execution on this device has ended (any terminal status).
    ``attributes``, ``metadata`` and ``last_seen`` are read only by a device query.
    ``cohort`` is an optional ``(salt, bucket)`` the caller already knows: the poll reads
    that bucket for a campaign of that salt instead of hashing the id again, and hashes for
    any other (docs/campaign-core.md "The poll")."""

    device_id: str
    product: str | None
    hardware: str | None = None
    groups: frozenset[str] = frozenset()
    installed_version: str | None = None
    security_floor: int = 0
    open_action: OpenAction | None = None
    finished_campaigns: frozenset[int] = frozenset()
    finished_reverts: frozenset[int] = frozenset()
    attributes: Mapping[str, object] = field(default_factory=lambda: _NO_VALUES)
    metadata: Mapping[str, object] = field(default_factory=lambda: _NO_VALUES)
    last_seen: datetime | None = None
    cohort: tuple[str, int] | None = None

    @property
    def controller_id(self) -> str:
        """The device's ID under the device-query name (:class:`filters.DeviceFacts`)."""
        return self.device_id


@dataclass(frozen=True)
class Snapshot:
    """The in-memory plan of what runs, stamped with the state version it was built from
    (docs/architecture.md). Build with :meth:`build`. The server also keeps what a
    poll needs to know of a device beyond its row: the product of each hardware model
    (``products``) and each product's security floor (``floors``)."""

    state_version: int
    campaigns: tuple[CampaignPlan, ...]
    by_id: Mapping[int, CampaignPlan]
    by_product: Mapping[str, tuple[CampaignPlan, ...]]
    products: Mapping[str, str] = field(default_factory=dict)
    floors: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        state_version: int,
        campaigns: Sequence[CampaignPlan],
        *,
        products: Mapping[str, str] | None = None,
        floors: Mapping[str, int] | None = None,
    ) -> Snapshot:
        """Index ``campaigns`` by id and by product in ``decide``'s order."""
        ordered = sorted(
            campaigns,
            key=lambda c: (c.state != REVERTING, -c.release.security_version, -c.id),
        )
        by_product: dict[str, list[CampaignPlan]] = {}
        for plan in ordered:
            by_product.setdefault(plan.selector.product, []).append(plan)
        return cls(
            state_version,
            tuple(ordered),
            MappingProxyType({c.id: c for c in ordered}),
            MappingProxyType({p: tuple(v) for p, v in by_product.items()}),
            MappingProxyType(dict(products or {})),
            MappingProxyType(dict(floors or {})),
        )


EMPTY_SNAPSHOT: Final = Snapshot.build(0, ())


@quick_init
@dataclass(frozen=True, slots=True)
class Offer:
    """A deployment to offer (DDI ``deploymentBase``). ``kind`` is ``rollout``, ``retry``
    or ``revert``; ``download``/``update`` are DDI handling values (``forced``,
    ``attempt``, ``skip``)."""

    campaign_id: int
    release_id: int
    version: str
    kind: str
    stage_index: int
    download: str
    update: str
    confirmation_required: bool
    maintenance_window: str | None


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel the device's open action (DDI ``cancelAction``), and why."""

    action_id: int
    campaign_id: int
    reason: str


@quick_init
@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one poll: an offer, a cancellation, or nothing, with the rule that
    decided it; ``tokens`` is the new rate-limit state of ``offer.campaign_id``."""

    offer: Offer | None
    reason: str
    cancel: Cancel | None = None
    tokens: TokenBucket | None = None


# Reasons (``Decision.reason``), one per rule.
OFFERED: Final = "offered"
NO_CAMPAIGN: Final = "no-campaign"
OPEN_ACTION: Final = "open-action"
RETRY_BACKOFF: Final = "retry-backoff"
CANCEL_HALTED: Final = "halted"
CANCEL_SUPERSEDED: Final = "superseded"
NOT_TARGETED: Final = "not-targeted"
NOT_IN_STAGE: Final = "not-in-stage"
ALREADY_DONE: Final = "already-done"
BELOW_FLOOR: Final = "below-security-floor"
OUTSIDE_WINDOW: Final = "outside-window"
RATE_LIMITED: Final = "rate-limited"
NOT_OFFERING: Final = "campaign-not-offering"

# Ordered from least to most informative: when several campaigns decline a device, the
# answer names the rule that came closest to an offer.
_REASONS: Final = (
    NO_CAMPAIGN,
    NOT_OFFERING,
    NOT_TARGETED,
    ALREADY_DONE,
    BELOW_FLOOR,
    NOT_IN_STAGE,
    OUTSIDE_WINDOW,
    RATE_LIMITED,
    OPEN_ACTION,
    RETRY_BACKOFF,
)
_NOTHING: Final = {r: Decision(None, r) for r in _REASONS}
_RANK: Final = {r: i for i, r in enumerate(_REASONS)}
_NO_TOKENS: Final[Mapping[int, TokenBucket]] = {}
_STOPPED: Final = frozenset({HALTED, CANCELLED})


def decide(
    device: DeviceFacts,
    snapshot: Snapshot,
    now: datetime,
    tokens: Mapping[int, TokenBucket] = _NO_TOKENS,
) -> Decision:
    """The answer to ``device``'s poll at ``now`` (module rules 1–8). ``tokens`` holds the
    rate-limit buckets by campaign id; the caller stores ``Decision.tokens`` back."""
    action = device.open_action
    if action is not None:
        return _with_open_action(device, action, snapshot, now, tokens)
    plans = snapshot.by_product.get(device.product or "", ())
    best = NO_CAMPAIGN
    for plan in plans:
        decision = _consider(device, plan, now, tokens, retry=False)
        if decision.offer is not None:
            return decision
        if _RANK[decision.reason] > _RANK[best]:
            best = decision.reason
    return _NOTHING[best]


def _with_open_action(
    device: DeviceFacts,
    action: OpenAction,
    snapshot: Snapshot,
    now: datetime,
    tokens: Mapping[int, TokenBucket],
) -> Decision:
    plan = snapshot.by_id.get(action.campaign_id)
    cancellable = action.status in CANCELLABLE
    if cancellable and (plan is None or plan.state in _STOPPED or plan.release.withdrawn):
        # Rule 1: a halted campaign's pending actions are cancelled, not continued.
        return Decision(None, CANCEL_HALTED, Cancel(action.action_id, action.campaign_id, "halted"))
    if cancellable and plan is not None and _halted_release(plan, action):
        # Rule 1 after the revert began: the halt cancelled every pending action for the
        # halted release (``stop_cancel``); the revert's own offers are other releases.
        return Decision(None, CANCEL_HALTED, Cancel(action.action_id, action.campaign_id, "halted"))
    if cancellable and plan is not None:
        for other in snapshot.by_product.get(device.product or "", ()):
            if other.id != plan.id and _supersedes(other.release, action):
                probe = replace(device, open_action=None)
                if _consider(probe, other, now, tokens, retry=False, dry=True).offer:
                    return Decision(
                        None,
                        CANCEL_SUPERSEDED,
                        Cancel(action.action_id, action.campaign_id, f"superseded by {other.id}"),
                    )
    if action.status == S_RETRYING and plan is not None:
        if action.retry_after is not None and now < action.retry_after:
            return _NOTHING[RETRY_BACKOFF]
        return _consider(device, plan, now, tokens, retry=True)
    return _NOTHING[OPEN_ACTION]


def _halted_release(plan: CampaignPlan, action: OpenAction) -> bool:
    """Whether ``action`` is for the release ``plan``'s halt stopped (a reverting campaign
    has halted; its revert offers other releases)."""
    return plan.progress.halted_at is not None and action.release_id == plan.release.id


def _supersedes(release: ReleaseRef, action: OpenAction) -> bool:
    """Rule 2 on releases (same product is given by the snapshot's index)."""
    return (
        release.type in ("security", "combined")
        and release.security_version > action.security_version
        and release.id != action.release_id
        and not release.withdrawn
    )


def _consider(
    device: DeviceFacts,
    plan: CampaignPlan,
    now: datetime,
    tokens: Mapping[int, TokenBucket],
    *,
    retry: bool,
    dry: bool = False,
) -> Decision:
    state = plan.state
    if state == REVERTING:
        return _consider_revert(device, plan, now, tokens, dry=dry)
    if state != RUNNING and not (state == COMPLETED and plan.progress.floor_raised):
        return _NOTHING[NOT_OFFERING]
    if plan.timing.ended(now):  # past its end_at, before the timer cancelled it
        return _NOTHING[NOT_OFFERING]
    release = plan.release
    if release.withdrawn:
        return _NOTHING[NOT_OFFERING]
    if not plan.selector.matches(device) or (
        release.hardware and device.hardware not in release.hardware
    ):
        return _NOTHING[NOT_TARGETED]
    if device.installed_version == release.version or (
        not retry and plan.id in device.finished_campaigns
    ):
        return _NOTHING[ALREADY_DONE]
    if release.security_version < device.security_floor:
        return _NOTHING[BELOW_FLOOR]
    stage = len(plan.stages) - 1 if state == COMPLETED else plan.progress.stage_index
    if device.installed_version not in plan.priority_versions:
        known = device.cohort
        if known is not None and known[0] == plan.salt:
            bucket = known[1]
        else:
            bucket = cohort_bucket(plan.salt, device.device_id)
        first = first_admitting_stage(plan.cuts[: stage + 1], bucket, device.groups)
        if first is None:
            return _NOTHING[NOT_IN_STAGE]
    window = plan.delivery.window
    if window is not None and not window.is_open(now):
        return _NOTHING[OUTSIDE_WINDOW]
    return _offer(plan, release, "retry" if retry else "rollout", stage, now, tokens, dry=dry)


def _consider_revert(
    device: DeviceFacts,
    plan: CampaignPlan,
    now: datetime,
    tokens: Mapping[int, TokenBucket],
    *,
    dry: bool,
) -> Decision:
    if device.installed_version != plan.release.version or (
        plan.selector.product != device.product
    ):
        return _NOTHING[NOT_TARGETED]
    target = plan.revert_targets.get(device.device_id, plan.revert_to)
    if target is None or target.withdrawn:
        return _NOTHING[NOT_TARGETED]
    if plan.id in device.finished_reverts:
        return _NOTHING[ALREADY_DONE]  # a failed revert is not offered again and again
    if target.security_version < device.security_floor:
        return _NOTHING[BELOW_FLOOR]
    return _offer(plan, target, "revert", plan.progress.stage_index, now, tokens, dry=dry)


def _offer(
    plan: CampaignPlan,
    release: ReleaseRef,
    kind: str,
    stage: int,
    now: datetime,
    tokens: Mapping[int, TokenBucket],
    *,
    dry: bool,
) -> Decision:
    delivery = plan.delivery
    spent = None
    if delivery.rate is not None:
        spent = tokens.get(plan.id, FULL).take(delivery.rate, now)
        if spent is None:
            return _NOTHING[RATE_LIMITED]
    if dry:
        return Decision(_DRY_OFFER, OFFERED)
    urgent = kind == "revert"
    handling = "forced" if delivery.forced or urgent else "attempt"
    offer = Offer(
        campaign_id=plan.id,
        release_id=release.id,
        version=release.version,
        kind=kind,
        stage_index=stage,
        download=handling,
        update="skip" if delivery.download_only and not urgent else handling,
        confirmation_required=delivery.confirm_required and not urgent,
        maintenance_window=None if urgent else plan.window_state(now),
    )
    return Decision(offer, OFFERED, tokens=spent)


_DRY_OFFER: Final = Offer(0, 0, "", "probe", 0, "attempt", "attempt", False, None)


# ---- recovery after a halt -------------------------------------------------------------


def plan_roll_forward(halted: CampaignPlan, new_release: ReleaseRef) -> frozenset[str]:
    """The priority versions of a roll-forward campaign that supersedes ``halted``: devices
    that took the halted release get ``new_release`` first (rule 5). Refuses a release of
    another product, the same release, or a lower security version."""
    bad = halted.release
    if halted.state not in (HALTED, REVERTING, CANCELLED):
        raise Conflict(f"roll forward: campaign {halted.id} is {halted.state}, not halted")
    if new_release.product != bad.product:
        raise Conflict(f"roll forward: release {new_release.id} is for another product")
    if new_release.id == bad.id or new_release.version == bad.version:
        raise Conflict("roll forward: the new release must differ from the halted one")
    if new_release.security_version < bad.security_version:
        raise Conflict(
            f"roll forward: release {new_release.id} has security version "
            f"{new_release.security_version}, below the halted release's {bad.security_version}"
        )
    return frozenset({bad.version})
