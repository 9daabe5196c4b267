"""Plain-text building blocks for the CLI's human output: every value printed as a person
would write it (never a Python repr), and tables whose columns line up."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from patchgate.domain.clock import rfc3339

__all__ = ["NONE", "cell", "fields", "table"]

NONE = "-"


def cell(value: Any) -> str:
    """``value`` as text: ``-`` for nothing, ``yes``/``no``, RFC 3339 times, lists joined
    by commas, mappings as ``key=value`` pairs."""
    if value is None or value == "" or value == [] or value == ():
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return rfc3339(value) or NONE
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={cell(v)}" for k, v in value.items()) or NONE
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(cell(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def fields(pairs: Iterable[tuple[str, Any]]) -> list[str]:
    """``label  value`` lines, the values lined up after the longest label."""
    items = [(label, cell(value)) for label, value in pairs]
    width = max((len(label) for label, _ in items), default=0)
    return [f"{label + ':':<{width + 1}}  {value}" for label, value in items]


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    widths: list[int] | None = None,
    header: bool = True,
) -> list[str]:
    """Lines of a table: a header, then one line per row, columns padded to line up (the
    last column is not padded). ``widths``, when given, is the minimum per column and is
    updated in place, so pages printed one after another keep their alignment (print the
    header with the first page only: ``header=False``)."""
    text_rows = [[cell(v) for v in row] for row in rows]
    sizes = widths if widths is not None else [0] * len(headers)
    if len(sizes) < len(headers):
        sizes.extend([0] * (len(headers) - len(sizes)))
    for row in [list(headers), *text_rows]:
        for index, value in enumerate(row):
            sizes[index] = max(sizes[index], len(value))

    def line(values: Sequence[str]) -> str:
        padded = [f"{v:<{sizes[i]}}" for i, v in enumerate(values[:-1])]
        return "  ".join([*padded, values[-1]]).rstrip()

    body = [line(r) for r in text_rows]
    return [line(list(headers)), *body] if header else body
