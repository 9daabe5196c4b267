"""One table turns each domain error into its answer at every entrypoint."""

from __future__ import annotations

import inspect

from patchgate.domain import errors
from patchgate.domain.actions import ActionGone
from patchgate.entrypoints import errors as table


def _domain_errors() -> list[type[errors.PatchgateError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.PatchgateError) and cls is not errors.PatchgateError
    ]


def test_every_domain_error_has_a_row_and_subclasses_come_before_their_bases() -> None:
    listed = [cls for cls, _ in table.TABLE]
    assert set(_domain_errors()) <= set(listed)
    for index, cls in enumerate(listed):
        for later in listed[index + 1 :]:
            assert not issubclass(later, cls), f"{later.__name__} is shadowed by {cls.__name__}"


def test_the_same_refusal_reads_the_same_way_everywhere() -> None:
    cases = {
        errors.InvalidInput("x"): (422, 400, 2),
        errors.PolicyInvalid("x"): (422, 400, 2),
        errors.NotFound("x"): (404, 404, 2),
        errors.Conflict("x"): (409, 409, 2),
        errors.TransitionRefused("x"): (409, 409, 2),
        errors.Unauthorized("x"): (401, 401, 2),
        errors.Forbidden("x"): (403, 403, 2),
        errors.TooLarge("x"): (413, 413, 2),
        errors.IntegrityError("x"): (409, 409, 2),
        ActionGone("x"): (409, 410, 2),
    }
    for exc, (http, ddi, code) in cases.items():
        assert (table.http_status(exc), table.ddi_status(exc), table.exit_code(exc)) == (
            http,
            ddi,
            code,
        ), type(exc).__name__


def test_device_api_errors_carry_hawkbits_error_codes() -> None:
    assert table.ddi_error_body(410, "closed") == {
        "errorCode": "hawkbit.server.error.action.gone",
        "message": "closed",
    }
    assert table.ddi_error_code(404) == "hawkbit.server.error.repo.entitiyNotFound"
    assert table.ddi_error_code(418) == "hawkbit.server.error"
    assert table.error_body(errors.InvalidInput("bad", problems=["a", "b"])) == {
        "error": "InvalidInput",
        "message": "bad",
        "problems": ["a", "b"],
    }
