"""Who a DDI request is: the device behind a target token, a gateway token, a client
certificate checked by a TLS-terminating proxy, or (in anonymous lab mode) no credential.

One read per request (``DeviceRepository.auth_by_*``: device, tenant, open action and state
version in one statement); the decision on that row is the same for every reader
(docs/ddi.md, "Authentication").
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from patchgate.domain.errors import NotFound, Unauthorized
from patchgate.services.access import hash_token
from patchgate.services.context import Context
from patchgate.services.device_ports import AsyncDeviceAuthReader, DeviceAuthReader, DeviceAuthRow

UNAUTHORIZED = "authentication required"


@dataclass(frozen=True)
class Caller:
    """An authenticated DDI request: the one row read for it, and how it authenticated."""

    row: DeviceAuthRow
    controller_id: str
    may_register: bool

    @property
    def device_id(self) -> int:
        if self.row.device_id is None:
            raise NotFound(f"no device {self.controller_id!r}")
        return self.row.device_id


def tenant_key(tenant: str) -> str:
    """Tenant names are case-insensitive in the DDI path, as in hawkBit (which stores and
    compares them upper-cased): ``/default/controller/v1/…`` is the ``DEFAULT`` tenant."""
    return tenant.upper()


class _UowAuthReader(DeviceAuthReader):
    """The same read through a unit of work (for callers without a prepared reader)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def by_token(self, tenant: str, token_hash: str) -> DeviceAuthRow | None:
        with self.ctx.read_uow() as uow:
            return uow.devices.auth_by_token(tenant, token_hash)

    def by_controller(self, tenant: str, controller_id: str) -> DeviceAuthRow | None:
        with self.ctx.read_uow() as uow:
            return uow.devices.auth_by_controller(tenant, controller_id)


@dataclass(frozen=True)
class ProxyIdentity:
    """What a trusted TLS-terminating proxy vouches for: the client certificate's
    controllerId (``X-Controller-Id``) and the authorities (issuer hashes) it found
    (``X-Authority``, or ``X-Authority-0``/``-1``…), as hawkBit's reverse-proxy
    authentication reads them. The entrypoint builds it only for requests from an
    address in ``PATCHGATE_TRUSTED_PROXIES``."""

    controller_id: str
    authorities: tuple[str, ...]


@dataclass(frozen=True)
class AuthLookup:
    """What a request's ``Authorization`` asks for: its scheme and credential, and the one
    read it needs (by target-token hash when ``token_hash`` is set, else by controllerId)."""

    scheme: str
    credential: str
    token_hash: str | None
    proxy: ProxyIdentity | None = None


def auth_lookup(authorization: str | None, proxy: ProxyIdentity | None = None) -> AuthLookup:
    scheme, _, credential = (authorization or "").strip().partition(" ")
    scheme = scheme.lower()
    credential = credential.strip()
    by_token = scheme == "targettoken" and credential
    return AuthLookup(scheme, credential, hash_token(credential) if by_token else None, proxy)


def _certificate_ok(lookup: AuthLookup, controller_id: str, trusted: Sequence[str]) -> bool:
    proxy = lookup.proxy
    if proxy is None or proxy.controller_id != controller_id or not trusted:
        return False
    wanted = {t.strip().lower() for t in trusted if t.strip()}
    return any(a.strip().lower() in wanted for a in proxy.authorities)


def auth_check(
    lookup: AuthLookup,
    row: DeviceAuthRow | None,
    controller_id: str,
    authorization: str | None,
    trusted_authorities: Sequence[str] = (),
) -> Caller:
    """The decision on the row read for ``lookup``."""
    if lookup.token_hash is not None:
        if row is None or row.controller_id != controller_id:
            raise Unauthorized(UNAUTHORIZED)
        return Caller(row, controller_id, may_register=False)
    if row is None:
        raise Unauthorized(UNAUTHORIZED)
    if lookup.scheme == "gatewaytoken" and lookup.credential:
        expected = row.gateway_token_hash
        if expected and hmac.compare_digest(expected, hash_token(lookup.credential)):
            return Caller(row, controller_id, may_register=True)
        raise Unauthorized(UNAUTHORIZED)
    if _certificate_ok(lookup, controller_id, trusted_authorities):
        # The proxy checked the certificate chain; hawkBit registers such a device on its
        # first poll, as for a gateway token.
        return Caller(row, controller_id, may_register=True)
    if not authorization and row.anonymous_ddi:
        return Caller(row, controller_id, may_register=True)
    raise Unauthorized(UNAUTHORIZED)


def authenticate(
    ctx: Context,
    tenant: str,
    controller_id: str,
    authorization: str | None,
    reader: DeviceAuthReader | None = None,
    *,
    proxy: ProxyIdentity | None = None,
    trusted_authorities: Sequence[str] = (),
) -> Caller:
    """Check ``Authorization`` (``TargetToken`` or ``GatewayToken``, a client certificate
    vouched for by a trusted proxy, or none in a tenant in anonymous lab mode). Every
    failure is the same ``Unauthorized``, whether or not the tenant or the device exists.
    One read (``reader``, else a unit of work)."""
    reader = reader or _UowAuthReader(ctx)
    lookup = auth_lookup(authorization, proxy)
    tenant = tenant_key(tenant)
    if lookup.token_hash is not None:
        row = reader.by_token(tenant, lookup.token_hash)
    else:
        row = reader.by_controller(tenant, controller_id)
    return auth_check(lookup, row, controller_id, authorization, trusted_authorities)


async def authenticate_async(
    tenant: str,
    controller_id: str,
    authorization: str | None,
    reader: AsyncDeviceAuthReader,
    *,
    proxy: ProxyIdentity | None = None,
    trusted_authorities: Sequence[str] = (),
) -> Caller:
    """:func:`authenticate` with the one read awaited (the poll on PostgreSQL)."""
    lookup = auth_lookup(authorization, proxy)
    tenant = tenant_key(tenant)
    if lookup.token_hash is not None:
        row = await reader.by_token(tenant, lookup.token_hash)
    else:
        row = await reader.by_controller(tenant, controller_id)
    return auth_check(lookup, row, controller_id, authorization, trusted_authorities)
