"""The audit chain in a real database: tampering done directly in SQL is caught."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from patchgate.services import access, audit
from tests.conftest import Env


def add_entries(env: Env, n: int) -> None:
    for i in range(n):
        access.create_token(env.ctx, name=f"t{i}", role="viewer", actor="cli:alice")


def sql(env: Env, statement: str, **params: object) -> None:
    with env.app.engines.write.begin() as conn:
        conn.execute(text(statement), params)


def verify_cli(env: Env) -> tuple[int, str]:
    result = env.cli("audit", "verify")
    return result.code, result.stdout + result.stderr


def test_an_untouched_log_verifies(env: Env) -> None:
    add_entries(env, 3)
    code, out = verify_cli(env)
    assert code == 0, out
    assert "intact" in out


def test_every_mutating_action_is_recorded_with_its_actor(env: Env) -> None:
    add_entries(env, 2)
    entries = audit.entries(env.ctx, limit=10)
    assert [e.action for e in entries[:2]] == ["token.create", "token.create"]
    assert {e.actor for e in entries[:2]} == {"cli:alice"}


def test_an_edited_entry_is_named(env: Env) -> None:
    add_entries(env, 4)
    sql(env, "UPDATE audit_entries SET actor = 'cli:mallory' WHERE seq = 4")
    code, out = verify_cli(env)
    assert code == 2
    assert "entry 4 was edited" in out


def test_a_deleted_entry_is_named(env: Env) -> None:
    add_entries(env, 4)
    sql(env, "DELETE FROM audit_entries WHERE seq = 3")
    code, out = verify_cli(env)
    assert code == 2
    assert "entry 3 is missing" in out


def test_reordered_entries_are_caught(env: Env) -> None:
    add_entries(env, 4)
    sql(env, "UPDATE audit_entries SET seq = -1 WHERE seq = 3")
    sql(env, "UPDATE audit_entries SET seq = 3 WHERE seq = 4")
    sql(env, "UPDATE audit_entries SET seq = 4 WHERE seq = -1")
    code, out = verify_cli(env)
    assert code == 2
    assert "entry 3" in out


def test_a_truncated_tail_is_caught(env: Env) -> None:
    add_entries(env, 4)
    # Remove the last two entries and their checkpoints from the database; the journal
    # file outside it still vouches for the old head.
    sql(env, "DELETE FROM audit_entries WHERE seq > 3")
    sql(env, "DELETE FROM audit_checkpoints WHERE seq > 3")
    sql(env, "UPDATE audit_head SET seq = 3")
    code, out = verify_cli(env)
    assert code == 2
    assert "truncated" in out


def test_a_recomputed_chain_is_caught(env: Env) -> None:
    from patchgate.domain.audit import entry_hash

    add_entries(env, 4)
    records = list(reversed(audit.entries(env.ctx, limit=100)))
    prev = records[0].prev_hash
    # Forge entry 2's actor and recompute every later hash, as someone with only the
    # database could; the signed checkpoints cannot be recomputed without the key.
    for record in records:
        actor = "cli:mallory" if record.seq == 2 else record.actor
        digest = entry_hash(
            seq=record.seq,
            at=record.at,
            actor=actor,
            action=record.action,
            subject=record.subject,
            details=record.details,
            prev_hash=prev,
        )
        sql(
            env,
            "UPDATE audit_entries SET actor = :a, prev_hash = :p, hash = :h WHERE seq = :s",
            a=actor,
            p=prev,
            h=digest,
            s=record.seq,
        )
        prev = digest
    code, out = verify_cli(env)
    assert code == 2
    assert "checkpoint" in out and "recomputed" in out


def test_an_audit_entry_alone_leaves_the_state_version_alone(env: Env) -> None:
    """Only changes a process caches (campaign, release, floor, policy) raise the version;
    an audited token or triage costs no process a snapshot rebuild."""
    from patchgate.services import state

    before = state.current_version(env.ctx)
    with env.ctx.uow() as uow:
        audit.record(env.ctx, uow, actor="t", action="x.y", subject="s")
        uow.commit()
    access.create_token(env.ctx, name="n", role="viewer", actor="t")
    assert state.current_version(env.ctx) == before


@pytest.mark.parametrize("role", ["viewer", "admin"])
def test_tokens_are_stored_hashed(env: Env, role: str) -> None:
    _, token = access.create_token(env.ctx, name="x", role=role, actor="t")
    with env.app.engines.read.connect() as conn:
        stored = [r[0] for r in conn.execute(text("SELECT token_hash FROM api_tokens"))]
    assert token not in stored
    assert access.hash_token(token) in stored
