"""Importing CVE JSON 5, OSV and CycloneDX BOM/VEX documents into the register.

The parsers (``cve5``, ``osv``, ``cyclonedx``) live in the service layer, not in adapters,
because reading a record *is* register logic: which score sets the deadline, which ranges
count, which analysis state maps to which status. They take a decoded document and return
plain records; ``import_document`` applies them in one unit of work, so a file either
imports whole or not at all.

Atomic: any record that cannot be read (no ID, a malformed range event, a document that
fails its schema) refuses the file, naming the record and the problem. Idempotent:
records are matched by ID or alias; importing again updates, never duplicates, and
keeps the awareness time and the local lifecycle unless the document carries an analysis.

Tolerated, each with a note rather than a refusal (real feeds do these things): REJECTED
CVE records and withdrawn OSV records (skipped); CVSS v2 and non-CVSS severities
(ignored); a malformed rating vector (ignored, as in CISA's Case-3 VEX); version bounds
that are commits or placeholders (skipped).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from patchgate.domain import strict
from patchgate.domain import vulnerabilities as domain
from patchgate.domain.errors import InvalidInput, TooLarge
from patchgate.domain.policy import Policy
from patchgate.services import audit
from patchgate.services.context import Context
from patchgate.services.policy import in_force
from patchgate.services.unit_of_work import UnitOfWork
from patchgate.services.vulnerabilities.cve5 import parse_cve5
from patchgate.services.vulnerabilities.cyclonedx import parse_cyclonedx
from patchgate.services.vulnerabilities.osv import parse_osv
from patchgate.services.vulnerabilities.parsing import ImportResult, Parsed, ProductClaim
from patchgate.services.vulnerabilities.rules import UNASSIGNED, check_products
from patchgate.services.vulnerability_ports import ProductAnalysis, VulnerabilityRecord

__all__ = ["FORMATS", "MAX_IMPORT_BYTES", "ImportResult", "import_document", "load_json"]

MAX_IMPORT_BYTES = 16 * 1024 * 1024
FORMATS = ("cve5", "osv", "cyclonedx")


def load_json(data: bytes, *, name: str = "the file") -> Any:
    """Decode an import file, refusing what is too large, not UTF-8 or not JSON, and what
    every request body is refused for (domain/strict.py: deep nesting, NUL, lone
    surrogates, NaN, integers past 64 bits)."""
    if len(data) > MAX_IMPORT_BYTES:
        raise TooLarge(f"{name} is {len(data)} bytes; imports are limited to {MAX_IMPORT_BYTES}")
    return strict.loads_json(data, where=name, max_text=MAX_IMPORT_BYTES)


def _looks_cve5(doc: Any) -> bool:
    return isinstance(doc, dict) and ("cveMetadata" in doc or doc.get("dataType") == "CVE_RECORD")


def _looks_osv(doc: Any) -> bool:
    return isinstance(doc, dict) and "id" in doc and ("modified" in doc or "affected" in doc)


def detect_format(doc: Any) -> str:
    """``cve5``, ``osv`` or ``cyclonedx`` from a document's shape, or ``InvalidInput``."""
    if isinstance(doc, dict) and "bomFormat" in doc:
        if doc["bomFormat"] != "CycloneDX":
            raise InvalidInput(f"bomFormat {doc['bomFormat']!r} is not CycloneDX")
        return "cyclonedx"
    items = doc if isinstance(doc, list) else [doc]
    if items and all(_looks_cve5(i) for i in items):
        return "cve5"
    if items and all(_looks_osv(i) for i in items):
        return "osv"
    raise InvalidInput(
        "the file is not a CVE JSON 5 record, an OSV record (or a list of either), "
        "or a CycloneDX document"
    )


