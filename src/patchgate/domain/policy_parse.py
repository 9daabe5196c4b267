"""Reading a patch management policy: a TOML text or a mapping becomes a ``Policy``, or
``PolicyInvalid`` lists every problem with the field it concerns (and, for TOML, its line).
The model itself is in :mod:`patchgate.domain.policy`; docs/contract.md lists the fields.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from patchgate.domain.policy import (
    DEFAULT_CADENCE,
    EU_MEMBER_STATES,
    INSTANCE_KINDS,
    MIN_SUPPORT_MONTHS,
    SEVERITIES,
    UPDATE_TYPES,
    CadenceRule,
    Contact,
    Month,
    Policy,
    Product,
)

# --- parsing and validation -------------------------------------------------------------

_TOP_KEYS = {
    "version",
    "organisation",
    "website",
    "contact",
    "update_types",
    "cadence",
    "escalation",
    "disclosure",
    "products",
    "sla",
    "instance",
}
_CONTACT_KEYS = {"email", "url", "pgp_key_url", "languages"}
_CADENCE_KEYS = {"cvss_min", "cvss_max", "deadline_hours", "deadline_days", "label"}
_PRODUCT_KEYS = {
    "name",
    "description",
    "support_start",
    "support_end",
    "on_sale",
    "member_states",
    "update_types",
    "hardware",
    "short_support_reason",
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a policy document: the dotted field path and what is wrong."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class _Collector:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, field_path: str, message: str) -> None:
        self.problems.append(Problem(field_path, message))


def _unknown(c: _Collector, where: str, data: Mapping[str, Any], allowed: set[str]) -> None:
    for key in data:
        if key not in allowed:
            path = f"{where}.{key}" if where else key
            c.add(path, f"unknown field (allowed here: {', '.join(sorted(allowed))})")


def _string(c: _Collector, path: str, value: Any, *, required: bool = False) -> str:
    if value is None:
        if required:
            c.add(path, "is required")
        return ""
    if not isinstance(value, str):
        c.add(path, f"must be a string, not {type(value).__name__}")
        return ""
    if required and not value.strip():
        c.add(path, "must not be empty")
    return value


def _strings(c: _Collector, path: str, value: Any, default: Sequence[str]) -> tuple[str, ...]:
    if value is None:
        return tuple(default)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        c.add(path, "must be a list of strings")
        return tuple(default)
    return tuple(value)


def _number(c: _Collector, path: str, value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        c.add(path, "must be a number" if value is not None else "is required")
        return None
    return float(value)


def _deadline_hours(c: _Collector, path: str, entry: Mapping[str, Any]) -> float | None:
    """``deadline_hours`` or ``deadline_days`` (not both), a positive whole number of hours."""
    hours: float | None
    if "deadline_hours" in entry and "deadline_days" in entry:
        c.add(path, "give deadline_hours or deadline_days, not both")
        return None
    if "deadline_days" in entry:
        days = _number(c, f"{path}.deadline_days", entry["deadline_days"])
        hours = None if days is None else days * 24
    else:
        hours = _number(c, f"{path}.deadline_hours", entry.get("deadline_hours"))
    if hours is not None and (hours <= 0 or hours != int(hours)):
        c.add(f"{path}.deadline_hours", "must be a positive whole number of hours")
        return None
    return hours


def _parse_cadence(c: _Collector, raw: Any) -> dict[str, CadenceRule]:
    rules: dict[str, CadenceRule] = {}
    if raw is None:
        c.add("cadence", "is required: one table per severity (critical, high, medium, low)")
        return rules
    if not isinstance(raw, dict):
        c.add("cadence", "must be a table keyed by severity")
        return rules
    for sev in raw:
        if sev not in SEVERITIES:
            c.add(f"cadence.{sev}", f"unknown severity (known: {', '.join(SEVERITIES)})")
    for sev in SEVERITIES:
        path = f"cadence.{sev}"
        entry = raw.get(sev)
        if entry is None:
            c.add(path, f"missing: every severity needs a cadence, and {sev} has none")
            continue
        if not isinstance(entry, dict):
            c.add(path, "must be a table")
            continue
        _unknown(c, path, entry, _CADENCE_KEYS)
        default_min, default_max, _, default_label = DEFAULT_CADENCE[sev]
        cvss_min = _number(c, f"{path}.cvss_min", entry.get("cvss_min", default_min))
        cvss_max = _number(c, f"{path}.cvss_max", entry.get("cvss_max", default_max))
        hours = _deadline_hours(c, path, entry)
        if (
            cvss_min is not None
            and cvss_max is not None
            and not (0.0 <= cvss_min <= cvss_max <= 10.0)
        ):
            c.add(path, f"CVSS range {cvss_min}–{cvss_max} must lie within 0.0–10.0")
        label = _string(c, f"{path}.label", entry.get("label", default_label))
        if cvss_min is not None and cvss_max is not None and hours is not None:
            rules[sev] = CadenceRule(sev, cvss_min, cvss_max, int(hours), label)
    # The bands must not overlap and a more severe band must not have a longer deadline.
    ordered = [rules[s] for s in SEVERITIES if s in rules]
    for higher, lower in itertools.pairwise(ordered):
        if lower.cvss_max >= higher.cvss_min:
            c.add(
                f"cadence.{lower.severity}",
                f"CVSS range overlaps {higher.severity} ({lower.cvss_max} ≥ {higher.cvss_min})",
            )
        if lower.deadline_hours < higher.deadline_hours:
            c.add(
                f"cadence.{lower.severity}.deadline_hours",
                f"is shorter than {higher.severity}'s; a less severe band cannot be due sooner",
            )
    return rules


def _parse_product(c: _Collector, index: int, raw: Any, today: date) -> Product | None:
    if not isinstance(raw, dict):
        c.add(f"products[{index}]", "must be a table")
        return None
    name = _string(c, f"products[{index}].name", raw.get("name"), required=True)
    path = f"products[{index}]" if not name else f"products[{index}] ({name})"
    _unknown(c, path, raw, _PRODUCT_KEYS)
    months: dict[str, Month] = {}
    for key in ("support_start", "support_end"):
        value = raw.get(key)
        if value is None:
            c.add(f"{path}.{key}", "is required (YYYY-MM)")
            continue
        try:
            months[key] = Month.parse(str(value))
        except ValueError as exc:
            c.add(f"{path}.{key}", str(exc))
    on_sale = raw.get("on_sale", True)
    if not isinstance(on_sale, bool):
        c.add(f"{path}.on_sale", "must be true or false")
        on_sale = True
    reason = _string(c, f"{path}.short_support_reason", raw.get("short_support_reason"))
    states = _strings(c, f"{path}.member_states", raw.get("member_states"), ())
    for state in states:
        if state.upper() not in EU_MEMBER_STATES:
            c.add(f"{path}.member_states", f"{state!r} is not an EU Member State code")
    update_types = _strings(c, f"{path}.update_types", raw.get("update_types"), UPDATE_TYPES)
    for kind in update_types:
        if kind not in UPDATE_TYPES:
            c.add(f"{path}.update_types", f"unknown update type {kind!r}")
    hardware = _strings(c, f"{path}.hardware", raw.get("hardware"), ())
    description = _string(c, f"{path}.description", raw.get("description"))
    if len(months) < 2 or not name:
        return None
    start, end = months["support_start"], months["support_end"]
    product = Product(
        name=name,
        support_start=start,
        support_end=end,
        on_sale=on_sale,
        member_states=tuple(s.upper() for s in states),
        update_types=update_types,
        hardware=hardware,
        short_support_reason=reason,
        description=description,
    )
    if end.index() < start.index():
        c.add(f"{path}.support_end", f"{end} is before support_start {start}")
    elif product.support_months() < MIN_SUPPORT_MONTHS and not reason.strip():
        c.add(
            f"{path}.support_end",
            f"support period is {product.support_months()} months, under the five years "
            "CRA Art. 13(8) expects; state short_support_reason",
        )
    if on_sale and end.last_day() < today:
        c.add(
            f"{path}.support_end",
            f"{end} is in the past but the product is still offered (on_sale = true)",
        )
    return product


def _parse_contact(c: _Collector, raw: Any) -> Contact:
    if not isinstance(raw, dict):
        c.add("contact", "is required: a table with email and/or url")
        return Contact()
    _unknown(c, "contact", raw, _CONTACT_KEYS)
    contact = Contact(
        email=_string(c, "contact.email", raw.get("email")),
        url=_string(c, "contact.url", raw.get("url")),
        pgp_key_url=_string(c, "contact.pgp_key_url", raw.get("pgp_key_url")),
        languages=_strings(c, "contact.languages", raw.get("languages"), ("en",)),
    )
    if not contact.uris():
        c.add("contact", "needs an email or a url: security.txt requires a Contact")
    if contact.url and not contact.url.startswith(("https://", "mailto:", "tel:")):
        c.add("contact.url", "must start with https://, mailto: or tel: (RFC 9116)")
    return contact


def _parse_escalation(c: _Collector, raw: Any) -> str:
    """The severity an actively exploited vulnerability is handled as (default critical)."""
    if raw is None:
        return "critical"
    if not isinstance(raw, dict):
        c.add("escalation", "must be a table")
        return "critical"
    _unknown(c, "escalation", raw, {"exploited"})
    exploited = _string(c, "escalation.exploited", raw.get("exploited", "critical"))
    if exploited not in SEVERITIES:
        c.add("escalation.exploited", f"unknown severity {exploited!r}")
    return exploited


def _parse_sla(c: _Collector, raw: Any) -> float:
    """The share of a deadline's span that counts as "due soon" (default 0.2)."""
    if raw is None:
        return 0.2
    if not isinstance(raw, dict):
        c.add("sla", "must be a table")
        return 0.2
    _unknown(c, "sla", raw, {"due_soon_fraction"})
    value = _number(c, "sla.due_soon_fraction", raw.get("due_soon_fraction", 0.2))
    if value is not None and not 0 < value < 1:
        c.add("sla.due_soon_fraction", "must lie strictly between 0 and 1")
        return 0.2
    return 0.2 if value is None else value


