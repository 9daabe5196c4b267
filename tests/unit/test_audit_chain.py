from __future__ import annotations

import dataclasses

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from patchgate.adapters.keys import Ed25519Signer
from patchgate.domain.audit import (
    GENESIS_HASH,
    AuditRecord,
    Checkpoint,
    checkpoint_message,
    entry_hash,
    verify_chain,
)

KEY = Ed25519PrivateKey.generate()
SIGNER = Ed25519Signer(KEY, KEY.public_key())


def build_chain(n: int) -> tuple[list[AuditRecord], list[Checkpoint]]:
    records: list[AuditRecord] = []
    prev = GENESIS_HASH
    for seq in range(1, n + 1):
        fields = {
            "seq": seq,
            "at": f"2026-01-01T00:00:{seq:02d}Z",
            "actor": "cli:alice",
            "action": "campaign.halt",
            "subject": f"campaign:{seq}",
            "details": {"n": seq},
        }
        digest = entry_hash(**fields, prev_hash=prev)  # type: ignore[arg-type]
        records.append(AuditRecord(**fields, prev_hash=prev, hash=digest))  # type: ignore[arg-type]
        prev = digest
    last = records[-1]
    cps = [
        Checkpoint(
            last.seq, last.hash, last.at, SIGNER.sign(checkpoint_message(last.seq, last.hash))
        )
    ]
    return records, cps


def test_an_intact_chain_verifies() -> None:
    records, cps = build_chain(5)
    assert verify_chain(records, cps, SIGNER.verify) is None


def test_an_edited_entry_is_named() -> None:
    records, cps = build_chain(5)
    records[2] = dataclasses.replace(records[2], actor="cli:mallory")
    finding = verify_chain(records, cps, SIGNER.verify)
    assert finding is not None and (finding.seq, finding.kind) == (3, "edited")


def test_a_removed_entry_is_named() -> None:
    records, cps = build_chain(5)
    del records[1]
    finding = verify_chain(records, cps, SIGNER.verify)
    assert finding is not None and (finding.seq, finding.kind) == (2, "removed")


def test_reordered_entries_are_named() -> None:
    records, cps = build_chain(5)
    a, b = records[1], records[2]
    records[1] = dataclasses.replace(b, seq=2)
    records[2] = dataclasses.replace(a, seq=3)
    finding = verify_chain(records, cps, SIGNER.verify)
    assert finding is not None and finding.seq == 2


def test_a_truncated_tail_is_caught_by_the_checkpoint() -> None:
    records, cps = build_chain(5)
    finding = verify_chain(records[:3], cps, SIGNER.verify)
    assert finding is not None and finding.kind == "truncated"


def test_a_recomputed_chain_is_caught_by_the_checkpoint() -> None:
    records, cps = build_chain(5)
    # Rewrite entry 2 and recompute every hash after it, as an attacker with the database
    # (but not the checkpoint key) could.
    prev = records[0].hash
    forged: list[AuditRecord] = [records[0]]
    for r in records[1:]:
        details = {"n": 99} if r.seq == 2 else r.details
        digest = entry_hash(
            seq=r.seq,
            at=r.at,
            actor=r.actor,
            action=r.action,
            subject=r.subject,
            details=details,
            prev_hash=prev,
        )
        forged.append(dataclasses.replace(r, details=details, prev_hash=prev, hash=digest))
        prev = digest
    finding = verify_chain(forged, cps, SIGNER.verify)
    assert finding is not None and finding.kind == "checkpoint"


def test_a_forged_checkpoint_signature_is_refused() -> None:
    records, cps = build_chain(3)
    bad = dataclasses.replace(cps[0], signature="00" * 64)
    finding = verify_chain(records, [bad], SIGNER.verify)
    assert finding is not None and finding.kind == "checkpoint"
