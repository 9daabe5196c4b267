"""A DDI client patchgate did not write: Debian's SWUpdate (suricatta, hawkBit server mode)
against a real ``patchgate serve``, configured as SWUpdate's documentation does it (a
lower-case ``-t default`` tenant). It polls, finds its update in a release of several
artifacts (the ``.swu`` and a detached signature file, one software module), downloads
the ``.swu`` (resuming with a Range request after the connection is cut mid-download),
installs it with its ``raw`` handler into a file, and reports success; a corrupted update
is reported as a failure.

The ``.swu`` is made here the way SWUpdate documents it: a cpio "newc" archive whose first
member is ``sw-description`` (libconfig), then its CMS signature (Debian builds SWUpdate for
signed images only), then the image with its SHA-256."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import Env
from tests.factories import make_release
from tests.support import LiveServer, free_port

HARDWARE = "demo-gw-1"
TENANT = "default"  # as in SWUpdate's documentation; patchgate's tenant is DEFAULT
IMAGE = b"patchgate swupdate end to end\n" * 8000  # 240 KB: curl reads it in many blocks
CUT_AFTER = 64 * 1024  # the proxy cuts the first download after this many bytes


def _swupdate() -> str:
    found = shutil.which("swupdate")
    assert found, "Debian's swupdate package is needed (apt-get install swupdate; .ci/run does)"
    return found


# --- the update file -----------------------------------------------------------------------


def _cpio_member(name: str, data: bytes, inode: int) -> bytes:
    """One cpio "newc" member: the 070701 header (13 hex fields), the name, the data, each
    padded to 4 bytes."""
    encoded = name.encode() + b"\0"
    mode = 0 if name == "TRAILER!!!" else 0o100644
    fields = (inode, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
    head = b"070701" + b"".join(b"%08X" % value for value in fields) + encoded
    head += b"\0" * (-len(head) % 4)
    return head + data + b"\0" * (-len(data) % 4)


def make_swu(workdir: Path, key: Path, cert: Path, target: Path, image_sha256: str) -> bytes:
    description = (
        "software =\n{\n"
        '    version = "1.1.0";\n'
        '    hardware-compatibility = [ "1.0" ];\n'
        "    images: (\n        {\n"
        '            filename = "rootfs.img";\n'
        f'            device = "{target}";\n'
        '            type = "raw";\n'
        f'            sha256 = "{image_sha256}";\n'
        "        }\n    );\n}\n"
    ).encode()
    desc_path = workdir / "sw-description"
    desc_path.write_bytes(description)
    sig_path = workdir / "sw-description.sig"
    subprocess.run(
        ["openssl", "cms", "-sign", "-in", str(desc_path), "-out", str(sig_path),
         "-signer", str(cert), "-inkey", str(key), "-outform", "DER", "-nosmimecap", "-binary"],
        check=True, capture_output=True,
    )  # fmt: skip
    archive = (
        _cpio_member("sw-description", description, 1)
        + _cpio_member("sw-description.sig", sig_path.read_bytes(), 2)
        + _cpio_member("rootfs.img", IMAGE, 3)
        + _cpio_member("TRAILER!!!", b"", 0)
    )
    return archive + b"\0" * (-len(archive) % 512)


def signing_pair(workdir: Path) -> tuple[Path, Path]:
    key, cert = workdir / "key.pem", workdir / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=patchgate swupdate test",
         "-addext", "extendedKeyUsage=emailProtection", "-addext", "keyUsage=digitalSignature"],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


# --- a cutting proxy -----------------------------------------------------------------------


@dataclass
class CuttingProxy:
    """An HTTP/1.1 proxy on a free loopback port that forwards one request per connection
    (it asks the server to close) and cuts the first artifact download after ``cut_after``
    bytes of the answer, so the client must resume it. It records each request line and its
    Range header."""

    upstream_port: int
    cut_after: int
    port: int = field(default_factory=free_port)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    _cut_done: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> CuttingProxy:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._one, args=(client,), daemon=True).start()

    def _one(self, client: socket.socket) -> None:
        with client, contextlib.suppress(OSError):
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = client.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, body = data.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            while len(body) < length:
                chunk = client.recv(65536)
                if not chunk:
                    return
                body += chunk
            self.requests.append((lines[0], headers.get("range")))
            kept = [ln for ln in lines[1:] if not ln.lower().startswith("connection:")]
            request = "\r\n".join([lines[0], *kept, "Connection: close"]).encode()
            cut = (
                not self._cut_done
                and lines[0].startswith("GET ")
                and "/softwaremodules/" in lines[0]
                and "range" not in headers
            )
            if cut:
                self._cut_done = True
            with socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
                upstream.sendall(request + b"\r\n\r\n" + body)
                sent = 0
                while True:
                    chunk = upstream.recv(65536)
                    if not chunk:
                        break
                    if cut and sent + len(chunk) > self.cut_after:
                        client.sendall(chunk[: self.cut_after - sent])
                        return  # drop the connection mid-body
                    client.sendall(chunk)
                    sent += len(chunk)


# --- the client ----------------------------------------------------------------------------


def wait_for_log(client: Suricatta, text: str) -> None:
    deadline = time.monotonic() + 60
    while text not in client.log():
        assert time.monotonic() < deadline, f"no {text!r}; swupdate log:\n{client.log()[-4000:]}"
        time.sleep(0.2)


@dataclass
class Suricatta:
    """``swupdate -u`` polling a hawkBit server, with its sockets in a folder of its own."""

    workdir: Path
    cert: Path
    url: str
    controller_id: str
    token: str

    @contextlib.contextmanager
    def running(self, *extra: str) -> Iterator[subprocess.Popen[bytes]]:
        suricatta = (
            f"-t {TENANT} -u {self.url} -i {self.controller_id} -k {self.token} -p 1 -r 5 -w 1"
        )
        if extra:
            suricatta += " " + " ".join(extra)
        log = (self.workdir / "swupdate.log").open("ab")
        proc = subprocess.Popen(
            [_swupdate(), "-v", "-k", str(self.cert), "-H", f"{HARDWARE}:1.0", "-u", suricatta],
            env={**os.environ, "TMPDIR": str(self.workdir)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
            log.close()

    def log(self) -> str:
        return (self.workdir / "swupdate.log").read_text(errors="replace")


def wait_for_status(env: Env, action_id: int, wanted: set[str], client: Suricatta) -> str:
    deadline = time.monotonic() + 60
    status = ""
    while time.monotonic() < deadline:
        with env.ctx.read_uow() as uow:
            action = uow.actions.get(action_id)
            assert action is not None
            status = action.status
        if status in wanted:
            return status
        time.sleep(0.2)
    raise AssertionError(
        f"action {action_id} stayed {status}; swupdate log:\n{client.log()[-4000:]}"
    )


def start(env: Env, tmp: Path, public_url: str = "") -> LiveServer:
    # Behind a proxy the server is told its public URL: it never takes links from Host.
    extra = {"PATCHGATE_PUBLIC_URL": public_url} if public_url else {}
    return LiveServer(
        {**env.vars, "PATCHGATE_POLL_SLEEP": "1", **extra}, tmp / "server.log"
    ).start()


def offer(env: Env, tmp: Path, image_sha256: str) -> tuple[Path, Path, str, int]:
    """A signed ``.swu`` released through the release service and assigned to a new device
    with ``device assign``; returns the signer's certificate, the target file, the device's
    token and the action's id."""
    key, cert = signing_pair(tmp)
    target = tmp / "slot-b.img"
    target.write_bytes(b"")
    swu = make_swu(tmp, key, cert, target, image_sha256)
    signature = (tmp / "sw-description.sig").read_bytes()
    release = make_release(
        env, "1.1.0", {"update.swu": swu, "update.swu.p7s": signature}, hardware=[HARDWARE]
    )
    added = env.cli("device", "add", "swu-1", "--hardware", HARDWARE, "--json")
    assert added.code == 0, added.stderr
    assigned = env.cli("device", "assign", "swu-1", str(release.id), "--json")
    assert assigned.code == 0, assigned.stderr
    return cert, target, added.json()["token"], int(assigned.json()["id"])


