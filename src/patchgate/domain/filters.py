"""Device queries in hawkBit's target-filter language (FIQL/RSQL), pure.

Operators select devices with the same language hawkBit's "target filter queries" use, so
a query written for hawkBit keeps working here (docs/device-filters.md):

    group==canary-optin;hardware=in=(gw-1,gw-2)
    version<1.4.0,attribute.slots==ab
    (id==gw-00*;last_seen<2026-11-01T00:00:00Z),group=out=(internal,qa)

Grammar (RSQL, the superset of FIQL that hawkBit parses): ``;`` or `` and `` is AND, ``,``
or `` or `` is OR, AND binds tighter, parentheses group. A comparison is ``field`` +
operator + value, or a parenthesised value list for ``=in=`` / ``=out=``. Values are bare
words or quoted with ``'`` or ``"`` (backslash escapes the quote). In ``==`` and ``!=``
a ``*`` in the value is a wildcard for any run of characters.

Fields (case-insensitive; hawkBit's own names accepted as aliases): ``id``
(``controllerid``), ``group`` (``tag``), ``hardware``, ``version`` (``installedds.version``),
``attribute.NAME`` (what the device reported in configData), ``metadata.KEY`` (what an
operator set on it, docs/device-filters.md "Metadata") and ``last_seen``
(``lastcontrollerrequestat``).
``version`` orders by ``patchgate.domain.versions.version_key`` (``1.10 > 1.9``);
``last_seen`` takes RFC 3339 or epoch milliseconds, as hawkBit does. ``=is=null`` and
``=not=null`` test for a missing value.

This module parses (``parse``), prints back in canonical form (``render``, so
``parse(render(q)) == q``) and evaluates a query against one device's facts
(``matches``): the campaign engine evaluates a campaign's filter with it at each poll,
against the device's row as the poll read it, and the database adapter compiles the same
tree to SQL for listings and for the campaign's targeted fleet.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from patchgate.domain.errors import InvalidInput
from patchgate.domain.versions import is_version, version_key

__all__ = [
    "FIELDS",
    "OPERATORS",
    "And",
    "Comparison",
    "DeviceFacts",
    "Expression",
    "Field",
    "FilterError",
    "Or",
    "matches",
    "parse",
    "quote",
    "render",
    "wildcard_match",
    "wildcard_parts",
]

# Canonical operator spellings; the symbolic ones are what hawkBit's docs use first.
OPERATORS = ("==", "!=", "<", "<=", ">", ">=", "=in=", "=out=", "=is=", "=not=")
_ALIASES = {"=lt=": "<", "=le=": "<=", "=gt=": ">", "=ge=": ">="}
_LIST_OPERATORS = frozenset({"=in=", "=out="})
_ORDERING = frozenset({"<", "<=", ">", ">="})
_NULL_OPERATORS = frozenset({"=is=", "=not="})

FIELDS = ("id", "group", "hardware", "version", "last_seen", "attribute.NAME", "metadata.KEY")
_FIELD_ALIASES = {
    "id": "id",
    "controllerid": "id",
    "group": "group",
    "tag": "group",
    "hardware": "hardware",
    "version": "version",
    "installedds.version": "version",
    "last_seen": "last_seen",
    "lastcontrollerrequestat": "last_seen",
}
_KEYED = ("attribute", "metadata")

# RSQL's reserved characters: a bare value may contain none of them.
_RESERVED = frozenset("\"'();,=!~<> \t\r\n")
_SELECTOR = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_OPERATOR = re.compile(r"==|!=|<=|>=|<|>|=[a-z]+=")
_WORD_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_WORD_OR = re.compile(r"\s+or\s+", re.IGNORECASE)
MAX_LENGTH = 4096
MAX_DEPTH = 32


def _ends_bare(ch: str) -> bool:
    """Whether ``ch`` ends a bare value: a reserved character or any white space."""
    return ch in _RESERVED or ch.isspace()


class FilterError(InvalidInput):
    """A query that cannot be read; the message names the position (0-based) and what was
    expected there."""


@dataclass(frozen=True)
class Field:
    """A field of the device; ``key`` is the attribute's name for ``attribute.NAME`` and the
    metadata key for ``metadata.KEY``."""

    name: str
    key: str | None = None

    def __str__(self) -> str:
        return f"{self.name}.{self.key}" if self.key is not None else self.name


@dataclass(frozen=True)
class Comparison:
    field: Field
    operator: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class And:
    items: tuple[Expression, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Expression, ...]


Expression = Comparison | And | Or


class DeviceFacts(Protocol):
    """What a query may read of a device."""

    @property
    def controller_id(self) -> str: ...
    @property
    def groups(self) -> Collection[str]: ...
    @property
    def hardware(self) -> str | None: ...
    @property
    def installed_version(self) -> str | None: ...
    @property
    def attributes(self) -> Mapping[str, object]: ...
    @property
    def metadata(self) -> Mapping[str, object]: ...
    @property
    def last_seen(self) -> datetime | None: ...


# ---- parsing ------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0

    def fail(self, expected: str, at: int | None = None) -> FilterError:
        where = self.pos if at is None else at
        found = self.text[where : where + 12]
        shown = f"'{found}'" if found else "the end"
        return FilterError(f"filter: {expected} at position {where}, found {shown}")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def eat(self, pattern: re.Pattern[str]) -> bool:
        m = pattern.match(self.text, self.pos)
        if m is None:
            return False
        self.pos = m.end()
        return True

    def separator(self, char: str, word: re.Pattern[str]) -> bool:
        """Consume ``char`` (after optional spaces) or the spelled-out ``word``."""
        if self.eat(word):
            return True
        at = self.pos
        while at < len(self.text) and self.text[at].isspace():
            at += 1
        if at < len(self.text) and self.text[at] == char:
            self.pos = at + 1
            return True
        return False

    def expression(self) -> Expression:
        items = [self.conjunction()]
        while self.separator(",", _WORD_OR):
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def conjunction(self) -> Expression:
        items = [self.constraint()]
        while self.separator(";", _WORD_AND):
            items.append(self.constraint())
        return items[0] if len(items) == 1 else And(tuple(items))

    def constraint(self) -> Expression:
        self.skip_space()
        if self.pos < len(self.text) and self.text[self.pos] == "(":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.fail(f"at most {MAX_DEPTH} nested parentheses")
            self.pos += 1
            inner = self.expression()
            self.skip_space()
            if self.pos >= len(self.text) or self.text[self.pos] != ")":
                raise self.fail("')'")
            self.pos += 1
            self.depth -= 1
            return inner
        return self.comparison()

    def comparison(self) -> Comparison:
        start = self.pos
        m = _SELECTOR.match(self.text, self.pos)
        if m is None:
            raise self.fail("a field name (" + ", ".join(FIELDS) + ")")
        field = _field(m.group(0), start)
        self.pos = m.end()
        self.skip_space()
        op_at = self.pos
        om = _OPERATOR.match(self.text, self.pos)
        if om is None:
            raise self.fail("an operator (" + ", ".join(OPERATORS) + ")")
        operator = _ALIASES.get(om.group(0), om.group(0))
        if operator not in OPERATORS:
            raise self.fail("a known operator (" + ", ".join(OPERATORS) + ")", op_at)
        self.pos = om.end()
        self.skip_space()
        values = self.arguments(operator)
        return _checked(Comparison(field, operator, values), op_at)

    def arguments(self, operator: str) -> tuple[str, ...]:
        if operator in _LIST_OPERATORS:
            if self.pos >= len(self.text) or self.text[self.pos] != "(":
                raise self.fail(f"'(' and a list of values after {operator}")
            self.pos += 1
            values = [self.value()]
            self.skip_space()
            while self.pos < len(self.text) and self.text[self.pos] == ",":
                self.pos += 1
                values.append(self.value())
                self.skip_space()
            if self.pos >= len(self.text) or self.text[self.pos] != ")":
                raise self.fail("',' or ')' in the value list")
            self.pos += 1
            return tuple(values)
        return (self.value(),)

    def value(self) -> str:
        self.skip_space()
        if self.pos < len(self.text) and self.text[self.pos] in "'\"":
            return self.quoted()
        start = self.pos
        while self.pos < len(self.text) and not _ends_bare(self.text[self.pos]):
            self.pos += 1
        if self.pos == start:
            raise self.fail("a value")
        return self.text[start : self.pos]

    def quoted(self) -> str:
        quote = self.text[self.pos]
        start = self.pos
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if ch == quote:
                self.pos += 1
                return "".join(out)
            out.append(ch)
            self.pos += 1
        raise self.fail(f"a closing {quote}", start)


def _field(selector: str, at: int) -> Field:
    lowered = selector.lower()
    if lowered in _FIELD_ALIASES:
        return Field(_FIELD_ALIASES[lowered])
    head, _, key = selector.partition(".")
    if head.lower() in _KEYED and key:
        return Field(head.lower(), key)
    raise FilterError(
        f"filter: unknown field '{selector}' at position {at} (fields: {', '.join(FIELDS)})"
    )


def _checked(c: Comparison, at: int) -> Comparison:
    """Refuse comparisons that could never mean anything, naming the operator's position."""
    name = c.field.name
    if c.operator in _NULL_OPERATORS:
        if c.values != ("null",):
            raise FilterError(f"filter: {c.operator} takes only null, at position {at}")
        if name in ("id", "group"):
            raise FilterError(f"filter: {name} is never null, at position {at}")
    if c.operator in _ORDERING and name == "group":
        raise FilterError(f"filter: group takes ==, !=, =in= or =out=, at position {at}")
    if name == "last_seen" and c.operator not in _NULL_OPERATORS:
        for v in c.values:
            _instant(v, at)
    if name == "version" and c.operator in _ORDERING and not is_version(c.values[0]):
        raise FilterError(f"filter: '{c.values[0]}' is not a version, at position {at}")
    return c


