"""The tamper-evident audit chain, as pure functions.

Each entry's hash covers its own content and the hash of the entry before it, so editing,
removing or reordering an entry breaks the chain from that point. A recomputed chain (an
attacker who rewrites every later hash) and a truncated tail are caught by checkpoints:
signatures over (sequence number, head hash) that the server makes with a key the database
does not hold.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class AuditRecord:
    """One entry of the chain as stored: content plus the two hashes that chain it."""

    seq: int
    at: str  # RFC 3339, part of the hashed content
    actor: str
    action: str
    subject: str
    details: Mapping[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement that the chain had ``head_hash`` as entry ``seq``."""

    seq: int
    head_hash: str
    at: str
    signature: str


def canonical(value: Any) -> bytes:
    """Canonical JSON (sorted keys, no spaces, UTF-8) so hashes do not depend on layout."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(
    *,
    seq: int,
    at: str,
    actor: str,
    action: str,
    subject: str,
    details: Mapping[str, Any],
    prev_hash: str,
) -> str:
    """SHA-256 over the previous hash and the canonical content of the entry."""
    content = canonical(
        {
            "seq": seq,
            "at": at,
            "actor": actor,
            "action": action,
            "subject": subject,
            "details": details,
        }
    )
    return hashlib.sha256(prev_hash.encode() + b"\n" + content).hexdigest()


def checkpoint_message(seq: int, head_hash: str) -> bytes:
    """The bytes a checkpoint signature covers."""
    return f"patchgate-audit-checkpoint\n{seq}\n{head_hash}".encode()


@dataclass(frozen=True)
class Finding:
    """The first place where stored evidence disagrees with the chain."""

    seq: int | None
    kind: str  # edited | removed | reordered | inserted | truncated | checkpoint
    message: str


def verify_chain(
    records: Sequence[AuditRecord],
    checkpoints: Iterable[Checkpoint],
    verify_signature: Callable[[bytes, str], bool],
) -> Finding | None:
    """Return the first problem in the chain, or None when it is intact.

    ``records`` are in stored sequence order. ``verify_signature(message, signature)``
    checks a checkpoint signature with the audit public key.
    """
    by_hash = {r.hash: r for r in records}
    expected_prev = GENESIS_HASH
    expected_seq = 1
    for record in records:
        if record.seq > expected_seq:
            return Finding(
                expected_seq,
                "removed",
                f"entry {expected_seq} is missing: the chain jumps from "
                f"{expected_seq - 1} to {record.seq}",
            )
        if record.seq < expected_seq:
            return Finding(record.seq, "inserted", f"entry {record.seq} appears twice")
        recomputed = entry_hash(
            seq=record.seq,
            at=record.at,
            actor=record.actor,
            action=record.action,
            subject=record.subject,
            details=record.details,
            prev_hash=record.prev_hash,
        )
        if recomputed != record.hash:
            return Finding(
                record.seq,
                "edited",
                f"entry {record.seq} was edited: its content no longer matches its hash",
            )
        if record.prev_hash != expected_prev:
            moved = by_hash.get(record.prev_hash)
            if moved is not None:
                return Finding(
                    record.seq,
                    "reordered",
                    f"entry {record.seq} was reordered: it follows entry {moved.seq} "
                    f"in the chain, not entry {record.seq - 1}",
                )
            return Finding(
                record.seq,
                "removed",
                f"entry {record.seq} does not follow entry {record.seq - 1}: "
                "an entry before it was removed or replaced",
            )
        expected_prev = record.hash
        expected_seq = record.seq + 1
    last_seq = expected_seq - 1
    hash_at = {r.seq: r.hash for r in records}
    checkpoints = list(checkpoints)
    for cp in sorted(checkpoints, key=lambda c: c.seq):
        if not verify_signature(checkpoint_message(cp.seq, cp.head_hash), cp.signature):
            return Finding(
                cp.seq, "checkpoint", f"checkpoint at entry {cp.seq} is not signed by the audit key"
            )
        if cp.seq > last_seq:
            return Finding(
                cp.seq,
                "truncated",
                f"the chain ends at entry {last_seq} but a signed checkpoint vouches for "
                f"entry {cp.seq}: the tail was truncated",
            )
        if hash_at.get(cp.seq) != cp.head_hash:
            return Finding(
                cp.seq,
                "checkpoint",
                f"checkpoint at entry {cp.seq} no longer matches: the chain was recomputed",
            )
    if records and not any(cp.seq == last_seq for cp in checkpoints):
        # Every append stores a checkpoint of its head: a head without one was written
        # around patchgate, or its checkpoints were removed with the tail after it.
        return Finding(
            last_seq,
            "uncovered",
            f"no signed checkpoint covers the last entry {last_seq}: entries were added "
            "outside patchgate or the checkpoints were removed",
        )
    return None


def parse_checkpoints(text: str) -> tuple[list[Checkpoint], list[str]]:
    """Checkpoints from a journal (one JSON object a line) or a JSON object or list of
    them (a copy kept elsewhere); the second list describes each unreadable line."""
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    if isinstance(whole, dict | list):
        items = whole if isinstance(whole, list) else [whole]
        lines = [(i + 1, item) for i, item in enumerate(items)]
    else:
        lines = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    lines.append((number, json.loads(line)))
                except ValueError:
                    lines.append((number, None))
    found: list[Checkpoint] = []
    damaged: list[str] = []
    for number, item in lines:
        checkpoint = _checkpoint(item)
        if checkpoint is None:
            damaged.append(f"line {number} is not a checkpoint (torn or damaged)")
        else:
            found.append(checkpoint)
    return found, damaged


def _checkpoint(item: Any) -> Checkpoint | None:
    if not isinstance(item, dict):
        return None
    seq = item.get("seq")
    texts = [item.get(k) for k in ("head_hash", "at", "signature")]
    if isinstance(seq, bool) or not isinstance(seq, int):
        return None
    head, at, signature = (t if isinstance(t, str) else None for t in texts)
    if head is None or at is None or signature is None:
        return None
    return Checkpoint(seq=seq, head_hash=head, at=at, signature=signature)
