"""A device query (``patchgate.domain.filters``) as a SQL condition over the devices table.

Listings page through the devices table with a query's condition in the ``WHERE`` clause, so
a million-device fleet is never loaded to be filtered. One comparison has no SQL form on
every backend: ordering ``version`` by ``version_key`` (``1.10 > 1.9``). Others have one
that differs between backends: ``LIKE`` ignores case on SQLite, and text ordering follows
the database's collation. For those the condition is widened to a superset (``LIKE``
alone, "has a value", or true under ``!=``) and ``SqlFilter.exact`` is false: the caller
then keeps only the rows that ``domain.filters.matches`` accepts. Widening one comparison
to a superset keeps the whole condition a superset, because the language has no negation
other than the atomic ``!=`` and ``=out=``, which are widened themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, exists, false, not_, or_, select, true
from sqlalchemy.sql.elements import SQLColumnExpression

from patchgate.adapters.db.models import Device, DeviceGroup
from patchgate.domain import filters as q

__all__ = ["SqlFilter", "compile_filter"]

_ESCAPE = "\\"


@dataclass(frozen=True)
class SqlFilter:
    """``where`` selects the devices of the query; when ``exact`` is false it selects a
    superset, to be narrowed with ``domain.filters.matches``."""

    where: ColumnElement[bool]
    exact: bool


def _like_pattern(value: str) -> str:
    escaped = value.replace(_ESCAPE, _ESCAPE * 2).replace("%", _ESCAPE + "%")
    return escaped.replace("_", _ESCAPE + "_").replace("*", "%")


def _equals(column: SQLColumnExpression[str | None], value: str) -> ColumnElement[bool]:
    """Exact for plain values; for wildcards a superset (SQLite's LIKE ignores case)."""
    if q.wildcard_parts(value) is None:
        return column == value
    return column.like(_like_pattern(value), escape=_ESCAPE)


def _has_wildcard(c: q.Comparison) -> bool:
    return any(q.wildcard_parts(v) is not None for v in c.values)


def _column(field: q.Field) -> SQLColumnExpression[str | None]:
    if field.name == "id":
        return Device.controller_id
    if field.name == "hardware":
        return Device.hardware
    if field.name == "version":
        return Device.installed_version
    # attribute.NAME / metadata.KEY: the value as text on both backends (JSON ->> /
    # json_extract); a device without metadata holds SQL NULL, which reads as no value.
    document = Device.meta if field.name == "metadata" else Device.attributes
    reported: SQLColumnExpression[str | None] = document[field.key or ""].as_string()
    return reported


def _group(c: q.Comparison) -> tuple[ColumnElement[bool], bool]:
    wild = _has_wildcard(c)
    if c.operator in ("!=", "=out=") and wild:
        return true(), False
    member = exists(
        select(DeviceGroup.device_id).where(
            DeviceGroup.device_id == Device.id,
            or_(*(_equals(DeviceGroup.name, v) for v in c.values)),
        )
    )
    return (member if c.operator in ("==", "=in=") else not_(member)), not wild


def _last_seen(c: q.Comparison) -> ColumnElement[bool]:
    col = Device.last_seen
    if c.operator == "=is=":
        return col.is_(None)
    if c.operator == "=not=":
        return col.is_not(None)
    at = [q.instant(v) for v in c.values]
    if c.operator in ("==", "=in="):
        return col.in_(at)
    if c.operator in ("!=", "=out="):
        return or_(col.is_(None), col.not_in(at))
    return {
        "<": col < at[0],
        "<=": col <= at[0],
        ">": col > at[0],
        ">=": col >= at[0],
    }[c.operator]


def _comparison(c: q.Comparison) -> tuple[ColumnElement[bool], bool]:
    if c.field.name == "group":
        return _group(c)
    if c.field.name == "last_seen":
        return _last_seen(c), True
    col = _column(c.field)
    if c.operator == "=is=":
        return col.is_(None), True
    if c.operator == "=not=":
        return col.is_not(None), True
    wild = _has_wildcard(c)
    if c.operator in ("==", "=in="):
        return or_(*(_equals(col, v) for v in c.values)), not wild
    if c.operator in ("!=", "=out="):
        if wild:
            return true(), False
        return or_(col.is_(None), col.not_in(c.values)), True
    # Ordering: version order, or the collation's text order, is left to the caller.
    return col.is_not(None), False


def compile_filter(expr: q.Expression) -> SqlFilter:
    """The SQL condition of ``expr`` over ``Device`` (see the module docstring)."""
    if isinstance(expr, q.Comparison):
        where, exact = _comparison(expr)
        return SqlFilter(where, exact)
    parts = [compile_filter(i) for i in expr.items]
    exact = all(p.exact for p in parts)
    if isinstance(expr, q.And):
        return SqlFilter(and_(true(), *(p.where for p in parts)), exact)
    return SqlFilter(or_(false(), *(p.where for p in parts)), exact)
