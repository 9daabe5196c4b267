"""The domain's exception tree. Services raise these; only entrypoints turn them into
answers, all through the one table in ``patchgate.entrypoints.errors`` (management API
status, device API status and hawkBit error code, CLI exit code).

    PatchgateError
    ├── InvalidInput            bad input from a user or device (exit 2, HTTP 422, DDI 400)
    │   └── PolicyInvalid       a policy file with problems (one line per problem)
    ├── NotFound                the named thing does not exist (CLI exit 2, HTTP 404)
    ├── Conflict                refused by a rule of the current state (exit 2, HTTP 409)
    │   └── TransitionRefused   a state machine does not allow this step
    ├── Unauthorized            missing or wrong credentials (HTTP 401)
    ├── Forbidden               credentials lack the role (HTTP 403)
    ├── TooLarge                over a configured size limit (exit 2, HTTP 413)
    ├── IntegrityError          stored evidence no longer matches (audit verify)
    └── Unavailable             a service patchgate relies on (the artifact store) failed
        │                       (exit 1, HTTP 502)
        └── DatabaseUnavailable the database is not reachable for now (exit 1, HTTP 503)
"""

from __future__ import annotations

from collections.abc import Sequence


class PatchgateError(Exception):
    """Root of every error patchgate raises on purpose."""

    def __init__(self, message: str, *, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.problems: list[str] = list(problems) or [message]

    def __str__(self) -> str:
        return self.message


class InvalidInput(PatchgateError):
    """The input does not follow the rules; nothing was changed."""


class PolicyInvalid(InvalidInput):
    """A policy document has one or more problems, each named in ``problems``."""


class NotFound(PatchgateError):
    """The named object does not exist (or is not visible to the caller)."""


class Conflict(PatchgateError):
    """The request is well formed but the current state refuses it."""


class TransitionRefused(Conflict):
    """A state machine does not allow the requested transition."""


class Unauthorized(PatchgateError):
    """Credentials are missing or wrong."""


class Forbidden(PatchgateError):
    """Credentials are valid but their role does not allow the action."""


class TooLarge(PatchgateError):
    """A body, upload or file exceeds its configured size limit."""


class IntegrityError(PatchgateError):
    """Stored evidence (audit chain, artifact bytes) does not match what was recorded."""


class Unavailable(PatchgateError):
    """A service patchgate relies on (the artifact store) is unreachable or refuses
    patchgate's credentials; nothing was changed."""


class DatabaseUnavailable(Unavailable):
    """The database did not answer (it is restarting, the connection to it broke, or
    SQLite's write lock stayed taken past the busy timeout); the work of this request was
    not committed and can be sent again shortly."""
