"""``/console/devices``: the fleet, paged by keyset (a million devices page as fast as a
hundred), searched and filtered with the device query language, and one device."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from patchgate.domain import filters
from patchgate.domain.checklist import support_ends_at
from patchgate.domain.errors import InvalidInput, PatchgateError
from patchgate.domain.policy import Policy
from patchgate.entrypoints.console import base, charts, views
from patchgate.services import devices as device_service
from patchgate.services.devices import saved_filters
from patchgate.services.policy import in_force

router = APIRouter(prefix="/devices")


def past_end_of_support(policy: Policy, now: datetime) -> dict[str, str]:
    """{hardware model: product} for the products whose support period has ended (CRA
    Art. 13(8)): their devices get no more security updates, and the pages say so."""
    return {
        model: p.name
        for p in policy.products
        if now >= support_ends_at(p.support_end)
        for model in p.hardware
    }


PAGE = 50


def query_of(params: Mapping[str, str], hardware_of: Mapping[str, tuple[str, ...]]) -> str:
    """The form's fields as one device query (shown to the user, so it can be edited)."""
    parts: list[str] = []
    if params.get("q"):
        parts.append(f"({params['q']})")
    if params.get("search"):
        parts.append(f"id=={filters.quote(params['search'].replace('*', '') + '*')}")
    if params.get("product"):
        models = hardware_of.get(params["product"], ())
        if not models:
            raise InvalidInput(f"product {params['product']!r} lists no hardware model")
        parts.append("hardware=in=(" + ",".join(filters.quote(m) for m in models) + ")")
    for field in ("hardware", "version", "group"):
        if params.get(field):
            parts.append(f"{field}=={filters.quote(params[field])}")
    return ";".join(parts)


@router.get("", response_class=HTMLResponse)
def fleet(request: Request, caller: base.SignedIn) -> HTMLResponse:
    params = {k: v for k, v in request.query_params.items() if v}
    policy = in_force(caller.ctx).policy
    hardware_of = {p.name: tuple(p.hardware) for p in policy.products}
    problem = None
    text = ""
    try:
        # The typed query alone first, so an error's position is one in what was typed.
        if params.get("q"):
            filters.parse(params["q"])
        text = query_of(params, hardware_of)
        if params.get("saved"):  # a saved filter (docs/device-filters.md), and the fields
            chosen = saved_filters.get(caller.ctx, params["saved"]).query
            text = f"({chosen});{text}" if text else chosen
    except PatchgateError as exc:
        problem = exc.message
    if params.get("seen") in ("day", "week") and problem is None:
        days = 1 if params["seen"] == "day" else 7
        since = int((caller.ctx.clock().timestamp() - days * 86400) * 1000)
        text = f"{text};last_seen>={since}" if text else f"last_seen>={since}"
    page = None
    if problem is None:
        page = device_service.device_page(
            caller.ctx, after=params.get("after"), limit=PAGE, query=text or None
        )
    with caller.ctx.read_uow() as uow:
        census = uow.devices.census()
    distributions = []
    for product in policy.products:
        rows = sorted(
            (
                (version or "unknown", n)
                for (hardware, version), n in census.items()
                if hardware in product.hardware
            ),
            key=lambda r: -r[1],
        )
        merged: dict[str, int] = {}
        for version, n in rows:
            merged[version] = merged.get(version, 0) + n
        label = f"Devices of {product.name} per installed version"
        distributions.append((product.name, charts.bars(list(merged.items())[:12], label=label)))
    return base.page(
        request,
        "devices.html",
        caller,
        page=page,
        params=params,
        query=text,
        problem=problem,
        products=[p.name for p in policy.products],
        distributions=distributions,
        ended=past_end_of_support(policy, caller.ctx.clock()),
        page_size=PAGE,
        saved_filters=saved_filters.list_filters(caller.ctx),
    )


@router.get("/{controller_id}", response_class=HTMLResponse)
def device(request: Request, controller_id: str, caller: base.SignedIn) -> HTMLResponse:
    d = views.device(caller.ctx, controller_id)
    ended = past_end_of_support(in_force(caller.ctx).policy, caller.ctx.clock())
    return base.page(request, "device.html", caller, d=d, ended=ended)
