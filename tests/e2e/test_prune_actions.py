"""``patchgate db prune-actions``: the retention rule of docs/deploy.md ("Pruning action
history") on real actions made through DDI, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from patchgate.services import devices as device_service
from patchgate.services import retention
from patchgate.services.campaigns import commands
from patchgate.services.campaigns.options import CreateOptions
from tests.conftest import Env
from tests.e2e.test_campaigns import HW, Device
from tests.factories import assign, make_release
from tests.support import LiveServer


def _device(env: Env, server: LiveServer, cid: str, groups: list[str] | None = None) -> Device:
    token = device_service.add_device(
        env.ctx, cid, groups=groups or [], hardware=HW, version="1.0.0", actor="t"
    ).token
    return Device(server, cid, token)


def _exists(env: Env, action: int) -> bool:
    with env.ctx.read_uow() as uow:
        return uow.actions.get(action) is not None


def test_old_closed_history_goes_what_the_evidence_needs_stays(
    env: Env, server: LiveServer
) -> None:
    first = make_release(env, "1.1.0", {"a.bin": b"one"}, security_version=1)
    second = make_release(env, "1.2.0", {"b.bin": b"two"}, security_version=2)
    # Replaced: installed, then superseded by a later install on the same device.
    updated = _device(env, server, "upd")
    replaced = assign(env, "upd", first)
    updated.feedback(replaced, "closed", "success")
    installed = assign(env, "upd", second)
    updated.feedback(installed, "closed", "success")
    # Failed: closed, never installed.
    broken = _device(env, server, "err")
    failed = assign(env, "err", first)
    broken.feedback(failed, "closed", "failure")
    # Still open.
    _device(env, server, "open")
    still_open = assign(env, "open", first)
    # A closed action of a campaign that halted: the evidence of the halt.
    canary = _device(env, server, "canary", ["qa"])
    third = make_release(env, "1.3.0", {"c.bin": b"three"}, security_version=3)
    campaign = commands.create(env.ctx, third.id, CreateOptions(stages="qa,100"), actor="t")
    commands.start(env.ctx, campaign, actor="t")
    offered = canary.deployment()
    assert offered is not None
    canary.feedback(offered, "closed", "failure")
    commands.halt(env.ctx, campaign, reason="boot loop", actor="t")

    # Nothing is old yet.
    assert retention.prune_actions(env.ctx, timedelta(days=30), actor="t").actions == 0
    later = dataclasses.replace(env.ctx, clock=lambda: env.ctx.clock() + timedelta(days=31))
    counted = retention.prune_actions(later, timedelta(days=30), actor="t", dry_run=True)
    assert counted.actions == 2 and _exists(env, replaced) and _exists(env, failed)
    done = retention.prune_actions(later, timedelta(days=30), actor="t", batch=1)
    assert done.actions == 2 and done.batches == 2
    assert done.by_campaign == {"manual": {"error": 1, "finished": 1}}
    assert not _exists(env, replaced) and not _exists(env, failed)
    for kept in (installed, still_open, offered):
        assert _exists(env, kept), kept
    # Each batch is in the audit log, and the chain still verifies.
    entries = env.cli("audit", "list", "--json").json()
    pruned = [e for e in _entries(entries) if e["action"] == "actions.pruned"]
    assert len(pruned) == 2 and sum(e["details"]["actions"] for e in pruned) == 2
    assert env.cli("audit", "verify").code == 0
    # Pruned history no longer counts, and the device pages still answer.
    assert env.cli("device", "show", "upd", "--json").code == 0


def _entries(listed: dict) -> list[dict]:  # type: ignore[type-arg]
    for key in ("entries", "items"):
        if key in listed:
            return list(listed[key])
    raise AssertionError(listed)


def test_bad_retention_exits_2_with_one_line(env: Env) -> None:
    for bad in ("1h", "forever"):
        result = env.cli("db", "prune-actions", "--older-than", bad)
        assert result.code == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    result = env.cli("db", "prune-actions", "--older-than", "400d", "--json")
    assert result.code == 0, result.stderr
    assert result.json()["actions"] == 0
