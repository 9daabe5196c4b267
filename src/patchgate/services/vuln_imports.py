"""Importing CVE JSON 5, OSV and CycloneDX BOM/VEX documents into the register.

The parsers live in the service layer (not in adapters) because reading a record *is*
register logic: which score sets the deadline, which ranges count, which analysis state
maps to which status. They take text and return plain records; ``import_document``
applies them in one unit of work, so a file either imports whole or not at all.

Atomic: any record that cannot be read (no ID, a malformed range event, a document that
fails its schema) refuses the file, naming the record and the problem. Idempotent:
records are matched by ID or alias; importing again updates, never duplicates, and
keeps the awareness time and the local lifecycle unless the document carries an analysis.

Tolerated, each with a note rather than a refusal (real feeds do these things, see the
samples' SOURCES.md): REJECTED CVE records and withdrawn OSV records (skipped); CVSS v2
and non-CVSS severities (ignored); a malformed rating vector (ignored, as in the CISA
Case-3 VEX); version bounds that are commits or placeholders (skipped). CycloneDX is
validated with cyclonedx-python-lib's JSON validator against the ``specVersion`` the
document claims, after dropping JSON ``null`` values (grype writes ``"properties": null``
for "absent"); schema errors that only concern properties the claimed version does not
know (``additionalProperties``) or a rating ``method`` it does not list (trivy's hand-added
``CVSSv4`` in a 1.4 document) are tolerated, every other error refuses the file.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from patchgate.domain import strict, versions
from patchgate.domain import vulnerabilities as rules
from patchgate.domain.clock import rfc3339
from patchgate.domain.errors import InvalidInput, TooLarge
from patchgate.domain.policy import Policy
from patchgate.services import audit
from patchgate.services.context import Context
from patchgate.services.cvss_scoring import score_vector, with_prefix
from patchgate.services.policy import in_force
from patchgate.services.vulnerabilities import UNASSIGNED, check_products, cvss_severity
from patchgate.services.vulnerability_ports import ProductAnalysis, VulnerabilityRecord

MAX_IMPORT_BYTES = 16 * 1024 * 1024
FORMATS = ("cve5", "osv", "cyclonedx")
_CVE_METRICS = {"cvssV3_1": "3.1", "cvssV3_0": "3.0", "cvssV4_0": "4.0"}


@dataclass
class Parsed:
    """One record read from a document, before it meets the register."""

    id: str
    title: str
    description: str = ""
    aliases: list[str] = field(default_factory=list)
    candidates: list[rules.ScoreCandidate] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # product -> (vers ranges, status or None, justification)
    products: dict[str, tuple[list[str], str | None, str | None]] = field(default_factory=dict)
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

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "created": self.created,
            "updated": self.updated,
            "skipped": self.skipped,
            "notes": self.notes,
        }


# --- reading and detection --------------------------------------------------------------------


def load_json(data: bytes, *, name: str = "the file") -> Any:
    """Decode an import file, refusing what is too large, not UTF-8 or not JSON."""
    if len(data) > MAX_IMPORT_BYTES:
        raise TooLarge(f"{name} is {len(data)} bytes; imports are limited to {MAX_IMPORT_BYTES}")
    # Strict: deep nesting, NUL, lone surrogates, NaN and out-of-range integers refused.
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


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _english(items: Any) -> str:
    if not isinstance(items, list):
        return ""
    for item in items:
        if isinstance(item, dict) and str(item.get("lang", "")).lower().startswith("en"):
            return _text(item.get("value"))
    return _text(items[0].get("value")) if items and isinstance(items[0], dict) else ""


def _title(summary: str, fallback: str) -> str:
    first = summary.strip().splitlines()[0] if summary.strip() else ""
    return (first[:197] + "...") if len(first) > 200 else (first or fallback)


def _candidate(
    parsed: Parsed, source: str, provider: str, vector: str, where: str
) -> rules.ScoreCandidate | None:
    try:
        scored = score_vector(vector)
    except InvalidInput as exc:
        parsed.notes.append(f"{where}: vector ignored: {exc}")
        return None
    candidate = rules.ScoreCandidate(source, provider, scored.version, scored.vector, scored.score)
    parsed.candidates.append(candidate)
    return candidate


# --- CVE JSON 5 ---------------------------------------------------------------------------------


def parse_cve5(doc: Any) -> list[Parsed]:
    """CVE Record Format 5.x, one record or a list: CNA and ADP metrics, affected ranges,
    CISA KEV (an ADP ``other`` metric of type ``kev``) as active exploitation."""
    records = doc if isinstance(doc, list) else [doc]
    out: list[Parsed] = []
    for index, rec in enumerate(records):
        where = f"record {index + 1}"
        if not isinstance(rec, dict):
            raise InvalidInput(f"{where}: not a JSON object")
        meta = rec.get("cveMetadata")
        if not isinstance(meta, dict):
            raise InvalidInput(f"{where}: cveMetadata is missing")
        cve_id = _text(meta.get("cveId"))
        if not cve_id:
            raise InvalidInput(f"{where}: cveMetadata.cveId is missing")
        where = cve_id
        state = _text(meta.get("state")).upper()
        containers = rec.get("containers")
        if state == "REJECTED":
            replaced = (containers or {}).get("cna", {}).get("replacedBy") or []
            note = f"{cve_id} is REJECTED" + (
                f" (replaced by {', '.join(replaced)})" if replaced else ""
            )
            out.append(Parsed(id=cve_id, title=cve_id, skip=note))
            continue
        if state not in ("PUBLISHED", ""):
            raise InvalidInput(f"{where}: unknown cveMetadata.state {state!r}")
        if not isinstance(containers, dict) or not isinstance(containers.get("cna"), dict):
            raise InvalidInput(f"{where}: containers.cna is missing")
        cna = containers["cna"]
        description = _english(cna.get("descriptions"))
        parsed = Parsed(
            id=cve_id,
            title=_title(_text(cna.get("title")) or description, cve_id),
            description=description,
        )
        provider = _text((cna.get("providerMetadata") or {}).get("shortName")) or _text(
            meta.get("assignerShortName")
        )
        sources: list[tuple[str, str, Any]] = [("cna", provider, cna.get("metrics"))]
        adps = containers.get("adp") or []
        if not isinstance(adps, list):
            raise InvalidInput(f"{where}: containers.adp must be a list")
        for adp in adps:
            name = _text((adp.get("providerMetadata") or {}).get("shortName")) or "ADP"
            sources.append(("adp", name, adp.get("metrics")))
        for source, name, metrics in sources:
            for metric in metrics or []:
                if not isinstance(metric, dict):
                    raise InvalidInput(f"{where}: a {source} metric is not an object")
                for key in _CVE_METRICS:
                    body = metric.get(key)
                    if isinstance(body, dict) and body.get("vectorString"):
                        _candidate(parsed, source, name, str(body["vectorString"]), where)
                if "cvssV2_0" in metric:
                    parsed.notes.append(f"{cve_id}: CVSS v2 score from {name} not used")
                other = metric.get("other")
                if isinstance(other, dict) and str(other.get("type", "")).lower() == "kev":
                    parsed.exploited = True
        for number, aff in enumerate(cna.get("affected") or []):
            if not isinstance(aff, dict):
                raise InvalidInput(f"{where}: affected[{number}] is not an object")
            name = (
                " ".join(x for x in (_text(aff.get("vendor")), _text(aff.get("product"))) if x)
                or _text(aff.get("packageName"))
                or f"affected[{number}]"
            )
            vers = aff.get("versions") or []
            if not isinstance(vers, list):
                raise InvalidInput(f"{where}: affected[{number}].versions must be a list")
            rng, notes = versions.from_cve5_versions(
                vers, default_status=_text(aff.get("defaultStatus")) or "unaffected"
            )
            parsed.notes.extend(f"{cve_id} {name}: {n}" for n in notes)
            parsed.components.append(
                {
                    "name": name,
                    "package": _text(aff.get("packageName")) or None,
                    "ranges": [rng.to_vers()] if rng else [],
                }
            )
        out.append(parsed)
    return out


# --- OSV ----------------------------------------------------------------------------------------


def parse_osv(doc: Any) -> list[Parsed]:
    """OSV records (one or an array): ``severity[]`` CVSS_V3/CVSS_V4, ``aliases``,
    ``affected[].ranges`` (SEMVER/ECOSYSTEM evaluated, GIT noted), ``withdrawn``."""
    records = doc if isinstance(doc, list) else [doc]
    out: list[Parsed] = []
    for index, rec in enumerate(records):
        if not isinstance(rec, dict) or not _text(rec.get("id")):
            raise InvalidInput(f"record {index + 1}: an OSV record needs an id")
        osv_id = _text(rec["id"])
        if rec.get("withdrawn"):
            out.append(
                Parsed(id=osv_id, title=osv_id, skip=f"{osv_id} was withdrawn {rec['withdrawn']}")
            )
            continue
        aliases = rec.get("aliases") or []
        if not isinstance(aliases, list):
            raise InvalidInput(f"{osv_id}: aliases must be a list")
        details = _text(rec.get("details"))
        parsed = Parsed(
            id=osv_id,
            title=_title(_text(rec.get("summary")) or details, osv_id),
            description=details,
            aliases=[str(a) for a in aliases],
        )
        provider = osv_id.split("-", 1)[0]
        severities = list(rec.get("severity") or [])
        for aff in rec.get("affected") or []:
            if isinstance(aff, dict):
                severities.extend(aff.get("severity") or [])
        for sev in severities:
            if not isinstance(sev, dict):
                raise InvalidInput(f"{osv_id}: a severity entry is not an object")
            kind = _text(sev.get("type"))
            if kind in ("CVSS_V3", "CVSS_V4"):
                _candidate(parsed, "other", provider, _text(sev.get("score")), osv_id)
            else:
                parsed.notes.append(f"{osv_id}: severity of type {kind!r} is not CVSS: not used")
        for number, aff in enumerate(rec.get("affected") or []):
            if not isinstance(aff, dict):
                raise InvalidInput(f"{osv_id}: affected[{number}] is not an object")
            package = aff.get("package") or {}
            name = _text(package.get("name")) or f"affected[{number}]"
            found: list[versions.VersionRange] = []
            for rng in aff.get("ranges") or []:
                if not isinstance(rng, dict) or not isinstance(rng.get("events"), list):
                    raise InvalidInput(f"{osv_id}: affected[{number}] has a range without events")
                kind = _text(rng.get("type")).upper()
                if kind not in ("SEMVER", "ECOSYSTEM", "GIT"):
                    raise InvalidInput(f"{osv_id}: unknown range type {kind!r}")
                # A malformed event is a broken record (GIT ranges too); an unreadable
                # version is not.
                try:
                    versions.osv_events(rng["events"])
                except InvalidInput as exc:
                    raise InvalidInput(f"{osv_id}: {exc}") from exc
                if kind == "GIT":
                    parsed.notes.append(f"{osv_id} {name}: GIT range (commits) not evaluated")
                    continue
                try:
                    found.append(versions.from_osv_events(rng["events"], range_type=kind))
                except InvalidInput as exc:
                    parsed.notes.append(f"{osv_id} {name}: range skipped: {exc}")
            listed = [str(v) for v in aff.get("versions") or [] if versions.is_version(str(v))]
            if not found and listed:
                found.append(
                    versions.VersionRange(
                        tuple(
                            versions.Interval(versions.Bound(v, True), versions.Bound(v, True))
                            for v in listed
                        )
                    )
                )
            combined = versions.union(found)
            parsed.components.append(
                {
                    "name": name,
                    "ecosystem": _text(package.get("ecosystem")) or None,
                    "purl": _text(package.get("purl")) or None,
                    "ranges": [combined.to_vers()] if combined else [],
                }
            )
        out.append(parsed)
    return out


# --- CycloneDX ----------------------------------------------------------------------------------

_CDX_STATE = {
    "in_triage": "triaged",
    "exploitable": "triaged",
    "not_affected": "not_affected",
    "false_positive": "not_affected",
    "resolved": "fix_released",
    "resolved_with_pedigree": "fix_released",
}


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value if v is not None]
    return value


def validate_cyclonedx(doc: dict[str, Any]) -> list[str]:
    """Validate against the claimed ``specVersion`` with cyclonedx-python-lib; returns the
    notes on tolerated deviations and raises ``InvalidInput`` on any other error."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonValidator

    spec = doc.get("specVersion")
    if spec is None:
        return ["no specVersion: the document was not schema-validated"]
    try:
        schema = SchemaVersion.from_version(str(spec))
    except Exception as exc:
        raise InvalidInput(f"CycloneDX specVersion {spec!r} is not one patchgate knows") from exc
    if schema not in (SchemaVersion.V1_4, SchemaVersion.V1_5, SchemaVersion.V1_6):
        raise InvalidInput(f"CycloneDX {spec} carries no vulnerabilities (1.4 or later needed)")
    errors = JsonValidator(schema).validate_str(json.dumps(doc), all_errors=True) or []
    notes: list[str] = []
    for error in errors:
        inner = error.data
        path = "/".join(str(p) for p in inner.absolute_path) or "(document)"
        tolerated = inner.validator == "additionalProperties" or (
            inner.validator == "enum" and list(inner.absolute_path)[-1:] == ["method"]
        )
        if not tolerated:
            raise InvalidInput(f"CycloneDX {spec} schema: {path}: {inner.message}")
        notes.append(f"tolerated at {path}: {inner.message}")
    return notes


