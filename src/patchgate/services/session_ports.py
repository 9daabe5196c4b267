"""Storage of web console sessions."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime

from patchgate.services.ports import TokenRecord


@dataclass(frozen=True)
class SessionRecord:
    id: int
    token: TokenRecord
    csrf: str
    created_at: datetime
    last_seen_at: datetime


class SessionRepository(abc.ABC):
    @abc.abstractmethod
    def add(self, *, session_hash: str, token_id: int, csrf: str, now: datetime) -> int: ...

    @abc.abstractmethod
    def by_hash(self, session_hash: str) -> SessionRecord | None:
        """The session, if its token is still live."""

    @abc.abstractmethod
    def touch(self, session_id: int, now: datetime) -> None: ...

    @abc.abstractmethod
    def remove(self, session_hash: str) -> bool: ...

    @abc.abstractmethod
    def remove_idle(self, before: datetime) -> int:
        """Forget sessions last used before ``before``; how many."""
