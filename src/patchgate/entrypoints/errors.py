"""The one place domain errors become HTTP status codes and CLI exit codes."""

from __future__ import annotations

from patchgate.domain import errors

HTTP_STATUS: list[tuple[type[errors.PatchgateError], int]] = [
    (errors.PolicyInvalid, 422),
    (errors.InvalidInput, 422),
    (errors.NotFound, 404),
    (errors.TransitionRefused, 409),
    (errors.Conflict, 409),
    (errors.Unauthorized, 401),
    (errors.Forbidden, 403),
    (errors.TooLarge, 413),
    (errors.IntegrityError, 409),
]


def http_status(exc: errors.PatchgateError) -> int:
    """The HTTP status for a domain error (most specific class first)."""
    for cls, status in HTTP_STATUS:
        if isinstance(exc, cls):
            return status
    return 400


def error_body(exc: errors.PatchgateError) -> dict[str, object]:
    """The JSON body of an error answer: a message and every problem."""
    return {"error": type(exc).__name__, "message": exc.message, "problems": exc.problems}
