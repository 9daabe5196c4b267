"""patchgate behind nginx from Debian's packages, with TLS and device client certificates
(mTLS), configured by docs/nginx-patchgate.conf: the simulator's virtual devices install a
release authenticated by their certificates alone; a device without a certificate, or with
one from another CA, is refused; the identity headers sent straight to patchgate (not
through the proxy) are not believed."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import random
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from patchgate.domain import ab_state
from patchgate.sim.ddi_fleet import DeviceCredentials, DeviceFaults, FleetLog, VirtualDevice
from patchgate.sim.devices import EnvTable
from tests.conftest import Env
from tests.factories import action_status, assign, make_release
from tests.support import LiveServer, free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CONF = Path(__file__).resolve().parents[2] / "docs" / "nginx-patchgate.conf"
HARDWARE = "demo-gw-1"
# nginx reaches patchgate from this address, and only it is a trusted proxy; the test's
# own requests come from 127.0.0.1.
PROXY_ADDRESS = "127.0.0.2"

pytestmark = pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx is not installed")


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path
    fingerprint: str


class Authority:
    """A throwaway certificate authority (real keys, real X.509)."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.name = subject
        self.cert = (
            self._builder(subject, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.issued = self._write(name, self.cert, self.key)

    def _builder(
        self, subject: x509.Name, public: ec.EllipticCurvePublicKey
    ) -> x509.CertificateBuilder:
        now = dt.datetime.now(dt.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(getattr(self, "name", subject))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
        )

    def _write(self, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Issued:
        stem = name.lower().replace(" ", "-")
        cert_path = self.folder / f"{stem}.crt"
        key_path = self.folder / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return Issued(cert_path, key_path, cert.fingerprint(hashes.SHA256()).hex())

    def issue(self, common_name: str, *, server: bool = False) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        builder = self._builder(subject, key.public_key()).add_extension(
            x509.BasicConstraints(ca=False, path_length=None), critical=True
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        else:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False
            )
        return self._write(common_name, builder.sign(self.key, hashes.SHA256()), key)


@dataclass
class Front:
    """nginx on a free loopback port in front of one patchgate server."""

    url: str
    ca: Authority
    server: LiveServer
    folder: Path

    def context(self, client: Issued | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca.issued.cert))
        if client is not None:
            context.load_cert_chain(str(client.cert), str(client.key))
        return context


def _nginx_conf(folder: Path, port: int, upstream: int, ca: Authority, tls: Issued) -> Path:
    site = CONF.read_text()
    for old, new in (
        ("server 127.0.0.1:8080", f"server 127.0.0.1:{upstream}"),
        ("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;"),
        ("/etc/patchgate/tls/server.crt", str(tls.cert)),
        ("/etc/patchgate/tls/server.key", str(tls.key)),
        ("/etc/patchgate/tls/device-ca.crt", str(ca.issued.cert)),
        ("DEVICE_CA_SHA256", ca.issued.fingerprint),
    ):
        assert old in site, old
        site = site.replace(old, new)
    (folder / "site.conf").write_text(site)
    user = "user root;\n" if os.geteuid() == 0 else ""
    main = folder / "nginx.conf"
    main.write_text(
        f"{user}worker_processes 1;\npid {folder}/nginx.pid;\nerror_log {folder}/error.log;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        f"  access_log {folder}/access.log;\n"
        f"  client_body_temp_path {folder}/body; proxy_temp_path {folder}/proxy;\n"
        f"  fastcgi_temp_path {folder}/fcgi; uwsgi_temp_path {folder}/uwsgi;\n"
        f"  scgi_temp_path {folder}/scgi;\n"
        f"  proxy_bind {PROXY_ADDRESS};\n"
        f"  include {folder}/site.conf;\n"
        "}\n"
    )
    return main


@pytest.fixture
def front(env: Env, tmp_path: Path) -> Iterator[Front]:
    folder = tmp_path / "nginx"
    folder.mkdir()
    ca = Authority(folder, "Device CA")
    tls = ca.issue("127.0.0.1", server=True)
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    settings = {
        **env.vars,
        "PATCHGATE_TRUSTED_PROXIES": f"{PROXY_ADDRESS}/32",
        "PATCHGATE_DDI_TRUSTED_AUTHORITIES": ca.issued.fingerprint,
        "PATCHGATE_PUBLIC_URL": url,
    }
    server = LiveServer(settings, tmp_path / "server.log").start()
    conf = _nginx_conf(folder, port, server.port, ca, tls)
    nginx = subprocess.Popen(
        [NGINX, "-p", str(folder), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert nginx.poll() is None, nginx.stderr.read() if nginx.stderr else ""
            try:
                httpx.get(
                    f"{url}/healthz",
                    verify=ssl.create_default_context(cafile=str(ca.issued.cert)),
                    timeout=2,
                )
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "nginx did not answer"
                time.sleep(0.1)
        yield Front(url, ca, server, folder)
    finally:
        nginx.terminate()
        nginx.wait(10)
        server.stop()


def _run_fleet(
    front: Front, devices: list[tuple[DeviceCredentials, Issued]]
) -> list[VirtualDevice]:
    """Two passes of every virtual device, each on a TLS session with its certificate."""
    table = EnvTable()
    env0 = table.add(ab_state.fresh_env(version="1.0.0", sha256="0" * 64, size=1))
    log = FleetLog()

    async def one(index: int, creds: DeviceCredentials, cert: Issued) -> VirtualDevice:
        connector = aiohttp.TCPConnector(ssl=front.context(cert))
        async with aiohttp.ClientSession(connector=connector) as client:
            device = VirtualDevice(
                creds,
                client=client,
                server=front.url,
                table=table,
                env=env0,
                faults=DeviceFaults(download_minutes=0.0),
                log=log,
                time_scale=1e6,
                rng=random.Random(index),
            )
            for _ in range(2):
                await device.pass_once()
            return device

    async def main() -> list[VirtualDevice]:
        return list(await asyncio.gather(*(one(i, c, k) for i, (c, k) in enumerate(devices))))

    return asyncio.run(main())


def test_devices_install_through_nginx_authenticated_by_their_certificates(
    env: Env, front: Front
) -> None:
    release = make_release(
        env, "1.1.0", {"rootfs-1.1.0.img": b"image 1.1.0\n" * 64}, hardware=[HARDWARE]
    )
    fleet = []
    actions = []
    for i in range(4):
        cid = f"tls-{i}"
        added = env.cli("device", "add", cid, "--hardware", HARDWARE, "--version", "1.0.0")
        assert added.code == 0, added.stderr
        actions.append(assign(env, cid, release))
        # No token at all: the certificate is the device's only credential.
        fleet.append((DeviceCredentials(cid, ""), front.ca.issue(cid)))
    devices = _run_fleet(front, fleet)
    assert [action_status(env, a) for a in actions] == ["finished"] * 4
    assert [d.version for d in devices] == ["1.1.0"] * 4
    # A device seen first through its certificate is registered on its first poll.
    newcomer = front.ca.issue("tls-new")
    with httpx.Client(verify=front.context(newcomer)) as client:
        answer = client.get(f"{front.url}/DEFAULT/controller/v1/tls-new")
    assert answer.status_code == 200, answer.text
    assert env.cli("device", "show", "tls-new", "--json").code == 0


def test_no_certificate_another_ca_or_another_devices_name_is_refused(
    env: Env, front: Front
) -> None:
    added = env.cli("device", "add", "tls-0", "--json")
    assert added.code == 0
    base = f"{front.url}/DEFAULT/controller/v1/tls-0"
    with httpx.Client(verify=front.context(None)) as client:
        assert client.get(base).status_code == 403
        # Forged identity headers without a certificate change nothing.
        forged = {"X-Controller-Id": "tls-0", "X-Authority": front.ca.issued.fingerprint}
        assert client.get(base, headers=forged).status_code == 403
        # People reach the management API through the same front without a certificate.
        assert client.get(f"{front.url}/healthz").status_code == 200
    rogue = Authority(front.folder, "Rogue CA").issue("tls-0")
    with httpx.Client(verify=front.context(rogue)) as client:
        assert client.get(base).status_code == 400  # nginx: the certificate did not verify
    other = front.ca.issue("tls-other")
    with httpx.Client(verify=front.context(other)) as client:
        assert client.get(base).status_code == 401  # a good certificate, another device
    # The same headers sent straight to patchgate, past the proxy, are not believed.
    direct = httpx.get(
        f"{front.server.url}/DEFAULT/controller/v1/tls-0",
        headers={"X-Controller-Id": "tls-0", "X-Authority": front.ca.issued.fingerprint},
        timeout=10,
    )
    assert direct.status_code == 401
