"""CycloneDX BOM/VEX (Dependency-Track, Grype, Trivy) into the register, and the
register's analysis of a product out as CycloneDX 1.6 VEX.

Reading: ``vulnerabilities[]`` with their ratings, ``analysis`` and ``affects[]``. An
``affects`` ref to the document's own ``metadata.component`` whose name is a product of
the policy ties the analysis to that product; any other ref is an affected component.
The document is validated with cyclonedx-python-lib's JSON validator against the
``specVersion`` it claims, after dropping JSON ``null`` values (grype writes
``"properties": null`` for "absent"); schema errors that only concern properties the
claimed version does not know (``additionalProperties``) or a rating ``method`` it does
not list (trivy's hand-added ``CVSSv4`` in a 1.4 document) are tolerated, every other
error refuses the file.

Writing: the exact patchgate status travels in a ``patchgate:status`` property, so
importing an export gives back the same analysis.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from patchgate.domain import versions
from patchgate.domain.clock import rfc3339
from patchgate.domain.errors import InvalidInput
from patchgate.domain.policy import Policy
from patchgate.services.context import Context
from patchgate.services.cvss_scoring import with_prefix
from patchgate.services.vulnerabilities.parsing import Parsed, ProductClaim, candidate, text, title
from patchgate.services.vulnerabilities.views import VexEntry, VexInput, vex_input
from patchgate.services.vulnerability_ports import Component

# CycloneDX analysis state -> register status on import.
IMPORT_STATE = {
    "in_triage": "triaged",
    "exploitable": "triaged",
    "not_affected": "not_affected",
    "false_positive": "not_affected",
    "resolved": "fix_released",
    "resolved_with_pedigree": "fix_released",
}
# Register status -> CycloneDX analysis state on export.
EXPORT_STATE = {
    "new": "in_triage",
    "triaged": "exploitable",
    "fix_in_progress": "exploitable",
    "fix_released": "resolved",
    "fix_deployed": "resolved",
    "closed": "resolved",
    "not_affected": "not_affected",
    "will_not_fix": "exploitable",
}
METHOD = {"3.1": "CVSSv31", "3.0": "CVSSv3", "4.0": "CVSSv4"}


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value if v is not None]
    return value


def validate(doc: dict[str, Any]) -> list[str]:
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


class _Document:
    """What every vulnerability of one document is read against."""

    def __init__(self, doc: dict[str, Any], policy: Policy) -> None:
        self.policy = policy
        self.meta_component: dict[str, Any] = (doc.get("metadata") or {}).get("component") or {}
        self.own_ref = text(self.meta_component.get("bom-ref"))
        self.own_product = policy.product(text(self.meta_component.get("name")))
        self.serial = text(doc.get("serialNumber")).removeprefix("urn:uuid:")
        self.components = {
            text(c.get("bom-ref")): c
            for c in doc.get("components") or []
            if isinstance(c, dict) and text(c.get("bom-ref"))
        }

    def local_ref(self, parsed: Parsed, ref: str) -> str:
        """A BOM-Link into this document as the plain bom-ref it points to."""
        if not ref.startswith("urn:cdx:"):
            return ref
        link_serial, _, fragment = ref[8:].partition("#")
        if link_serial.split("/", 1)[0] == self.serial and fragment:
            return fragment
        parsed.notes.append(f"{parsed.id}: BOM-Link {ref} points to another BOM")
        return ref


def parse_cyclonedx(doc: Any, policy: Policy) -> tuple[list[Parsed], list[str]]:
    """The vulnerabilities of a CycloneDX document, and the validation notes."""
    if not isinstance(doc, dict) or doc.get("bomFormat") != "CycloneDX":
        raise InvalidInput("not a CycloneDX document (bomFormat must be 'CycloneDX')")
    doc = _drop_nulls(doc)
    notes = validate(doc)
    context = _Document(doc, policy)
    return [
        _vulnerability(context, vuln, index)
        for index, vuln in enumerate(doc.get("vulnerabilities") or [])
    ], notes


def _ratings(context: _Document, parsed: Parsed, vuln: dict[str, Any]) -> None:
    for rating in vuln.get("ratings") or []:
        vector = text(rating.get("vector"))
        method = text(rating.get("method"))
        provider = text((rating.get("source") or {}).get("name"))
        if not vector or not method.upper().startswith("CVSSV") or method == "CVSSv2":
            continue
        source = "manufacturer" if provider == context.policy.organisation else "other"
        if not provider and context.own_product is not None:
            source = "manufacturer"
        found = candidate(parsed, source, provider, with_prefix(vector, method), parsed.id)
        given = rating.get("score")
        if found is not None and isinstance(given, int | float) and given != found.score:
            parsed.notes.append(
                f"{parsed.id}: {provider or 'a rating'} states {given}, its vector scores "
                f"{found.score}; the vector's score is used"
            )


def _analysis(parsed: Parsed, vuln: dict[str, Any]) -> tuple[str | None, str | None]:
    """(status, justification) from ``analysis`` and the ``patchgate:status`` property."""
    props = {
        text(p.get("name")): text(p.get("value"))
        for p in vuln.get("properties") or []
        if isinstance(p, dict)
    }
    analysis = vuln.get("analysis") or {}
    state = text(analysis.get("state"))
    if state and state not in IMPORT_STATE:
        raise InvalidInput(f"{parsed.id}: unknown analysis.state {state!r}")
    status = props.get("patchgate:status") or IMPORT_STATE.get(state)
    justification: str | None = text(analysis.get("justification")) or None
    if status == "will_not_fix":
        justification = text(analysis.get("detail")) or "will not fix"
    elif status == "not_affected" and justification is None:
        parsed.notes.append(f"{parsed.id}: {state or 'not_affected'} without a justification")
    return status, justification


def _ranges(parsed: Parsed, aff: dict[str, Any]) -> tuple[str, ...]:
    ranges: list[str] = []
    for ver in aff.get("versions") or []:
        if text(ver.get("status")) not in ("", "affected"):
            continue
        given = text(ver.get("range")) or text(ver.get("version"))
        try:
            ranges.append(versions.parse_range(given).to_vers())
        except InvalidInput as exc:
            parsed.notes.append(f"{parsed.id}: version {given!r} skipped: {exc}")
    return tuple(ranges)


def _vulnerability(context: _Document, vuln: dict[str, Any], index: int) -> Parsed:
    vid = text(vuln.get("id"))
    if not vid:
        raise InvalidInput(f"vulnerabilities[{index}]: no id")
    description = text(vuln.get("description")) or text(vuln.get("detail"))
    parsed = Parsed(id=vid, title=title(description, vid), description=description)
    parsed.aliases = [text(r.get("id")) for r in vuln.get("references") or [] if text(r.get("id"))]
    _ratings(context, parsed, vuln)
    status, justification = _analysis(parsed, vuln)
    for aff in vuln.get("affects") or []:
        ref = text(aff.get("ref"))
        if not ref:
            raise InvalidInput(f"{vid}: an affects entry has no ref")
        ref = context.local_ref(parsed, ref)
        ranges = _ranges(parsed, aff)
        if ref == context.own_ref and context.own_product is not None:
            parsed.products[context.own_product.name] = ProductClaim(ranges, status, justification)
            continue
        comp = context.components.get(ref) or (
            context.meta_component if ref == context.own_ref else {}
        )
        parsed.components.append(
            Component(
                name=text(comp.get("name")) or ref,
                version=text(comp.get("version")) or None,
                purl=text(comp.get("purl")) or None,
                ref=ref,
                ranges=ranges,
            )
        )
    if status is not None and not parsed.products:
        parsed.analysis = (status, justification)
    return parsed


# --- VEX export -------------------------------------------------------------------------------


def _entry(entry: VexEntry, ref: str) -> dict[str, Any]:
    out: dict[str, Any] = {"id": entry.id}
    if entry.id.upper().startswith("CVE-"):
        out["source"] = {"name": "NVD", "url": f"https://nvd.nist.gov/vuln/detail/{entry.id}"}
    if entry.cvss_vector and entry.score is not None:
        out["ratings"] = [
            {
                "source": {"name": entry.score_provider},
                "score": entry.score,
                "severity": entry.cvss_severity,
                "method": METHOD.get(entry.cvss_version or "", "other"),
                "vector": entry.cvss_vector,
            }
        ]
    if entry.description:
        out["description"] = entry.description
    body: dict[str, Any] = {"state": EXPORT_STATE[entry.status]}
    if entry.status == "not_affected" and entry.justification:
        body["justification"] = entry.justification
    if entry.status == "will_not_fix":
        body["response"] = ["will_not_fix"]
        body["detail"] = entry.justification or ""
    elif entry.status in ("fix_in_progress", "fix_released", "fix_deployed"):
        body["response"] = ["update"]
    body["lastUpdated"] = rfc3339(entry.updated_at)
    out["analysis"] = body
    affects: dict[str, Any] = {"ref": ref}
    if entry.ranges:
        affects["versions"] = [{"range": r, "status": "affected"} for r in entry.ranges]
    out["affects"] = [affects]
    out["properties"] = [{"name": "patchgate:status", "value": entry.status}]
    return out


def vex_document(vex: VexInput) -> dict[str, Any]:
    """A CycloneDX 1.6 VEX document of ``vex``."""
    ref = f"product:{vex.product}"
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": rfc3339(vex.generated_at),
            "component": {"bom-ref": ref, "type": "device", "name": vex.product},
            "supplier": {"name": vex.organisation},
        },
        "vulnerabilities": [_entry(e, ref) for e in vex.entries],
    }


def export_vex(ctx: Context, product: str) -> dict[str, Any]:
    """The CycloneDX 1.6 VEX of the current analysis of every vulnerability recorded for
    ``product`` (``vuln export-vex PRODUCT``)."""
    return vex_document(vex_input(ctx, product))
