"""A device query compiled to SQL selects exactly the devices the pure rule selects, on
SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from patchgate.adapters.db.device_filters import compile_filter
from patchgate.adapters.db.models import Device, DeviceGroup
from patchgate.domain import filters as q
from patchgate.domain.clock import as_utc
from patchgate.services import devices as device_service
from patchgate.services.devices import DeviceRow
from tests.conftest import Env

BASE = datetime(2026, 11, 1, tzinfo=UTC)
GROUPS = ["internal", "qa", "canary-optin", "Canary-optin", "field_1", "fieldX1"]
VERSIONS = ["1.9.0", "1.10.0", "1.2", "2.0.0-rc.1", "2.0.0"]
HARDWARE = ["demo-gw-1", "demo-gw-2", "Demo-GW-1", "x_y"]


@dataclass(frozen=True)
class Facts:
    controller_id: str
    groups: Sequence[str]
    hardware: str | None
    installed_version: str | None
    attributes: Mapping[str, object]
    last_seen: datetime | None
    metadata: Mapping[str, object]


def _fleet(env: Env) -> list[Facts]:
    rng = random.Random(11)
    rows = []
    for i in range(60):
        groups = rng.sample(GROUPS, rng.randint(0, 2))
        hardware = rng.choice([*HARDWARE, None])
        version = rng.choice([*VERSIONS, None])
        cid = f"{rng.choice(['gw', 'GW', 'cam'])}-{i:04d}"
        rows.append(DeviceRow(cid, tuple(groups), hardware, version))
    device_service.import_devices(env.ctx, rows, actor="test")
    with Session(env.app.engines.write) as session, session.begin():
        for i, row in enumerate(rows):
            cid = row.controller_id
            slots = rng.choice(["ab", "single", "AB", "5%_off", "5%xoff"])
            attrs = {"slots": slots} if i % 3 else {}
            seen = BASE + timedelta(hours=rng.randint(0, 400)) if i % 4 else None
            site = rng.choice(["berlin", "Berlin", "paris", "5%_x"])
            meta = {"site": site, "ring": str(i % 3)} if i % 5 else None
            values: dict[str, object] = {"attributes": attrs, "last_seen": seen, "meta": meta}
            if i % 7 == 0:  # a version a device reported that cannot be ordered
                values["installed_version"] = "banana"
            session.execute(update(Device).where(Device.controller_id == cid).values(**values))
    return _read_back(env)


def _read_back(env: Env) -> list[Facts]:
    with Session(env.app.engines.read) as session:
        groups: dict[int, list[str]] = {}
        for device_id, name in session.execute(select(DeviceGroup.device_id, DeviceGroup.name)):
            groups.setdefault(device_id, []).append(name)
        return [
            Facts(
                d.controller_id,
                groups.get(d.id, []),
                d.hardware,
                d.installed_version,
                d.attributes,
                as_utc(d.last_seen) if d.last_seen else None,
                d.meta or {},
            )
            for d in session.scalars(select(Device))
        ]


def _selected_by_sql(env: Env, expr: q.Expression, fleet: Sequence[Facts]) -> set[str]:
    compiled = compile_filter(expr)
    by_id = {f.controller_id: f for f in fleet}
    with Session(env.app.engines.read) as session:
        ids = set(session.scalars(select(Device.controller_id).where(compiled.where)))
    if compiled.exact:
        return ids
    return {cid for cid in ids if q.matches(expr, by_id[cid])}


QUERIES = [
    "id==gw-*",
    "id==GW-00*",
    "id!=gw-*",
    "id=in=(gw-0001,cam-0002,GW-0003)",
    "id=out=(gw-0001,cam-0002)",
    "id<gw-0010",
    "group==canary-optin",
    "group==canary*",
    "group!=qa",
    "group!=canary*",
    "group=in=(qa,internal)",
    "group=out=(qa,internal)",
    "attribute.slots==5%_*",
    "attribute.slots!=5%_off",
    "group==field_1",
    "hardware==demo-gw-1",
    "hardware==demo*",
    "hardware==x_y",
    "hardware!=demo-gw-1",
    "hardware=is=null",
    "hardware=not=null",
    "version<1.10",
    "version>=2.0.0-rc.1",
    "version==1.*",
    "version!=banana",
    "attribute.slots==ab",
    "attribute.slots!=ab",
    "attribute.slots=is=null",
    "attribute.slots=in=(ab,single)",
    "last_seen<2026-11-05T00:00:00Z",
    "last_seen>=2026-11-10T00:00:00Z",
    "last_seen=is=null",
    "group==qa;version<2,hardware==demo-gw-2",
    "(group==qa,group==internal);attribute.slots!=single",
    "metadata.site==berlin",
    "metadata.site==ber*",
    "metadata.site!=berlin",
    "metadata.site=is=null",
    "metadata.site=not=null",
    "metadata.site=in=(paris,5%_x)",
    "metadata.site=out=(paris)",
    "metadata.site==5%_*",
    "metadata.ring>=1",
    "metadata.missing!=x",
    "metadata.site==berlin;group==qa,metadata.ring==2",
]


@pytest.mark.parametrize("query", QUERIES)
def test_sql_selects_what_the_rule_selects(env: Env, query: str) -> None:
    fleet = _fleet(env)
    expr = q.parse(query)
    expected = {f.controller_id for f in fleet if q.matches(expr, f)}
    assert _selected_by_sql(env, expr, fleet) == expected


def test_random_combinations_select_the_same_devices_in_sql_and_in_the_rule(env: Env) -> None:
    fleet = _fleet(env)
    rng = random.Random(5)
    for _ in range(80):
        parts = rng.sample(QUERIES[:31], rng.randint(2, 4))
        joiner = rng.choice([";", ","])
        text = joiner.join(f"({p})" for p in parts)
        expr = q.parse(text)
        expected = {f.controller_id for f in fleet if q.matches(expr, f)}
        assert _selected_by_sql(env, expr, fleet) == expected, text