def _parse_instance(c: _Collector, raw: Any) -> str:
    """What this installation is (docs/simulator.md "Against a deployment"): ``production``
    (the default), ``staging`` or ``test``; rehearsal tools refuse production."""
    if raw is None:
        return INSTANCE_KINDS[0]
    if not isinstance(raw, dict):
        c.add("instance", "must be a table")
        return INSTANCE_KINDS[0]
    _unknown(c, "instance", raw, {"kind"})
    kind = _string(c, "instance.kind", raw.get("kind", INSTANCE_KINDS[0]))
    if kind not in INSTANCE_KINDS:
        c.add("instance.kind", f"{kind!r} is not one of {', '.join(INSTANCE_KINDS)}")
        return INSTANCE_KINDS[0]
    return kind


def _parse_products(c: _Collector, raw: Any, today: date) -> list[Product]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        c.add("products", "must be an array of tables ([[products]])")
        return []
    products: list[Product] = []
    seen: set[str] = set()
    for index, entry in enumerate(raw):
        product = _parse_product(c, index, entry, today)
        if product is None:
            continue
        if product.name in seen:
            c.add(f"products[{index}].name", f"duplicate product {product.name!r}")
        seen.add(product.name)
        products.append(product)
    return products


def parse_policy(data: Mapping[str, Any], *, today: date) -> Policy:
    """Build a ``Policy`` from a mapping, or raise ``PolicyInvalid`` listing every problem.

    ``today`` decides whether an end of support already lies in the past.
    """
    from patchgate.domain.errors import PolicyInvalid

    c = _Collector()
    _unknown(c, "", data, _TOP_KEYS)
    organisation = _string(c, "organisation", data.get("organisation"), required=True)
    website = _string(c, "website", data.get("website"))
    contact = _parse_contact(c, data.get("contact"))
    update_types = _strings(c, "update_types", data.get("update_types"), UPDATE_TYPES)
    for kind in update_types:
        if kind not in UPDATE_TYPES:
            c.add("update_types", f"unknown update type {kind!r}")
    cadence = _parse_cadence(c, data.get("cadence"))
    exploited = _parse_escalation(c, data.get("escalation"))
    due_soon = _parse_sla(c, data.get("sla"))
    instance = _parse_instance(c, data.get("instance"))
    disclosure_raw = data.get("disclosure")
    disclosure = ""
    if isinstance(disclosure_raw, dict):
        _unknown(c, "disclosure", disclosure_raw, {"text"})
        disclosure = _string(c, "disclosure.text", disclosure_raw.get("text"))
    elif disclosure_raw is not None:
        disclosure = _string(c, "disclosure", disclosure_raw)
    products = _parse_products(c, data.get("products"), today)
    version = data.get("version", "1")
    if c.problems:
        raise PolicyInvalid(
            f"the policy has {len(c.problems)} problem(s)",
            problems=[str(p) for p in c.problems],
        )
    return Policy(
        organisation=organisation,
        contact=contact,
        products=tuple(products),
        cadence=cadence,
        exploited_severity=exploited,
        update_types=update_types,
        disclosure=disclosure.strip(),
        website=website,
        version=str(version),
        due_soon_fraction=due_soon,
        instance_kind=instance,
    )


