"""Reading OSV records (one or an array) into register records: ``severity[]`` CVSS_V3 and
CVSS_V4 (also per affected package), ``aliases``, ``affected[].ranges`` (SEMVER and
ECOSYSTEM evaluated, GIT noted), ``affected[].versions`` when no range is readable, and
``withdrawn`` (skipped)."""

from __future__ import annotations

from typing import Any

from patchgate.domain import versions
from patchgate.domain.errors import InvalidInput
from patchgate.services.vulnerabilities.parsing import Parsed, candidate, records, text, title
from patchgate.services.vulnerability_ports import Component

RANGE_TYPES = ("SEMVER", "ECOSYSTEM", "GIT")


def parse_osv(doc: Any) -> list[Parsed]:
    """Every record of an OSV document."""
    return [_record(rec, index) for index, rec in enumerate(records(doc))]


def _record(rec: Any, index: int) -> Parsed:
    if not isinstance(rec, dict) or not text(rec.get("id")):
        raise InvalidInput(f"record {index + 1}: an OSV record needs an id")
    osv_id = text(rec["id"])
    if rec.get("withdrawn"):
        return Parsed(id=osv_id, title=osv_id, skip=f"{osv_id} was withdrawn {rec['withdrawn']}")
    aliases = rec.get("aliases") or []
    if not isinstance(aliases, list):
        raise InvalidInput(f"{osv_id}: aliases must be a list")
    details = text(rec.get("details"))
    parsed = Parsed(
        id=osv_id,
        title=title(text(rec.get("summary")) or details, osv_id),
        description=details,
        aliases=[str(a) for a in aliases],
    )
    _severities(parsed, rec)
    for number, aff in enumerate(rec.get("affected") or []):
        if not isinstance(aff, dict):
            raise InvalidInput(f"{osv_id}: affected[{number}] is not an object")
        parsed.components.append(_component(parsed, aff, number))
    return parsed


def _severities(parsed: Parsed, rec: dict[str, Any]) -> None:
    provider = parsed.id.split("-", 1)[0]
    severities = list(rec.get("severity") or [])
    for aff in rec.get("affected") or []:
        if isinstance(aff, dict):
            severities.extend(aff.get("severity") or [])
    for sev in severities:
        if not isinstance(sev, dict):
            raise InvalidInput(f"{parsed.id}: a severity entry is not an object")
        kind = text(sev.get("type"))
        if kind in ("CVSS_V3", "CVSS_V4"):
            candidate(parsed, "other", provider, text(sev.get("score")), parsed.id)
        else:
            parsed.notes.append(f"{parsed.id}: severity of type {kind!r} is not CVSS: not used")


def _range(parsed: Parsed, rng: Any, number: int, name: str) -> versions.VersionRange | None:
    """One ``ranges[]`` entry: a malformed event breaks the record (GIT ranges too); an
    unreadable version or a GIT range is noted and yields nothing."""
    if not isinstance(rng, dict) or not isinstance(rng.get("events"), list):
        raise InvalidInput(f"{parsed.id}: affected[{number}] has a range without events")
    kind = text(rng.get("type")).upper()
    if kind not in RANGE_TYPES:
        raise InvalidInput(f"{parsed.id}: unknown range type {kind!r}")
    try:
        versions.osv_events(rng["events"])
    except InvalidInput as exc:
        raise InvalidInput(f"{parsed.id}: {exc}") from exc
    if kind == "GIT":
        parsed.notes.append(f"{parsed.id} {name}: GIT range (commits) not evaluated")
        return None
    try:
        return versions.from_osv_events(rng["events"], range_type=kind)
    except InvalidInput as exc:
        parsed.notes.append(f"{parsed.id} {name}: range skipped: {exc}")
        return None


def _component(parsed: Parsed, aff: dict[str, Any], number: int) -> Component:
    package = aff.get("package") or {}
    name = text(package.get("name")) or f"affected[{number}]"
    read = (_range(parsed, rng, number, name) for rng in aff.get("ranges") or [])
    found = [r for r in read if r is not None]
    listed = [str(v) for v in aff.get("versions") or [] if versions.is_version(str(v))]
    if not found and listed:
        exact = (
            versions.Interval(versions.Bound(v, True), versions.Bound(v, True)) for v in listed
        )
        found.append(versions.VersionRange(tuple(exact)))
    combined = versions.union(found)
    return Component(
        name=name,
        ecosystem=text(package.get("ecosystem")) or None,
        purl=text(package.get("purl")) or None,
        ranges=(combined.to_vers(),) if combined else (),
    )
