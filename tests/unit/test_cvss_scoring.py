"""CVSS vectors scored by the ``cvss`` library, hand-checked against FIRST's calculators."""

from __future__ import annotations

import pytest

from patchgate.domain import vulnerabilities as rules
from patchgate.domain.errors import InvalidInput
from patchgate.services.cvss_scoring import score_vector, with_prefix


@pytest.mark.parametrize(
    ("vector", "version", "score", "band"),
    [
        # CVSS v3.1 — one per band, and the spec's worked boundary cases.
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", "3.1", 10.0, "critical"),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "3.1", 9.8, "critical"),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:H", "3.1", 9.1, "critical"),
        ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", "3.1", 8.8, "high"),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:H/A:N", "3.1", 7.5, "high"),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", "3.1", 6.1, "medium"),
        ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:H", "3.1", 5.9, "medium"),
        ("CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:L/I:N/A:N", "3.1", 2.7, "low"),
        ("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", "3.1", 1.6, "low"),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", "3.1", 0.0, "none"),
        # CVSS v3.0 (CVE-2018-14618's Red Hat vector).
        ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "3.0", 9.8, "critical"),
        ("CVSS:3.0/AV:N/AC:L/PR:N/UI:R/S:U/C:L/I:L/A:L", "3.0", 6.3, "medium"),
        # CVSS v4.0: 9.3 and 8.7 are well-known calculator results; 4.8 and 1.0 are the
        # library's figures, kept so that each band has a v4.0 case.
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", "4.0", 9.3, "critical"),
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:H/SC:N/SI:N/SA:N", "4.0", 8.7, "high"),
        ("CVSS:4.0/AV:L/AC:L/AT:N/PR:L/UI:N/VC:L/VI:L/VA:L/SC:N/SI:N/SA:N", "4.0", 4.8, "medium"),
        ("CVSS:4.0/AV:P/AC:H/AT:P/PR:H/UI:A/VC:L/VI:N/VA:N/SC:N/SI:N/SA:N", "4.0", 1.0, "low"),
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N", "4.0", 0.0, "none"),
    ],
)
def test_vectors_score_as_the_specification_gives(
    vector: str, version: str, score: float, band: str
) -> None:
    scored = score_vector(vector)
    assert (scored.version, scored.score) == (version, score)
    assert rules.severity_for(scored.score) == band


def test_the_stored_vector_is_normalised_by_the_library() -> None:
    scored = score_vector("CVSS:3.1/S:U/AV:N/AC:L/PR:N/UI:N/C:H/I:H/A:H/E:X")
    assert scored.vector == "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"


@pytest.mark.parametrize(
    ("vector", "reason"),
    [
        ("CVSS:3.1/AV:N/AC:L", "Missing mandatory metrics"),
        ("CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 'Unknown value "X"'),
        ("CVSS:4.0/AV:N", "Missing mandatory metrics"),
        ("AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "missing mandatory prefix"),
        ("CVSS:2.0/AV:N/AC:L/Au:N/C:P/I:P/A:P", "unsupported CVSS version"),
        ("garbage", "missing mandatory prefix"),
    ],
)
def test_malformed_or_incomplete_vectors_are_refused_with_the_librarys_reason(
    vector: str, reason: str
) -> None:
    with pytest.raises(InvalidInput, match=reason):
        score_vector(vector)


def test_cyclonedx_vectors_without_a_prefix_get_the_one_their_method_implies() -> None:
    assert with_prefix("AV:N/AC:L", "CVSSv31") == "CVSS:3.1/AV:N/AC:L"
    assert with_prefix("(AV:N/AC:L)", "CVSSv3") == "CVSS:3.0/AV:N/AC:L"
    assert with_prefix("CVSS:4.0/AV:N", "CVSSv4") == "CVSS:4.0/AV:N"