def parse(doc: Any, fmt: str | None, policy: Policy) -> tuple[str, list[Parsed], list[str]]:
    """Parse a decoded document in the declared (or detected) format."""
    detected = detect_format(doc)
    if fmt is not None:
        if fmt not in FORMATS:
            raise InvalidInput(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
        if fmt != detected:
            raise InvalidInput(f"the file is not {fmt}: it looks like {detected}")
    if detected == "cve5":
        return detected, parse_cve5(doc, policy), []
    if detected == "osv":
        return detected, parse_osv(doc), []
    records, notes = parse_cyclonedx(doc, policy)
    return detected, records, notes


def _check_unique(records: Sequence[Parsed], name: str) -> None:
    seen: set[str] = set()
    for rec in records:
        if rec.id.upper() in seen and rec.skip is None:
            raise InvalidInput(f"{rec.id} appears twice in {name}")
        seen.add(rec.id.upper())


def _apply(
    uow: UnitOfWork,
    rec: Parsed,
    result: ImportResult,
    products: Sequence[str],
    now: datetime,
) -> None:
    """Fold one parsed record into the register (or withdraw a skipped one)."""
    result.notes.extend(rec.notes)
    existing = uow.vulnerabilities.find_by_alias([rec.id, *rec.aliases])
    if rec.skip is not None:
        result.skipped.append(rec.id)
        result.notes.append(rec.skip + ": skipped")
        if existing is not None and existing.withdrawn_at is None:
            existing.withdrawn_at = now
            existing.notes = [*existing.notes, rec.skip]
            uow.vulnerabilities.save(existing)
        return
    record = existing or VulnerabilityRecord(
        id=rec.id, title=rec.title, aware_at=now, created_at=now, updated_at=now
    )
    _merge(record, rec, result.format, products, now)
    uow.vulnerabilities.save(record)
    (result.updated if existing is not None else result.created).append(record.id)


def import_document(
    ctx: Context,
    data: bytes,
    *,
    actor: str,
    fmt: str | None = None,
    products: Sequence[str] = (),
    name: str = "the file",
) -> ImportResult:
    """Import every record of one file in one transaction (see the module docstring)."""
    policy = in_force(ctx).policy
    check_products(policy, products)
    doc = load_json(data, name=name)
    try:
        detected, records, doc_notes = parse(doc, fmt, policy)
    except RecursionError as exc:
        raise InvalidInput(f"{name} is nested too deeply to read") from exc
    _check_unique(records, name)
    result = ImportResult(detected, notes=list(doc_notes))
    now = ctx.clock()
    with ctx.uow() as uow:
        for rec in records:
            _apply(uow, rec, result, products, now)
        audit.record(
            ctx,
            uow,
            actor=actor,
            action="vuln.import",
            subject=f"import:{detected}",
            details={
                "file": name,
                "created": result.created,
                "updated": result.updated,
                "skipped": result.skipped,
            },
        )
        uow.commit()
    return result


def _merge_scores(record: VulnerabilityRecord, rec: Parsed) -> None:
    # The manufacturer's own assessment stays first in line whatever a feed says.
    own = [s for s in record.scores if s.source == "manufacturer"]
    candidates = (
        own
        + [c for c in rec.candidates if c.source != "manufacturer"]
        + [c for c in rec.candidates if c.source == "manufacturer"]
    )
    chosen = domain.choose_score(candidates)
    record.scores = list(dict.fromkeys(candidates))
    if chosen is not None:
        record.cvss_vector = chosen.vector
        record.cvss_version = chosen.version
        record.score = chosen.score
        record.score_source = chosen.label


def _claims(rec: Parsed, products: Sequence[str]) -> dict[str, ProductClaim]:
    """What the document says per product, with the products the import names."""
    wanted = dict(rec.products)
    status, justification = rec.analysis if rec.analysis else (None, None)
    for product in products:
        wanted.setdefault(product, ProductClaim((), status, justification))
    return wanted


def _merge_products(
    record: VulnerabilityRecord, rec: Parsed, products: Sequence[str], now: datetime
) -> None:
    wanted = _claims(rec, products)
    for name, claim in wanted.items():
        analysis = record.product(name)
        if analysis is None:
            analysis = ProductAnalysis(product=name, updated_at=now)
            record.products.append(analysis)
        if claim.ranges:
            analysis.ranges = list(claim.ranges)
        if claim.status is not None and claim.status != analysis.status:
            analysis.status = claim.status
            analysis.justification = claim.justification
            analysis.updated_at = now
    if wanted:
        record.products = [a for a in record.products if a.product != UNASSIGNED]
    elif not record.products:
        record.products.append(ProductAnalysis(product=UNASSIGNED, updated_at=now))
    if rec.analysis is not None and not wanted:
        status, justification = rec.analysis
        for analysis in record.products:
            if analysis.status != status:
                analysis.status = status
                analysis.justification = justification
                analysis.updated_at = now


def _merge(
    record: VulnerabilityRecord,
    rec: Parsed,
    fmt: str,
    products: Sequence[str],
    now: datetime,
) -> None:
    """Fold a parsed record into a stored one (a no-op for what did not change)."""
    # A record without a title of its own (a bare VEX statement) keeps the one it has.
    if rec.title != rec.id or not record.title:
        record.title = rec.title
    record.description = rec.description or record.description
    record.origin = record.origin if record.origin == "manual" else fmt
    record.aliases = [
        a for a in dict.fromkeys([*record.aliases, *rec.aliases, rec.id]) if a != record.id
    ]
    record.components = rec.components or record.components
    record.notes = list(dict.fromkeys(rec.notes))
    record.withdrawn_at = None
    _merge_scores(record, rec)
    if rec.exploited and record.exploited_at is None:
        record.exploited_at = now
        record.notes.append("listed in CISA KEV: actively exploited")
    _merge_products(record, rec, products, now)
    record.updated_at = now
