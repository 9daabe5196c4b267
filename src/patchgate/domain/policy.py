"""The patch management policy as code (guide §1–2; README, "The patch management policy").

A policy is parsed from a plain mapping (what ``tomllib`` gives) into frozen dataclasses,
and validated as a whole so that every problem is reported at once, each naming its field.
Nothing here reads files or the clock: ``today`` is passed in.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

SEVERITIES: tuple[str, ...] = ("critical", "high", "medium", "low")
UPDATE_TYPES: tuple[str, ...] = ("security", "feature", "combined")
# What an installation is (``[instance] kind``); the first is the default.
INSTANCE_KINDS: tuple[str, ...] = ("production", "staging", "test")

# CRA Art. 13(8): the support period is at least five years unless the product is expected
# to be in use for less, which the manufacturer must state.
MIN_SUPPORT_MONTHS = 60

# EU Member States by ISO 3166-1 alpha-2 code (CRA Art. 14 reports name where a product is
# offered). Greece is "GR" in ISO 3166 even though EU documents often write "EL".
EU_MEMBER_STATES: frozenset[str] = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
    ]
)

# The guide's §2 table, turned into hours. Every number can be changed in the policy file.
# The bands are the CVSS qualitative scale (domain/vulnerabilities.CVSS_BANDS reads them).
DEFAULT_CADENCE: Mapping[str, tuple[float, float, int, str]] = {
    "critical": (9.0, 10.0, 72, "Emergency, out of band"),
    "high": (7.0, 8.9, 28 * 24, "Urgent: next or accelerated update"),
    "medium": (4.0, 6.9, 90 * 24, "Regular: next scheduled maintenance release"),
    "low": (0.1, 3.9, 365 * 24, "Opportunistic: a future release"),
}

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class Month:
    """A calendar month, the granularity CRA support periods are stated in."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """Parse ``YYYY-MM``; raises ``ValueError`` with a readable reason."""
        match = _MONTH.match(text.strip())
        if not match:
            raise ValueError(f"{text!r} is not a month written as YYYY-MM")
        year, month = int(match.group(1)), int(match.group(2))
        if not 1 <= month <= 12:
            raise ValueError(f"{text!r} has no month {month}")
        return cls(year, month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def index(self) -> int:
        """Months since year 0, for differences."""
        return self.year * 12 + self.month - 1

    def last_day(self) -> date:
        """The last day of the month: support ends at the end of its stated month."""
        return date(self.year, self.month, calendar.monthrange(self.year, self.month)[1])

    def human(self) -> str:
        """``December 2031``: how the public page states end of support."""
        return f"{_MONTH_NAMES[self.month - 1]} {self.year}"


_MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@dataclass(frozen=True)
class CadenceRule:
    """How fast a severity band must be fixed: a CVSS range and a deadline in hours."""

    severity: str
    cvss_min: float
    cvss_max: float
    deadline_hours: int
    label: str = ""

    def contains(self, score: float) -> bool:
        """True when ``score`` falls in this band (bounds inclusive, one decimal)."""
        return self.cvss_min <= round(score, 1) <= self.cvss_max


@dataclass(frozen=True)
class Product:
    """A product and its published support commitment."""

    name: str
    support_start: Month
    support_end: Month
    on_sale: bool = True
    member_states: tuple[str, ...] = ()
    update_types: tuple[str, ...] = UPDATE_TYPES
    hardware: tuple[str, ...] = ()
    short_support_reason: str = ""
    description: str = ""

    def support_months(self) -> int:
        """Length of the support period in whole months, both ends included."""
        return self.support_end.index() - self.support_start.index() + 1


@dataclass(frozen=True)
class Contact:
    """Where to report a vulnerability (RFC 9116 ``Contact:`` lines come from here)."""

    email: str = ""
    url: str = ""
    pgp_key_url: str = ""
    languages: tuple[str, ...] = ("en",)

    def uris(self) -> list[str]:
        """Contact URIs in order of preference, as security.txt lists them."""
        out: list[str] = []
        if self.email:
            out.append(f"mailto:{self.email}")
        if self.url:
            out.append(self.url)
        return out


@dataclass(frozen=True)
class Policy:
    """The patch management policy in force: who, what is supported, and how fast."""

    organisation: str
    contact: Contact
    products: tuple[Product, ...]
    cadence: Mapping[str, CadenceRule]
    exploited_severity: str = "critical"
    update_types: tuple[str, ...] = UPDATE_TYPES
    disclosure: str = ""
    website: str = ""
    version: str = "1"
    due_soon_fraction: float = 0.2
    extra: Mapping[str, Any] = field(default_factory=dict)
    # ``[instance] kind``: production (default), staging or test.
    instance_kind: str = "production"

    def product(self, name: str) -> Product | None:
        """The product called ``name``, or None."""
        for product in self.products:
            if product.name == name:
                return product
        return None

    def to_json(self) -> dict[str, Any]:
        """The public JSON shape of ``/policy.json``, which scripts read (docs/cli.md)."""
        return {
            "organisation": self.organisation,
            "contact": (self.contact.uris() or [""])[0],
            "contacts": self.contact.uris(),
            "website": self.website,
            "version": self.version,
            "update_types": list(self.update_types),
            "exploited_vulnerabilities": {"treated_as": self.exploited_severity},
            "products": [
                {
                    "name": p.name,
                    "support_start": str(p.support_start),
                    "support_end": str(p.support_end),
                    "support_end_date": p.support_end.last_day().isoformat(),
                    "support_months": p.support_months(),
                    "on_sale": p.on_sale,
                    "member_states": list(p.member_states),
                    "update_types": list(p.update_types),
                    "hardware": list(p.hardware),
                    "short_support_reason": p.short_support_reason or None,
                }
                for p in self.products
            ],
            "cadence": {
                sev: {
                    "cvss_min": rule.cvss_min,
                    "cvss_max": rule.cvss_max,
                    "deadline_hours": rule.deadline_hours,
                    "label": rule.label,
                }
                for sev, rule in self.cadence.items()
            },
            "disclosure": self.disclosure,
            "instance": {"kind": self.instance_kind},
        }
