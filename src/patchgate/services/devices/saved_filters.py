"""Saved filters (docs/device-filters.md "Saved filters"): named device queries of a
tenant, hawkBit's "target filter queries". A query is parsed when it is saved, so a
malformed one or an unknown field is refused then (with its position), and it is stored in
canonical form. Each change is audited in its own transaction.

``@NAME`` wherever a device query is taken (``device list --filter``, the API's
``filter=``, ``campaign create --filter``) stands for the saved filter called NAME.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from patchgate.domain import filters
from patchgate.domain.errors import Conflict, InvalidInput, NotFound
from patchgate.services import audit
from patchgate.services.context import Context
from patchgate.services.device_ports import DEFAULT_TENANT
from patchgate.services.targeting_ports import NewSavedFilter, SavedFilterRecord
from patchgate.services.unit_of_work import UnitOfWork

__all__ = [
    "MAX_DESCRIPTION",
    "Resolved",
    "create",
    "delete",
    "get",
    "list_filters",
    "resolve",
    "save",
    "update",
]

MAX_DESCRIPTION = 500
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
REFERENCE = "@"


def check_name(name: str) -> str:
    """``name`` if it can name a saved filter, else ``InvalidInput`` saying why."""
    if _NAME.fullmatch(name) is None:
        raise InvalidInput(
            f"saved filter: name {name!r} must be 1 to 64 letters, digits, _, . or -, "
            "starting with a letter or digit"
        )
    return name


def _canonical(query: str) -> str:
    return filters.render(filters.parse(query))


def _description(text: str | None) -> str:
    text = (text or "").strip()
    if len(text) > MAX_DESCRIPTION:
        raise InvalidInput(f"saved filter: description longer than {MAX_DESCRIPTION} characters")
    return text


def _tenant_id(uow: UnitOfWork, tenant: str) -> int:
    found = uow.tenants.get(tenant)
    if found is None:
        raise NotFound(f"no tenant {tenant!r}")
    return found.id


def _find(uow: UnitOfWork, tenant: str, name: str, *, lock: bool = False) -> SavedFilterRecord:
    found = uow.targeting.saved_filter(tenant, name, lock=lock)
    if found is None:
        raise NotFound(f"no saved filter {name!r}")
    return found


def _audited(
    ctx: Context,
    uow: UnitOfWork,
    action: str,
    tenant: str,
    name: str,
    details: dict[str, str],
    actor: str,
) -> SavedFilterRecord:
    """Audit the change in its transaction, commit, and return the filter as it is now."""
    audit.record(
        ctx, uow, actor=actor, action=action, subject=f"filter:{tenant}/{name}", details=details
    )
    record = _find(uow, tenant, name)
    uow.commit()
    return record


def create(
    ctx: Context,
    name: str,
    query: str,
    *,
    description: str | None = None,
    tenant: str = DEFAULT_TENANT,
    actor: str,
) -> SavedFilterRecord:
    """Save a new filter; refused when the name is taken or the query does not parse."""
    check_name(name)
    canonical = _canonical(query)
    text = _description(description)
    with ctx.uow() as uow:
        if uow.targeting.saved_filter(tenant, name, lock=True) is not None:
            raise Conflict(f"saved filter {name!r} exists; update it instead")
        new = NewSavedFilter(_tenant_id(uow, tenant), name, canonical, text, actor)
        uow.targeting.add_saved_filter(new, ctx.clock())
        details = {"query": canonical, "description": text}
        return _audited(ctx, uow, "filter.create", tenant, name, details, actor)


def update(
    ctx: Context,
    name: str,
    *,
    query: str | None = None,
    description: str | None = None,
    tenant: str = DEFAULT_TENANT,
    actor: str,
) -> SavedFilterRecord:
    """Change a saved filter's query and/or description (what is not given stays).
    Campaigns created from it keep the query they were created with."""
    canonical = _canonical(query) if query is not None else None
    with ctx.uow() as uow:
        found = _find(uow, tenant, name, lock=True)
        new_query = canonical if canonical is not None else found.query
        text = _description(description) if description is not None else found.description
        uow.targeting.update_saved_filter(
            found.id, query=new_query, description=text, actor=actor, now=ctx.clock()
        )
        details = {"query": new_query, "was": found.query, "description": text}
        return _audited(ctx, uow, "filter.update", tenant, name, details, actor)


def save(
    ctx: Context,
    name: str,
    query: str,
    *,
    description: str | None = None,
    tenant: str = DEFAULT_TENANT,
    actor: str,
) -> SavedFilterRecord:
    """Create the filter, or update it when it exists (``filter save``)."""
    check_name(name)
    _canonical(query)  # a malformed query is refused before anything is looked up
    with ctx.read_uow() as uow:
        exists = uow.targeting.saved_filter(tenant, name) is not None
    if exists:
        return update(ctx, name, query=query, description=description, tenant=tenant, actor=actor)
    return create(ctx, name, query, description=description, tenant=tenant, actor=actor)


def delete(ctx: Context, name: str, *, tenant: str = DEFAULT_TENANT, actor: str) -> None:
    """Forget a saved filter (campaigns created from it keep their copy of the query)."""
    with ctx.uow() as uow:
        found = _find(uow, tenant, name, lock=True)
        uow.targeting.delete_saved_filter(found.id)
        audit.record(
            ctx,
            uow,
            actor=actor,
            action="filter.delete",
            subject=f"filter:{tenant}/{name}",
            details={"query": found.query},
        )
        uow.commit()


def get(ctx: Context, name: str, *, tenant: str = DEFAULT_TENANT) -> SavedFilterRecord:
    """One saved filter, or ``NotFound``."""
    with ctx.read_uow() as uow:
        return _find(uow, tenant, name)


def list_filters(ctx: Context, *, tenant: str = DEFAULT_TENANT) -> tuple[SavedFilterRecord, ...]:
    """The tenant's saved filters by name."""
    with ctx.read_uow() as uow:
        return tuple(uow.targeting.saved_filters(tenant))


@dataclass(frozen=True)
class Resolved:
    """A device query as given: its canonical text, and the saved filter it came from."""

    query: str
    saved_filter: str | None = None

    @property
    def expression(self) -> filters.Expression:
        return filters.parse(self.query)


def resolve(
    ctx: Context,
    text: str | None = None,
    *,
    saved: str | None = None,
    tenant: str = DEFAULT_TENANT,
) -> Resolved | None:
    """The query ``text`` (``@NAME`` names a saved filter) or the saved filter ``saved``:
    None when neither is given; refused when both are, or the query does not parse, or no
    saved filter has that name."""
    if text is not None and saved is not None:
        raise InvalidInput("give a filter query or a saved filter's name, not both")
    if text is not None and text.strip().startswith(REFERENCE):
        saved = text.strip()[len(REFERENCE) :]
    elif text is not None:
        return Resolved(_canonical(text))
    if saved is None:
        return None
    return Resolved(get(ctx, saved, tenant=tenant).query, saved)
