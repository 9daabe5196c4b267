"""The device agent's exception tree: one root, so a caller can tell the agent's own
refusals and signals from a bug (docs/agent.md).

    AgentError
    ├── AgentSetupError         the agent cannot start as configured (trusted root, flags)
    ├── NoValidEnv              neither copy of the boot environment is valid
    ├── RebootRequested         a switch is persisted: restart into the chosen slot
    ├── Refused                 an offer the device must not install (reason sent back)
    ├── TrustError              the trusted root is wrong, or a target does not verify
    │   └── TrustUnavailable    the metadata could not be fetched: retry later
    └── DdiError                the server answered something this client cannot use
        ├── ServerUnavailable   unreachable, 5xx or 429: back off and retry
        ├── ActionGone          410 Gone: the action is already closed on the server
        └── RestartFromZero     a resumed download cannot continue: start it again

The A/B state machine shared with the server raises the domain's own errors
(``patchgate.domain.errors``); tests model a power cut with ``agent.io.PowerCut``, a
``BaseException`` on purpose so that nothing in the agent can catch it.
"""

from __future__ import annotations

__all__ = [
    "ActionGone",
    "AgentError",
    "AgentSetupError",
    "DdiError",
    "NoValidEnv",
    "RebootRequested",
    "Refused",
    "RestartFromZero",
    "ServerUnavailable",
    "TrustError",
    "TrustUnavailable",
]


class AgentError(Exception):
    """Root of every exception the agent raises on purpose."""


class AgentSetupError(AgentError):
    """The agent cannot start as configured (missing trusted root, bad flags)."""


class NoValidEnv(AgentError):
    """Neither copy of the environment is valid (a device that was never provisioned)."""


class RebootRequested(AgentError):
    """The agent persisted a switch and asks the device to restart into the chosen slot."""


class Refused(AgentError):
    """An offer the device must not install; the reason goes to the server."""


class TrustError(AgentError):
    """The trusted root is missing or wrong, or the offered target does not verify."""


class TrustUnavailable(TrustError):
    """The metadata could not be fetched (network or server trouble): retry later."""


class DdiError(AgentError):
    """The server answered something this client cannot use (4xx, malformed JSON)."""


class ServerUnavailable(DdiError):
    """The server could not be reached or answered 5xx/429: back off and retry."""


class ActionGone(DdiError):
    """``410 Gone``: the action is already closed on the server."""


class RestartFromZero(DdiError):
    """A resumed download cannot continue where it stopped; start it again."""
