"""Sign-in to the web console with a management token (docs/console.md).

A session stands for one token: the console acts with that token's role and the audit log
names it (``token:NAME``), exactly as the API does. The browser gets a random session ID;
only its SHA-256 is stored. A session ends at sign-out, after ``idle`` without a request,
after ``longest`` in any case, or when its token is revoked.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from patchgate.domain.errors import Unauthorized
from patchgate.services import access, audit
from patchgate.services.context import Context
from patchgate.services.session_ports import SessionRecord

IDLE = timedelta(minutes=30)
LONGEST = timedelta(hours=12)
# Last-use times closer than this are not written again (a page view is not a write).
TOUCH_EVERY = timedelta(seconds=60)


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(frozen=True)
class SignedIn:
    session_id: str  # for the cookie; never stored
    session: SessionRecord


def sign_in(ctx: Context, token: str) -> SignedIn:
    """Start a session for ``token``, or raise ``Unauthorized``; audited."""
    record = access.authenticate(ctx, token.strip())
    session_id = secrets.token_urlsafe(32)
    now = ctx.clock()
    with ctx.uow() as uow:
        uow.sessions.remove_idle(now - IDLE)
        uow.sessions.add(
            session_hash=_hash(session_id),
            token_id=record.id,
            csrf=secrets.token_urlsafe(32),
            now=now,
        )
        audit.record(ctx, uow, actor=f"token:{record.name}", action="console.sign_in",
                     subject=f"token:{record.name}")  # fmt: skip
        found = uow.sessions.by_hash(_hash(session_id))
        uow.commit()
    assert found is not None  # just written in this transaction
    return SignedIn(session_id, found)


def resume(ctx: Context, session_id: str | None, *, idle: timedelta = IDLE) -> SessionRecord:
    """The live session behind a cookie, its last use brought forward; ``Unauthorized``
    when there is none, it idled out, it is too old, or its token was revoked."""
    if not session_id:
        raise Unauthorized("sign in first")
    now = ctx.clock()
    with ctx.read_uow() as uow:
        found = uow.sessions.by_hash(_hash(session_id))
    if found is None:
        raise Unauthorized("the session has ended; sign in again")
    if now - found.last_seen_at > idle or now - found.created_at > LONGEST:
        sign_out(ctx, session_id)
        raise Unauthorized("the session expired; sign in again")
    if now - found.last_seen_at > TOUCH_EVERY:
        with ctx.uow() as uow:
            uow.sessions.touch(found.id, now)
            uow.commit()
    return found


def sign_out(ctx: Context, session_id: str | None) -> None:
    """End the session (harmless when there is none)."""
    if not session_id:
        return
    with ctx.uow() as uow:
        uow.sessions.remove(_hash(session_id))
        uow.commit()


def check_csrf(session: SessionRecord, submitted: str | None) -> bool:
    """Whether a form carried this session's CSRF token (constant-time compare)."""
    return bool(submitted) and secrets.compare_digest(session.csrf, submitted or "")
