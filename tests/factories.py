"""Test-data factories for rows other capabilities own.

``make_release`` inserts release, blob and artifact rows directly and writes the blob bytes
where the device API looks for them when no artifact store is wired
(``patchgate.entrypoints.ddi.app.fallback_local_path``). Once the release service is on
main, switch this to ``release create`` so tests use the real store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from patchgate.adapters.db.models import Blob, Release, ReleaseArtifact
from patchgate.entrypoints.ddi.app import fallback_local_path
from tests.conftest import Env


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
    product: str = "demo-gateway",
    hardware: Sequence[str] = (),
    state: str = "signed",
) -> MadeRelease:
    """A release with ``files`` as its artifacts, stored content-addressed."""
    now = env.ctx.clock()
    artifacts: dict[str, dict[str, object]] = {}
    with Session(env.app.engines.write) as session:
        release = Release(
            product=product,
            version=version,
            security_version=0,
            type="security",
            hardware=list(hardware),
            notes="",
            state=state,
            created_at=now,
            created_by="test",
            flags={},
        )
        session.add(release)
        session.flush()
        for position, (name, data) in enumerate(files.items()):
            sha256 = hashlib.sha256(data).hexdigest()
            if session.get(Blob, sha256) is None:
                session.add(
                    Blob(
                        sha256=sha256,
                        sha1=hashlib.sha1(data).hexdigest(),  # noqa: S324  # DDI field
                        md5=hashlib.md5(data).hexdigest(),  # noqa: S324  # DDI field
                        size=len(data),
                        created_at=now,
                    )
                )
                session.flush()
            target = f"{product}/{version}/{name}"
            art = ReleaseArtifact(
                release_id=release.id,
                filename=name,
                sha256=sha256,
                tuf_target=target,
                position=position,
            )
            session.add(art)
            session.flush()
            path = fallback_local_path(env.data_dir, sha256)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            artifacts[name] = {
                "id": art.id,
                "sha256": sha256,
                "sha1": hashlib.sha1(data).hexdigest(),  # noqa: S324
                "md5": hashlib.md5(data).hexdigest(),  # noqa: S324
                "size": len(data),
                "tuf_target": target,
            }
        session.commit()
        return MadeRelease(release.id, version, artifacts)
