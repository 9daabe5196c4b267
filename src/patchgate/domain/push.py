"""What the server and the device agent share about push (docs/push.md):
the per-device wake topic and the broker URL. Standard library only."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

__all__ = ["BrokerAddress", "addressable", "parse_broker_url", "wake_topic"]

# Characters that cannot appear in one topic level: wildcards are refused by clients, and
# "/" would address another topic than the device's own.
_UNSAFE = frozenset("+#/\x00")


def wake_topic(tenant: str, controller_id: str) -> str:
    """The topic a device's wake-ups are published on: ``patchgate/{tenant}/{id}/wake``."""
    return f"patchgate/{tenant}/{controller_id}/wake"


def addressable(tenant: str, controller_id: str) -> bool:
    """Whether the pair makes a valid topic of exactly one level each."""
    return bool(tenant and controller_id) and not (_UNSAFE & set(tenant + controller_id))


@dataclass(frozen=True)
class BrokerAddress:
    """Where the broker is, parsed from ``mqtt://[user[:password]@]host[:port]`` (or
    ``mqtts://`` for TLS with the system's CA certificates)."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    def __str__(self) -> str:  # never shows the password
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """Parse a broker URL; ``ValueError`` with a readable message when it is not one."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(f"broker URL must start with mqtt:// or mqtts://, not {url!r}")
    if not parts.hostname:
        raise ValueError(f"broker URL {url!r} names no host")
    tls = parts.scheme in ("mqtts", "ssl")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as exc:
        raise ValueError(f"broker URL {url!r} has a bad port") from exc
    return BrokerAddress(
        host=parts.hostname,
        port=port,
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )
