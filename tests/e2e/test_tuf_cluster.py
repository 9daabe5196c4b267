"""TUF metadata served by several processes (docs/storage.md, "TUF metadata"): on
PostgreSQL the metadata lives in the database, so two server processes with data folders
of their own serve byte-identical versions, a release signed through one is served by the
other, and concurrent refreshers re-sign the timestamp once; on SQLite (one host) the
data folder's files under their lock give the same."""

from __future__ import annotations

import shutil
import threading
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from patchgate.adapters.tuf_repo import FileTrustRepository
from patchgate.bootstrap import Settings, build
from patchgate.services import releases
from tests.conftest import Env
from tests.support import LiveServer


def _second_app_dir(env: Env, tmp_path: Path, backend: str) -> Path:
    """The second process's data folder: on PostgreSQL another host's (only the keys
    copied over, as docs/storage.md says to deploy); on SQLite the same folder."""
    if backend == "sqlite":
        return env.data_dir
    other = tmp_path / "host-b"
    other.mkdir()
    shutil.copytree(env.data_dir / "keys", other / "keys")
    return other


def _metadata(url: str) -> dict[str, bytes]:
    with httpx.Client(timeout=10) as client:
        timestamp = client.get(f"{url}/tuf/metadata/timestamp.json")
        assert timestamp.status_code == 200
        version = timestamp.json()["signed"]["meta"]["snapshot.json"]["version"]
        snapshot = client.get(f"{url}/tuf/metadata/{version}.snapshot.json")
        targets_version = snapshot.json()["signed"]["meta"]["targets.json"]["version"]
        targets = client.get(f"{url}/tuf/metadata/{targets_version}.targets.json")
        root = client.get(f"{url}/tuf/metadata/1.root.json")
    return {
        "timestamp": timestamp.content,
        "snapshot": snapshot.content,
        "targets": targets.content,
        "root": root.content,
    }


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_two_servers_serve_the_same_metadata_and_a_release_signed_through_either(
    demo_env: Env, backend: str, tmp_path: Path
) -> None:
    other = _second_app_dir(demo_env, tmp_path, backend)
    a = LiveServer(demo_env.vars, tmp_path / "a.log").start(timeout=90)
    b = LiveServer({**demo_env.vars, "PATCHGATE_DATA_DIR": str(other)}, tmp_path / "b.log")
    b.start(timeout=90)
    try:
        assert _metadata(a.url) == _metadata(b.url)
        releases.create_release(
            demo_env.ctx,
            product="Demo Gateway",
            version="9.0.0",
            artifacts=[releases.ArtifactUpload("cluster.img", [b"cluster" * 100])],
            actor="test",
            security_version=1,
        )
        served_a, served_b = _metadata(a.url), _metadata(b.url)
        assert served_a == served_b
        assert b"cluster.img" in served_b["targets"]
    finally:
        a.stop()
        b.stop()


def test_concurrent_refreshers_re_sign_the_timestamp_once(
    demo_env: Env, backend: str, tmp_path: Path
) -> None:
    other = _second_app_dir(demo_env, tmp_path, backend)
    apps = [demo_env.app]
    for _ in range(3):
        apps.append(build(Settings(data_dir=other, database_url=demo_env.database_url)))
    repos = [app.context.trust for app in apps]
    assert all(isinstance(r, FileTrustRepository) for r in repos)
    before = demo_env.ctx.trust.status().timestamp_version
    # Past half the timestamp's lifetime: every refresher finds it due.
    later = demo_env.ctx.clock() + timedelta(hours=13)
    barrier = threading.Barrier(len(repos))
    results: list[bool] = []

    def refresh(repo: FileTrustRepository) -> None:
        barrier.wait()
        results.append(repo.refresh_online(later))

    threads = [threading.Thread(target=refresh, args=(r,)) for r in repos]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        assert sorted(results) == [False, False, False, True]
        versions = {r.status().timestamp_version for r in repos}
        assert versions == {before + 1}
        served = {r.metadata_bytes("timestamp.json") for r in repos}
        assert len(served) == 1
    finally:
        for app in apps[1:]:
            app.close()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_metadata_written_to_files_before_is_taken_into_the_database(
    demo_env: Env, tmp_path: Path
) -> None:
    """An installation that kept its metadata in the data folder (before the database
    held it) serves the same versions once it runs on the database."""
    repo = demo_env.ctx.trust
    assert isinstance(repo, FileTrustRepository)
    names = repo.files.names()
    legacy = tmp_path / "legacy"
    (legacy / "tuf" / "metadata").mkdir(parents=True)
    for name in names:
        (legacy / "tuf" / "metadata" / name).write_bytes(repo.metadata_bytes(name))
    shutil.copytree(demo_env.data_dir / "keys", legacy / "keys")
    with demo_env.app.engines.write.begin() as conn:
        conn.exec_driver_sql("DELETE FROM tuf_metadata")
    fresh = build(Settings(data_dir=legacy, database_url=demo_env.database_url))
    try:
        for name in names:
            assert (
                fresh.context.trust.metadata_bytes(name)
                == (legacy / "tuf" / "metadata" / name).read_bytes()
            )
    finally:
        fresh.close()
