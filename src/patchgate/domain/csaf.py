"""CSAF 2.0 documents built from plain inputs (pure, standard library only).

Two document categories are produced: ``csaf_security_advisory`` (CSAF 2.0 §4.3) for one
or more vulnerabilities, and ``csaf_vex`` (§4.5) for every vulnerability recorded for one
product. The product tree is a vendor → product → version tree (§3.1.2); every release
version carries PURL and CPE product identification helpers and its hardware models
(§3.1.3.3). Product status follows the register (known_affected from the affected ranges,
fixed from the fixing releases, known_not_affected with a VEX flag, under_investigation for
what is still being triaged). File names follow §5.1.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from patchgate.domain import versions
from patchgate.domain.clock import rfc3339

CSAF_VERSION = "2.0"
ADVISORY = "csaf_security_advisory"
VEX = "csaf_vex"
CATEGORIES = (ADVISORY, VEX)
TLP_WHITE = {"label": "WHITE", "url": "https://www.first.org/tlp/"}
CVE_ID = re.compile(r"^CVE-[0-9]{4}-[0-9]{4,}$")

# patchgate's (CycloneDX) VEX justifications as CSAF 2.0 product status flags (§3.2.3.5).
FLAG_FOR_JUSTIFICATION: Mapping[str, str] = {
    "code_not_present": "vulnerable_code_not_present",
    "code_not_reachable": "vulnerable_code_not_in_execute_path",
    "requires_configuration": "vulnerable_code_cannot_be_controlled_by_adversary",
    "requires_dependency": "component_not_present",
    "requires_environment": "vulnerable_code_cannot_be_controlled_by_adversary",
    "protected_by_compiler": "inline_mitigations_already_exist",
    "protected_at_runtime": "inline_mitigations_already_exist",
    "protected_at_perimeter": "inline_mitigations_already_exist",
    "protected_by_mitigating_control": "inline_mitigations_already_exist",
}

UNDER_INVESTIGATION = ("new",)
NOT_AFFECTED = ("not_affected",)
WILL_NOT_FIX = ("will_not_fix",)

_SEVERITY_BANDS = ((9.0, "CRITICAL"), (7.0, "HIGH"), (4.0, "MEDIUM"), (0.1, "LOW"))


# --- inputs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Publisher:
    """§3.2.1.8: who issues the documents."""

    name: str
    namespace: str
    contact_details: str = ""


@dataclass(frozen=True)
class ProductInput:
    """A product of the policy with the versions it was released in."""

    name: str
    hardware: tuple[str, ...] = ()
    versions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Fix:
    """A release that fixes a vulnerability for a product."""

    release_id: int
    version: str
    url: str = ""


@dataclass(frozen=True)
class Finding:
    """The register's analysis of one vulnerability for one product."""

    product: str
    status: str
    justification: str | None = None
    ranges: tuple[str, ...] = ()
    fixes: tuple[Fix, ...] = ()
    due_at: datetime | None = None


@dataclass(frozen=True)
class Score:
    """A CVSS vector with the base score its formulas give (computed outside the domain)."""

    version: str
    vector: str
    base_score: float


@dataclass(frozen=True)
class VulnerabilityInput:
    """One register record as a CSAF vulnerability needs it."""

    id: str
    title: str
    description: str = ""
    aliases: tuple[str, ...] = ()
    scores: tuple[Score, ...] = ()
    aware_at: datetime | None = None
    exploited_at: datetime | None = None
    findings: tuple[Finding, ...] = ()


@dataclass(frozen=True)
class Revision:
    """One entry of the revision history (§3.2.1.12.6)."""

    number: str
    date: datetime
    summary: str


@dataclass(frozen=True)
class Tracking:
    """§3.2.1.12: identity and life cycle of one document."""

    id: str
    status: str
    version: str
    initial: datetime
    current: datetime
    revisions: tuple[Revision, ...]
    generator_version: str = ""


@dataclass(frozen=True)
class DocumentInput:
    """Everything one document is built from."""

    category: str
    title: str
    publisher: Publisher
    tracking: Tracking
    products: tuple[ProductInput, ...]
    vulnerabilities: tuple[VulnerabilityInput, ...]
    self_url: str = ""
    policy_url: str = ""
    acknowledgments: tuple[str, ...] = ()
    summary: str = ""
    lang: str = "en"
    extra_notes: tuple[tuple[str, str, str], ...] = field(default=())


# --- names and identification helpers -------------------------------------------------------


