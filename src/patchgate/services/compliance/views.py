"""Read models of compliance evidence (frozen dataclasses) and their one JSON form: the
checklist (``checklist.view``), a product's support statement (``support.view``) and what
a technical file's export wrote (``techfile.export``). The presenter imports these only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from patchgate.domain import checklist as rules
from patchgate.domain.clock import rfc3339


@dataclass(frozen=True)
class ChecklistView:
    """The six items judged now (of one product, or of all of the policy's)."""

    items: tuple[rules.Item, ...]
    product: str | None

    @property
    def passed(self) -> int:
        return sum(1 for i in self.items if i.state == rules.PASS)

    def to_json(self) -> dict[str, Any]:
        """``report checklist --json`` and ``GET /api/v1/compliance/checklist``."""
        return {
            "items": [i.as_json() for i in self.items],
            "passed": self.passed,
            "total": len(self.items),
            "product": self.product,
        }


@dataclass(frozen=True)
class SupportView:
    """A product's support statement (CRA Art. 13(8)) and the dates of its end-of-support
    notices."""

    product: str
    description: str
    support_start: str
    support_end: str
    support_end_human: str
    supported: bool
    ends_at: datetime
    on_sale: bool
    member_states: tuple[str, ...]
    update_types: tuple[str, ...]
    hardware: tuple[str, ...]
    short_support_reason: str | None
    latest_release: str | None  # the newest release not withdrawn
    notices: tuple[tuple[str, datetime], ...]  # (notice, when it is due)

    def to_json(self) -> dict[str, Any]:
        """``support show --json``, ``GET /api/v1/compliance/products/{name}``."""
        return {
            "product": self.product,
            "description": self.description,
            "support_start": self.support_start,
            "support_end": self.support_end,
            "support_end_human": self.support_end_human,
            "supported": self.supported,
            "ends_at": rfc3339(self.ends_at),
            "on_sale": self.on_sale,
            "member_states": list(self.member_states),
            "update_types": list(self.update_types),
            "hardware": list(self.hardware),
            "short_support_reason": self.short_support_reason,
            "latest_release": self.latest_release,
            "notices": [{"notice": n, "at": rfc3339(at)} for n, at in self.notices],
        }


@dataclass(frozen=True)
class Exported:
    """Where a technical file was written, of which product, and its files."""

    path: str
    product: str | None
    files: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """``techfile export --json``."""
        return {"path": self.path, "product": self.product, "files": list(self.files)}
