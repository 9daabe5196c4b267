"""Management API tokens as JSON (``/api/v1/tokens`` and ``token … --json``) and text.
The token itself appears once, in the answer that creates it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from patchgate.domain.clock import rfc3339
from patchgate.entrypoints.presenters.text import table
from patchgate.services.ports import TokenRecord

__all__ = ["created_json", "token_json", "tokens_json", "tokens_text"]


def token_json(record: TokenRecord) -> dict[str, Any]:
    """A token's ``name``, ``role``, ``created_at`` and ``revoked_at`` (never the token)."""
    return {
        "name": record.name,
        "role": record.role,
        "created_at": rfc3339(record.created_at),
        "revoked_at": rfc3339(record.revoked_at),
    }


def created_json(record: TokenRecord, token: str) -> dict[str, Any]:
    """A token just created: ``name``, ``role`` and the ``token`` (shown this once)."""
    return {"name": record.name, "role": record.role, "token": token}


def tokens_json(records: Iterable[TokenRecord]) -> dict[str, Any]:
    """``{"tokens": […]}``."""
    return {"tokens": [token_json(r) for r in records]}


def tokens_text(records: Sequence[TokenRecord]) -> list[str]:
    """``token list``: name, role and state, columns lined up."""
    if not records:
        return ["no tokens"]
    rows = [
        (
            r.name,
            r.role,
            f"revoked {rfc3339(r.revoked_at)}" if r.revoked_at else "active",
            r.created_at,
        )
        for r in records
    ]
    return table(("NAME", "ROLE", "STATE", "CREATED"), rows)