def slug(text: str) -> str:
    """Lower-case ASCII letters, digits and single dashes (for PURLs, CPEs and IDs)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def file_name(tracking_id: str) -> str:
    """§5.1: the tracking ID in lower case, every character other than ``+``, ``-``,
    ``a-z`` and ``0-9`` replaced by ``_``, with ``.json`` appended."""
    return re.sub(r"[^+\-a-z0-9]", "_", tracking_id.lower()) + ".json"


def purl(vendor: str, product: str, version: str) -> str:
    """A ``pkg:generic`` package URL for a firmware version."""
    return f"pkg:generic/{slug(vendor)}/{slug(product)}@{_purl_escape(version)}"


def _purl_escape(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.\-_~]", lambda m: "%" + m.group().encode().hex().upper(), text)


def cpe(vendor: str, product: str, version: str) -> str:
    """A CPE 2.3 formatted string naming the firmware (part ``o``) version."""

    def part(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9._\-]", "_", text.lower().replace(" ", "_"))

    return f"cpe:2.3:o:{part(vendor)}:{part(product)}:{part(version)}:*:*:*:*:*:*:*"


def base_severity(score: float) -> str:
    """The CVSS v3 qualitative rating of a base score (CVSS v3.1 specification §5)."""
    for floor, name in _SEVERITY_BANDS:
        if score >= floor:
            return name
    return "NONE"


def _version_id(product: str, version: str) -> str:
    return f"{slug(product)}-{version}"


def _range_id(product: str, vers: str) -> str:
    return f"{slug(product)}-range-{hashlib.sha256(vers.encode()).hexdigest()[:10]}"


# --- product tree ----------------------------------------------------------------------------


@dataclass
class _Tree:
    """Product IDs handed out while the tree is built, so every reference is defined."""

    vendor: str
    products: dict[str, ProductInput]
    ranges: dict[str, dict[str, str]] = field(default_factory=dict)

    def version_ids(self, product: str) -> list[str]:
        p = self.products.get(product)
        return [_version_id(product, v) for v in p.versions] if p else []

    def range_id(self, product: str, vers: str) -> str:
        self.ranges.setdefault(product, {})[vers] = _range_id(product, vers)
        return self.ranges[product][vers]

    def as_json(self) -> dict[str, Any]:
        branches = [self._product(p) for p in self.products.values()]
        return {"branches": [{"category": "vendor", "name": self.vendor, "branches": branches}]}

    def _product(self, p: ProductInput) -> dict[str, Any]:
        children: list[dict[str, Any]] = []
        for version in p.versions:
            helper: dict[str, Any] = {
                "cpe": cpe(self.vendor, p.name, version),
                "purl": purl(self.vendor, p.name, version),
            }
            if p.hardware:
                helper["model_numbers"] = list(p.hardware)
            children.append(
                {
                    "category": "product_version",
                    "name": version,
                    "product": {
                        "name": f"{self.vendor} {p.name} {version}",
                        "product_id": _version_id(p.name, version),
                        "product_identification_helper": helper,
                    },
                }
            )
        for vers, pid in sorted(self.ranges.get(p.name, {}).items()):
            children.append(
                {
                    "category": "product_version_range",
                    "name": vers,
                    "product": {"name": f"{self.vendor} {p.name} {vers}", "product_id": pid},
                }
            )
        if not children:
            # A product with no release yet: every version, as a range.
            pid = self.range_id(p.name, "vers:generic/*")
            children.append(
                {
                    "category": "product_version_range",
                    "name": "vers:generic/*",
                    "product": {
                        "name": f"{self.vendor} {p.name} (all versions)",
                        "product_id": pid,
                    },
                }
            )
        return {"category": "product_name", "name": p.name, "branches": children}


# --- product status --------------------------------------------------------------------------


@dataclass
class _Status:
    """The product IDs of one vulnerability in each status group, with the reasons."""

    known_affected: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    known_not_affected: list[str] = field(default_factory=list)
    under_investigation: list[str] = field(default_factory=list)
    flags: list[dict[str, Any]] = field(default_factory=list)
    remediations: list[dict[str, Any]] = field(default_factory=list)
    threats: list[dict[str, Any]] = field(default_factory=list)

    def groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name in ("fixed", "known_affected", "known_not_affected", "under_investigation"):
            ids = list(dict.fromkeys(getattr(self, name)))
            if ids:
                out[name] = ids
        return out


def _affected_range(finding: Finding) -> tuple[str, versions.VersionRange]:
    """The vers string and range a finding affects: its recorded ranges; without any, every
    version before its first fix; without a fix either, every version."""
    if finding.ranges:
        parsed = versions.union(versions.parse_range(r) for r in finding.ranges)
        assert parsed is not None
        return parsed.to_vers(), parsed
    fixed = [f.version for f in finding.fixes if versions.is_version(f.version)]
    if fixed:
        first = min(fixed, key=versions.version_key)
        parsed = versions.VersionRange(
            (versions.Interval(None, versions.Bound(first, inclusive=False)),)
        )
        return parsed.to_vers(), parsed
    every = versions.VersionRange((versions.Interval(),))
    return every.to_vers(), every


def _apply(tree: _Tree, finding: Finding, status: _Status) -> None:
    """Sort the product versions of one finding into status groups, with flags and
    remediations (§3.2.3.9, §3.2.3.5, §3.2.3.12)."""
    product = tree.products.get(finding.product)
    if product is None:
        return
    if finding.status in NOT_AFFECTED:
        _not_affected(tree, finding, status)
        return
    vers, affected = _affected_range(finding)
    fix_versions = {f.version for f in finding.fixes}
    ids = [tree.range_id(finding.product, vers)] + [
        _version_id(finding.product, v)
        for v in product.versions
        if affected.contains(v) and v not in fix_versions
    ]
    if finding.status in UNDER_INVESTIGATION:
        status.under_investigation.extend(ids)
        return
    status.known_affected.extend(ids)
    known = set(product.versions)
    status.fixed.extend(
        _version_id(finding.product, f.version) for f in finding.fixes if f.version in known
    )
    _remediate(finding, ids, status)


def _not_affected(tree: _Tree, finding: Finding, status: _Status) -> None:
    ids = [tree.range_id(finding.product, r) for r in _vers_of(finding.ranges)]
    ids += tree.version_ids(finding.product) or [tree.range_id(finding.product, "vers:generic/*")]
    status.known_not_affected.extend(ids)
    flag = FLAG_FOR_JUSTIFICATION.get(finding.justification or "")
    if flag:
        status.flags.append({"label": flag, "product_ids": ids})
    reason = (finding.justification or "analysed by the vendor").replace("_", " ")
    status.threats.append(
        {"category": "impact", "details": f"Not affected: {reason}.", "product_ids": ids}
    )


def _vers_of(ranges: Iterable[str]) -> list[str]:
    return [versions.parse_range(text).to_vers() for text in ranges]


def _remediate(finding: Finding, ids: Sequence[str], status: _Status) -> None:
    if finding.status in WILL_NOT_FIX:
        status.remediations.append(
            {
                "category": "no_fix_planned",
                "details": finding.justification or "No fix is planned for this product.",
                "product_ids": list(ids),
            }
        )
        return
    for fix in finding.fixes:
        remedy: dict[str, Any] = {
            "category": "vendor_fix",
            "details": f"Update {finding.product} to version {fix.version} "
            f"(release {fix.release_id}).",
            "product_ids": list(ids),
        }
        if fix.url:
            remedy["url"] = fix.url
        status.remediations.append(remedy)
    if not finding.fixes:
        due = f" The fix is due by {rfc3339(finding.due_at)}." if finding.due_at else ""
        status.remediations.append(
            {
                "category": "none_available",
                "details": f"No fix is available yet.{due}",
                "product_ids": list(ids),
            }
        )


# --- vulnerabilities -------------------------------------------------------------------------


def _identity(v: VulnerabilityInput) -> dict[str, Any]:
    names = [v.id, *v.aliases]
    cves = [n for n in names if CVE_ID.match(n)]
    out: dict[str, Any] = {}
    if cves:
        out["cve"] = cves[0]
    others = [n for n in dict.fromkeys(names) if n not in cves[:1]]
    if others:
        out["ids"] = [{"system_name": _system(n), "text": n} for n in others]
    return out


def _system(name: str) -> str:
    if name.startswith("GHSA-"):
        return "GitHub Security Advisory"
    if CVE_ID.match(name):
        return "CVE"
    return "Vulnerability register"


def _scores(v: VulnerabilityInput, ids: Sequence[str]) -> tuple[list[Any], list[Any]]:
    """CVSS v3 scores for the affected products; CVSS v4 vectors go to notes, as CSAF 2.0
    has no field for them."""
    scores: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    for s in v.scores:
        if s.version.startswith("3") and ids:
            scores.append(
                {
                    "cvss_v3": {
                        "version": s.version,
                        "vectorString": s.vector,
                        "baseScore": s.base_score,
                        "baseSeverity": base_severity(s.base_score),
                    },
                    "products": list(ids),
                }
            )
        elif s.version.startswith("4"):
            notes.append(
                {
                    "category": "other",
                    "title": "CVSS v4.0",
                    "text": f"CVSS v4.0 base score {s.base_score} ({s.vector})",
                }
            )
    return scores, notes


def _vulnerability(tree: _Tree, v: VulnerabilityInput) -> dict[str, Any]:
    status = _Status()
    for finding in v.findings:
        _apply(tree, finding, status)
    groups = status.groups()
    rated = groups.get("known_affected", []) + groups.get("under_investigation", [])
    scores, score_notes = _scores(v, rated)
    out: dict[str, Any] = {**_identity(v), "title": v.title}
    if v.aware_at is not None:
        out["discovery_date"] = rfc3339(v.aware_at)
    out["notes"] = [
        {"category": "description", "text": v.description or v.title, "title": "Description"},
        *score_notes,
    ]
    if groups:
        out["product_status"] = groups
    if status.flags:
        out["flags"] = status.flags
    if status.remediations:
        out["remediations"] = status.remediations
    threats = list(status.threats)
    if v.exploited_at is not None and rated:
        threats.append(
            {
                "category": "exploit_status",
                "date": rfc3339(v.exploited_at),
                "details": "Actively exploited (CRA Art. 14).",
                "product_ids": rated,
            }
        )
    if threats:
        out["threats"] = threats
    if scores:
        out["scores"] = scores
    cve = out.get("cve")
    if cve:
        out["references"] = [
            {
                "category": "external",
                "summary": f"{cve} in the NVD",
                "url": f"https://nvd.nist.gov/vuln/detail/{cve}",
            }
        ]
    return out


# --- the document ----------------------------------------------------------------------------


def _tracking(t: Tracking) -> dict[str, Any]:
    out: dict[str, Any] = {
        "current_release_date": rfc3339(t.current),
        "id": t.id,
        "initial_release_date": rfc3339(t.initial),
        "revision_history": [
            {"date": rfc3339(r.date), "number": r.number, "summary": r.summary} for r in t.revisions
        ],
        "status": t.status,
        "version": t.version,
    }
    if t.generator_version:
        out["generator"] = {
            "date": rfc3339(t.current),
            "engine": {"name": "patchgate", "version": t.generator_version},
        }
    return out


def _document_notes(d: DocumentInput) -> list[dict[str, Any]]:
    notes = [{"category": "summary", "text": d.summary or d.title, "title": "Summary"}]
    for category, title, text in d.extra_notes:
        notes.append({"category": category, "text": text, "title": title})
    return notes


def build(d: DocumentInput) -> dict[str, Any]:
    """The CSAF 2.0 document (a JSON object) for ``d``."""
    if d.category not in CATEGORIES:
        raise ValueError(f"unknown CSAF category {d.category!r}")
    tree = _Tree(d.publisher.name, {p.name: p for p in d.products})
    vulnerabilities = [_vulnerability(tree, v) for v in d.vulnerabilities]
    publisher: dict[str, Any] = {
        "category": "vendor",
        "name": d.publisher.name,
        "namespace": d.publisher.namespace,
    }
    if d.publisher.contact_details:
        publisher["contact_details"] = d.publisher.contact_details
    document: dict[str, Any] = {
        "category": d.category,
        "csaf_version": CSAF_VERSION,
        "distribution": {"tlp": dict(TLP_WHITE)},
        "lang": d.lang,
        "notes": _document_notes(d),
        "publisher": publisher,
        "title": d.title,
        "tracking": _tracking(d.tracking),
    }
    if d.acknowledgments:
        document["acknowledgments"] = [{"names": list(d.acknowledgments)}]
    references = []
    if d.self_url:
        references.append({"category": "self", "summary": "This document", "url": d.self_url})
    if d.policy_url:
        references.append(
            {"category": "external", "summary": "Patch management policy", "url": d.policy_url}
        )
    if references:
        document["references"] = references
    return {
        "document": document,
        "product_tree": tree.as_json(),
        "vulnerabilities": vulnerabilities,
    }


def finalised(doc: Mapping[str, Any], now: datetime, self_url: str) -> dict[str, Any]:
    """A copy of a draft as published at ``now`` (CSAF 2.0 §3.2.1.12): status ``final``,
    initial and current release date and the revision's date set to ``now``, and the
    ``self`` reference pointing where the provider serves it."""
    out: dict[str, Any] = json.loads(json.dumps(doc))
    tracking = out["document"]["tracking"]
    stamp = rfc3339(now)
    tracking["status"] = "final"
    tracking["initial_release_date"] = stamp
    tracking["current_release_date"] = stamp
    for revision in tracking.get("revision_history", []):
        revision["date"] = stamp
    if "generator" in tracking:
        tracking["generator"]["date"] = stamp
    references = [r for r in out["document"].get("references", []) if r["category"] != "self"]
    out["document"]["references"] = [
        {"category": "self", "summary": "This document", "url": self_url},
        *references,
    ]
    return out
