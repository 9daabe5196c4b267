"""Drafts of the CRA Art. 14 reports, filled from the register (a read model).

Each draft carries the fields the Article asks for; what patchgate cannot know is present
and empty, for the author to complete. ``draft_record`` is the draft as plain data, the
form the API answers and a submission stores.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from patchgate.domain import vulnerabilities as domain
from patchgate.domain.clock import rfc3339
from patchgate.domain.errors import Conflict, InvalidInput
from patchgate.services.context import Context
from patchgate.services.policy import in_force
from patchgate.services.vulnerabilities.views import VulnerabilityView, show

TITLES = {
    "early_warning": "Early warning of an actively exploited vulnerability (CRA Art. 14(2)(a))",
    "notification": "Vulnerability notification (CRA Art. 14(2)(b))",
    "final_report": "Final report on an actively exploited vulnerability (CRA Art. 14(2)(c))",
    "incident_early_warning": "Early warning of a severe incident (CRA Art. 14(4)(a))",
    "incident_notification": "Incident notification (CRA Art. 14(4)(b))",
    "incident_final_report": "Final report on a severe incident (CRA Art. 14(4)(c))",
}


@dataclass(frozen=True)
class Manufacturer:
    name: str
    contact: tuple[str, ...]  # URIs: mailto:…, https://…


@dataclass(frozen=True)
class ReportedVulnerability:
    id: str
    aliases: tuple[str, ...]
    title: str


@dataclass(frozen=True)
class AffectedProduct:
    name: str
    status: str
    affected_versions: tuple[str, ...]
    fixing_release_id: int | None
    exposed_devices: int | None


@dataclass(frozen=True)
class SecurityUpdate:
    product: str
    release_id: int


# A field the Article asks for: text, a figure, a yes/no, or a list; None and "" are
# fields left for the author.
FieldValue = (
    str
    | float
    | bool
    | None
    | tuple[str, ...]
    | tuple[AffectedProduct, ...]
    | tuple[SecurityUpdate, ...]
)


@dataclass(frozen=True)
class DraftField:
    name: str
    value: FieldValue


@dataclass(frozen=True)
class Art14Draft:
    """One Art. 14 report as drafted from the register."""

    kind: str
    title: str
    manufacturer: Manufacturer
    vulnerability: ReportedVulnerability
    due_at: datetime | None
    member_states: tuple[str, ...]
    products: tuple[AffectedProduct, ...]
    fields: tuple[DraftField, ...]  # the kind's own fields, in the Article's order


def _early_warning(view: VulnerabilityView) -> list[DraftField]:
    return [
        DraftField("actively_exploited", view.exploited),
        DraftField("suspected_unlawful_or_malicious_act", None),
    ]


def _notification(
    kind: str, view: VulnerabilityView, products: tuple[AffectedProduct, ...]
) -> list[DraftField]:
    fields = [
        DraftField("general_nature", view.description or view.title),
        DraftField("severity", view.severity),
        DraftField("cvss_vector", view.cvss_vector),
        DraftField(
            "corrective_measures_taken",
            tuple(p for p in products if p.fixing_release_id is not None),
        ),
        DraftField("measures_users_can_take", ""),
        DraftField("sensitivity", ""),
    ]
    if kind == "incident_notification":
        fields += [DraftField("initial_assessment", ""), DraftField("indicators_of_compromise", ())]
    return fields


def _final_report(
    kind: str, view: VulnerabilityView, products: tuple[AffectedProduct, ...]
) -> list[DraftField]:
    fields = [
        DraftField("description", view.description or view.title),
        DraftField("severity", view.severity),
        DraftField("score", view.score),
        DraftField("impact", ""),
        DraftField(
            "security_update",
            tuple(
                SecurityUpdate(p.name, p.fixing_release_id)
                for p in products
                if p.fixing_release_id is not None
            ),
        ),
    ]
    if kind == "final_report":
        return [*fields, DraftField("malicious_actor", "")]
    return fields + [
        DraftField(name, "")
        for name in ("threat_type_or_root_cause", "mitigating_measures", "cross_border_impact")
    ]


def draft_report(ctx: Context, vuln_id: str, kind: str) -> Art14Draft:
    """A draft of report ``kind`` for a vulnerability whose Art. 14 clock for it runs."""
    if kind not in domain.ART14_KINDS:
        raise InvalidInput(f"unknown report {kind!r} (known: {', '.join(domain.ART14_KINDS)})")
    view = show(ctx, vuln_id)
    clock = view.art14.clock(kind) if view.art14 is not None else None
    if view.art14 is None or clock is None:
        raise Conflict(
            f"{view.id} has no {kind} clock: mark it exploited (or a severe incident) first"
        )
    policy = in_force(ctx).policy
    products = tuple(
        AffectedProduct(p.product, p.status, p.affected, p.fixing_release_id, p.exposed_devices)
        for p in view.products
    )
    if kind in ("early_warning", "incident_early_warning"):
        fields = _early_warning(view)
    elif kind in ("notification", "incident_notification"):
        fields = _notification(kind, view, products)
    else:
        fields = _final_report(kind, view, products)
    return Art14Draft(
        kind=kind,
        title=TITLES[kind],
        manufacturer=Manufacturer(policy.organisation, tuple(policy.contact.uris())),
        vulnerability=ReportedVulnerability(view.id, view.aliases, view.title),
        due_at=clock.due_at,
        member_states=view.art14.member_states,
        products=products,
        fields=tuple(fields),
    )


def _plain(value: Any) -> Any:
    if isinstance(value, AffectedProduct):
        return {
            "name": value.name,
            "status": value.status,
            "affected_versions": list(value.affected_versions),
            "fixing_release_id": value.fixing_release_id,
            "exposed_devices": value.exposed_devices,
        }
    if isinstance(value, SecurityUpdate):
        return {"product": value.product, "release_id": value.release_id}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def draft_record(draft: Art14Draft) -> dict[str, Any]:
    """The draft as plain JSON data, fields in the Article's order."""
    record: dict[str, Any] = {
        "report": draft.kind,
        "title": draft.title,
        "manufacturer": {
            "name": draft.manufacturer.name,
            "contact": list(draft.manufacturer.contact),
        },
        "vulnerability": {
            "id": draft.vulnerability.id,
            "aliases": list(draft.vulnerability.aliases),
            "title": draft.vulnerability.title,
        },
        "due_at": rfc3339(draft.due_at),
        "member_states": list(draft.member_states),
        "products": _plain(draft.products),
    }
    for field in draft.fields:
        record[field.name] = _plain(field.value)
    return record
