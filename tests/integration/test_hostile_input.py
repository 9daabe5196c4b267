"""Hostile input at the boundary, on both backends: every DDI resource and every management
operation that takes a body gets generated hostile bodies (deep nesting, lone surrogates,
NUL, NaN/Infinity, integers past 64 bits, wrong types, oversize text) and must answer 4xx
and change nothing in the database. Bodies are bounded before they are read: an
unauthenticated oversized body is refused after reading at most the limit.

The app runs in this process behind its real middleware (``create_app``), driven by
tests/asgi_client.py, which counts the body bytes the app pulls.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from patchgate.adapters.db.models.base import Base
from tests.asgi_client import call
from tests.conftest import Env
from tests.factories import assign, make_release

SURROGATE = "\ud800"
HUGE_FLOAT = "__huge_float__"  # replaced by the literal 1e999 (overflows to infinity)


@pytest.fixture
def asgi(env: Env) -> Iterator[Any]:
    from patchgate.entrypoints.http import create_app

    app = create_app(env.app)
    yield app
    app.runtime.close()


def snapshot(env: Env) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (the DDI last-seen time aside, which a poll may move)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with env.app.engines.write.connect() as conn:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if not c.name.startswith("last_seen")]
            rows = conn.execute(sa.select(*columns)).all()
            out[table.name] = sorted((tuple(map(repr, r)) for r in rows), key=repr)
    return out


# --- generated hostile bodies ------------------------------------------------------------


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    else:
        yield path, value


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


def _encode(value: Any) -> bytes:
    text = json.dumps(value)  # ensure_ascii: a lone surrogate is written as \ud800
    return text.replace(f'"{HUGE_FLOAT}"', "1e999").encode()


def hostile_bodies(valid: Any, oversize: int) -> Iterator[tuple[str, bytes]]:
    """Hostile variants of a valid body: whole-body ones, then each leaf replaced."""
    yield "deep array", b"[" * 30000 + b"]" * 30000
    yield "deep object", b'{"a":' * 5000 + b"1" + b"}" * 5000
    yield "NaN body", b"NaN"
    yield "not UTF-8", b'{"a": "\xff\xfe"}'
    yield "nested 40 levels in a field", _encode(_nest(valid, 40))
    for path, leaf in _leaves(valid):
        where = ".".join(map(str, path))
        if isinstance(leaf, str):
            for label, bad in (
                ("lone surrogate", f"{leaf}{SURROGATE}"),
                ("NUL", f"{leaf}\x00x"),
                ("oversize", "x" * oversize),
                ("wrong type", [leaf]),
            ):
                yield f"{label} in {where}", _encode(_replace(valid, path, bad))
        elif isinstance(leaf, int | float) and not isinstance(leaf, bool):
            for label, bad in (
                ("NaN", float("nan")),
                ("Infinity", float("inf")),
                ("overflowing float", HUGE_FLOAT),
                ("integer past int64", 2**70),
                ("wrong type", {"x": 1}),
            ):
                yield f"{label} in {where}", _encode(_replace(valid, path, bad))


def _nest(valid: Any, depth: int) -> Any:
    deep: Any = "x"
    for _ in range(depth):
        deep = [deep]
    first = next(iter(valid)) if isinstance(valid, dict) and valid else None
    return _replace(valid, (first,), deep) if first is not None else deep


# --- the fixtures: a device with an action, a release, a campaign, a vulnerability --------


@dataclass
class World:
    token: str
    action_id: int
    release_id: int
    campaign_id: int
    admin: dict[str, str]


@pytest.fixture
def world(env: Env) -> World:
    release = make_release(env, "1.1.0", {"rootfs.img": b"image"}, hardware=["demo-gw-1"])
    added = env.cli("device", "add", "dev-1", "--hardware", "demo-gw-1", "--json")
    assert added.code == 0, added.stderr
    action_id = assign(env, "dev-1", release)
    made = env.cli("campaign", "create", str(release.id), "--json")
    assert made.code == 0, made.stderr
    vuln = env.cli(
        "vuln",
        "add",
        "CVE-2026-0001",
        "--title",
        "RCE",
        "--cvss",
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "--product",
        "Demo Gateway",
    )
    assert vuln.code == 0, vuln.stderr
    return World(
        token=added.json()["token"],
        action_id=action_id,
        release_id=release.id,
        campaign_id=int(made.json()["id"]),
        admin={"Authorization": f"Bearer {env.admin_token}"},
    )


def ddi_resources(w: World) -> list[tuple[str, str, dict[str, Any]]]:
    feedback = {  # without the optional "id", which DDI clients may send in any form
        "status": {
            "execution": "proceeding",
            "result": {"finished": "none", "progress": {"cnt": 1, "of": 2}},
            "details": ["downloading"],
            "code": 0,
        },
    }
    base = "/DEFAULT/controller/v1/dev-1"
    return [
        ("POST", f"{base}/deploymentBase/{w.action_id}/feedback", feedback),
        ("POST", f"{base}/cancelAction/{w.action_id}/feedback", feedback),
        (
            "POST",
            f"{base}/confirmationBase/{w.action_id}/feedback",
            {"confirmation": "confirmed", "code": 0, "details": ["ok"]},
        ),
        ("POST", f"{base}/confirmationBase/activateAutoConfirm", {"initiator": "a", "remark": "b"}),
        ("POST", f"{base}/confirmationBase/deactivateAutoConfirm", {"initiator": "a"}),
        ("PUT", f"{base}/configData", {"mode": "merge", "data": {"serial": "42"}}),
        ("PUT", f"{base}/installedBase", {"name": "fw", "version": "1.0.0"}),
        (
            "POST",
            f"{base}/health",
            {"running_version": "1.0.0", "boot_count": 1, "uptime_s": 1.5, "metrics": {"t": 4}},
        ),
    ]


def _sample(schema: dict[str, Any], components: dict[str, Any]) -> Any:
    """A small valid-shaped value for a JSON schema (enough to place hostile leaves)."""
    if "$ref" in schema:
        return _sample(components[schema["$ref"].rsplit("/", 1)[1]], components)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"]
            return _sample(options[0], components) if options else None
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {name: _sample(sub, components) for name, sub in props.items()}
    if kind == "array":
        return [_sample(schema.get("items", {"type": "string"}), components)]
    if "enum" in schema:
        return schema["enum"][0]
    return {"integer": 1, "number": 1.5, "boolean": True}.get(str(kind), "text")


def management_operations(asgi: Any, w: World) -> list[tuple[str, str, Any]]:
    """Every management operation with a JSON body, from the served OpenAPI document."""
    doc = asgi.fastapi.openapi()
    components = doc["components"]["schemas"]
    fill = {
        "controller_id": "dev-1",
        "action_id": str(w.action_id),
        "release_id": str(w.release_id),
        "campaign_id": str(w.campaign_id),
        "vuln_id": "CVE-2026-0001",
        "name": "nobody",
        "kind": "early_warning",
        "product": "Demo Gateway",
    }
    found = []
    for template, operations in doc["paths"].items():
        for method, op in operations.items():
            content = op.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            path = template
            for name, value in fill.items():
                path = path.replace("{" + name + "}", value)
            found.append(
                (method.upper(), path, _sample(content["application/json"]["schema"], components))
            )
    return found


def assert_refused_and_unchanged(
    env: Env, asgi: Any, method: str, path: str, headers: dict[str, str], valid: Any, oversize: int
) -> int:
    before = snapshot(env)
    tried = 0
    for label, body in hostile_bodies(valid, oversize):
        answer = call(asgi, method, path, body, {**headers, "content-type": "application/json"})
        assert 400 <= answer.status < 500, (method, path, label, answer.status, answer.body[:300])
        tried += 1
    assert snapshot(env) == before, (method, path)
    return tried


def test_every_ddi_resource_refuses_hostile_bodies_with_4xx_and_changes_nothing(
    env: Env, asgi: Any, world: World
) -> None:
    headers = {"Authorization": f"TargetToken {world.token}"}
    for method, path, valid in ddi_resources(world):
        assert assert_refused_and_unchanged(env, asgi, method, path, headers, valid, 70_000) >= 9


def test_every_management_operation_refuses_hostile_bodies_with_4xx_and_changes_nothing(
    env: Env, asgi: Any, world: World
) -> None:
    operations = management_operations(asgi, world)
    assert len(operations) >= 15  # tokens, devices, actions, campaigns, vulnerabilities, …
    for method, path, valid in operations:
        assert_refused_and_unchanged(env, asgi, method, path, world.admin, valid, 70_000)


@pytest.mark.parametrize(
    "document",
    [
        b"[" * 30000,
        b'{"cveMetadata": {"cveId": "CVE-2026-9999"}, "x": NaN}',
        b'{"cveMetadata": {"cveId": "CVE-2026-9999\\ud800"}}',
        b'{"cveMetadata": {"cveId": "CVE-2026-9999\\u0000"}}',
        b'{"cveMetadata": {"cveId": "CVE-2026-9999", "n": 123456789012345678901234567890}}',
    ],
)
def test_a_hostile_vulnerability_import_is_refused_over_the_api_and_the_cli(
    env: Env, asgi: Any, world: World, document: bytes, tmp_path: Any
) -> None:
    before = snapshot(env)
    answer = call(asgi, "POST", "/api/v1/vulnerabilities/import", document, world.admin)
    assert answer.status == 422, answer.body
    file = tmp_path / "records.json"
    file.write_bytes(document)
    result = env.cli("vuln", "import", str(file))
    assert result.code == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert snapshot(env) == before


@pytest.mark.parametrize(
    "source",
    [
        b"a = " + b"[" * 30000,
        b"a = nan",
        b"a = inf",
        b"a = 99999999999999999999",
        b'organisation = "\\u0000"',
    ],
)
def test_hostile_policy_toml_is_refused_over_the_api_and_the_cli(
    env: Env, asgi: Any, world: World, source: bytes, tmp_path: Any
) -> None:
    before = snapshot(env)
    headers = {**world.admin, "content-type": "application/toml"}
    answer = call(asgi, "PUT", "/api/v1/policy", source, headers)
    assert answer.status == 422, answer.body
    file = tmp_path / "policy.toml"
    file.write_bytes(source)
    result = env.cli("policy", "check", str(file))
    assert result.code == 2, result.stderr
    assert snapshot(env) == before


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/releases/{release}",
        "/api/v1/actions/{big}",
        "/api/v1/audit?before_seq={big}",
        "/api/v1/releases/{big}/health",
        "/DEFAULT/controller/v1/dev-1/deploymentBase/{big}",
        "/api/v1/devices/dev%00x",
    ],
)
def test_out_of_range_integers_and_nul_in_parameters_are_refused(
    env: Env, asgi: Any, world: World, path: str
) -> None:
    path = path.format(release=2**64, big=2**70, action=world.action_id)
    headers = {**world.admin, "Authorization": f"Bearer {env.admin_token}"}
    if "/controller/" in path:
        headers = {"Authorization": f"TargetToken {world.token}"}
    answer = call(asgi, "GET", path.replace("%00", "\x00"), headers=headers)
    assert 400 <= answer.status < 500, answer.body


def test_an_action_history_past_int64_asks_for_the_whole_history(
    env: Env, asgi: Any, world: World
) -> None:
    device = {"Authorization": f"TargetToken {world.token}", "Content-Type": "application/json"}
    base = f"/DEFAULT/controller/v1/dev-1/deploymentBase/{world.action_id}"
    progress = {
        "status": {
            "execution": "proceeding",
            "result": {"finished": "none"},
            "details": ["downloading the image"],
        }
    }
    sent = call(asgi, "POST", f"{base}/feedback", json.dumps(progress).encode(), headers=device)
    assert sent.status == 200, sent.body
    answer = call(asgi, "GET", f"{base}?actionHistory={2**70}", headers=device)
    assert answer.status == 200, answer.body
    assert "downloading the image" in json.loads(answer.body)["actionHistory"]["messages"]


def test_nan_in_a_health_report_is_refused_and_device_show_stays_valid_json(
    env: Env, asgi: Any, world: World
) -> None:
    headers = {"Authorization": f"TargetToken {world.token}", "content-type": "application/json"}
    path = "/DEFAULT/controller/v1/dev-1/health"
    for value in (b"NaN", b"Infinity", b"-Infinity", b"1e999"):
        body = b'{"running_version": "1.0.0", "metrics": {"t": ' + value + b"}}"
        assert call(asgi, "POST", path, body, headers).status == 400
    shown = env.cli("device", "show", "dev-1", "--json")
    assert shown.code == 0 and json.loads(shown.stdout)


# --- bodies are bounded before they are read ---------------------------------------------


def _flood(total: int, chunk: int = 64 * 1024) -> Iterator[bytes]:
    block = b"x" * chunk
    for _ in range(total // chunk):
        yield block


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/releases/1/withdraw",
        "/api/v1/releases/1",
        "/api/v1/tokens",
        "/api/v1/vulnerabilities/import",
        "/api/v1/releases",  # the upload: read only after the token is checked
        "/DEFAULT/controller/v1/dev-1/health",
    ],
)
def test_an_unauthenticated_oversized_body_is_refused_before_it_is_read(
    env: Env, asgi: Any, path: str
) -> None:
    limit = env.app.settings.max_request_bytes
    # 300 MB offered without a length: the app must stop pulling at the limit.
    answer = call(asgi, "POST", path, chunks=_flood(300 * 1024 * 1024))
    assert answer.status in (401, 404, 405, 413), answer.body
    assert answer.read <= limit + 64 * 1024, answer.read
    # With the length declared, nothing is read at all.
    declared = call(
        asgi,
        "POST",
        path,
        headers={"content-length": str(300 * 1024 * 1024)},
        chunks=_flood(300 * 1024 * 1024),
    )
    assert declared.status in (401, 413), declared.body
    assert declared.read <= 64 * 1024


def _multipart(fields: dict[str, str], filename: str) -> tuple[bytes, str]:
    boundary = "hostileboundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="artifact"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        + b"image bytes\r\n"
    )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), boundary


def test_a_release_upload_with_hostile_text_fields_is_refused_and_changes_nothing(
    env: Env, asgi: Any, world: World
) -> None:
    valid = {"product": "Demo Gateway", "version": "9.9.9", "notes": "n", "hardware": "h"}
    before = snapshot(env)
    variants = [({**valid, name: f"x\x00{name}"}, "a.img") for name in valid]
    variants += [(valid, "a\x00.img"), ({**valid, "notes": "x" * 70_000}, "a.img")]
    for fields, filename in variants:
        body, boundary = _multipart(fields, filename)
        headers = {**world.admin, "content-type": f"multipart/form-data; boundary={boundary}"}
        answer = call(asgi, "POST", "/api/v1/releases", body, headers)
        assert answer.status == 422, (fields, filename, answer.body)
    assert snapshot(env) == before
