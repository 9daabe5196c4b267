"""The technical file (CRA Annex VII) as a self-contained folder: ``index.html`` and
``index.md`` linking a page per subject, the data behind them as JSON, the published
advisories and the SBOMs. Every figure names the record it comes from (vulnerability,
release, campaign or audit entry ID). The folder is written beside its destination and
renamed into place, so a failed export leaves nothing behind."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from patchgate.domain.checklist import retained_until
from patchgate.domain.clock import rfc3339
from patchgate.domain.errors import InvalidInput
from patchgate.domain.policy import SEVERITIES
from patchgate.domain.stages import DEFAULT_SPEC
from patchgate.services import audit
from patchgate.services.advisories import views as advisory_views
from patchgate.services.compliance import checklist, sources, support
from patchgate.services.compliance import pages as doc
from patchgate.services.compliance.views import ChecklistView, Exported
from patchgate.services.context import Context
from patchgate.services.vulnerabilities.shapes import sla_json, vulnerability_json


def _destination(folder: str) -> Path:
    """The target folder: absent, or an empty folder; its parent must be writable."""
    path = Path(folder).expanduser().absolute()
    if path.exists():
        if not path.is_dir():
            raise InvalidInput(f"{path} exists and is not a folder")
        if any(path.iterdir()):
            raise InvalidInput(f"{path} is not empty; export into a new or empty folder")
    parent = path.parent
    if not parent.is_dir():
        raise InvalidInput(f"{parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise InvalidInput(f"{path} is not writable")
    return path


def _product_pages(ctx: Context, names: Sequence[str]) -> doc.Page:
    page = doc.Page("products", "Products and support periods")
    rows = []
    for name in names:
        s = support.view(ctx, name)
        rows.append(
            [
                name,
                s.description,
                s.support_start,
                s.support_end,
                ", ".join(s.hardware),
                ", ".join(s.member_states),
                s.short_support_reason or "",
            ]
        )
    page.table(
        ["Product", "Description", "Support from", "Support until", "Hardware", "Offered in",
         "Reason for a support period under five years"],
        rows,
    )  # fmt: skip
    return page


def _policy_page(ctx: Context) -> doc.Page:
    in_force = sources.policy_in_force(ctx)
    policy = in_force.policy
    page = doc.Page("policy", "Patch management policy")
    page.p(
        f"Policy version record {in_force.version_id}, SHA-256 {in_force.sha256}, "
        f"in force since {rfc3339(in_force.applied_at)}; organisation {policy.organisation}."
    )
    page.h("Patch cadence")
    page.table(
        ["Severity", "CVSS from", "CVSS to", "Deadline (hours)"],
        [
            [s, f"{r.cvss_min:.1f}", f"{r.cvss_max:.1f}", str(r.deadline_hours)]
            for s in SEVERITIES
            if (r := policy.cadence.get(s)) is not None
        ],
    )
    page.p(f"An actively exploited vulnerability is handled as {policy.exploited_severity}.")
    page.h("Security contact")
    page.ul(policy.contact.uris())
    if policy.disclosure:
        page.h("Coordinated disclosure")
        page.p(policy.disclosure)
    return page


def _process_page(ctx: Context) -> doc.Page:
    policy = sources.policy(ctx)
    hours = {s: policy.cadence[s].deadline_hours for s in SEVERITIES if s in policy.cadence}
    cadence = ", ".join(f"{s} {h} h" for s, h in hours.items())
    page = doc.Page("process", "From vulnerability report to deployment and monitoring")
    steps = [
        ("Intake", "Reports reach the contacts of the policy and security.txt; imports of "
         "CVE JSON 5, OSV and CycloneDX VEX records enter the register."),
        ("Triage", "Each vulnerability is analysed per product: new, triaged, not affected "
         "(with a VEX justification), fix in progress, will not fix."),
        ("Scoring and deadline", f"CVSS v3/v4 base scores set the severity; the deadline is "
         f"the awareness time plus the cadence ({cadence}); exploited vulnerabilities are "
         f"handled as {policy.exploited_severity}."),
        ("Fix and signed release", "A fix ships as a release whose artifacts are hashed and "
         "listed in TUF targets metadata signed with the targets key."),
        ("Phased rollout with gates", f"Campaigns follow the stages {DEFAULT_SPEC} unless "
         "told otherwise; each stage waits for its gates (minimum finished, maximum failure "
         "rate, soak, crash-rate comparison)."),
        ("Monitoring", "Devices report feedback and health through the DDI API; gates are "
         "evaluated continuously."),
        ("Halt and rollback", "A breached gate halts the campaign; devices revert through "
         "their A/B scheme; a revert campaign returns the known-good release."),
        ("Advisory", "A CSAF 2.0 advisory is drafted from the register and published, "
         "signed, under /.well-known/csaf/."),
        ("Art. 14 reporting", "Actively exploited vulnerabilities start the 24 h, 72 h and "
         "14 day CRA Art. 14 clocks, with drafts of each report."),
    ]  # fmt: skip
    page.table(["Step", "What happens"], [[a, b] for a, b in steps])
    return page


def _register_page(
    ctx: Context, names: Sequence[str]
) -> tuple[doc.Page, list[Any], dict[str, Any]]:
    views = [v for v in sources.vulnerabilities(ctx) if any(p.product in names for p in v.products)]
    page = doc.Page("register", "Vulnerability register")
    page.table(
        ["ID", "Title", "Severity", "CVSS", "Aware", "Due", "SLA", "Status", "Exposed devices"],
        [
            [v.id, v.title, v.severity, str(v.score), str(rfc3339(v.aware_at)),
             str(rfc3339(v.due_at)), v.sla_state, v.status, str(v.exposed_devices)]
            for v in views
        ],
    )  # fmt: skip
    sla = sources.sla_report(ctx)
    page.h("SLA metrics")
    page.p(f"As of {rfc3339(sla.generated_at)}; hours from awareness (data/sla.json).")

    def hours(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    page.table(
        ["Severity", "N", "Open", "Overdue", "Release median h", "Release p90 h",
         "Deploy median h", "Deploy p90 h", "Met", "Missed", "Share met"],
        [
            [r.severity, str(r.count), str(r.open), str(r.overdue),
             hours(r.time_to_release_hours.median), hours(r.time_to_release_hours.p90),
             hours(r.time_to_deploy_hours.median), hours(r.time_to_deploy_hours.p90),
             str(r.met), str(r.missed), "-" if r.share_met is None else f"{r.share_met:.0%}"]
            for r in sla.severities
        ],
    )  # fmt: skip
    return page, [vulnerability_json(v) for v in views], sla_json(sla)


def _releases_page(ctx: Context, names: Sequence[str], out: Path) -> tuple[doc.Page, list[Any]]:
    page = doc.Page("releases", "Releases, SBOMs and signatures")
    page.p(
        "Artifacts of a release offered to devices are kept for ten years after the release "
        "or until the end of the product's support period, whichever is later (CRA Art. "
        "13(9)); a withdrawn release is no longer offered but its artifacts stay."
    )
    rows: list[list[doc.Cell]] = []
    data = []
    policy = sources.policy(ctx)
    for r in [r for r in sources.releases(ctx) if r.product in names]:
        product = policy.product(r.product)
        kept = retained_until(r.signed_at or r.created_at, product.support_end if product else None)
        sbom: doc.Cell = "none"
        path = sources.sbom(ctx, r)
        if path is not None and path.is_file():
            (out / "sboms").mkdir(exist_ok=True)
            shutil.copyfile(path, out / "sboms" / f"release-{r.id}.cdx.json")
            sbom = (f"release-{r.id}.cdx.json", f"sboms/release-{r.id}.cdx.json")
        for a in r.artifacts:
            rows.append(
                [str(r.id), r.product, r.version, r.state, rfc3339(r.signed_at) or "unsigned",
                 a.filename, a.sha256, str(a.size), sbom, str(rfc3339(kept))]
            )  # fmt: skip
        data.append({"id": r.id, "product": r.product, "version": r.version, "state": r.state,
                     "signed_at": rfc3339(r.signed_at), "sbom_sha256": r.sbom_sha256,
                     "retained_until": rfc3339(kept),
                     "artifacts": [a.__dict__ for a in r.artifacts]})  # fmt: skip
    page.table(
        [
            "Release",
            "Product",
            "Version",
            "State",
            "Signed",
            "Artifact",
            "SHA-256",
            "Bytes",
            "SBOM",
        ],
        rows,
    )
    return page, data


def _campaigns_page(ctx: Context, names: Sequence[str]) -> tuple[doc.Page, list[Any]]:
    page = doc.Page("campaigns", "Campaign history")
    campaigns = [c for c in sources.campaigns(ctx) if c.product in names]
    page.table(
        ["Campaign", "Release", "State", "Stages", "Last gate", "Halt reason", "Created"],
        [
            [str(c.id), str(c.release_id), c.state, ", ".join(s.spec for s in c.stages),
             json.dumps((c.last_gate or {}).get("verdict")), c.halt_reason or "",
             str(rfc3339(c.created_at))]
            for c in campaigns
        ],
    )  # fmt: skip
    return page, [c.to_json() for c in campaigns]


def _distribution_page(ctx: Context) -> tuple[doc.Page, dict[str, Any]]:
    trust = sources.trust(ctx)
    status = trust.status
    expires = rfc3339(status.timestamp_expires) if status is not None else None
    page = doc.Page("distribution", "Secure distribution (TUF)")
    page.p(
        f"Trust mode {status.trust if status is not None else 'unknown'}; root metadata "
        f"version {status.root_version if status is not None else None}, expires "
        f"{trust.root_expires}; timestamp expires {expires}."
    )
    page.table(
        ["Role", "Threshold", "Keys", "Where the keys live"],
        [
            [name, str(threshold), str(keys),
             "online, in the server's data folder" if name in ("snapshot", "timestamp")
             else "offline (the release manager's keys)"]
            for name, (threshold, keys) in (trust.roles or {}).items()
        ],
    )  # fmt: skip
    return page, trust.to_json()


def _audit_page(ctx: Context) -> tuple[doc.Page, dict[str, Any]]:
    count, finding = sources.audit_head(ctx)
    newest = audit.entries(ctx, limit=1)
    checkpoints = sources.checkpoints(ctx)
    latest = checkpoints[-1] if checkpoints else None
    data = {
        "entries": count,
        "head_seq": newest[0].seq if newest else 0,
        "head_hash": newest[0].hash if newest else None,
        "checkpoint": latest.__dict__ if latest else None,
        "verify": "intact" if finding is None else str(finding),
    }
    page = doc.Page("audit", "Audit log")
    page.table(["Figure", "Value"], [[k, json.dumps(v)] for k, v in data.items()])
    return page, data


def _advisories(ctx: Context, out: Path, base_url: str) -> tuple[doc.Page, list[Any]]:
    page = doc.Page("advisories", "Published advisories (CSAF 2.0)")
    rows: list[list[doc.Cell]] = []
    data = []
    (out / "advisories").mkdir()
    for record in advisory_views.list_advisories(ctx, published_only=True):
        name = str(record.path).split("/")[-1]
        (out / "advisories" / name).write_text(record.text or "", encoding="utf-8")
        rows.append([record.id, record.title, str(rfc3339(record.published_at)),
                     (name, f"advisories/{name}")])  # fmt: skip
        data.append(advisory_views.view(record, base_url).to_json())
    page.table(["ID", "Title", "Published", "CSAF document"], rows)
    return page, data


def _checklist_page(result: ChecklistView) -> doc.Page:
    page = doc.Page("checklist", "Compliance checklist")
    page.p(f"{result.passed} of {len(result.items)} checks passed.")
    page.table(
        ["Check", "State", "Summary", "Evidence"],
        [[i.id, i.state, i.summary, "; ".join(e.label for e in i.evidence)] for i in result.items],
    )
    return page


def _write(out: Path, ctx: Context, product: str | None, base_url: str) -> list[str]:
    policy = sources.policy(ctx)
    names = [p.name for p in policy.products if product is None or p.name == product]
    register, vulns, sla = _register_page(ctx, names)
    releases, release_data = _releases_page(ctx, names, out)
    campaigns, campaign_data = _campaigns_page(ctx, names)
    distribution, trust = _distribution_page(ctx)
    audit_page, audit_data = _audit_page(ctx)
    advisories, advisory_data = _advisories(ctx, out, base_url)
    result = checklist.view(ctx, base_url=base_url, product=product)
    all_pages = [
        _product_pages(ctx, names), _policy_page(ctx), _process_page(ctx), register, releases,
        campaigns, distribution, _checklist_page(result), advisories, audit_page,
    ]  # fmt: skip
    data = {
        "policy": policy.to_json(), "register": vulns, "sla": sla, "releases": release_data,
        "campaigns": campaign_data, "distribution": trust, "checklist": result.to_json(),
        "advisories": advisory_data, "audit": audit_data,
    }  # fmt: skip
    (out / "data").mkdir()
    for key, value in data.items():
        (out / "data" / f"{key}.json").write_text(json.dumps(value, indent=2, default=str))
    index = doc.Page("index", f"Technical file: {', '.join(names) or policy.organisation}")
    index.p(f"Exported {rfc3339(ctx.clock())} by patchgate for {policy.organisation}.")
    index.ul([(p.title, f"{p.name}.md") for p in all_pages])
    index.h("Data")
    index.ul([(f"data/{k}.json", f"data/{k}.json") for k in data])
    for page in [index, *all_pages]:
        (out / f"{page.name}.md").write_text(doc.markdown(page), encoding="utf-8")
        (out / f"{page.name}.html").write_text(doc.to_html(page), encoding="utf-8")
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def export(
    ctx: Context, folder: str, *, product: str | None = None, base_url: str, actor: str
) -> Exported:
    """Write the technical file into ``folder`` (new or empty); audited."""
    if product is not None:
        support.view(ctx, product)  # refuses an unknown or malformed name
    target = _destination(folder)
    work = Path(tempfile.mkdtemp(prefix=".techfile-", dir=target.parent))
    try:
        files = _write(work, ctx, product, base_url)
        if target.exists():
            target.rmdir()
        work.chmod(0o755)
        work.rename(target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    with ctx.uow() as uow:
        audit.record(
            ctx, uow, actor=actor, action=checklist.TECHFILE_ACTION, subject="techfile",
            details={"product": product, "files": len(files)},
        )  # fmt: skip
        uow.commit()
    return Exported(str(target), product, tuple(files))
