"""Advisories as JSON (the management API and the CLI's ``--json`` alike) and text, and a
CSAF document as people read it: Markdown and HTML renderings of the same content."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from patchgate.services.advisories.shapes import AdvisoryView


def advisory_json(view: AdvisoryView) -> dict[str, Any]:
    """One advisory (``advisory create|publish --json``, the API's answers)."""
    return view.to_json()


def list_json(views: Sequence[AdvisoryView]) -> dict[str, Any]:
    """``advisory list --json`` and ``GET /api/v1/advisories``."""
    return {"advisories": [v.to_json() for v in views]}


def detail_json(view: AdvisoryView, document: Mapping[str, Any]) -> dict[str, Any]:
    """``GET /api/v1/advisories/{id}``: the advisory's view and its CSAF document."""
    return {**view.to_json(), "csaf": document}


def drafted_text(view: AdvisoryView) -> str:
    return f"advisory {view.id} drafted: {view.title}"


def published_text(view: AdvisoryView) -> str:
    return f"advisory {view.id} published at {view.url}"


def list_text(views: Sequence[AdvisoryView]) -> list[str]:
    return [f"{v.id}  {v.state:<6} {v.title}" for v in views]


STATUS_LABELS = {
    "known_affected": "Affected",
    "fixed": "Fixed",
    "known_not_affected": "Not affected",
    "under_investigation": "Under investigation",
    "first_affected": "First affected",
    "last_affected": "Last affected",
    "first_fixed": "First fixed",
    "recommended": "Recommended",
}


def _products(node: Any) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        product = node.get("product")
        if isinstance(product, dict):
            yield product["product_id"], product["name"]
        for child in node.get("branches", []) or []:
            yield from _products(child)


def reading(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document's content with product IDs replaced by product names."""
    names = dict(_products(doc.get("product_tree", {})))

    def named(ids: list[str]) -> list[str]:
        return [names.get(i, i) for i in ids]

    vulnerabilities = []
    for v in doc.get("vulnerabilities", []):
        ids = [v["cve"]] if v.get("cve") else []
        ids += [i["text"] for i in v.get("ids", [])]
        vulnerabilities.append(
            {
                "ids": ids,
                "title": v.get("title", ""),
                "cwe": v.get("cwe"),
                "notes": v.get("notes", []),
                "scores": [s["cvss_v3"] for s in v.get("scores", [])],
                "status": [
                    (STATUS_LABELS.get(k, k), named(ids_))
                    for k, ids_ in v.get("product_status", {}).items()
                ],
                "flags": [
                    (f["label"].replace("_", " "), named(f.get("product_ids", [])))
                    for f in v.get("flags", [])
                ],
                "remediations": [
                    {
                        "category": r["category"].replace("_", " "),
                        "details": r["details"],
                        "url": r.get("url"),
                        "products": named(r.get("product_ids", [])),
                    }
                    for r in v.get("remediations", [])
                ],
                "threats": v.get("threats", []),
                "references": v.get("references", []),
            }
        )
    document = doc["document"]
    return {
        "title": document["title"],
        "tracking": document["tracking"],
        "publisher": document["publisher"],
        "tlp": document.get("distribution", {}).get("tlp", {}).get("label", ""),
        "notes": document.get("notes", []),
        "acknowledgments": [
            n for a in document.get("acknowledgments", []) for n in a.get("names", [])
        ],
        "references": document.get("references", []),
        "products": sorted(set(names.values())),
        "vulnerabilities": vulnerabilities,
    }


def markdown(doc: Mapping[str, Any]) -> str:
    """The advisory in Markdown."""
    r = reading(doc)
    t = r["tracking"]
    lines = [f"# {r['title']}", ""]
    lines += [
        f"- ID: {t['id']}",
        f"- Status: {t['status']}, version {t['version']}",
        f"- Published: {t['initial_release_date']}; current release {t['current_release_date']}",
        f"- Publisher: {r['publisher']['name']} ({r['publisher']['namespace']})",
        f"- Distribution: TLP:{r['tlp']}",
        "",
    ]
    for note in r["notes"]:
        lines += [f"## {note.get('title') or note['category'].title()}", "", note["text"], ""]
    lines += ["## Products", ""] + [f"- {p}" for p in r["products"]] + [""]
    for v in r["vulnerabilities"]:
        lines += _vulnerability_md(v)
    if r["acknowledgments"]:
        lines += [
            "## Acknowledgments",
            "",
            "Thanks to " + ", ".join(r["acknowledgments"]) + ".",
            "",
        ]
    if r["references"]:
        lines += (
            ["## References", ""]
            + [f"- [{x['summary']}]({x['url']})" for x in r["references"]]
            + [""]
        )
    lines += ["## Revision history", "", "| Version | Date | Summary |", "| --- | --- | --- |"]
    lines += [f"| {h['number']} | {h['date']} | {h['summary']} |" for h in t["revision_history"]]
    return "\n".join(lines) + "\n"


def _vulnerability_md(v: Mapping[str, Any]) -> list[str]:
    lines = [f"## {', '.join(v['ids'])}: {v['title']}", ""]
    if v["cwe"]:
        lines += [f"Weakness: {v['cwe']['id']} {v['cwe']['name']}", ""]
    for note in v["notes"]:
        lines += [note["text"], ""]
    for s in v["scores"]:
        lines += [
            f"CVSS v{s['version']} base score {s['baseScore']} "
            f"({s['baseSeverity'].lower()}): `{s['vectorString']}`",
            "",
        ]
    for label, products in v["status"]:
        lines += [f"- {label}: {', '.join(products)}"]
    for label, products in v["flags"]:
        lines += [f"- Justification ({label}): {', '.join(products)}"]
    lines.append("")
    for rem in v["remediations"]:
        url = f" <{rem['url']}>" if rem["url"] else ""
        lines += [f"- Remediation ({rem['category']}): {rem['details']}{url}"]
    for threat in v["threats"]:
        lines += [f"- {threat['category'].replace('_', ' ').capitalize()}: {threat['details']}"]
    for ref in v["references"]:
        lines += [f"- [{ref['summary']}]({ref['url']})"]
    lines.append("")
    return lines


def html(doc: Mapping[str, Any], **extra: Any) -> str:
    """The advisory as an HTML page (the public detail page and ``--format html``)."""
    from patchgate.entrypoints.web import render

    template = render.templates().get_template("advisory.html")
    return template.render(a=reading(doc), **extra)