def _instant(value: str, at: int) -> datetime:
    if value.isdigit():
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise FilterError(
            f"filter: '{value}' is not an RFC 3339 time or epoch milliseconds, at position {at}"
        ) from None
    if parsed.tzinfo is None:
        raise FilterError(f"filter: '{value}' needs a time zone (Z), at position {at}")
    return parsed.astimezone(UTC)


def parse(text: str) -> Expression:
    """Parse a query; raise ``FilterError`` naming the position of the first problem."""
    if len(text) > MAX_LENGTH:
        raise FilterError(f"filter: longer than {MAX_LENGTH} characters")
    if not text.strip():
        raise FilterError("filter: empty query")
    parser = _Parser(text)
    expr = parser.expression()
    parser.skip_space()
    if parser.pos != len(text):
        raise parser.fail("';', ',' or the end")
    return expr


def instant(value: str) -> datetime:
    """A ``last_seen`` value as a UTC datetime (RFC 3339 or epoch milliseconds)."""
    return _instant(value, 0)


# ---- printing -----------------------------------------------------------------------------


def quote(v: str) -> str:
    """``v`` as a query value: bare when it can be, else double-quoted with escapes."""
    if v and not any(_ends_bare(ch) or ch == "\\" for ch in v):
        return v
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(expr: Expression) -> str:
    """The canonical text of a query (``parse(render(q)) == q``)."""
    if isinstance(expr, Comparison):
        if expr.operator in _LIST_OPERATORS:
            arg = "(" + ",".join(quote(v) for v in expr.values) + ")"
        else:
            arg = quote(expr.values[0])
        return f"{expr.field}{expr.operator}{arg}"
    # A child of the same kind, or an OR inside an AND, keeps its parentheses so that the
    # text parses back to the same tree.
    if isinstance(expr, And):
        return ";".join(
            f"({render(i)})" if isinstance(i, And | Or) else render(i) for i in expr.items
        )
    return ",".join(f"({render(i)})" if isinstance(i, Or) else render(i) for i in expr.items)


