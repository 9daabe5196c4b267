"""Downloads from each artifact store (docs/storage.md): the local ``file:`` store, an S3
store with ``PATCHGATE_ARTIFACT_DELIVERY=stream`` and with ``redirect`` (the client
follows the 307 to the presigned URL), plus the S3 server fetched directly as the floor.

The S3 server is moto's (``moto[server]``, a Python server): its own speed bounds the S3
figures, so they measure patchgate's added cost per request (the redirect or the relay)
next to what the store itself gives, not what AWS S3 or MinIO would give.

usage: .venv/bin/python bench/downloads_store.py [SECONDS=8] [CLIENTS=4]
Env:   PATCHGATE_BENCH_WORKDIR  generated files (default ${TMPDIR:-/tmp}/patchgate-bench)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
SIZE = 16 * 1024 * 1024
RANGE = "bytes=1048576-1179647"  # 128 KiB at 1 MiB
AWS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench-secret",
    "AWS_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(url: str) -> None:
    for _ in range(600):
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


def cli(env: dict[str, str], *args: str) -> dict:  # type: ignore[type-arg]
    out = subprocess.run(
        [str(BIN / "patchgate"), *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def install(
    work: Path, name: str, extra: dict[str, str], image: Path
) -> tuple[dict[str, str], str]:
    """A data folder with the image as a signed release; (env, TUF target path)."""
    data = work / name
    shutil.rmtree(data, ignore_errors=True)
    env = {**os.environ, "PATCHGATE_DATA_DIR": str(data), **extra}
    env.pop("PATCHGATE_DATABASE_URL", None)
    subprocess.run(
        [str(BIN / "patchgate"), "init", "--demo"], env=env, capture_output=True, check=True
    )
    release = cli(env, "release", "create", "Demo Gateway", "9.0.0", "--artifact", str(image))
    return env, release["artifacts"][0]["tuf_target"]


def load(url: str, headers: dict[str, str], seconds: float, clients: int) -> tuple[float, float]:
    """(requests/s, MB/s) of ``clients`` threads GETting ``url`` (redirects followed)."""
    done = [0] * clients
    sent = [0] * clients
    stop = time.monotonic() + seconds

    def run(i: int) -> None:
        with httpx.Client(timeout=60, follow_redirects=True) as client:
            while time.monotonic() < stop:
                answer = client.get(url, headers=headers)
                if answer.status_code not in (200, 206):
                    raise SystemExit(f"{url}: {answer.status_code} {answer.text[:200]}")
                done[i] += 1
                sent[i] += len(answer.content)

    started = time.monotonic()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    return sum(done) / elapsed, sum(sent) / elapsed / 1e6


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 8
    clients = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    work = Path(os.environ.get("PATCHGATE_BENCH_WORKDIR") or "/tmp/patchgate-bench") / "store"
    work.mkdir(parents=True, exist_ok=True)
    image = work / "image.bin"
    image.write_bytes(os.urandom(SIZE))
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    moto_port = free_port()
    endpoint = f"http://127.0.0.1:{moto_port}"
    procs = [
        subprocess.Popen(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        wait(endpoint)
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            **{k.lower(): v for k, v in AWS.items() if k != "AWS_REGION"},
            region_name="us-east-1",
        )
        s3.create_bucket(Bucket="bench")
        stores = {
            "file:": {},
            "s3 stream": {
                **AWS,
                "AWS_ENDPOINT_URL": endpoint,
                "PATCHGATE_ARTIFACT_URL": "s3://bench/stream",
                "PATCHGATE_ARTIFACT_DELIVERY": "stream",
            },
            "s3 redirect": {
                **AWS,
                "AWS_ENDPOINT_URL": endpoint,
                "PATCHGATE_ARTIFACT_URL": "s3://bench/redirect",
                "PATCHGATE_ARTIFACT_DELIVERY": "redirect",
            },
        }
        urls: dict[str, str] = {}
        for name, extra in stores.items():
            env, target = install(work, name.replace(" ", "-").replace(":", ""), extra, image)
            port = free_port()
            procs.append(
                subprocess.Popen(
                    [str(BIN / "patchgate"), "serve", "--port", str(port)],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            wait(f"http://127.0.0.1:{port}/healthz")
            urls[name] = f"http://127.0.0.1:{port}/tuf/targets/{target}"
        urls["moto directly"] = f"{endpoint}/bench/stream/sha256/{digest[:2]}/{digest}"
        shape = f"{SIZE // 2**20} MiB file, {clients} clients, {seconds:g} s each"
        print(f"load before: {os.getloadavg()[0]:.2f}; {shape}")
        print(f"{'store':<16}{'whole req/s':>12}{'MB/s':>9}{'128 KiB range req/s':>22}{'MB/s':>9}")
        for name, url in urls.items():
            whole = load(url, {}, seconds, clients)
            ranged = load(url, {"Range": RANGE}, seconds, clients)
            print(f"{name:<16}{whole[0]:>12.1f}{whole[1]:>9.1f}{ranged[0]:>22.1f}{ranged[1]:>9.1f}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)


if __name__ == "__main__":
    main()
