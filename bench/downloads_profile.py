"""The fixed cost of one download request inside patchgate's ASGI application, without the
HTTP server: the app that ``patchgate serve`` runs (``serve_app``) is called in a loop
with the scope granian would pass for a 128 KiB ``Range`` request, on /tuf/targets and on
the DDI link with the device's ``TargetToken``. It prints microseconds per request (the
Python side of BENCHMARKS.md "Downloads"; the rest is granian's) as wall time and as the
thread's CPU time, overall and in the least of its batches of 500 requests (the figure
that holds on a busy machine), and with ``--profile``
cProfile's top functions.

usage: PYTHONPATH=src python bench/downloads_profile.py [REQUESTS=20000] [--profile]
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RANGE = b"bytes=1048576-1179647"
BATCH = 500
SIZE = 4 * 1024 * 1024


def _cli(data: Path, *args: str) -> Any:
    env = {**os.environ, "PATCHGATE_DATA_DIR": str(data)}
    env.pop("PATCHGATE_DATABASE_URL", None)
    out = subprocess.run(
        [sys.executable, "-m", "patchgate.entrypoints.cli", *args, "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def _setup(work: Path) -> tuple[str, str, str]:
    """A signed release with one artifact, offered to one device: (target path, DDI link
    path, the device's token)."""
    data = work / "data"
    _cli(data, "init", "--demo")
    image = work / "image.bin"
    image.write_bytes(os.urandom(SIZE))
    rel = _cli(
        data, "release", "create", "Demo Gateway", "9.0.0", "--artifact", str(image),
        "--hardware", "demo-gw-1",
    )  # fmt: skip
    token = _cli(data, "device", "add", "dl-1", "--hardware", "demo-gw-1", "--version", "1.0")
    _cli(data, "device", "assign", "dl-1", str(rel["id"]))
    target = "/tuf/targets/" + rel["artifacts"][0]["tuf_target"]
    link = f"/DEFAULT/controller/v1/dl-1/softwaremodules/{rel['id']}/artifacts/image.bin"
    os.environ["PATCHGATE_DATA_DIR"] = str(data)
    return target, link, token["token"]


def _scope(path: str, token: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 18071),
        "client": ("127.0.0.1", 40000),
        "scheme": "http",
        "method": "GET",
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:18071"),
            (b"authorization", f"TargetToken {token}".encode()),
            (b"range", RANGE),
        ],
        "extensions": {"http.response.pathsend": {}},
        "state": {},
    }


async def _run(app: Any, scope: dict[str, Any], count: int) -> tuple[float, float, float]:
    status: list[int] = []
    size = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal size
        if message["type"] == "http.response.start":
            status.append(message["status"])
        else:
            size += len(message.get("body", b""))

    # CPU time per batch of BATCH requests: the least of them is the figure that holds on
    # a busy machine (a batch that ran undisturbed), the total the one that does not.
    batches = []
    start, start_cpu = time.perf_counter(), time.thread_time()
    for _ in range(max(count // BATCH, 1)):
        batch_cpu = time.thread_time()
        for _ in range(BATCH):
            await app(dict(scope), receive, send)
        batches.append(time.thread_time() - batch_cpu)
    done = max(count // BATCH, 1) * BATCH
    elapsed, cpu = time.perf_counter() - start, time.thread_time() - start_cpu
    if set(status) != {206} or size != done * 131072:
        raise SystemExit(f"wrong answers: {set(status)}, {size} bytes")
    return elapsed / done * 1e6, cpu / done * 1e6, min(batches) / BATCH * 1e6


def main() -> None:
    count = int(next((a for a in sys.argv[1:] if a.isdigit()), "20000"))
    profile = "--profile" in sys.argv
    with tempfile.TemporaryDirectory() as tmp:
        target, link, token = _setup(Path(tmp))
        from patchgate.entrypoints.http import serve_app

        app = serve_app()
        loop = asyncio.new_event_loop()
        for name, path in (("tuf", target), ("ddi", link)):
            scope = _scope(path, token)
            loop.run_until_complete(_run(app, scope, 2000))  # warm caches
            if profile:
                prof = cProfile.Profile()
                prof.enable()
            us, cpu, least = loop.run_until_complete(_run(app, scope, count))
            print(
                f"{name}: {us:.1f} µs ({cpu:.1f} µs of CPU, {least:.1f} µs in the least "
                f"batch of {BATCH}) per 128 KiB Range request (in the app, {count} requests)"
            )
            if profile:
                prof.disable()
                pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        loop.close()
        app.runtime.close()


if __name__ == "__main__":
    main()
