"""The vulnerability register (docs/vulnerability-register.md): records, per-product
analysis, Art. 14 reports.

Status, fixing release and the release/deployment instants live per (vulnerability,
product); scores, exploitation and the CRA clocks per vulnerability. Deadlines are not
stored: they follow from the awareness time, the severity and the policy in force.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from patchgate.adapters.db.models.base import Base, str255


class Vulnerability(Base):
    """One vulnerability by its register ID (a CVE, GHSA, OSV or own ID)."""

    __tablename__ = "vulnerabilities"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    origin: Mapped[str] = mapped_column(String(32))  # manual | cve5 | osv | cyclonedx
    cvss_vector: Mapped[str | None] = mapped_column(String(512))
    cvss_version: Mapped[str | None] = mapped_column(String(8))
    score: Mapped[float | None] = mapped_column(Float)
    score_source: Mapped[str | None] = mapped_column(String(255))
    scores: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    severity_override: Mapped[str | None] = mapped_column(String(16))
    override_justification: Mapped[str | None] = mapped_column(Text)
    aware_at: Mapped[datetime]
    exploited_at: Mapped[datetime | None]
    severe_incident_at: Mapped[datetime | None]
    components: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    upstream: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    notes: Mapped[list[str]] = mapped_column(JSON, default=list)
    withdrawn_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class VulnerabilityProduct(Base):
    """The analysis of one vulnerability for one product of the policy."""

    __tablename__ = "vulnerability_products"

    vulnerability_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("vulnerabilities.id", ondelete="CASCADE"), primary_key=True
    )
    product: Mapped[str255] = mapped_column(primary_key=True)
    ranges: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(32), default="new")
    justification: Mapped[str | None] = mapped_column(Text)
    fixing_release_id: Mapped[int | None] = mapped_column(
        ForeignKey("releases.id", ondelete="SET NULL")
    )
    released_at: Mapped[datetime | None]
    deployed_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class Art14Submission(Base):
    """A CRA Art. 14 report as submitted: which one, when, by whom, with what reference."""

    __tablename__ = "art14_submissions"

    vulnerability_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("vulnerabilities.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    submitted_at: Mapped[datetime]
    submitted_by: Mapped[str255]
    reference: Mapped[str] = mapped_column(Text, default="")
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class RegisterVersion(Base):
    """One row whose counter rises in the same transaction as every write to the register
    (a record or its product analyses saved). A server process keeps the register's
    derived table rows while the counter stands (docs/console.md, "Performance"). The row
    is made by the first write."""

    __tablename__ = "register_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
