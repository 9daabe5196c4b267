"""Compliance evidence as JSON (the management API and the CLI's ``--json`` alike) and as
text for the CLI: the checklist (docs/compliance.md), a product's support statement (CRA
Art. 13(8)) and a technical file's export."""

from __future__ import annotations

from typing import Any

from patchgate.services.compliance.views import ChecklistView, Exported, SupportView

MARK = {"pass": "PASS", "warn": "WARN", "fail": "FAIL"}


def checklist_json(view: ChecklistView) -> dict[str, Any]:
    return view.to_json()


def checklist_text(view: ChecklistView) -> list[str]:
    lines = []
    for item in view.items:
        lines.append(f"{MARK[item.state]}  {item.id:<22} {item.summary}")
        lines += [f"      {e.label}" + (f" <{e.url}>" if e.url else "") for e in item.evidence]
    lines.append(f"{view.passed} of {len(view.items)} passed")
    return lines


def support_json(view: SupportView) -> dict[str, Any]:
    return view.to_json()


def support_text(view: SupportView) -> str:
    state = "supported" if view.supported else "no longer supported"
    return f"{view.product}: security updates until {view.support_end_human} ({state})"


def export_json(result: Exported) -> dict[str, Any]:
    return result.to_json()


def export_text(result: Exported) -> str:
    return f"technical file written to {result.path} ({len(result.files)} files)"
