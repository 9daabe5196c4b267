"""Rendering shared by the web pages and the CLI: Jinja2 templates, Markdown, security.txt."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from patchgate.domain.clock import parse_rfc3339, rfc3339
from patchgate.domain.policy import SEVERITIES, Policy


@cache
def templates() -> Environment:
    """The Jinja2 environment over the packaged templates (built on first use)."""
    env = Environment(
        loader=PackageLoader("patchgate.entrypoints.web", "templates"),
        autoescape=select_autoescape(["html", "xml"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["rfc3339"] = rfc3339
    env.filters["duration"] = human_hours
    env.filters["when"] = when
    env.filters["time_left"] = time_left
    return env


def _instant(value: datetime | str | None) -> datetime | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, datetime) else parse_rfc3339(value)


def when(value: datetime | str | None) -> str:
    """``2026-12-04 14:00 UTC``: a time as a person reads it (the exact value stays in the
    page's ``datetime`` attribute)."""
    at = _instant(value)
    return at.strftime("%Y-%m-%d %H:%M UTC") if at is not None else "—"


def time_left(value: datetime | str | None, now: datetime) -> str:
    """``3 d 4 h left`` / ``overdue by 5 h``: a deadline counting down."""
    at = _instant(value)
    if at is None:
        return "—"
    seconds = int((at - now).total_seconds())
    span = abs(seconds)
    days, rest = divmod(span, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        text = f"{days} d {hours} h"
    elif hours:
        text = f"{hours} h {minutes} min"
    else:
        text = f"{minutes} min"
    return f"{text} left" if seconds >= 0 else f"overdue by {text}"


def human_hours(hours: int) -> str:
    """``72 hours``, ``28 days``: how a deadline reads on the public page."""
    if hours % 24 == 0 and hours >= 24 * 7:
        days = hours // 24
        return f"{days} days"
    return f"{hours} hours"


def policy_context(policy: Policy, base_url: str) -> dict[str, Any]:
    """Template variables for the policy in every format."""
    return {
        "policy": policy,
        "rules": [policy.cadence[s] for s in SEVERITIES if s in policy.cadence],
        "base_url": base_url.rstrip("/"),
    }


def policy_html(policy: Policy, base_url: str, **extra: Any) -> str:
    """The public policy page."""
    return (
        templates().get_template("policy.html").render(**policy_context(policy, base_url), **extra)
    )


def policy_markdown(policy: Policy, base_url: str = "") -> str:
    """The policy as Markdown (``/policy.md``, ``policy render --format md``)."""
    lines = [f"# Patch management policy: {policy.organisation}", ""]
    lines += [
        "This policy states how fast we fix vulnerabilities in our products, which kinds of "
        "update we provide, and until when each product receives security updates.",
        "",
        "## Patch cadence",
        "",
        "| Severity | CVSS score | Deadline | Approach |",
        "| --- | --- | --- | --- |",
    ]
    for sev in SEVERITIES:
        rule = policy.cadence.get(sev)
        if rule:
            lines.append(
                f"| {sev.capitalize()} | {rule.cvss_min:.1f}–{rule.cvss_max:.1f} | "
                f"{human_hours(rule.deadline_hours)} | {rule.label} |"
            )
    lines += [
        "",
        "Deadlines run from the moment we become aware of a vulnerability. An actively "
        f"exploited vulnerability is handled as **{policy.exploited_severity}**, "
        "whatever its score.",
        "",
        "## Update types",
        "",
    ]
    lines += [f"- {kind}" for kind in policy.update_types]
    lines += ["", "## Products and end of support", ""]
    if policy.products:
        lines += ["| Product | Support from | Security updates until |", "| --- | --- | --- |"]
        for p in policy.products:
            lines.append(f"| {p.name} | {p.support_start.human()} | {p.support_end.human()} |")
    else:
        lines.append("No products are listed yet.")
    lines += ["", "## Reporting a vulnerability", ""]
    lines += [f"- {uri}" for uri in policy.contact.uris()]
    if policy.disclosure:
        lines += ["", policy.disclosure]
    if base_url:
        lines += ["", f"Machine-readable: {base_url.rstrip('/')}/policy.json"]
    return "\n".join(lines) + "\n"


def security_txt(policy: Policy, base_url: str, now: datetime) -> str:
    """RFC 9116 security.txt for the policy in force.

    Expires is set 180 days ahead: RFC 9116 §2.5.5 recommends less than a year, and the
    file is generated on every request, so it never goes stale while the server runs.
    """
    base = base_url.rstrip("/")
    lines = [f"Contact: {uri}" for uri in policy.contact.uris()]
    expires = (now + timedelta(days=180)).replace(microsecond=0)
    lines.append(f"Expires: {rfc3339(expires)}")
    if policy.contact.pgp_key_url:
        lines.append(f"Encryption: {policy.contact.pgp_key_url}")
    lines.append(f"Policy: {base}/policy")
    if policy.contact.languages:
        lines.append(f"Preferred-Languages: {', '.join(policy.contact.languages)}")
    lines.append(f"Canonical: {base}/.well-known/security.txt")
    lines.append(f"CSAF: {base}/.well-known/csaf/provider-metadata.json")
    return "\n".join(lines) + "\n"
