"""Recording and verifying the tamper-evident audit log."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from patchgate.domain import audit as chain
from patchgate.domain.clock import rfc3339
from patchgate.services.context import Context
from patchgate.services.unit_of_work import UnitOfWork


def record(
    ctx: Context,
    uow: UnitOfWork,
    *,
    actor: str,
    action: str,
    subject: str,
    details: Mapping[str, Any] | None = None,
) -> chain.AuditRecord:
    """Append an entry in the caller's transaction; it commits or rolls back with the
    change it records. (It does not raise the state version: a command whose change a
    server process caches does so itself, ``services.state.changed``.) Each append also stores a
    signed checkpoint of the new head, so a truncated tail or a recomputed chain shows.
    """
    now = ctx.clock()
    seq, prev_hash = uow.audit.lock_head()
    body = dict(details or {})
    at = rfc3339(now) or ""
    content: dict[str, Any] = {
        "seq": seq + 1,
        "at": at,
        "actor": actor,
        "action": action,
        "subject": subject,
        "details": body,
        "prev_hash": prev_hash,
    }
    digest = chain.entry_hash(**content)
    entry = chain.AuditRecord(**content, hash=digest)
    uow.audit.append(entry)
    checkpoint = chain.Checkpoint(
        seq=entry.seq,
        head_hash=digest,
        at=at,
        signature=ctx.audit_signer.sign(chain.checkpoint_message(entry.seq, digest)),
    )
    uow.audit.add_checkpoint(checkpoint)
    uow.after_commit(lambda: ctx.checkpoint_journal.append(checkpoint))
    return entry


def verify(
    ctx: Context, *, against: Sequence[chain.Checkpoint] = ()
) -> tuple[int, chain.Finding | None]:
    """Check the whole chain and every checkpoint (database, journal file, and
    ``against``: checkpoints kept elsewhere, such as a witness's copy).

    Returns the number of entries and the first finding, or None when intact. The head
    must be covered by a checkpoint; a damaged journal line is a finding, not a crash.
    """
    with ctx.read_uow() as uow:
        records = uow.audit.all()
        checkpoints = {(c.seq, c.head_hash, c.signature): c for c in uow.audit.checkpoints()}
    journal = ctx.checkpoint_journal.read()
    for cp in [*journal.checkpoints, *against]:
        checkpoints.setdefault((cp.seq, cp.head_hash, cp.signature), cp)
    finding = chain.verify_chain(records, checkpoints.values(), ctx.audit_signer.verify)
    if finding is None and journal.damaged:
        finding = chain.Finding(
            None,
            "journal",
            f"the checkpoint journal is damaged: {'; '.join(journal.damaged)} (the chain "
            "itself verifies; keep a copy, then remove the damaged lines)",
        )
    return len(records), finding


def latest_checkpoint(ctx: Context) -> chain.Checkpoint | None:
    """The checkpoint of the current head, to keep somewhere else."""
    with ctx.read_uow() as uow:
        found = list(uow.audit.checkpoints())
    return max(found, key=lambda c: c.seq) if found else None


def entries(
    ctx: Context,
    *,
    limit: int = 100,
    before_seq: int | None = None,
    subject: str | None = None,
    action_prefix: str | None = None,
) -> Sequence[chain.AuditRecord]:
    """Newest entries first."""
    with ctx.read_uow() as uow:
        return uow.audit.page(
            limit=limit, before_seq=before_seq, subject=subject, action_prefix=action_prefix
        )
