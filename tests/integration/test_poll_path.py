"""The poll of a known device: one read, no write, and every halt obeyed from its commit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from patchgate.bootstrap import make_device_auth_reader
from patchgate.domain.campaigns import Decision, Offer, Snapshot
from patchgate.domain.errors import NotFound, Unauthorized
from patchgate.services import ddi, releases
from patchgate.services import devices as device_service
from tests.conftest import Env
from tests.factories import make_release


@contextmanager
def statements(env: Env) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        seen.append(sql.strip().split()[0].upper())

    engines = {env.app.engines.read, env.app.engines.write}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


def test_polling_a_known_device_reads_one_statement_and_writes_nothing(env: Env) -> None:
    made = device_service.add_device(env.ctx, "dev-1", groups=["qa"], actor="test")
    poller = ddi.Poller(env.ctx)
    auth = f"TargetToken {made.token}"
    poller.poll(ddi.authenticate(env.ctx, "DEFAULT", "dev-1", auth))  # warm the snapshot
    for _ in range(3):
        with statements(env) as seen:
            poller.poll(ddi.authenticate(env.ctx, "DEFAULT", "dev-1", auth))
        assert [s for s in seen if s not in ("BEGIN", "ROLLBACK", "COMMIT")] == ["SELECT"]
    assert poller.last_seen.flush(env.ctx) == 1
    assert device_service.show_device(env.ctx, "dev-1").last_seen is not None


def test_last_seen_is_written_behind_in_one_statement_with_each_devices_own_time(
    env: Env,
) -> None:
    ids = [f"dev-{i}" for i in range(300)]
    rows = [device_service.DeviceRow(cid, (), "hw", "1.0") for cid in ids]
    device_service.import_devices(env.ctx, rows, actor="t")
    rows = {cid: make_device_auth_reader(env.app).by_controller("DEFAULT", cid) for cid in ids}
    buffer = ddi.LastSeenBuffer()
    base = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    for i, cid in enumerate(ids):
        row = rows[cid]
        assert row is not None and row.device_id is not None
        buffer.note(row.device_id, base + timedelta(seconds=i, microseconds=i))
    with statements(env) as seen:
        assert buffer.flush(env.ctx) == len(ids)
    writes = [s for s in seen if s not in ("BEGIN", "ROLLBACK", "COMMIT", "SELECT")]
    # PostgreSQL: one UPDATE for the batch; elsewhere one executemany of the UPDATE.
    assert writes == ["UPDATE"]
    for i, cid in enumerate(ids):
        shown = device_service.show_device(env.ctx, cid).last_seen
        assert shown == base + timedelta(seconds=i, microseconds=i), cid
    assert buffer.flush(env.ctx) == 0  # nothing noted since


def test_a_halt_committed_elsewhere_is_obeyed_by_the_next_poll(env: Env) -> None:
    release = make_release(env, "2.0.0", {"a.bin": b"payload"})
    switch = make_release(env, "2.0.1", {"b.bin": b"other"})
    tokens = {
        cid: device_service.add_device(env.ctx, cid, actor="test").token
        for cid in ("dev-a", "dev-b")
    }

    halted_at: dict[int, bool] = {}

    def load(version: int) -> Snapshot:
        # The campaign engine's loader: here "halted" is whether the switch release is
        # withdrawn (a change that raises the state version, as a halt does).
        halted_at[version] = releases.get_release(env.ctx, switch.id).state == "withdrawn"
        return Snapshot.build(version, ())

    def decide(row: ddi.DeviceAuthRow, snapshot: Snapshot, now: datetime) -> Decision:
        if halted_at[snapshot.state_version] or row.action_id is not None:
            return Decision(None, "halted")
        offer = Offer(7, release.id, release.version, "rollout", 0, "forced", "forced", False, None)
        return Decision(offer, "offered")

    # The server's reader: one prepared statement on a connection kept by the polling thread.
    poller = ddi.Poller(env.ctx, reader=make_device_auth_reader(env.app, dedicated=True))
    poller.plug(decide, load)

    def poll(cid: str) -> set[str]:
        caller = ddi.authenticate(env.ctx, "DEFAULT", cid, f"TargetToken {tokens[cid]}")
        return set(ddi.rules.poll_links(poller.poll(caller)))

    assert "deploymentBase" in poll("dev-a")
    rebuilds = poller.snapshots.rebuilds
    withdrawn = env.cli("release", "withdraw", str(switch.id), "--reason", "halt")
    assert withdrawn.code == 0  # another process commits
    assert "deploymentBase" not in poll("dev-b")
    assert poller.snapshots.rebuilds == rebuilds + 1
    assert "deploymentBase" not in poll("dev-b")
    assert poller.snapshots.rebuilds == rebuilds + 1  # nothing moved: no rebuild
    # The action offered before the halt is the device's open action; the engine cancels it.
    actions = ddi.action_service.device_actions(env.ctx, "dev-a")
    assert [(a.campaign_id, a.source) for a in actions] == [(7, "campaign")]


def test_the_prepared_reader_reads_what_the_repository_reads_and_never_a_stale_state(
    env: Env,
) -> None:
    release = make_release(env, "3.0.0", {"a.bin": b"x"})
    made = device_service.add_device(env.ctx, "dev-r", groups=["qa"], actor="test")
    reader = make_device_auth_reader(env.app, dedicated=True)
    pooled = make_device_auth_reader(env.app)
    token_hash = ddi.hash_token(made.token)

    def through_repository() -> object:
        with env.ctx.read_uow() as uow:
            return uow.devices.auth_by_token("DEFAULT", token_hash)

    first = reader.by_token("DEFAULT", token_hash)
    assert first == through_repository() == pooled.by_token("DEFAULT", token_hash)
    assert first is not None and first.groups == ("qa",) and first.action_id is None
    assert reader.by_token("OTHER", token_hash) is None
    # Changes committed elsewhere after the reader's last read are seen by its next one.
    assert env.cli("device", "assign", "dev-r", str(release.id)).code == 0
    second = reader.by_token("DEFAULT", token_hash)
    assert second is not None and second.state_version == first.state_version
    assert second.action_status == "offered" and second.action_release_id == release.id
    assert second == through_repository()
    # A change that raises the state version (a withdrawal) is seen by the next read too.
    other = make_release(env, "3.0.1", {"b.bin": b"y"})
    assert env.cli("release", "withdraw", str(other.id), "--reason", "r").code == 0
    third = reader.by_token("DEFAULT", token_hash)
    assert third is not None and third.state_version > second.state_version
    by_id = reader.by_controller("DEFAULT", "dev-r")
    assert by_id is not None and by_id.device_id == second.device_id
    unknown = reader.by_controller("DEFAULT", "nobody")
    assert unknown is not None and unknown.device_id is None and unknown.tenant == "DEFAULT"
    assert reader.by_controller("NOPE", "dev-r") is None


def test_import_provisions_every_device_or_none(env: Env, tmp_path: Any) -> None:
    good = tmp_path / "good.csv"
    good.write_text("id,groups,hardware,version\nd-1,qa;internal,hw-1,1.0\nd-2,,hw-1,\n")
    result = env.cli("device", "import", str(good), "--json")
    assert result.code == 0, result.stderr
    devices = result.json()["devices"]
    assert [d["id"] for d in devices] == ["d-1", "d-2"] and all(
        len(d["token"]) == 32 for d in devices
    )
    shown = env.cli("device", "show", "d-1", "--json").json()
    assert shown["groups"] == ["internal", "qa"] and shown["hardware"] == "hw-1"
    assert shown["actions"] == [] and shown["health"] == []  # as GET /api/v1/devices/{id}
    assert {"id", "groups", "hardware", "installed_version", "last_seen"} <= set(shown)
    bad = tmp_path / "bad.csv"
    bad.write_text("d-3,qa,hw,1\nd 4,qa,hw,1\nd-1,,,\n")
    failed = env.cli("device", "import", str(bad))
    assert failed.code == 2 and "d 4" in failed.stderr and "Traceback" not in failed.stderr
    assert env.cli("device", "show", "d-3").code == 2
    again = tmp_path / "again.csv"
    again.write_text("d-5\nd-1\n")
    assert env.cli("device", "import", str(again)).code == 2
    assert env.cli("device", "show", "d-5").code == 2


def test_device_add_prints_the_token_once_and_refuses_duplicates(env: Env) -> None:
    first = env.cli("device", "add", "dev-x", "--group", "canary-optin", "--json")
    assert first.code == 0 and len(first.json()["token"]) == 32
    assert "token" not in env.cli("device", "show", "dev-x", "--json").json()
    second = env.cli("device", "add", "dev-x")
    assert second.code == 2 and "already exists" in second.stderr
    assert env.cli("device", "add", "bad/id").code == 2
    assert env.cli("device", "tag", "dev-x", "qa", "--json").json()["groups"] == [
        "canary-optin",
        "qa",
    ]
    listed = env.cli("device", "list", "--json").json()["devices"]
    assert [d["id"] for d in listed] == ["dev-x"]


def test_tenants_are_isolated_even_for_the_same_controller_id(env: Env) -> None:
    with env.ctx.uow() as uow:
        uow.tenants.add("ACME", env.ctx.clock())
        uow.commit()
    release = make_release(env, "4.0.0", {"a.bin": b"y"})
    ours = device_service.add_device(env.ctx, "dev-1", actor="test")
    theirs = device_service.add_device(env.ctx, "dev-1", tenant="ACME", actor="test")
    action = ddi.action_service.assign(env.ctx, "dev-1", release.id, actor="test")
    reader = make_device_auth_reader(env.app, dedicated=True)
    ours_caller = ddi.authenticate(env.ctx, "DEFAULT", "dev-1", f"TargetToken {ours.token}", reader)
    theirs_caller = ddi.authenticate(
        env.ctx, "ACME", "dev-1", f"TargetToken {theirs.token}", reader
    )
    assert ours_caller.device_id != theirs_caller.device_id
    for tenant, token in (("ACME", ours.token), ("DEFAULT", theirs.token)):
        with pytest.raises(Unauthorized):
            ddi.authenticate(env.ctx, tenant, "dev-1", f"TargetToken {token}", reader)
    assert ddi.deployment(env.ctx, ours_caller, action.id).action.id == action.id
    with pytest.raises(NotFound):
        ddi.deployment(env.ctx, theirs_caller, action.id)
    feedback = ddi.Feedback(ddi.rules.Execution.CLOSED, ddi.rules.Finished.SUCCESS)
    with pytest.raises(NotFound):
        ddi.deployment_feedback(env.ctx, theirs_caller, action.id, feedback)
    assert ddi.action_service.get_action(env.ctx, action.id).action.status == "offered"


def test_the_servers_shutdown_stops_its_timers_and_writes_the_buffered_last_seen(
    env: Env,
) -> None:
    from patchgate.entrypoints.http import create_app

    asgi = create_app(env.app)
    rt = asgi.runtime
    assert rt.ddi_poller is not None and rt.campaign_timer is not None
    device_service.add_device(env.ctx, "dev-s", actor="test")
    row = make_device_auth_reader(env.app).by_controller("DEFAULT", "dev-s")
    assert row is not None and row.device_id is not None
    seen = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    rt.ddi_poller.last_seen.note(row.device_id, seen)

    async def lifespan() -> list[str]:
        inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        for message in ("lifespan.startup", "lifespan.shutdown"):
            inbox.put_nowait({"type": message})
        sent: list[str] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message["type"])

        await asgi({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, send)
        return sent

    # The lifespan reaches the app through the middleware and the DDI handler.
    assert asyncio.run(lifespan()) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert device_service.show_device(env.ctx, "dev-s").last_seen == seen
    thread = rt.campaign_timer._thread
    if thread is not None:
        thread.join(timeout=5)
        assert not thread.is_alive()
