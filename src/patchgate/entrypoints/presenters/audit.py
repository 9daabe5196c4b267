"""Audit log entries as JSON (``GET /api/v1/audit`` and ``audit list --json``) and as an
aligned text table."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from patchgate.domain.audit import AuditRecord
from patchgate.entrypoints.presenters.text import table

__all__ = ["AUDIT_COLUMNS", "entries_json", "entries_text", "entry_json"]

AUDIT_COLUMNS = ("SEQ", "AT", "ACTOR", "ACTION", "SUBJECT")


def entry_json(entry: AuditRecord) -> dict[str, Any]:
    """One entry: ``seq``, ``at``, ``actor``, ``action``, ``subject``, ``details``, ``hash``."""
    return {
        "seq": entry.seq,
        "at": entry.at,
        "actor": entry.actor,
        "action": entry.action,
        "subject": entry.subject,
        "details": dict(entry.details),
        "hash": entry.hash,
    }


def entries_json(entries: Iterable[AuditRecord]) -> dict[str, Any]:
    """``{"entries": […]}``, newest first as given."""
    return {"entries": [entry_json(e) for e in entries]}


def entries_text(entries: Sequence[AuditRecord]) -> list[str]:
    """``audit list``: one line per entry, columns lined up."""
    if not entries:
        return ["no audit entries"]
    rows = [(e.seq, e.at, e.actor, e.action, e.subject) for e in entries]
    return table(AUDIT_COLUMNS, rows)
