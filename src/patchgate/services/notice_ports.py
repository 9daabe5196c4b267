"""What the notification service needs from the outside: the outbox table, and the
channels that carry a notice (e-mail, webhooks)."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from patchgate.domain.notices import Notice, Routes


class DeliveryFailed(Exception):
    """A channel could not deliver; the message says why, for the operator."""


@dataclass(frozen=True)
class NewDelivery:
    channel: str  # email | webhook
    target: str  # an address or a URL


@dataclass(frozen=True)
class PendingDelivery:
    """A delivery claimed for sending, with the notice it carries."""

    id: int
    channel: str
    target: str
    attempts: int
    key: str
    kind: str
    subject: str
    body: str
    link: str
    at: datetime
    facts: Mapping[str, Any]


@dataclass(frozen=True)
class DeliveryView:
    channel: str
    target: str
    state: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    sent_at: datetime | None


@dataclass(frozen=True)
class NoticeView:
    id: int
    key: str
    kind: str
    subject: str
    body: str
    link: str
    at: datetime
    created_at: datetime
    deliveries: Sequence[DeliveryView] = field(default_factory=tuple)


class NoticeOutbox(abc.ABC):
    """The durable outbox (in the unit of work's transaction)."""

    @abc.abstractmethod
    def add(self, notice: Notice, deliveries: Sequence[NewDelivery], now: datetime) -> bool:
        """Store ``notice`` and its deliveries unless its key is known; True when stored."""

    @abc.abstractmethod
    def known(self, keys: Sequence[str]) -> set[str]:
        """Those of ``keys`` already stored."""

    @abc.abstractmethod
    def claim_due(self, now: datetime, until: datetime, limit: int) -> list[PendingDelivery]:
        """Pending deliveries due at ``now``, claimed for this caller until ``until``."""

    @abc.abstractmethod
    def sent(self, delivery_id: int, now: datetime) -> None: ...

    @abc.abstractmethod
    def failed(self, delivery_id: int, error: str, retry_at: datetime) -> None: ...

    @abc.abstractmethod
    def delivered(self, kind: str) -> list[Mapping[str, Any]]:
        """The facts of every notice of ``kind`` that reached at least one recipient."""

    @abc.abstractmethod
    def page(self, *, limit: int, before_id: int | None) -> list[NoticeView]:
        """Newest first, with their deliveries."""


class NoticePass(abc.ABC):
    """Something that runs a notice pass soon (the server's notice timer)."""

    @abc.abstractmethod
    def kick(self) -> None:
        """Derive and send notices soon, without waiting for the next tick."""


class Mailer(abc.ABC):
    @abc.abstractmethod
    def send(self, to: Sequence[str], subject: str, body: str) -> None:
        """Send one message or raise ``DeliveryFailed``."""


class WebhookSender(abc.ABC):
    @abc.abstractmethod
    def send(self, url: str, payload: Mapping[str, Any]) -> None:
        """POST one notice or raise ``DeliveryFailed``."""


@dataclass(frozen=True)
class Channels:
    """The configured channels: who gets e-mail (``routes``), which webhooks get every
    notice, and the base URL links in notices start with."""

    routes: Routes
    mailer: Mailer | None
    webhook_urls: tuple[str, ...]
    webhooks: WebhookSender | None
    base_url: str

    def deliveries(self, notice: Notice) -> list[NewDelivery]:
        out: list[NewDelivery] = []
        if self.mailer is not None:
            out.extend(NewDelivery("email", a) for a in self.routes.addresses(notice.kind))
        if self.webhooks is not None:
            out.extend(NewDelivery("webhook", url) for url in self.webhook_urls)
        return out
