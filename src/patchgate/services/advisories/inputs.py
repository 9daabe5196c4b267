"""The register, the policy and the releases turned into the plain inputs of a CSAF
document (``domain/csaf.py``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from patchgate import __version__
from patchgate.domain import csaf, versions
from patchgate.domain.errors import InvalidInput
from patchgate.domain.policy import Policy
from patchgate.services.cvss_scoring import score_vector
from patchgate.services.release_ports import ReleaseRecord
from patchgate.services.vulnerabilities.views import ProductView, VulnerabilityView


def first_tracking(tracking_id: str, status: str, now: datetime, summary: str) -> csaf.Tracking:
    """Tracking of a document's first version (integer versioning, CSAF 2.0 §3.1.11.2)."""
    return csaf.Tracking(
        id=tracking_id,
        status=status,
        version="1",
        initial=now,
        current=now,
        revisions=(csaf.Revision("1", now, summary),),
        generator_version=__version__,
    )


def publisher(policy: Policy, base_url: str) -> csaf.Publisher:
    """The vendor named by the policy, its website as the namespace (else the server's
    public URL) and its security contacts."""
    return csaf.Publisher(
        name=policy.organisation,
        namespace=(policy.website or base_url).rstrip("/"),
        contact_details=", ".join(policy.contact.uris()),
    )


def products(
    policy: Policy, releases: Iterable[ReleaseRecord], only: Sequence[str] | None = None
) -> tuple[csaf.ProductInput, ...]:
    """The policy's products (all, or ``only``) with every version they were released in."""
    by_product: dict[str, set[str]] = {}
    for release in releases:
        by_product.setdefault(release.product, set()).add(release.version)
    out: list[csaf.ProductInput] = []
    for product in policy.products:
        if only is not None and product.name not in only:
            continue
        released = sorted(by_product.get(product.name, ()), key=_order)
        out.append(csaf.ProductInput(product.name, tuple(product.hardware), tuple(released)))
    return tuple(out)


def _order(version: str) -> tuple[Any, ...]:
    return (0, versions.version_key(version)) if versions.is_version(version) else (1, version)


def _scores(view: VulnerabilityView) -> tuple[csaf.Score, ...]:
    """Each distinct vector of the record scored by the ``cvss`` library, so the base score
    in the document is the one its vector gives (CSAF 2.0 §6.1.9)."""
    vectors = [view.cvss_vector, *(s.vector for s in view.scores)]
    out: dict[str, csaf.Score] = {}
    for vector in vectors:
        if not vector:
            continue
        try:
            scored = score_vector(vector)
        except InvalidInput:
            continue
        out.setdefault(scored.vector, csaf.Score(scored.version, scored.vector, scored.score))
    return tuple(out.values())


def _fixes(
    vuln_id: str, analysis: ProductView, releases: Sequence[ReleaseRecord], base_url: str
) -> tuple[csaf.Fix, ...]:
    fixing = [
        r
        for r in releases
        if r.product == analysis.product
        and r.state != "withdrawn"
        and (vuln_id in r.fixes or r.id == analysis.fixing_release_id)
    ]
    out: list[csaf.Fix] = []
    for release in sorted(fixing, key=lambda r: _order(r.version)):
        url = (
            f"{base_url}/tuf/targets/{release.artifacts[0].tuf_target}" if release.artifacts else ""
        )
        out.append(csaf.Fix(release.id, release.version, url))
    return tuple(out)


def vulnerability(
    view: VulnerabilityView, releases: Sequence[ReleaseRecord], base_url: str
) -> csaf.VulnerabilityInput:
    """One register view (``vuln show``) as a CSAF vulnerability input."""
    findings = tuple(
        csaf.Finding(
            product=a.product,
            status=a.status,
            justification=a.justification,
            ranges=a.affected,
            fixes=_fixes(view.id, a, releases, base_url),
            due_at=a.due_at,
        )
        for a in view.products
    )
    return csaf.VulnerabilityInput(
        id=view.id,
        title=view.title or view.id,
        description=view.description,
        aliases=view.aliases,
        scores=_scores(view),
        aware_at=view.aware_at,
        exploited_at=view.exploited_at,
        findings=findings,
    )
