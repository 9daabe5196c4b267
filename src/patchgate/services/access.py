"""Management API tokens and roles (docs/contract.md)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

from patchgate.domain.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from patchgate.services import audit
from patchgate.services.context import Context
from patchgate.services.ports import TokenRecord

# Each role may do what the roles after it in its list may do.
ROLES: dict[str, tuple[str, ...]] = {
    "admin": ("admin", "release_manager", "security_analyst", "viewer"),
    "release_manager": ("release_manager", "viewer"),
    "security_analyst": ("security_analyst", "viewer"),
    "viewer": ("viewer",),
}

TOKEN_PREFIX = "pgt_"  # noqa: S105  # a visible prefix, not a secret


def hash_token(token: str) -> str:
    """SHA-256 of a token. Tokens carry 256 random bits, so a fast hash is enough: there is
    nothing to brute-force that a slow hash would protect."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_token(ctx: Context, *, name: str, role: str, actor: str) -> tuple[TokenRecord, str]:
    """Create a token; returns the record and the token, which is never shown again."""
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r} (known: {', '.join(ROLES)})")
    if not name.strip() or len(name) > 200:
        raise InvalidInput("a token name must be 1–200 characters")
    token = new_token()
    with ctx.uow() as uow:
        if uow.tokens.by_name(name) is not None:
            raise Conflict(f"a token called {name!r} already exists")
        record = uow.tokens.add(name=name, role=role, token_hash=hash_token(token), now=ctx.clock())
        audit.record(
            ctx,
            uow,
            actor=actor,
            action="token.create",
            subject=f"token:{name}",
            details={"role": role},
        )
        uow.commit()
    return record, token


def revoke_token(ctx: Context, *, name: str, actor: str) -> None:
    """Revoke the named token at once."""
    with ctx.uow() as uow:
        if not uow.tokens.revoke(name, ctx.clock()):
            raise NotFound(f"no token called {name!r}")
        audit.record(ctx, uow, actor=actor, action="token.revoke", subject=f"token:{name}")
        uow.commit()


def list_tokens(ctx: Context) -> Sequence[TokenRecord]:
    """Every token record (never the tokens)."""
    with ctx.read_uow() as uow:
        return uow.tokens.list()


def authenticate(ctx: Context, token: str | None) -> TokenRecord:
    """The live token record for a bearer token, or ``Unauthorized``."""
    if not token:
        raise Unauthorized("a bearer token is required")
    with ctx.read_uow() as uow:
        record = uow.tokens.by_hash(hash_token(token))
    if record is None:
        raise Unauthorized("the token is not valid")
    return record


def require(record: TokenRecord, role: str) -> None:
    """Raise ``Forbidden`` unless ``record``'s role includes ``role``."""
    if role not in ROLES.get(record.role, ()):
        raise Forbidden(f"this action needs the {role} role; the token has {record.role}")
