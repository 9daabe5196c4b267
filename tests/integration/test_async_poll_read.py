"""The poll's read awaited on the event loop (PostgreSQL): the same row as the repository,
never a stale state, several reads in flight on few connections, and a connection the
database dropped replaced on the next read."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from patchgate.adapters.db.pg_poll_reads import AsyncPgDeviceAuthReader
from patchgate.bootstrap import make_async_device_auth_reader, make_device_auth_reader
from patchgate.services import ddi
from patchgate.services import devices as device_service
from tests.conftest import Env
from tests.factories import make_release

# The awaited reader exists on PostgreSQL only; these tests run there (and are reported as
# skipped, not passed, when PATCHGATE_TEST_POSTGRES is not set).
on_postgresql = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def pg_reader(env: Env) -> AsyncPgDeviceAuthReader:
    reader = make_async_device_auth_reader(env.app)
    assert isinstance(reader, AsyncPgDeviceAuthReader)
    return reader


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sqlite_polls_read_inline_without_an_awaited_reader(env: Env) -> None:
    assert make_async_device_auth_reader(env.app) is None


@on_postgresql
def test_the_awaited_reader_reads_what_the_repository_reads_and_never_a_stale_state(
    env: Env,
) -> None:
    reader = pg_reader(env)
    release = make_release(env, "3.0.0", {"a.bin": b"x"})
    other = make_release(env, "3.0.1", {"b.bin": b"y"})
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
        assert second is not None and second.state_version == first.state_version
        assert second.action_status == "offered" and second.action_release_id == release.id
        assert second == sync.by_token("DEFAULT", token_hash)
        # So is a change that raises the state version (a withdrawal).
        assert env.cli("release", "withdraw", str(other.id), "--reason", "r").code == 0
        third = await reader.by_token("DEFAULT", token_hash)
        assert third is not None and third.state_version > second.state_version
        assert await reader.by_controller("DEFAULT", "dev-r") == sync.by_controller(
            "DEFAULT", "dev-r"
        )
        unknown = await reader.by_controller("DEFAULT", "nobody")
        assert unknown is not None and unknown.device_id is None and unknown.tenant == "DEFAULT"
        assert await reader.by_controller("NOPE", "dev-r") is None

    asyncio.run(scenario())


@on_postgresql
def test_polls_in_flight_together_share_one_statement_each_answered_with_its_own_row(
    env: Env,
) -> None:
    reader = pg_reader(env)
    ids = [f"dev-{i}" for i in range(40)]
    rows = [device_service.DeviceRow(cid, (), "hw", "1.0") for cid in ids]
    device_service.import_devices(env.ctx, rows, actor="t")
    made = device_service.add_device(env.ctx, "dev-t", actor="test")
    token_hash = ddi.hash_token(made.token)
    # Keys a poll's path may carry but no device has: array syntax, quotes, a backslash,
    # spaces, non-ASCII, a NUL and a lone surrogate (PostgreSQL takes neither as text).
    odd = ["a,b", "{x}", 'say "hi"', "back\\slash", "two words", "grüße", "nul\x00", "\udc80"]

    async def scenario() -> None:
        lookups = [reader.by_controller("DEFAULT", cid) for cid in ids]
        lookups += [reader.by_controller("DEFAULT", key) for key in odd]
        lookups += [reader.by_token("DEFAULT", token_hash), reader.by_token("DEFAULT", "0" * 64)]
        lookups += [reader.by_token("DEFAULT", "nul\x00"), reader.by_controller("NO\x00PE", "x")]
        rows = await asyncio.gather(*lookups)
        known, unknown, tokens = rows[: len(ids)], rows[len(ids) : -4], rows[-4:]
        assert [r.controller_id if r else None for r in known] == ids
        assert all(r is not None and r.device_id is None for r in unknown)
        assert all(r is not None and r.tenant == "DEFAULT" for r in unknown)
        assert tokens[0] is not None and tokens[0].controller_id == "dev-t"
        assert tokens[1:] == [None, None, None]
        # 52 lookups, of which 50 needed the database: the first went alone, the others
        # waited for it and were answered together, one statement per kind of lookup.
        assert reader.lookups == 50 and reader.reads <= 4, (reader.reads, reader.lookups)

        # A poll whose request is cancelled while it waits leaves the others' answers whole.
        first = asyncio.ensure_future(reader.by_controller("DEFAULT", "dev-1"))
        doomed = asyncio.ensure_future(reader.by_controller("DEFAULT", "dev-2"))
        last = asyncio.ensure_future(reader.by_controller("DEFAULT", "dev-3"))
        await asyncio.sleep(0)
        doomed.cancel()
        done = await asyncio.gather(first, last)
        assert [r.controller_id if r else None for r in done] == ["dev-1", "dev-3"]
        assert doomed.cancelled()

        # The loop shutting down, its reader cancelled: the polls waiting for a read get
        # an error, not silence, and the next read starts afresh.
        waiting = asyncio.ensure_future(reader.by_controller("DEFAULT", "dev-4"))
        await asyncio.sleep(0)
        (read,) = reader._tasks
        read.cancel()
        with pytest.raises(RuntimeError, match="cancelled"):
            await waiting
        again = await reader.by_controller("DEFAULT", "dev-4")
        assert again is not None and again.controller_id == "dev-4"

    asyncio.run(scenario())


@on_postgresql
def test_many_awaited_reads_share_a_few_connections_and_survive_a_dropped_one(
    env: Env,
) -> None:
    reader = pg_reader(env)
    ids = [f"dev-{i}" for i in range(30)]
    rows = [device_service.DeviceRow(cid, (), "hw", "1.0") for cid in ids]
    device_service.import_devices(env.ctx, rows, actor="t")
    url = env.app.engines.read.url.set(drivername="postgresql").render_as_string(False)
    statement = "%WITH ORDINALITY AS k%"

    def backends() -> int:
        with psycopg.connect(url, autocommit=True) as admin:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND query LIKE %s",
                [statement],
            ).fetchone()
            return int(row[0]) if row else 0

    def drop_all() -> None:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND query LIKE %s",
                [statement],
            )

    async def scenario() -> None:
        rows = await asyncio.gather(*(reader.by_controller("DEFAULT", cid) for cid in ids * 3))
        assert [r.controller_id if r else None for r in rows] == ids * 3
        assert 1 <= backends() <= 2  # reads in flight at once, never more than the limit
        drop_all()
        deadline = time.monotonic() + 10
        while backends() and time.monotonic() < deadline:  # termination is asynchronous
            time.sleep(0.05)
        assert backends() == 0
        again = await asyncio.gather(*(reader.by_controller("DEFAULT", cid) for cid in ids))
        assert [r.controller_id if r else None for r in again] == ids

    asyncio.run(scenario())
