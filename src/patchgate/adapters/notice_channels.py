"""The channels a notice travels by: e-mail over SMTP and JSON webhooks.

``PATCHGATE_SMTP_URL`` is ``smtp://[user:password@]host[:port]`` (STARTTLS when the server
offers it, port 25 by default) or ``smtps://…`` (TLS from the start, port 465); add
``?starttls=required`` to refuse a server that does not offer STARTTLS. Each call is one
attempt: the outbox decides when to try again.
"""

from __future__ import annotations

import json
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from patchgate.domain.errors import InvalidInput
from patchgate.services.notice_ports import DeliveryFailed, Mailer, WebhookSender

if TYPE_CHECKING:
    # httpx is imported by the webhook sender when one is made: the settings read
    # parse_endpoints at every command's start (docs/cli.md, "Start-up").
    import httpx


def parse_endpoints(text: str | None) -> list[str]:
    """The webhook URLs named in ``text`` (``PATCHGATE_WEBHOOKS``: commas or spaces)."""
    if not text:
        return []
    return [u for u in text.replace(",", " ").split() if u]


class SmtpMailer(Mailer):
    """Send each message with ``smtplib`` (one connection per message)."""

    def __init__(self, url: str, sender: str, *, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise InvalidInput(
                f"PATCHGATE_SMTP_URL: expected smtp://host[:port] or smtps://host[:port], "
                f"got '{url}'"
            )
        self.tls = parts.scheme == "smtps"
        self.host = parts.hostname
        try:
            self.port = parts.port or (465 if self.tls else 25)
        except ValueError:
            raise InvalidInput(f"PATCHGATE_SMTP_URL: bad port in '{url}'") from None
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.require_starttls = parse_qs(parts.query).get("starttls") == ["required"]
        self.sender = sender
        self.timeout = timeout

    def describe(self) -> str:
        return f"{'smtps' if self.tls else 'smtp'}://{self.host}:{self.port}"

    def _connect(self) -> smtplib.SMTP:
        if self.tls:
            return smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        client.ehlo()
        if client.has_extn("starttls"):
            client.starttls(context=ssl.create_default_context())
            client.ehlo()
        elif self.require_starttls:
            client.close()
            raise DeliveryFailed(f"{self.describe()} does not offer STARTTLS")
        return client

    def send(self, to: Sequence[str], subject: str, body: str) -> None:
        message = EmailMessage(policy=email_policy.SMTP)
        message["From"] = self.sender
        message["To"] = ", ".join(to)
        message["Subject"] = subject
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = make_msgid(domain=self.sender.partition("@")[2] or None)
        message.set_content(body)
        try:
            with self._connect() as client:
                if self.user is not None:
                    client.login(self.user, self.password or "")
                client.send_message(message)
        except DeliveryFailed:
            raise
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"{self.describe()}: {exc or type(exc).__name__}") from None


class HttpWebhookSender(WebhookSender):
    """POST the notice as JSON; a 2xx answer is delivered."""

    def __init__(self, *, timeout: float = 5.0, transport: httpx.BaseTransport | None = None):
        import httpx

        self.client = httpx.Client(timeout=timeout, transport=transport)

    def send(self, url: str, payload: Mapping[str, Any]) -> None:
        import httpx

        try:
            answer = self.client.post(
                url,
                content=json.dumps(payload).encode(),
                headers={"content-type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{url}: {exc or type(exc).__name__}") from None
        if not answer.is_success:
            raise DeliveryFailed(f"{url}: HTTP {answer.status_code}")
