"""patchgate as a CSAF provider, over HTTP: the provider metadata passes the official
schema, every published file has matching hashes, and each OpenPGP signature verifies with
the published key in GnuPG (gpgv); the public advisory pages and the management API."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from patchgate.services.advisories import validation
from tests import vuln_views as vulns
from tests.conftest import Env
from tests.factories import make_release
from tests.support import LiveServer, run_cli

CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"


@pytest.fixture
def provider(demo_env: Env, tmp_path: Path) -> tuple[Env, LiveServer, dict[str, str]]:
    srv = LiveServer(demo_env.vars, tmp_path / "server.log")
    cli_env = {**demo_env.vars, "PATCHGATE_PUBLIC_URL": srv.url}
    srv.start()
    yield demo_env, srv, cli_env  # type: ignore[misc]
    srv.stop()


def _register(env: Env, vuln_id: str) -> None:
    vulns.add(
        env.ctx, vuln_id=vuln_id, title=f"{vuln_id} flaw", cvss=CRITICAL, actor="t",
        products=["Demo Gateway"], affected=["<1.0.2"],
    )  # fmt: skip


def _publish(env: Env, cli_env: dict[str, str], vuln_id: str, publish: bool = True) -> str:
    if run_cli(["vuln", "show", vuln_id], cli_env).code != 0:
        _register(env, vuln_id)
    made = run_cli(["advisory", "create", vuln_id, "--json"], cli_env)
    assert made.code == 0, made.stderr
    advisory_id = str(made.json()["id"])
    if publish:
        assert run_cli(["advisory", "publish", advisory_id], cli_env).code == 0
    return advisory_id


def gpgv(key: str, signature: bytes, data: bytes, folder: Path) -> bool:
    """Verify a detached signature with GnuPG's gpgv against a keyring of ``key`` only."""
    gpg = shutil.which("gpg")
    verifier = shutil.which("gpgv")
    assert gpg and verifier, "GnuPG (gpg, gpgv) is needed to check the signatures"
    folder = folder / "gpgv"
    folder.mkdir(exist_ok=True)
    (folder / "key.asc").write_text(key)
    (folder / "data").write_bytes(data)
    (folder / "data.asc").write_bytes(signature)
    keyring = folder / "keyring.gpg"
    keyring.unlink(missing_ok=True)
    subprocess.run(
        [gpg, "--batch", "--yes", "--dearmor", "-o", str(keyring), str(folder / "key.asc")],
        check=True,
        capture_output=True,
    )
    proc = subprocess.run(
        [verifier, "--keyring", str(keyring), str(folder / "data.asc"), str(folder / "data")],
        capture_output=True,
        check=False,
    )
    return proc.returncode == 0