# ---- evaluation ---------------------------------------------------------------------------


def wildcard_parts(value: str) -> list[str] | None:
    """The literal pieces between ``*`` wildcards, or None when ``value`` has none."""
    return value.split("*") if "*" in value else None


def wildcard_match(text: str, value: str) -> bool:
    """Whether ``text`` equals ``value``, where ``*`` in ``value`` is any run of characters."""
    parts = wildcard_parts(value)
    if parts is None:
        return text == value
    pattern = ".*".join(re.escape(p) for p in parts)
    return re.fullmatch(pattern, text, flags=re.DOTALL) is not None


def _read(field: Field, device: DeviceFacts) -> str | datetime | None:
    if field.name == "id":
        return device.controller_id
    if field.name == "hardware":
        return device.hardware
    if field.name == "version":
        return device.installed_version
    if field.name == "last_seen":
        return device.last_seen
    source = device.metadata if field.name == "metadata" else device.attributes
    raw = source.get(field.key or "")
    return None if raw is None else str(raw)


def _ordered(field: Field, have: str | datetime, want: str) -> int | None:
    """-1, 0 or 1 comparing ``have`` with ``want``; None when they cannot be ordered."""
    if isinstance(have, datetime):
        other = instant(want)
        return (have > other) - (have < other)
    if field.name == "version":
        if not is_version(have):
            return None
        a, b = version_key(have), version_key(want)
        return (a > b) - (a < b)
    return (have > want) - (have < want)


_ORDER_TEST = {
    "<": lambda c: c < 0,
    "<=": lambda c: c <= 0,
    ">": lambda c: c > 0,
    ">=": lambda c: c >= 0,
}


def _equal(field: Field, have: str | datetime, want: str) -> bool:
    if isinstance(have, datetime):
        return have == instant(want)
    return wildcard_match(have, want)


def _compare(c: Comparison, device: DeviceFacts) -> bool:
    if c.field.name == "group":
        hit = any(wildcard_match(g, v) for g in device.groups for v in c.values)
        return hit if c.operator in ("==", "=in=") else not hit
    have = _read(c.field, device)
    if c.operator in _NULL_OPERATORS:
        return (have is None) == (c.operator == "=is=")
    if c.operator in ("!=", "=out="):
        return have is None or not any(_equal(c.field, have, v) for v in c.values)
    if have is None:
        return False
    if c.operator in ("==", "=in="):
        return any(_equal(c.field, have, v) for v in c.values)
    order = _ordered(c.field, have, c.values[0])
    return order is not None and _ORDER_TEST[c.operator](order)


def matches(expr: Expression, device: DeviceFacts) -> bool:
    """Whether ``device`` is selected by ``expr``.

    A missing value (no hardware, version, attribute or last contact) never equals and is
    never ordered against anything; ``!=`` and ``=out=`` select it (the device does not
    have that value), as hawkBit's queries do for an absent attribute.
    """
    if isinstance(expr, Comparison):
        return _compare(expr, device)
    if isinstance(expr, And):
        return all(matches(i, device) for i in expr.items)
    return any(matches(i, device) for i in expr.items)
