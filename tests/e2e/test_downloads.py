"""Download semantics on both routes (/tuf/targets and the DDI artifact link), on both
backends, against a running server: the answers of the download fast path (docs/downloads.md)
must match HTTP's rules for ranges and conditionals, and the device's token comes first."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from patchgate.services import actions, devices, releases
from tests.conftest import Env
from tests.support import LiveServer

# Longer than the part read on the event loop, so ranges of both kinds are exercised.
PAYLOAD = hashlib.sha256(b"seed").digest() * (1536 * 1024 // 32)  # 1.5 MiB
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


@dataclass
class Served:
    server: LiveServer
    tuf_url: str
    ddi_url: str
    token: str
    env: Env
    release_id: int


@pytest.fixture
def served(demo_env: Env, tmp_path: Path) -> Iterator[Served]:
    ctx = demo_env.ctx
    release = releases.create_release(
        ctx,
        product="Demo Gateway",
        version="3.0.0",
        artifacts=[releases.ArtifactUpload("big.img", [PAYLOAD])],
        actor="test",
        security_version=1,
        hardware=["demo-gw-1"],
    )
    device = devices.add_device(ctx, "dl-1", hardware="demo-gw-1", version="1.0.0", actor="test")
    actions.assign(ctx, "dl-1", release.id, actor="test")
    module = release.artifacts[0].id
    srv = LiveServer(demo_env.vars, tmp_path / "server.log").start()
    yield Served(
        srv,
        f"{srv.url}/tuf/targets/{release.artifacts[0].tuf_target}",
        f"{srv.url}/DEFAULT/controller/v1/dl-1/softwaremodules/{module}/artifacts/big.img",
        device.token,
        demo_env,
        release.id,
    )
    srv.stop()


def _routes(s: Served) -> list[tuple[str, dict[str, str]]]:
    return [(s.tuf_url, {}), (s.ddi_url, {"Authorization": f"TargetToken {s.token}"})]


def _parts(response: httpx.Response) -> list[tuple[str, bytes]]:
    """(Content-Range, bytes) of each part of a multipart/byteranges answer."""
    boundary = response.headers["content-type"].split("boundary=")[1]
    body = response.content
    assert body.endswith(f"--{boundary}--".encode())
    found = []
    for chunk in body.split(f"--{boundary}\r\n".encode())[1:]:
        head, _, data = chunk.partition(b"\r\n\r\n")
        match = re.search(rb"Content-Range: bytes (\S+)", head)
        assert match is not None
        data = data.removesuffix(f"--{boundary}--".encode()).removesuffix(b"\r\n")
        found.append((match[1].decode(), data))
    return found


def test_ranges_head_etag_and_conditionals_on_both_routes(served: Served) -> None:
    size = len(PAYLOAD)
    etag = f'"{SHA256}"'
    with httpx.Client() as http:
        for url, auth in _routes(served):
            whole = http.get(url, headers=auth)
            assert whole.status_code == 200
            assert whole.content == PAYLOAD
            assert whole.headers["etag"] == etag
            assert whole.headers["accept-ranges"] == "bytes"

            head = http.head(url, headers=auth)
            assert head.status_code == 200
            assert head.content == b""
            assert int(head.headers["content-length"]) == size

            small = http.get(url, headers={**auth, "Range": "bytes=100-227"})
            assert small.status_code == 206
            assert small.content == PAYLOAD[100:228]
            assert small.headers["content-range"] == f"bytes 100-227/{size}"

            # longer than one read on the loop: read in a worker thread, chunk by chunk
            big = http.get(url, headers={**auth, "Range": "bytes=1000-"})
            assert big.status_code == 206
            assert big.content == PAYLOAD[1000:]
            assert int(big.headers["content-length"]) == size - 1000

            suffix = http.get(url, headers={**auth, "Range": "bytes=-10"})
            assert suffix.content == PAYLOAD[-10:]

            head_range = http.head(url, headers={**auth, "Range": "bytes=0-9"})
            assert head_range.status_code == 206
            assert head_range.headers["content-length"] == "10"
            assert head_range.content == b""

            multi = http.get(url, headers={**auth, "Range": "bytes=0-4,100-109,-3"})
            assert multi.status_code == 206
            assert int(multi.headers["content-length"]) == len(multi.content)
            assert _parts(multi) == [
                (f"0-4/{size}", PAYLOAD[0:5]),
                (f"100-109/{size}", PAYLOAD[100:110]),
                (f"{size - 3}-{size - 1}/{size}", PAYLOAD[-3:]),
            ]

            same = http.get(url, headers={**auth, "Range": "bytes=0-9", "If-Range": etag})
            assert (same.status_code, same.content) == (206, PAYLOAD[:10])
            by_date = http.get(
                url,
                headers={**auth, "Range": "bytes=0-9", "If-Range": whole.headers["last-modified"]},
            )
            assert by_date.status_code == 206
            changed = http.get(url, headers={**auth, "Range": "bytes=0-9", "If-Range": '"x"'})
            assert (changed.status_code, changed.content) == (200, PAYLOAD)

            past = http.get(url, headers={**auth, "Range": f"bytes={size}-"})
            assert past.status_code == 416
            assert past.headers["content-range"] == f"bytes */{size}"
            malformed = http.get(url, headers={**auth, "Range": "lines=1-2"})
            assert malformed.status_code == 400

            for tags in (etag, f'"other", {etag}', f"W/{etag}", "*"):
                cached = http.get(url, headers={**auth, "If-None-Match": tags})
                assert cached.status_code == 304
                assert cached.headers["etag"] == etag
                assert cached.content == b""
            fresh = http.get(url, headers={**auth, "If-None-Match": '"other"'})
            assert fresh.status_code == 200


def test_the_ddi_link_checks_the_token_first(served: Served) -> None:
    ctx = served.env.ctx
    url = served.ddi_url
    with httpx.Client() as http:
        for header in ({}, {"Authorization": "TargetToken wrong"}):
            refused = http.get(url, headers={**header, "Range": "bytes=0-9"})
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"].startswith("TargetToken")

        gateway = devices.create_gateway_token(ctx, actor="test")
        by_gateway = {"Authorization": f"GatewayToken {gateway}", "Range": "bytes=0-9"}
        assert http.get(url, headers=by_gateway).content == PAYLOAD[:10]
        devices.revoke_gateway_token(ctx, actor="test")
        assert http.get(url, headers=by_gateway).status_code == 401

        # another device's token, even a valid one, does not open dl-1's link
        other = devices.add_device(ctx, "dl-2", hardware="demo-gw-1", actor="test")
        assert (
            http.get(url, headers={"Authorization": f"TargetToken {other.token}"}).status_code
            == 401
        )
        # dl-2 was offered nothing: its own link to the artifact is not found
        own = url.replace("/dl-1/", "/dl-2/")
        assert (
            http.get(own, headers={"Authorization": f"TargetToken {other.token}"}).status_code
            == 404
        )
        auth = {"Authorization": f"TargetToken {served.token}"}
        assert http.get(url.replace("big.img", "other.img"), headers=auth).status_code == 404
        md5 = http.get(f"{url}.MD5SUM", headers=auth)
        assert md5.status_code == 200
        assert md5.text == f"{hashlib.md5(PAYLOAD, usedforsecurity=False).hexdigest()}  big.img\n"
        assert http.post(url, headers=auth).status_code == 405


def test_a_withdrawn_release_stops_its_target_at_once(served: Served) -> None:
    with httpx.Client() as http:
        assert http.get(served.tuf_url, headers={"Range": "bytes=0-9"}).status_code == 206
        releases.withdraw_release(served.env.ctx, served.release_id, reason="test", actor="test")
        gone = http.get(served.tuf_url, headers={"Range": "bytes=0-9"})
        assert gone.status_code == 404
        assert gone.json()["error"] == "NotFound"
        assert http.post(served.tuf_url).status_code == 405


def _count(metrics: str, group: str, status: str) -> float:
    """The request counter of one route group and status (GET), 0 when absent."""
    pattern = (
        rf'^patchgate_http_requests_total\{{group="{group}",method="GET",status="{status}"\}}'
        r" (\S+)$"
    )
    found = re.search(pattern, metrics, re.MULTILINE)
    return float(found[1]) if found else 0.0


def test_downloads_served_in_front_of_the_middleware_are_counted(served: Served) -> None:
    with httpx.Client() as http:
        before = http.get(f"{served.server.url}/metrics").text
        for url, auth in _routes(served):
            for _ in range(3):
                part = http.get(url, headers={**auth, "Range": "bytes=0-9"})
                assert part.status_code == 206
        after = http.get(f"{served.server.url}/metrics").text
        for group in ("tuf", "ddi"):
            assert _count(after, group, "206") - _count(before, group, "206") == 3
        assert 'patchgate_http_request_seconds_count{group="tuf"}' in after


def test_a_revoking_commit_in_another_process_stops_what_the_server_remembered(
    served: Served,
) -> None:
    """The server remembers a token's device and a target's blob between requests
    (docs/downloads.md); a rotation, a removal or a withdrawal committed by another
    process (this one) is obeyed by the very next request."""
    ctx = served.env.ctx
    ranged = {"Range": "bytes=0-9"}
    old = {"Authorization": f"TargetToken {served.token}", **ranged}
    with httpx.Client() as http:
        for _ in range(5):  # remembered after the first
            assert http.get(served.ddi_url, headers=old).content == PAYLOAD[:10]
            assert http.get(served.tuf_url, headers=ranged).status_code == 206
        # a change that revokes nothing leaves the server's answers as they were
        devices.tag_device(ctx, "dl-1", ["qa"], actor="test")
        assert http.get(served.ddi_url, headers=old).status_code == 206

        rotated = devices.rotate_token(ctx, "dl-1", actor="test")
        assert http.get(served.ddi_url, headers=old).status_code == 401
        new = {"Authorization": f"TargetToken {rotated.token}", **ranged}
        for _ in range(3):
            assert http.get(served.ddi_url, headers=new).content == PAYLOAD[:10]

        devices.remove_device(ctx, "dl-1", actor="test")
        assert http.get(served.ddi_url, headers=new).status_code == 401

        releases.withdraw_release(ctx, served.release_id, reason="test", actor="test")
        assert http.get(served.tuf_url, headers=ranged).status_code == 404
