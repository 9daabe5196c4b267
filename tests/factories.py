"""Test-data factories that go through the real services.

``make_release`` creates a release with ``patchgate.services.releases.create_release``
(streamed into the real artifact store, signed at once in lab trust mode), putting the demo
product in the policy first when the installation has none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from patchgate.services import policy as policy_service
from patchgate.services import releases
from patchgate.services.setup import demo_policy_source
from tests.conftest import Env

DEMO_PRODUCT = "Demo Gateway"


@dataclass(frozen=True)
class MadeRelease:
    id: int
    version: str
    artifacts: dict[str, dict[str, object]]


def make_release(
    env: Env,
    version: str,
    files: Mapping[str, bytes],
    *,
    product: str = DEMO_PRODUCT,
    hardware: Sequence[str] = (),
    security_version: int = 0,
    update_type: str = "security",
    fixes: Sequence[str] = (),
) -> MadeRelease:
    """A signed release with ``files`` as its artifacts."""
    if policy_service.in_force(env.ctx).policy.product(product) is None:
        policy_service.apply(env.ctx, demo_policy_source(), actor="test")
    record = releases.create_release(
        env.ctx,
        product=product,
        version=version,
        artifacts=[releases.ArtifactUpload(name, [data]) for name, data in files.items()],
        actor="test",
        security_version=security_version,
        update_type=update_type,
        hardware=hardware,
        fixes=fixes,
    )
    artifacts: dict[str, dict[str, object]] = {
        a.filename: {
            "id": a.id,
            "sha256": a.sha256,
            "sha1": a.sha1,
            "md5": a.md5,
            "size": a.size,
            "tuf_target": a.tuf_target,
        }
        for a in record.artifacts
    }
    return MadeRelease(record.id, record.version, artifacts)


def assign(env: Env, cid: str, release: MadeRelease, *args: str) -> int:
    """``device assign`` through the CLI; the new action's id."""
    result = env.cli("device", "assign", cid, str(release.id), *args, "--json")
    assert result.code == 0, result.stderr
    return int(result.json()["id"])


def action_status(env: Env, action_id: int) -> str:
    """An action's status as stored."""
    with env.ctx.read_uow() as uow:
        action = uow.actions.get(action_id)
        assert action is not None
        return action.status
