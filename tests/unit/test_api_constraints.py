"""Each input rule the API document states (``entrypoints/api/constraints.py``) accepts
only what the service's own check accepts: text generated from a pattern passes it."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patchgate.domain.durations import parse_duration
from patchgate.domain.ratelimit import RateLimit
from patchgate.domain.versions import is_version
from patchgate.entrypoints.api import constraints as rule
from patchgate.services.advisories.views import check_product_name
from patchgate.services.cvss_scoring import score_vector
from patchgate.services.devices.rows import check_controller_id, check_groups
from patchgate.services.vulnerabilities.rules import VULN_ID


def _version(text: str) -> None:
    assert is_version(text) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}", text)


def _vuln_ids(text: str) -> None:
    for part in filter(None, text.split(",")):
        assert VULN_ID.match(part)


CHECKS: dict[str, Callable[[str], object]] = {
    "VULN_ID": lambda t: VULN_ID.match(t) or pytest.fail(t),
    "VULN_ID_LIST": _vuln_ids,
    "CONTROLLER_ID": check_controller_id,
    "GROUP": lambda t: check_groups([t]),
    "VERSION": _version,
    "RATE": RateLimit.parse,
    "DURATION": parse_duration,
    "PRODUCT_NAME": check_product_name,
    "CVSS": score_vector,
    "NOT_BLANK": lambda t: t.strip() or pytest.fail(repr(t)),
    "JUSTIFICATION": lambda t: len(t.strip()) >= 10 or pytest.fail(repr(t)),
}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_text_the_document_allows_passes_the_services_check(name: str) -> None:
    check = CHECKS[name]

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.from_regex(getattr(rule, name), fullmatch=True))
    def accepted(text: str) -> None:
        check(text)

    accepted()


def test_the_document_states_the_rules_with_no_nul_anywhere() -> None:
    node: dict[str, object] = {"type": "object", "properties": {"a": {"type": "string"}}}
    rule.no_nul_strings(node)
    assert node["propertyNames"] == {"pattern": rule.NO_NUL}
    assert node["properties"] == {"a": {"type": "string", "pattern": rule.NO_NUL}}


def test_a_duration_past_the_calendar_is_refused_not_raised() -> None:
    from patchgate.domain.errors import InvalidInput

    with pytest.raises(InvalidInput, match="too long a duration"):
        parse_duration("99999999999w", what="soak")