def parse_cyclonedx(doc: Any, policy: Policy) -> tuple[list[Parsed], list[str]]:
    """``vulnerabilities[]`` of a CycloneDX BOM or VEX (Dependency-Track, Grype, Trivy):
    ratings, ``analysis`` and ``affects[]``. An ``affects`` ref to the document's own
    ``metadata.component`` whose name is a product of the policy ties the analysis to that
    product; any other ref is recorded as an affected component."""
    if not isinstance(doc, dict) or doc.get("bomFormat") != "CycloneDX":
        raise InvalidInput("not a CycloneDX document (bomFormat must be 'CycloneDX')")
    doc = _drop_nulls(doc)
    notes = validate_cyclonedx(doc)
    meta_component = (doc.get("metadata") or {}).get("component") or {}
    own_ref = _text(meta_component.get("bom-ref"))
    own_product = policy.product(_text(meta_component.get("name")))
    serial = _text(doc.get("serialNumber")).removeprefix("urn:uuid:")
    components = {
        _text(c.get("bom-ref")): c
        for c in doc.get("components") or []
        if isinstance(c, dict) and _text(c.get("bom-ref"))
    }
    out: list[Parsed] = []
    for index, vuln in enumerate(doc.get("vulnerabilities") or []):
        vid = _text(vuln.get("id"))
        if not vid:
            raise InvalidInput(f"vulnerabilities[{index}]: no id")
        description = _text(vuln.get("description")) or _text(vuln.get("detail"))
        parsed = Parsed(id=vid, title=_title(description, vid), description=description)
        parsed.aliases = [
            _text(r.get("id")) for r in vuln.get("references") or [] if _text(r.get("id"))
        ]
        for rating in vuln.get("ratings") or []:
            vector = _text(rating.get("vector"))
            method = _text(rating.get("method"))
            provider = _text((rating.get("source") or {}).get("name"))
            if not vector or not method.upper().startswith("CVSSV") or method == "CVSSv2":
                continue
            source = "manufacturer" if provider == policy.organisation else "other"
            if not provider and own_product is not None:
                source = "manufacturer"
            cand = _candidate(parsed, source, provider, with_prefix(vector, method), vid)
            given = rating.get("score")
            if cand is not None and isinstance(given, int | float) and given != cand.score:
                parsed.notes.append(
                    f"{vid}: {provider or 'a rating'} states {given}, its vector scores "
                    f"{cand.score}; the vector's score is used"
                )
        props = {
            _text(p.get("name")): _text(p.get("value"))
            for p in vuln.get("properties") or []
            if isinstance(p, dict)
        }
        analysis = vuln.get("analysis") or {}
        state = _text(analysis.get("state"))
        status = props.get("patchgate:status") or _CDX_STATE.get(state)
        if state and state not in _CDX_STATE:
            raise InvalidInput(f"{vid}: unknown analysis.state {state!r}")
        justification: str | None = _text(analysis.get("justification")) or None
        if status == "will_not_fix":
            justification = _text(analysis.get("detail")) or "will not fix"
        elif status == "not_affected" and justification is None:
            parsed.notes.append(f"{vid}: {state or 'not_affected'} without a justification")
        for aff in vuln.get("affects") or []:
            ref = _text(aff.get("ref"))
            if not ref:
                raise InvalidInput(f"{vid}: an affects entry has no ref")
            if ref.startswith("urn:cdx:"):
                link_serial, _, fragment = ref[8:].partition("#")
                if link_serial.split("/", 1)[0] == serial and fragment:
                    ref = fragment
                else:
                    parsed.notes.append(f"{vid}: BOM-Link {ref} points to another BOM")
            ranges: list[str] = []
            for ver in aff.get("versions") or []:
                if _text(ver.get("status")) not in ("", "affected"):
                    continue
                text = _text(ver.get("range")) or _text(ver.get("version"))
                try:
                    ranges.append(versions.parse_range(text).to_vers())
                except InvalidInput as exc:
                    parsed.notes.append(f"{vid}: version {text!r} skipped: {exc}")
            if ref == own_ref and own_product is not None:
                parsed.products[own_product.name] = (ranges, status, justification)
                continue
            comp = components.get(ref) or (meta_component if ref == own_ref else {})
            parsed.components.append(
                {
                    "name": _text(comp.get("name")) or ref,
                    "version": _text(comp.get("version")) or None,
                    "purl": _text(comp.get("purl")) or None,
                    "ref": ref,
                    "ranges": ranges,
                }
            )
        if status is not None and not parsed.products:
            parsed.analysis = (status, justification)
        out.append(parsed)
    return out, notes