def test_provider_metadata_hashes_and_signatures(
    provider: tuple[Env, LiveServer, dict[str, str]], tmp_path: Path
) -> None:
    env, srv, cli_env = provider
    _register(env, "CVE-2026-7001")  # a release names only fixes the register holds
    make_release(env, "1.0.2", {"fw.bin": b"1.0.2"}, fixes=["CVE-2026-7001"])
    published = [_publish(env, cli_env, "CVE-2026-7001"), _publish(env, cli_env, "CVE-2026-7002")]
    draft = _publish(env, cli_env, "CVE-2026-7003", publish=False)

    security_txt = httpx.get(f"{srv.url}/.well-known/security.txt").text
    csaf_line = next(line for line in security_txt.splitlines() if line.startswith("CSAF: "))
    metadata_url = csaf_line.removeprefix("CSAF: ")
    answer = httpx.get(metadata_url)
    assert answer.status_code == 200
    metadata = answer.json()
    assert validation.schema_problems(validation.PROVIDER_SCHEMA, metadata) == []
    assert metadata["canonical_url"] == metadata_url
    assert metadata["role"] == "csaf_trusted_provider"
    (key_entry,) = metadata["public_openpgp_keys"]
    key = httpx.get(key_entry["url"])
    assert key.status_code == 200 and "BEGIN PGP PUBLIC KEY BLOCK" in key.text
    directory = metadata["distributions"][0]["directory_url"]
    assert directory == f"{srv.url}/.well-known/csaf/white/"
    (feed_entry,) = metadata["distributions"][1]["rolie"]["feeds"]
    feed = httpx.get(feed_entry["url"]).json()["feed"]
    assert sorted(e["id"] for e in feed["entry"]) == sorted(published)
    assert all(e["content"]["src"].startswith(directory) for e in feed["entry"])

    index = httpx.get(f"{directory}index.txt").text.splitlines()
    assert len(index) == 2
    changes = list(csv.reader(io.StringIO(httpx.get(f"{directory}changes.csv").text)))
    assert sorted(row[0] for row in changes) == sorted(index)
    listing = httpx.get(directory, follow_redirects=False)
    assert listing.status_code == 200
    ids = set()
    for path in index:
        year, name = path.split("/")
        assert f'href="/.well-known/csaf/white/{year}/"' in listing.text
        assert name in httpx.get(f"{directory}{year}/").text
        document = httpx.get(f"{directory}{path}", follow_redirects=False)
        assert document.status_code == 200  # no redirect (CSAF 2.0 §7.1.6)
        body = document.content
        doc = json.loads(body)
        assert validation.document_problems(doc) == []
        assert doc["document"]["tracking"]["status"] == "final"
        assert {"category": "self", "summary": "This document", "url": f"{directory}{path}"} in doc[
            "document"
        ]["references"]
        ids.add(doc["document"]["tracking"]["id"])
        assert httpx.get(f"{directory}{path}.sha256").text == (
            f"{hashlib.sha256(body).hexdigest()}  {name}\n"
        )
        assert httpx.get(f"{directory}{path}.sha512").text == (
            f"{hashlib.sha512(body).hexdigest()}  {name}\n"
        )
        signature = httpx.get(f"{directory}{path}.asc").content
        assert gpgv(key.text, signature, body, tmp_path)
        assert not gpgv(key.text, signature, body.replace(b"final", b"draft"), tmp_path)
    assert ids == set(published)
    assert httpx.get(f"{directory}2026/{draft.lower()}.json").status_code == 404
    assert httpx.get(f"{directory}2026/..%2F..%2Fprovider-metadata.json").status_code == 404


def test_public_advisory_pages_and_the_management_api(
    provider: tuple[Env, LiveServer, dict[str, str]],
) -> None:
    env, srv, cli_env = provider
    published = _publish(env, cli_env, "CVE-2026-8001")
    draft = _publish(env, cli_env, "CVE-2026-8002", publish=False)
    page = httpx.get(f"{srv.url}/advisories")
    assert page.status_code == 200 and published in page.text and draft not in page.text
    detail = httpx.get(f"{srv.url}/advisories/{published}")
    assert detail.status_code == 200 and "CVE-2026-8001 flaw" in detail.text
    md = httpx.get(f"{srv.url}/advisories/{published}.md")
    assert md.status_code == 200 and md.text.startswith("# CVE-2026-8001 flaw")
    assert httpx.get(f"{srv.url}/advisories/{draft}").status_code == 404

    auth = {"Authorization": f"Bearer {env.admin_token}"}
    api = f"{srv.url}/api/v1/advisories"
    unknown = httpx.post(api, json={"vulnerabilities": ["CVE-2099-0001"]}, headers=auth)
    assert unknown.status_code == 404 and "CVE-2099-0001" in unknown.text
    assert httpx.post(api, json={"vulnerabilities": []}, headers=auth).status_code == 422
    done = httpx.post(f"{api}/{draft}/publish", headers=auth)
    assert done.status_code == 200 and done.json()["state"] == "final"
    assert httpx.post(f"{api}/{draft}/publish", headers=auth).status_code == 409
    listed = httpx.get(api, headers=auth).json()["advisories"]
    assert {a["id"] for a in listed} == {published, draft}
    assert httpx.get(api).status_code == 401
    checks = httpx.get(f"{srv.url}/api/v1/compliance/checklist", headers=auth).json()
    assert checks["total"] == 6 and len(checks["items"]) == 6
    statement = httpx.get(f"{srv.url}/api/v1/compliance/products/Demo%20Gateway", headers=auth)
    assert statement.json()["support_end"] == "2031-12"
