"""The register's commands followed by its views, rendered by the presenter as the API and
``--json`` render them: tests written against the JSON contract read the same shapes."""

from __future__ import annotations

from typing import Any

from patchgate.entrypoints.presenters import vulnerabilities as present
from patchgate.services.context import Context
from patchgate.services.vulnerabilities import art14, commands, views


def show(ctx: Context, vuln_id: str) -> dict[str, Any]:
    return present.vulnerability_json(views.show(ctx, vuln_id))


def list_all(ctx: Context, *, overdue: bool = False) -> list[dict[str, Any]]:
    page = views.list_vulnerabilities(ctx, overdue=overdue)
    return list(present.page_json(page)["vulnerabilities"])


def reports_due(ctx: Context) -> list[dict[str, Any]]:
    return list(present.due_json(views.reports_due(ctx))["reports"])


def sla_report(ctx: Context) -> dict[str, Any]:
    return present.sla_json(views.sla_report(ctx))


def draft_report(ctx: Context, vuln_id: str, kind: str) -> dict[str, Any]:
    return present.art14_json(art14.draft_report(ctx, vuln_id, kind))


def add(ctx: Context, **kw: Any) -> dict[str, Any]:
    return show(ctx, commands.add(ctx, **kw))


def triage(ctx: Context, vuln_id: str, **kw: Any) -> dict[str, Any]:
    return show(ctx, commands.triage(ctx, vuln_id, **kw))


def set_affected(ctx: Context, vuln_id: str, **kw: Any) -> dict[str, Any]:
    return show(ctx, commands.set_affected(ctx, vuln_id, **kw))


def override_severity(ctx: Context, vuln_id: str, **kw: Any) -> dict[str, Any]:
    return show(ctx, commands.override_severity(ctx, vuln_id, **kw))


def mark_exploited(ctx: Context, vuln_id: str, **kw: Any) -> dict[str, Any]:
    return show(ctx, commands.mark_exploited(ctx, vuln_id, **kw))


def record_upstream(ctx: Context, vuln_id: str, **kw: Any) -> dict[str, Any]:
    return show(ctx, commands.record_upstream(ctx, vuln_id, **kw))


def submit_report(ctx: Context, vuln_id: str, kind: str, **kw: Any) -> dict[str, Any]:
    return show(ctx, commands.submit_report(ctx, vuln_id, kind, **kw))
