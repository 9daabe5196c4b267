"""The advisory's read model and its one JSON form (the API, ``--json``, the technical
file and the console alike), and where the provider serves a document. Nothing here reads
storage, so a presenter may import it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from patchgate.domain.clock import rfc3339

WELL_KNOWN = "/.well-known/csaf"  # where a provider lives (CSAF 2.0 §7.1.8)
WHITE = f"{WELL_KNOWN}/white"  # its TLP:WHITE folder (CSAF 2.0 §7.1.13)


def document_url(base_url: str, path: str) -> str:
    """Where the provider serves a published document (``path`` below the folder)."""
    return f"{base_url.rstrip('/')}{WHITE}/{path}"


@dataclass(frozen=True)
class AdvisoryView:
    """One advisory as listed: its state, what it covers, who made it and where it is
    served once published."""

    id: str
    state: str  # draft | final (CSAF 2.0 §3.2.1.12.6)
    title: str
    vulnerabilities: tuple[str, ...]
    version: str
    created_at: datetime
    created_by: str
    published_at: datetime | None
    path: str | None
    url: str | None

    def to_json(self) -> dict[str, Any]:
        """The JSON of ``advisory create|publish|list --json`` entries and the API."""
        return {
            "id": self.id,
            "state": self.state,
            "title": self.title,
            "vulnerabilities": list(self.vulnerabilities),
            "version": self.version,
            "created_at": rfc3339(self.created_at),
            "created_by": self.created_by,
            "published_at": rfc3339(self.published_at),
            "path": self.path,
            "url": self.url,
        }