def events(env: Env, action_id: int) -> list[tuple[str, str]]:
    with env.ctx.read_uow() as uow:
        return [(e.execution, e.finished) for e in uow.actions.events(action_id)]


def test_swupdate_polls_downloads_with_a_resumed_range_installs_and_reports_success(
    env: Env, tmp_path: Path
) -> None:
    cert, target, token, action_id = offer(env, tmp_path, hashlib.sha256(IMAGE).hexdigest())
    proxy_port = free_port()
    server = start(env, tmp_path, public_url=f"http://127.0.0.1:{proxy_port}")
    try:
        with CuttingProxy(server.port, CUT_AFTER, port=proxy_port) as proxy:
            client = Suricatta(tmp_path, cert, f"http://127.0.0.1:{proxy.port}", "swu-1", token)
            with client.running():
                # Installed; SWUpdate reports "proceeding" and waits for the reboot.
                wait_for_log(client, "Update successful, executing post-update actions")
                assert wait_for_status(env, action_id, {"running", "error"}, client) == "running"
            assert target.read_bytes() == IMAGE
            # After the "reboot", SWUpdate confirms the update as its docs describe (-c 2).
            with client.running("-c 2"):
                status = wait_for_status(env, action_id, {"finished", "error"}, client)
        assert status == "finished", client.log()[-3000:]
    finally:
        server.stop()
    polls = [
        line for line, _ in proxy.requests if line == f"GET /{TENANT}/controller/v1/swu-1 HTTP/1.1"
    ]
    assert len(polls) >= 2
    downloads = [
        (line, byte_range)
        for line, byte_range in proxy.requests
        if line.startswith("GET ") and "/softwaremodules/" in line
    ]
    # SWUpdate took the .swu from the chunk and skipped the other artifact.
    assert all("/artifacts/update.swu " in line for line, _ in downloads)
    # The first download was cut; SWUpdate resumed it with a Range request from the cut.
    assert downloads[0][1] is None
    assert any(
        r is not None and r.startswith("bytes=") and r != "bytes=0-" for _, r in downloads[1:]
    )
    with env.ctx.read_uow() as uow:
        device = uow.devices.get("DEFAULT", "swu-1")
    assert device is not None and device.installed_version == "1.1.0"
    assert ("closed", "success") in events(env, action_id)


def test_swupdate_reports_a_corrupted_update_as_a_failure(env: Env, tmp_path: Path) -> None:
    cert, target, token, action_id = offer(
        env, tmp_path, hashlib.sha256(b"not the image").hexdigest()
    )
    server = start(env, tmp_path)
    try:
        client = Suricatta(tmp_path, cert, server.url, "swu-1", token)
        with client.running():
            status = wait_for_status(env, action_id, {"finished", "error"}, client)
    finally:
        server.stop()
    assert status == "error", client.log()[-3000:]
    assert ("closed", "failure") in events(env, action_id)
    with env.ctx.read_uow() as uow:
        device = uow.devices.get("DEFAULT", "swu-1")
    assert device is not None and device.installed_version != "1.1.0"
    assert target.read_bytes() == b""  # SWUpdate checks the hash before it writes
