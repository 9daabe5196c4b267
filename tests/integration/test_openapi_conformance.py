"""Schemathesis over the management API's own OpenAPI document, on both backends: for
every operation, valid and invalid generated requests (a bounded number each) get no
server error, no status code the document does not list, and no answer that breaks its
documented schema; a request the document calls valid is never refused with 422 for a
rule the document could have stated. Also: a wrong method answers 405 naming every
allowed method."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from tests.asgi_client import call
from tests.conftest import Env
from tests.factories import make_release

EXAMPLES = 8  # per operation and generation mode
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


def no_unstated_rejection(ctx: Any, response: Any, case: Any) -> bool | None:
    """A schema-valid request answered 422 names only rules the document cannot state."""
    if response.status_code != 422:
        return None
    body = response.json()
    problems = body.get("problems") or [body.get("message", "")]
    if body.get("error") == "PolicyInvalid":
        return True  # the policy is a TOML document of its own (docs/policy.md)
    stated = [p for p in problems if not UNSTATABLE.search(p)]
    if case.path.endswith("/vulnerabilities/import"):
        # The body is any JSON document (CVE 5, OSV, CycloneDX); the bound every integer in
        # it keeps (docs/api.md, strict JSON) is not a rule its schema can place.
        stated = [p for p in stated if "is outside the 64-bit range" not in p]
    assert not stated, f"{case.method} {case.path}: 422 for a rule the schema omits: {stated}"
    return True


# What a JSON Schema cannot state, so a schema-valid request may still be refused with 422
# naming it (entrypoints/api/constraints.py): whether a named product or hardware model
# is in the policy, a date in the future, a rule across two fields, and the grammars of a
# policy (TOML), a device CSV, a device query, a stage plan, a version range, a window,
# the formats of imported documents (CVE JSON 5, OSV, CycloneDX), and a campaign's timing.
UNSTATABLE = re.compile(
    "|".join(
        (
            r"is not in the policy",
            r"unknown hardware model|unknown group",
            r"is not recorded for product",
            r"cannot be dated in the future",
            r"a maintenance window (needs both|must end after)",
            r"two artifacts have the same file name",
            r"name at least one compatible hardware model",
            r"^TOML: ",
            r"^line \d+: |^not a CSV file",
            r"^filter: ",
            r"^(target versions|window|stages|stage \S+): ",
            r"is not a version$|version range",  # affected: version ranges
            r"CVE JSON 5|OSV|CycloneDX|CVE record",  # an imported document's own format
            # a campaign's timing: a timeout's range, a schedule in the past or out of order,
            # a date the calendar does not have (docs/campaigns.md "Timing")
            r"^--(timeout|start-at|end-at): ",
        )
    )
)
# PUT /policy takes its TOML as text.
schemathesis.serializer.alias("application/toml", "text/plain")


@pytest.fixture
def asgi(env: Env) -> Iterator[Any]:
    from patchgate.entrypoints.http import create_app

    app = create_app(env.app)
    yield app
    app.runtime.close()


def _run(operation: Any, mode: GenerationMode, headers: dict[str, str]) -> None:
    checks = [*CHECKS, no_unstated_rejection] if mode == GenerationMode.POSITIVE else CHECKS

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=checks)

    check()


def test_every_management_operation_keeps_to_its_openapi_document(env: Env, asgi: Any) -> None:
    make_release(env, "1.1.0", {"rootfs.img": b"image"}, hardware=["demo-gw-1"])
    assert env.cli("device", "add", "dev-1", "--hardware", "demo-gw-1").code == 0
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", asgi)
    headers = {"Authorization": f"Bearer {env.admin_token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 40
    for operation in operations:
        if operation.method.upper() == "DELETE" and "{name}" in operation.path:
            continue  # revoking tokens at random would lock the run out
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _run(operation, mode, headers)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/api/v1/campaigns", "GET, HEAD, POST"),
        ("PATCH", "/api/v1/devices", "GET, HEAD, POST"),
        ("PUT", "/api/v1/tokens", "GET, HEAD, POST"),
        ("GET", "/api/v1/releases/1/withdraw", "POST"),
    ],
)
def test_a_wrong_method_answers_405_naming_every_allowed_method(
    env: Env, asgi: Any, method: str, path: str, allowed: str
) -> None:
    answer = call(asgi, method, path, headers={"Authorization": f"Bearer {env.admin_token}"})
    assert answer.status == 405
    assert answer.headers["allow"] == allowed


def test_the_api_documentation_loads_its_swagger_ui_from_the_server(env: Env, asgi: Any) -> None:
    page = call(asgi, "GET", "/api/v1/docs")
    assert page.status == 200
    assert b"cdn.jsdelivr" not in page.body and b"/api/v1/docs/assets/" in page.body
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert call(asgi, "GET", f"/api/v1/docs/assets/{asset}").status == 200
