"""The one table that turns domain errors into answers: the management API's HTTP status,
the device API's (hawkBit DDI) status and ``errorCode``, and the CLI's exit code.

Services raise the domain's errors (``patchgate.domain.errors``); every entrypoint asks this
module what a given error means for its caller, so the same refusal reads the same way
over REST, DDI and the command line. The most specific class is looked up first (the
table is ordered by the class hierarchy, subclasses before their bases).

The CLI's exit codes are those of docs/cli.md: 2 for bad input or a refused operation,
1 only for internal errors (which are not domain errors).
"""

from __future__ import annotations

from dataclasses import dataclass

from patchgate.domain import errors
from patchgate.domain.actions import ActionGone

__all__ = [
    "TABLE",
    "Answer",
    "answer_for",
    "ddi_error_body",
    "ddi_error_code",
    "ddi_status",
    "error_body",
    "exit_code",
    "http_status",
]

# hawkBit's error codes by status (DDI API documentation, "Error handling").
_DDI_CODES = {
    400: "hawkbit.server.error.rest.body.notReadable",
    403: "hawkbit.server.error.insufficientpermission",
    404: "hawkbit.server.error.repo.entitiyNotFound",
    409: "hawkbit.server.error.repo.entitiyAlreadyExists",
    410: "hawkbit.server.error.action.gone",
    406: "hawkbit.server.error.rest.notAcceptable",
    412: "hawkbit.server.error.rest.preconditionFailed",
    413: "hawkbit.server.error.quota.sizeExceeded",
    429: "hawkbit.server.error.quota.tooManyRequests",
    502: "hawkbit.server.error.artifact.loadFailed",
}
_DDI_DEFAULT_CODE = "hawkbit.server.error"


@dataclass(frozen=True)
class Answer:
    """What one kind of domain error becomes at each entrypoint."""

    http: int  # management API status
    ddi: int  # device API status (hawkBit answers 400 where we say 422)
    exit: int = 2  # CLI exit code


TABLE: tuple[tuple[type[errors.PatchgateError], Answer], ...] = (
    # Feedback for a closed action: hawkBit's 410 on DDI; a plain conflict elsewhere.
    (ActionGone, Answer(http=409, ddi=410)),
    (errors.PolicyInvalid, Answer(http=422, ddi=400)),
    (errors.InvalidInput, Answer(http=422, ddi=400)),
    (errors.NotFound, Answer(http=404, ddi=404)),
    (errors.TransitionRefused, Answer(http=409, ddi=409)),
    (errors.Conflict, Answer(http=409, ddi=409)),
    (errors.Unauthorized, Answer(http=401, ddi=401)),
    (errors.Forbidden, Answer(http=403, ddi=403)),
    (errors.TooLarge, Answer(http=413, ddi=413)),
    (errors.IntegrityError, Answer(http=409, ddi=409)),
    # Retried by the client: a DDI client polls again, a script can run the command again.
    (errors.DatabaseUnavailable, Answer(http=503, ddi=503, exit=1)),
    (errors.Unavailable, Answer(http=502, ddi=502, exit=1)),
)
# Any other PatchgateError (a new subclass not yet in the table) is a refusal all the same.
_FALLBACK = Answer(http=400, ddi=400)


def answer_for(exc: errors.PatchgateError) -> Answer:
    """The row of the table for ``exc`` (most specific class first)."""
    for cls, answer in TABLE:
        if isinstance(exc, cls):
            return answer
    return _FALLBACK


def http_status(exc: errors.PatchgateError) -> int:
    """The management API's HTTP status for a domain error."""
    return answer_for(exc).http


def error_body(exc: errors.PatchgateError) -> dict[str, object]:
    """The management API's JSON error body: the error's name, a message, every problem."""
    return {"error": type(exc).__name__, "message": exc.message, "problems": exc.problems}


def exit_code(exc: errors.PatchgateError) -> int:
    """The CLI's exit code for a domain error."""
    return answer_for(exc).exit


def ddi_status(exc: errors.PatchgateError) -> int:
    """The device API's HTTP status for a domain error."""
    return answer_for(exc).ddi


def ddi_error_code(status: int) -> str:
    """hawkBit's ``errorCode`` for a device API status."""
    return _DDI_CODES.get(status, _DDI_DEFAULT_CODE)


def ddi_error_body(status: int, message: str) -> dict[str, str]:
    """The device API's JSON error body (hawkBit's shape: ``errorCode`` and ``message``)."""
    return {"errorCode": ddi_error_code(status), "message": message}
