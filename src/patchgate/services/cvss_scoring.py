"""CVSS vectors scored with the ``cvss`` library (FIRST's formulas, not ours).

The domain stays free of third-party code, so the library is called here and only the
numbers travel inward.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cvss import CVSS3, CVSS4, CVSSError

from patchgate.domain.errors import InvalidInput


@dataclass(frozen=True)
class ScoredVector:
    """A vector as the library normalised it, its CVSS version and its base score."""

    vector: str
    version: str
    score: float


_PREFIX_FOR_METHOD = {
    "cvssv31": "CVSS:3.1/",
    "cvssv3": "CVSS:3.0/",
    "cvssv30": "CVSS:3.0/",
    "cvssv4": "CVSS:4.0/",
    "cvssv40": "CVSS:4.0/",
}


def score_vector(vector: str) -> ScoredVector:
    """Score a ``CVSS:3.0/``, ``CVSS:3.1/`` or ``CVSS:4.0/`` vector.

    Raises ``InvalidInput`` carrying the library's own reason for a malformed or incomplete
    vector (missing metric, unknown value, missing prefix). The stored vector is the
    library's ``clean_vector()``: metrics in the specification's order, ``X`` (not
    defined) values dropped.
    """
    text = vector.strip()
    try:
        if text.startswith("CVSS:4.0/"):
            v4 = CVSS4(text)
            return ScoredVector(v4.clean_vector(), "4.0", float(v4.base_score))
        if text.startswith(("CVSS:3.0/", "CVSS:3.1/")):
            v3 = CVSS3(text)
            version = "3.1" if text.startswith("CVSS:3.1/") else "3.0"
            return ScoredVector(v3.clean_vector(), version, float(v3.base_score))
        if text.startswith("CVSS:"):
            raise InvalidInput(
                f"invalid CVSS vector {vector!r}: unsupported CVSS version "
                "(CVSS:3.0, CVSS:3.1 and CVSS:4.0 are supported)"
            )
        # Let the library state its own reason for a vector with no prefix.
        CVSS3(text)
    except CVSSError as exc:
        raise InvalidInput(f"invalid CVSS vector {vector!r}: {exc}") from exc
    raise InvalidInput(f"invalid CVSS vector {vector!r}: it lacks the CVSS:3.x/ or 4.0/ prefix")


def with_prefix(vector: str, method: str) -> str:
    """A CycloneDX rating's vector with the ``CVSS:x.y/`` prefix its ``method`` implies
    (CycloneDX writes v3 vectors without it, sometimes in parentheses)."""
    text = vector.strip().strip("()")
    if text.startswith("CVSS:"):
        return text
    prefix = _PREFIX_FOR_METHOD.get(re.sub(r"[^a-z0-9]", "", method.lower()), "")
    return prefix + text
