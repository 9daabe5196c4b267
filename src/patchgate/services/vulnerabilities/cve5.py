"""Reading CVE Record Format 5.x (one record or a list) into register records.

Scores come from the CNA's and each ADP's ``metrics`` (CVSS v3.0, v3.1, v4.0; v2 is noted
and not used); CISA's KEV entry (an ADP ``other`` metric of type ``kev``) marks the record
actively exploited. Each ``affected[]`` entry is a component with its affected range, or,
when its ``product`` (alone or after its ``vendor``) is the name of a product of the
policy, that product's analysis with the range: this is how a manufacturer's own CVE
record ties itself to the fleet (docs/vulnerability-register.md, "Imports").
"""

from __future__ import annotations

from typing import Any

from patchgate.domain import versions
from patchgate.domain.errors import InvalidInput
from patchgate.domain.policy import Policy, Product
from patchgate.services.vulnerabilities.parsing import (
    Parsed,
    ProductClaim,
    candidate,
    english,
    records,
    text,
    title,
)
from patchgate.services.vulnerability_ports import Component

METRICS = {"cvssV3_1": "3.1", "cvssV3_0": "3.0", "cvssV4_0": "4.0"}


def parse_cve5(doc: Any, policy: Policy) -> list[Parsed]:
    """Every record of a CVE JSON 5 document (a REJECTED one as a skipped record)."""
    return [_record(rec, index, policy) for index, rec in enumerate(records(doc))]


def _record(rec: Any, index: int, policy: Policy) -> Parsed:
    where = f"record {index + 1}"
    if not isinstance(rec, dict):
        raise InvalidInput(f"{where}: not a JSON object")
    meta = rec.get("cveMetadata")
    if not isinstance(meta, dict):
        raise InvalidInput(f"{where}: cveMetadata is missing")
    cve_id = text(meta.get("cveId"))
    if not cve_id:
        raise InvalidInput(f"{where}: cveMetadata.cveId is missing")
    state = text(meta.get("state")).upper()
    containers = rec.get("containers")
    if state == "REJECTED":
        replaced = (containers or {}).get("cna", {}).get("replacedBy") or []
        note = f"{cve_id} is REJECTED" + (
            f" (replaced by {', '.join(replaced)})" if replaced else ""
        )
        return Parsed(id=cve_id, title=cve_id, skip=note)
    if state not in ("PUBLISHED", ""):
        raise InvalidInput(f"{cve_id}: unknown cveMetadata.state {state!r}")
    if not isinstance(containers, dict) or not isinstance(containers.get("cna"), dict):
        raise InvalidInput(f"{cve_id}: containers.cna is missing")
    cna = containers["cna"]
    description = english(cna.get("descriptions"))
    parsed = Parsed(
        id=cve_id,
        title=title(text(cna.get("title")) or description, cve_id),
        description=description,
    )
    provider = text((cna.get("providerMetadata") or {}).get("shortName")) or text(
        meta.get("assignerShortName")
    )
    _metrics(parsed, [("cna", provider, cna.get("metrics")), *_adp_metrics(containers, cve_id)])
    for number, aff in enumerate(cna.get("affected") or []):
        _affected(parsed, aff, number, policy)
    return parsed


def _adp_metrics(containers: dict[str, Any], cve_id: str) -> list[tuple[str, str, Any]]:
    adps = containers.get("adp") or []
    if not isinstance(adps, list):
        raise InvalidInput(f"{cve_id}: containers.adp must be a list")
    return [
        (
            "adp",
            text((adp.get("providerMetadata") or {}).get("shortName")) or "ADP",
            adp.get("metrics"),
        )
        for adp in adps
        if isinstance(adp, dict)
    ]


def _metrics(parsed: Parsed, sources: list[tuple[str, str, Any]]) -> None:
    for source, name, metrics in sources:
        for metric in metrics or []:
            if not isinstance(metric, dict):
                raise InvalidInput(f"{parsed.id}: a {source} metric is not an object")
            for key in METRICS:
                body = metric.get(key)
                if isinstance(body, dict) and body.get("vectorString"):
                    candidate(parsed, source, name, str(body["vectorString"]), parsed.id)
            if "cvssV2_0" in metric:
                parsed.notes.append(f"{parsed.id}: CVSS v2 score from {name} not used")
            other = metric.get("other")
            if isinstance(other, dict) and str(other.get("type", "")).lower() == "kev":
                parsed.exploited = True


def own_product(policy: Policy, vendor: str, product: str) -> Product | None:
    """The policy's product that an ``affected[]`` entry names: its ``product`` alone or
    ``vendor product`` equal to a product's name, ignoring case and spacing."""
    if not product:
        return None
    wanted = {
        " ".join(product.split()).casefold(),
        " ".join(f"{vendor} {product}".split()).casefold(),
    }
    return next((p for p in policy.products if " ".join(p.name.split()).casefold() in wanted), None)


def _affected(parsed: Parsed, aff: Any, number: int, policy: Policy) -> None:
    if not isinstance(aff, dict):
        raise InvalidInput(f"{parsed.id}: affected[{number}] is not an object")
    vendor, product = text(aff.get("vendor")), text(aff.get("product"))
    name = " ".join(x for x in (vendor, product) if x) or text(aff.get("packageName"))
    name = name or f"affected[{number}]"
    vers = aff.get("versions") or []
    if not isinstance(vers, list):
        raise InvalidInput(f"{parsed.id}: affected[{number}].versions must be a list")
    rng, notes = versions.from_cve5_versions(
        vers, default_status=text(aff.get("defaultStatus")) or "unaffected"
    )
    parsed.notes.extend(f"{parsed.id} {name}: {n}" for n in notes)
    ours = own_product(policy, vendor, product)
    if ours is not None and rng is not None:
        claim = parsed.products.get(ours.name, ProductClaim())
        ranges = tuple(dict.fromkeys([*claim.ranges, rng.to_vers()]))
        parsed.products[ours.name] = ProductClaim(ranges=ranges)
        return
    if ours is not None:
        parsed.notes.append(
            f"{parsed.id} {name}: names product {ours.name!r} but no affected version: "
            "not tied to it"
        )
    parsed.components.append(
        Component(
            name=name,
            package=text(aff.get("packageName")) or None,
            ranges=(rng.to_vers(),) if rng else (),
        )
    )