# --- applying -----------------------------------------------------------------------------------


def parse(doc: Any, fmt: str | None, policy: Policy) -> tuple[str, list[Parsed], list[str]]:
    """Parse a decoded document in the declared (or detected) format."""
    detected = detect_format(doc)
    if fmt is not None:
        if fmt not in FORMATS:
            raise InvalidInput(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
        if fmt != detected:
            raise InvalidInput(f"the file is not {fmt}: it looks like {detected}")
    if detected == "cve5":
        return detected, parse_cve5(doc), []
    if detected == "osv":
        return detected, parse_osv(doc), []
    records, notes = parse_cyclonedx(doc, policy)
    return detected, records, notes


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
    detected, records, doc_notes = parse(doc, fmt, policy)
    seen: set[str] = set()
    for rec in records:
        if rec.id.upper() in seen and rec.skip is None:
            raise InvalidInput(f"{rec.id} appears twice in {name}")
        seen.add(rec.id.upper())
    result = ImportResult(detected, notes=list(doc_notes))
    now = ctx.clock()
    with ctx.uow() as uow:
        for rec in records:
            result.notes.extend(rec.notes)
            existing = uow.vulnerabilities.find_by_alias([rec.id, *rec.aliases])
            if rec.skip is not None:
                result.skipped.append(rec.id)
                result.notes.append(rec.skip + ": skipped")
                if existing is not None and existing.withdrawn_at is None:
                    existing.withdrawn_at = now
                    existing.notes = [*existing.notes, rec.skip]
                    uow.vulnerabilities.save(existing)
                continue
            record = existing or VulnerabilityRecord(
                id=rec.id, title=rec.title, aware_at=now, created_at=now, updated_at=now
            )
            _merge(record, rec, detected, products, now)
            uow.vulnerabilities.save(record)
            (result.updated if existing is not None else result.created).append(record.id)
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


def _merge(
    record: VulnerabilityRecord,
    rec: Parsed,
    fmt: str,
    products: Sequence[str],
    now: Any,
) -> None:
    """Fold a parsed record into a stored one (a no-op for what did not change)."""
    # A record without a title of its own (a bare VEX statement) keeps the one it has.
    if rec.title != rec.id or not record.title:
        record.title = rec.title
    record.description = rec.description or record.description
    record.origin = record.origin if record.origin == "manual" else fmt
    aliases = [a for a in dict.fromkeys([*record.aliases, *rec.aliases, rec.id]) if a != record.id]
    record.aliases = aliases
    record.components = rec.components or record.components
    record.notes = list(dict.fromkeys(rec.notes))
    record.withdrawn_at = None
    # The manufacturer's own assessment stays first in line whatever a feed says.
    own = [rules.ScoreCandidate(**s) for s in record.scores if s.get("source") == "manufacturer"]
    candidates = (
        own
        + [c for c in rec.candidates if c.source != "manufacturer"]
        + [c for c in rec.candidates if c.source == "manufacturer"]
    )
    chosen = rules.choose_score(candidates)
    record.scores = [
        {
            "source": c.source,
            "provider": c.provider,
            "version": c.version,
            "vector": c.vector,
            "score": c.score,
        }
        for c in dict.fromkeys(candidates)
    ]
    if chosen is not None:
        record.cvss_vector = chosen.vector
        record.cvss_version = chosen.version
        record.score = chosen.score
        record.score_source = chosen.label
    if rec.exploited and record.exploited_at is None:
        record.exploited_at = now
        record.notes.append("listed in CISA KEV: actively exploited")
    wanted: dict[str, tuple[list[str], str | None, str | None]] = dict(rec.products)
    for product in products:
        wanted.setdefault(
            product,
            (
                [],
                rec.analysis[0] if rec.analysis else None,
                rec.analysis[1] if rec.analysis else None,
            ),
        )
    for name, (ranges, status, justification) in wanted.items():
        analysis = record.product(name)
        if analysis is None:
            analysis = ProductAnalysis(product=name, updated_at=now)
            record.products.append(analysis)
        if ranges:
            analysis.ranges = ranges
        if status is not None and status != analysis.status:
            analysis.status = status
            analysis.justification = justification
            analysis.updated_at = now
    if wanted:
        record.products = [a for a in record.products if a.product != UNASSIGNED]
    elif not record.products:
        record.products.append(ProductAnalysis(product=UNASSIGNED, updated_at=now))
    if rec.analysis is not None and not wanted:
        for analysis in record.products:
            status, justification = rec.analysis
            if analysis.status != status:
                analysis.status = status
                analysis.justification = justification
                analysis.updated_at = now
    record.updated_at = now


# --- CycloneDX VEX export -----------------------------------------------------------------------

_EXPORT_STATE = {
    "new": "in_triage",
    "triaged": "exploitable",
    "fix_in_progress": "exploitable",
    "fix_released": "resolved",
    "fix_deployed": "resolved",
    "closed": "resolved",
    "not_affected": "not_affected",
    "will_not_fix": "exploitable",
}
_METHOD = {"3.1": "CVSSv31", "3.0": "CVSSv3", "4.0": "CVSSv4"}


def export_vex(ctx: Context, product: str) -> dict[str, Any]:
    """A CycloneDX 1.6 VEX of the current analysis of every vulnerability recorded for
    ``product``. The exact patchgate status travels in a ``patchgate:status`` property, so
    importing the export gives back the same analysis."""
    policy = in_force(ctx).policy
    check_products(policy, [product])
    now = ctx.clock()
    ref = f"product:{product}"
    entries: list[dict[str, Any]] = []
    with ctx.read_uow() as uow:
        for record in uow.vulnerabilities.list():
            analysis = record.product(product)
            if analysis is None or record.withdrawn_at is not None:
                continue
            entry: dict[str, Any] = {"id": record.id}
            if record.id.upper().startswith("CVE-"):
                entry["source"] = {
                    "name": "NVD",
                    "url": f"https://nvd.nist.gov/vuln/detail/{record.id}",
                }
            if record.cvss_vector and record.score is not None:
                entry["ratings"] = [
                    {
                        "source": {
                            "name": (record.score_source or "").partition(":")[2]
                            or policy.organisation
                        },
                        "score": record.score,
                        "severity": cvss_severity(record, policy),
                        "method": _METHOD.get(record.cvss_version or "", "other"),
                        "vector": record.cvss_vector,
                    }
                ]
            if record.description:
                entry["description"] = record.description
            state = _EXPORT_STATE[analysis.status]
            body: dict[str, Any] = {"state": state}
            if analysis.status == "not_affected" and analysis.justification:
                body["justification"] = analysis.justification
            if analysis.status == "will_not_fix":
                body["response"] = ["will_not_fix"]
                body["detail"] = analysis.justification or ""
            elif analysis.status in ("fix_in_progress", "fix_released", "fix_deployed"):
                body["response"] = ["update"]
            body["lastUpdated"] = rfc3339(analysis.updated_at or record.updated_at)
            entry["analysis"] = body
            affects: dict[str, Any] = {"ref": ref}
            if analysis.ranges:
                affects["versions"] = [{"range": r, "status": "affected"} for r in analysis.ranges]
            entry["affects"] = [affects]
            entry["properties"] = [{"name": "patchgate:status", "value": analysis.status}]
            entries.append(entry)
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": rfc3339(now),
            "component": {"bom-ref": ref, "type": "device", "name": product},
            "supplier": {"name": policy.organisation},
        },
        "vulnerabilities": entries,
    }
