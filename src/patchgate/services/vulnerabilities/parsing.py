"""What the three importers share: the record they produce, how they read text and scores
out of a decoded JSON document, and what an import reports back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from patchgate.domain import vulnerabilities as domain
from patchgate.domain.errors import InvalidInput
from patchgate.services.cvss_scoring import score_vector
from patchgate.services.vulnerability_ports import Component


@dataclass(frozen=True)
class ProductClaim:
    """What a document says about one product of the policy."""

    ranges: tuple[str, ...] = ()
    status: str | None = None
    justification: str | None = None


@dataclass
class Parsed:
    """One record read from a document, before it meets the register."""

    id: str
    title: str
    description: str = ""
    aliases: list[str] = field(default_factory=list)
    candidates: list[domain.ScoreCandidate] = field(default_factory=list)
    components: list[Component] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    products: dict[str, ProductClaim] = field(default_factory=dict)
    analysis: tuple[str, str | None] | None = None  # status, justification when no product
    exploited: bool = False
    skip: str | None = None


@dataclass
class ImportResult:
    """What an import did: per record ``created``, ``updated`` or ``skipped``, and notes."""

    format: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def text(value: Any) -> str:
    """A string field stripped, or "" for anything that is not a string."""
    return value.strip() if isinstance(value, str) else ""


def english(items: Any) -> str:
    """The English entry of a list of ``{"lang", "value"}`` (else the first)."""
    if not isinstance(items, list):
        return ""
    for item in items:
        if isinstance(item, dict) and str(item.get("lang", "")).lower().startswith("en"):
            return text(item.get("value"))
    return text(items[0].get("value")) if items and isinstance(items[0], dict) else ""


def title(summary: str, fallback: str) -> str:
    """The first line of a summary, at most 200 characters, or ``fallback``."""
    first = summary.strip().splitlines()[0] if summary.strip() else ""
    return (first[:197] + "...") if len(first) > 200 else (first or fallback)


def records(doc: Any) -> list[Any]:
    """A document holding one record or a list of them, as a list."""
    return doc if isinstance(doc, list) else [doc]


def candidate(
    parsed: Parsed, source: str, provider: str, vector: str, where: str
) -> domain.ScoreCandidate | None:
    """Score ``vector`` and add it to the record's candidates; a vector the library
    refuses is noted and ignored (feeds carry malformed ones)."""
    try:
        scored = score_vector(vector)
    except InvalidInput as exc:
        parsed.notes.append(f"{where}: vector ignored: {exc}")
        return None
    found = domain.ScoreCandidate(source, provider, scored.version, scored.vector, scored.score)
    parsed.candidates.append(found)
    return found