# --- reading the TOML text ----------------------------------------------------------------


def load_policy(source: str, *, today: date) -> Policy:
    """Parse policy TOML text; every problem names its field and, where known, its line."""

    from patchgate.domain import strict
    from patchgate.domain.errors import InvalidInput, PolicyInvalid

    try:  # strict: deep nesting, NaN/inf, integers past 64 bits and NUL are refused too
        data = strict.loads_toml(source, where="the policy")
    except (tomllib.TOMLDecodeError, InvalidInput) as exc:
        raise PolicyInvalid("the policy is not valid TOML", problems=[f"TOML: {exc}"]) from exc
    try:
        return parse_policy(data, today=today)
    except PolicyInvalid as exc:
        located = []
        for problem in exc.problems:
            field_path = problem.split(": ", 1)[0]
            line = locate_field(source, field_path)
            located.append(f"line {line}: {problem}" if line else problem)
        raise PolicyInvalid(exc.message, problems=located) from None


_SEGMENT = re.compile(r"([A-Za-z0-9_\-]+)(?:\[(\d+)\])?")


def locate_field(source: str, field_path: str) -> int | None:
    """Best-effort line number of a dotted field path (``products[1].support_end``).

    ``tomllib`` reports lines only for syntax errors, so this scans table headers and keys.
    Returns the line of the key, else of its table, else None.
    """
    path = re.sub(r" \([^)]*\)", "", field_path)
    segments: list[tuple[str, int | None]] = []
    for part in path.split("."):
        match = _SEGMENT.fullmatch(part)
        if not match:
            return None
        segments.append((match.group(1), int(match.group(2)) if match.group(2) else None))
    if not segments:
        return None
    # Walk the lines, keeping the current table path with array indices.
    counters: dict[str, int] = {}
    current: list[tuple[str, int | None]] = []
    best: int | None = None
    best_depth = 0
    for number, raw in enumerate(source.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if line.startswith("["):
            name = line.strip("[] ")
            if line.startswith("[["):
                counters[name] = counters.get(name, -1) + 1
                current = [(name, counters[name])]
            else:
                current = [(n.strip(), None) for n in name.split(".")]
            if current == segments[: len(current)] and len(current) >= best_depth:
                best, best_depth = number, len(current)
        elif "=" in line:
            key = line.split("=", 1)[0].strip().strip('"')
            if [*current, (key, None)] == segments:
                return number
    return best
