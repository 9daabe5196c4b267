"""``patchgate init``: the data folder, the default tenant, the policy and the admin token.

Idempotent: running it again creates only what is missing and never replaces a key or a
token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

from patchgate.domain.errors import PatchgateError
from patchgate.services import access, audit, policy, releases
from patchgate.services.context import Context
from patchgate.services.device_ports import DEFAULT_TENANT

ADMIN_TOKEN_NAME = "admin"  # noqa: S105  # the name of a token, not a token

DEMO_PRODUCT = """
[[products]]
name = "Demo Gateway"
description = "A demonstration industrial IoT gateway"
support_start = "2026-01"
support_end = "2031-12"
on_sale = true
member_states = ["DE", "FR", "NL"]
update_types = ["security", "feature", "combined"]
hardware = ["demo-gw-1"]
"""


def default_policy_source() -> str:
    """The default policy shipped with patchgate (the guide's cadence)."""
    return resources.files("patchgate").joinpath("default_policy.toml").read_text()


def demo_policy_source() -> str:
    """The default policy with the demo product added."""
    return default_policy_source().rstrip() + "\n" + DEMO_PRODUCT


@dataclass
class InitResult:
    """What ``init`` created this time (``admin_token`` only when it was new)."""

    created: list[str] = field(default_factory=list)
    admin_token: str | None = None
    warnings: list[str] = field(default_factory=list)
    device_tokens: dict[str, str] = field(default_factory=dict)


def initialise(ctx: Context, *, demo: bool, actor: str, demo_devices: bool = True) -> InitResult:
    """Create what is missing: tenant, policy, admin token (schema must be at head)."""
    result = InitResult()
    now = ctx.clock()
    with ctx.uow() as uow:
        if uow.tenants.get(DEFAULT_TENANT) is None:
            uow.tenants.add(DEFAULT_TENANT, now)
            audit.record(
                ctx, uow, actor=actor, action="tenant.create", subject=f"tenant:{DEFAULT_TENANT}"
            )
            result.created.append(f"tenant {DEFAULT_TENANT}")
        has_policy = uow.policies.current() is not None
        has_admin = uow.tokens.by_name(ADMIN_TOKEN_NAME) is not None
        uow.commit()
    if not has_policy:
        source = demo_policy_source() if demo else default_policy_source()
        policy.apply(ctx, source, actor=actor)
        result.created.append("policy" + (" with the demo product" if demo else ""))
    if not has_admin:
        _, token = access.create_token(ctx, name=ADMIN_TOKEN_NAME, role="admin", actor=actor)
        result.admin_token = token
        result.created.append("admin token")
    _initialise_trust(ctx, result, actor=actor)
    _initialise_openpgp(ctx, result, actor=actor)
    if demo:
        _demo_release(ctx, result, actor=actor)
        if demo_devices:
            _demo_devices(ctx, result, actor=actor)
    return result


# A small fleet for the demo: the guide's groups, all on the release before the demo one.
DEMO_DEVICES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("demo-gw-0001", ("internal",)),
    ("demo-gw-0002", ("qa",)),
    ("demo-gw-0003", ("canary-optin",)),
    ("demo-gw-0004", ("canary-optin",)),
    ("demo-gw-0005", ()),
    ("demo-gw-0006", ()),
)


def _demo_devices(ctx: Context, result: InitResult, *, actor: str) -> None:
    """Provision the demo fleet once; their target tokens are shown this one time."""
    from patchgate.domain.errors import NotFound
    from patchgate.services import devices

    try:
        devices.show_device(ctx, DEMO_DEVICES[0][0])
        return
    except NotFound:
        pass
    made = devices.import_devices(
        ctx,
        [devices.DeviceRow(cid, groups, "demo-gw-1", "1.0.0") for cid, groups in DEMO_DEVICES],
        actor=actor,
    )
    result.device_tokens = {p.device.controller_id: p.token for p in made}
    result.created.append(f"{len(made)} demo devices (demo-gw-0001 … demo-gw-{len(made):04d})")


OFFLINE_KEYS_WARNING = (
    "the OFFLINE TUF keys (root and targets) are in {folder}: MOVE THEM TO OFFLINE STORAGE. "
    "Until they are gone patchgate runs in lab trust mode and signs every release itself; "
    "afterwards sign releases with `patchgate release sign ID --key FILE`."
)


def _initialise_trust(ctx: Context, result: InitResult, *, actor: str) -> None:
    """Create the TUF repository and its keys once; warn while the offline keys sit in the
    data folder."""
    created = ctx.trust.create(ctx.clock())
    if created:
        result.created.extend(created)
        with ctx.uow() as uow:
            audit.record(ctx, uow, actor=actor, action="tuf.init", subject="tuf:root")
            uow.commit()
    if ctx.trust.offline_keys_present():
        result.warnings.append(OFFLINE_KEYS_WARNING.format(folder=ctx.data_dir / "offline-keys"))


def _initialise_openpgp(ctx: Context, result: InitResult, *, actor: str) -> None:
    """Create the CSAF provider's OpenPGP signing key once (docs/compliance.md)."""
    if ctx.openpgp is None:
        return
    org = policy.in_force(ctx).policy.organisation
    if ctx.openpgp.create(f"{org} CSAF signing key"):
        result.created.append("CSAF OpenPGP signing key")
        with ctx.uow() as uow:
            audit.record(
                ctx,
                uow,
                actor=actor,
                action="csaf.key.create",
                subject=f"openpgp:{ctx.openpgp.fingerprint()}",
            )
            uow.commit()


DEMO_RELEASE_VERSION = "1.0.1"


def demo_artifact(version: str = DEMO_RELEASE_VERSION) -> bytes:
    """A small, deterministic stand-in for a firmware image of the demo gateway."""
    header = f"patchgate demo image: Demo Gateway {version} for demo-gw-1\n".encode()
    return header + bytes(range(256)) * 64


def _demo_release(ctx: Context, result: InitResult, *, actor: str) -> None:
    """Add a signed demo release of the demo product once (needs lab trust mode)."""
    with ctx.read_uow() as uow:
        if uow.releases.list(product="Demo Gateway"):
            return
    if releases.trust_mode(ctx) != "lab":
        result.warnings.append("demo release skipped: the targets key is not in the data folder")
        return
    data = demo_artifact()
    try:
        record = releases.create_release(
            ctx,
            product="Demo Gateway",
            version=DEMO_RELEASE_VERSION,
            artifacts=[releases.ArtifactUpload("demo-gw-1-1.0.1.img", [data])],
            actor=actor,
            security_version=1,
            update_type="security",
            hardware=["demo-gw-1"],
            notes="Demo release created by `patchgate init --demo`.",
        )
    except PatchgateError as exc:
        result.warnings.append(f"demo release skipped: {exc}")
        return
    result.created.append(f"demo release {record.id} (Demo Gateway {record.version})")
