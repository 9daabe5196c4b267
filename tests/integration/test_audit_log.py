"""The audit chain in a real database: tampering done directly in SQL is caught."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from patchgate.services import access, audit
from tests.asgi_client import call
from tests.conftest import Env
from tests.integration.test_campaign_notices import Receiver
from tests.support import run_cli


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


# --- damaged journal, missing checkpoints, truncation against a copy kept elsewhere -------


def journal(env: Env) -> Path:
    return env.data_dir / "audit-checkpoints.jsonl"


def head_seq(env: Env) -> int:
    return audit.entries(env.ctx, limit=1)[0].seq


def truncate_to(env: Env, seq: int) -> None:
    """What an attacker who can write the data folder does: cut the log, its checkpoints
    and the journal back to entry ``seq`` together."""
    with env.app.engines.write.begin() as conn:
        conn.execute(text("DELETE FROM audit_entries WHERE seq > :s"), {"s": seq})
        conn.execute(text("DELETE FROM audit_checkpoints WHERE seq > :s"), {"s": seq})
        row = conn.execute(text("SELECT hash FROM audit_entries WHERE seq = :s"), {"s": seq})
        head = {"s": seq, "h": row.scalar_one()}
        conn.execute(text("UPDATE audit_head SET seq = :s, hash = :h"), head)
    lines = journal(env).read_text().splitlines()
    kept = [line for line in lines if json.loads(line)["seq"] <= seq]
    journal(env).write_text("".join(f"{line}\n" for line in kept))


def test_a_torn_journal_line_is_reported_not_a_crash_on_the_cli_and_the_api(env: Env) -> None:
    add_entries(env, 2)
    with journal(env).open("a") as handle:
        handle.write('{"seq": 9, "head_hash": "ab')  # a write cut short
    code, out = verify_cli(env)
    assert code == 2, out
    assert "journal is damaged" in out and "Traceback" not in out
    assert len(out.strip().splitlines()) == 1
    from patchgate.entrypoints.http import create_app

    asgi = create_app(env.app)
    try:
        answer = call(asgi, "GET", "/api/v1/audit/verify", headers=bearer(env))
    finally:
        asgi.runtime.close()
    assert answer.status == 200, answer.body
    body = json.loads(answer.body)
    assert body["ok"] is False and body["finding"]["kind"] == "journal"


def bearer(env: Env) -> dict[str, str]:
    return {"Authorization": f"Bearer {env.admin_token}"}


def test_a_head_no_checkpoint_covers_fails_verification(env: Env) -> None:
    add_entries(env, 2)
    sql(env, "DELETE FROM audit_checkpoints")
    journal(env).unlink()
    code, out = verify_cli(env)
    assert code == 2, out
    assert f"no signed checkpoint covers the last entry {head_seq(env)}" in out


def test_truncation_of_log_checkpoints_and_journal_together_is_caught_against_a_kept_checkpoint(
    env: Env, tmp_path: Path
) -> None:
    add_entries(env, 2)
    cut = head_seq(env)
    for name in ("late-1", "late-2", "late-3"):
        access.create_token(env.ctx, name=name, role="viewer", actor="cli:alice")
    kept = env.cli("audit", "checkpoint")
    assert kept.code == 0, kept.stderr
    elsewhere = tmp_path / "witness-copy.json"
    elsewhere.write_text(kept.stdout)
    truncate_to(env, cut)
    assert verify_cli(env)[0] == 0  # nothing left in the data folder shows it
    result = env.cli("audit", "verify", "--against", str(elsewhere))
    assert result.code == 2, result.stdout
    assert "truncated" in result.stderr
    # A forged copy proves nothing: its signature is not the audit key's.
    forged = json.loads(kept.stdout) | {"signature": "00" * 64}
    elsewhere.write_text(json.dumps(forged))
    assert env.cli("audit", "verify", "--against", str(elsewhere)).code == 2


def test_each_checkpoint_is_shipped_to_the_witness_and_checks_the_chain_later(
    env: Env, tmp_path: Path
) -> None:
    witness = Receiver(failures=0)
    try:
        hooks = {**env.vars, "PATCHGATE_AUDIT_WITNESS": witness.url}
        for name in ("w1", "w2"):
            result = run_cli(["token", "create", name, "--role", "viewer"], hooks)
            assert result.code == 0, result.stderr
        deadline = time.monotonic() + 20
        while len(witness.bodies) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        witness.httpd.shutdown()
    shipped = [body["checkpoint"] for body in witness.bodies]
    assert {body["event"] for body in witness.bodies} == {"audit.checkpoint"}
    assert max(cp["seq"] for cp in shipped) == head_seq(env)
    copy = tmp_path / "witness.jsonl"
    copy.write_text("".join(json.dumps(cp) + "\n" for cp in shipped))
    assert env.cli("audit", "verify", "--against", str(copy)).code == 0
    truncate_to(env, head_seq(env) - 1)
    assert env.cli("audit", "verify", "--against", str(copy)).code == 2
