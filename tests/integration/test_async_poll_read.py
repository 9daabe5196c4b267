"""The poll's read awaited on the event loop (PostgreSQL): the same row as the repository,
never a stale state, several reads in flight on few connections, and a connection the
database dropped replaced on the next read."""

from __future__ import annotations

import asyncio
import time

import psycopg

from patchgate.bootstrap import make_async_device_auth_reader, make_device_auth_reader
from patchgate.services import ddi
from patchgate.services import devices as device_service
from tests.conftest import Env
from tests.factories import make_release


def test_the_awaited_reader_reads_what_the_repository_reads_and_never_a_stale_state(
    env: Env,
) -> None:
    reader = make_async_device_auth_reader(env.app)
    if env.app.engines.read.dialect.name == "sqlite":
        # On SQLite the read is a local call: the poll runs it inline instead.
        assert reader is None
        return
    assert reader is not None
    release = make_release(env, "3.0.0", {"a.bin": b"x"})
    made = device_service.add_device(env.ctx, "dev-r", groups=["qa"], actor="test")
    token_hash = ddi.hash_token(made.token)
    sync = make_device_auth_reader(env.app)

    async def scenario() -> None:
        first = await reader.by_token("DEFAULT", token_hash)
        assert first == sync.by_token("DEFAULT", token_hash)
        assert first is not None and first.groups == ("qa",) and first.action_id is None
        assert await reader.by_token("OTHER", token_hash) is None
        # A change committed elsewhere (another process) is seen by the very next read.
        assert env.cli("device", "assign", "dev-r", str(release.id)).code == 0
        second = await reader.by_token("DEFAULT", token_hash)
        assert second is not None and second.state_version > first.state_version
        assert second.action_status == "offered" and second.action_release_id == release.id
        assert second == sync.by_token("DEFAULT", token_hash)
        assert await reader.by_controller("DEFAULT", "dev-r") == sync.by_controller(
            "DEFAULT", "dev-r"
        )
        unknown = await reader.by_controller("DEFAULT", "nobody")
        assert unknown is not None and unknown.device_id is None and unknown.tenant == "DEFAULT"
        assert await reader.by_controller("NOPE", "dev-r") is None

    asyncio.run(scenario())


def test_many_awaited_reads_share_a_few_connections_and_survive_a_dropped_one(
    env: Env,
) -> None:
    reader = make_async_device_auth_reader(env.app)
    if env.app.engines.read.dialect.name == "sqlite":
        assert reader is None
        return
    assert reader is not None
    ids = [f"dev-{i}" for i in range(30)]
    device_service.import_devices(env.ctx, [(cid, [], "hw", "1.0") for cid in ids], actor="t")
    url = env.app.engines.read.url.set(drivername="postgresql").render_as_string(False)

    def backends() -> int:
        with psycopg.connect(url, autocommit=True) as admin:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND query LIKE %s",
                ["%FROM tenants LEFT OUTER JOIN devices%"],
            ).fetchone()
            return int(row[0]) if row else 0

    def drop_all() -> None:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND query LIKE %s",
                ["%FROM tenants LEFT OUTER JOIN devices%"],
            )

    async def scenario() -> None:
        rows = await asyncio.gather(*(reader.by_controller("DEFAULT", cid) for cid in ids * 3))
        assert [r.controller_id if r else None for r in rows] == ids * 3
        assert 2 <= backends() <= 4  # several in flight, never more than the reader's limit
        drop_all()
        deadline = time.monotonic() + 10
        while backends() and time.monotonic() < deadline:  # termination is asynchronous
            time.sleep(0.05)
        assert backends() == 0
        again = await asyncio.gather(*(reader.by_controller("DEFAULT", cid) for cid in ids))
        assert [r.controller_id if r else None for r in again] == ids

    asyncio.run(scenario())
