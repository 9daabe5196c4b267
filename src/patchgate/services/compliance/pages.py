"""A tiny document model for the technical file: headings, paragraphs, lists, tables and
links, rendered to Markdown and to self-contained HTML (no network needed to read it)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

Cell = str | tuple[str, str]  # text, or (text, href)


@dataclass
class Page:
    """One page of the technical file."""

    name: str  # file stem: NAME.md and NAME.html
    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def h(self, text: str) -> Page:
        self.blocks.append(("h", text))
        return self

    def p(self, text: str) -> Page:
        self.blocks.append(("p", text))
        return self

    def ul(self, items: Sequence[Cell]) -> Page:
        self.blocks.append(("ul", list(items)))
        return self

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> Page:
        self.blocks.append(("table", (list(headers), [list(r) for r in rows])))
        return self


def _md_cell(cell: Cell) -> str:
    if isinstance(cell, tuple):
        return f"[{cell[0]}]({cell[1]})"
    return str(cell).replace("|", "\\|").replace("\n", " ")


def _html_cell(cell: Cell, ext: str) -> str:
    if isinstance(cell, tuple):
        href = cell[1].replace(".md", ext) if cell[1].endswith(".md") else cell[1]
        return f'<a href="{html.escape(href)}">{html.escape(cell[0])}</a>'
    return html.escape(str(cell))


def markdown(page: Page) -> str:
    lines = [f"# {page.title}", ""]
    for kind, value in page.blocks:
        if kind == "h":
            lines += [f"## {value}", ""]
        elif kind == "p":
            lines += [str(value), ""]
        elif kind == "ul":
            lines += [f"- {_md_cell(c)}" for c in value] + [""]
        else:
            headers, rows = value
            lines += ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            lines.append("")
    return "\n".join(lines) + "\n"


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem}"
    "table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #bbb;padding:.25rem .5rem;"
    "text-align:left;vertical-align:top}code{font-size:.9em}"
)


def to_html(page: Page) -> str:
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(page.title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(page.title)}</h1>",
    ]
    for kind, value in page.blocks:
        if kind == "h":
            out.append(f"<h2>{html.escape(str(value))}</h2>")
        elif kind == "p":
            out.append(f"<p>{html.escape(str(value))}</p>")
        elif kind == "ul":
            items = "".join(f"<li>{_html_cell(c, '.html')}</li>" for c in value)
            out.append(f"<ul>{items}</ul>")
        else:
            headers, rows = value
            head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
            body = "".join(
                "<tr>" + "".join(f"<td>{_html_cell(c, '.html')}</td>" for c in row) + "</tr>"
                for row in rows
            )
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
