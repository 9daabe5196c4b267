"""patchgate as a CSAF provider for TLP:WHITE documents (CSAF 2.0 §7.1): the provider
metadata (requirement 7), one folder per year (11), ``index.txt`` (12), ``changes.csv``
(13), directory listings (14), SHA-256/SHA-512 files (18), OpenPGP signatures (19) and the
public key (20). Everything is served from what publishing stored, byte for byte."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from typing import Any

from patchgate.domain.clock import rfc3339
from patchgate.domain.csaf import slug as csaf_slug
from patchgate.domain.errors import Conflict, NotFound
from patchgate.services.advisories import inputs, shapes, views
from patchgate.services.advisories.ports import AdvisoryRecord
from patchgate.services.compliance import sources
from patchgate.services.context import Context

WELL_KNOWN, WHITE = shapes.WELL_KNOWN, shapes.WHITE
ROLIE_FEED = f"{WELL_KNOWN}/feed-tlp-white.json"
_FILE = re.compile(r"^(\d{4})/([+\-a-z0-9_]+\.json)(\.sha256|\.sha512|\.asc)?$")


@dataclass(frozen=True)
class ServedFile:
    """One file of the provider: its bytes and media type."""

    body: bytes
    media_type: str


def _published(ctx: Context) -> list[AdvisoryRecord]:
    return views.list_advisories(ctx, published_only=True)


def key_url(base_url: str, fingerprint: str) -> str:
    return f"{base_url.rstrip('/')}{WELL_KNOWN}/openpgp/{fingerprint}.asc"


def metadata(ctx: Context, base_url: str) -> dict[str, Any]:
    """``provider-metadata.json`` (CSAF 2.0 §7.2.1)."""
    base = base_url.rstrip("/")
    policy = sources.policy(ctx)
    published = _published(ctx)
    last = published[0].published_at if published else sources.policy_in_force(ctx).applied_at
    body: dict[str, Any] = {
        "canonical_url": f"{base}{WELL_KNOWN}/provider-metadata.json",
        "distributions": [
            {"directory_url": f"{base}{WHITE}/"},
            {
                "rolie": {
                    "feeds": [
                        {
                            "summary": f"All TLP:WHITE advisories of {policy.organisation}.",
                            "tlp_label": "WHITE",
                            "url": f"{base}{ROLIE_FEED}",
                        }
                    ]
                }
            },
        ],
        "last_updated": rfc3339(last),
        "list_on_CSAF_aggregators": True,
        "metadata_version": "2.0",
        "mirror_on_CSAF_aggregators": True,
        "publisher": _publisher(inputs.publisher(policy, base)),
        "role": "csaf_trusted_provider",
    }
    key = ctx.openpgp
    if key is not None and key.exists():
        fingerprint = key.fingerprint()
        body["public_openpgp_keys"] = [
            {"fingerprint": fingerprint, "url": key_url(base, fingerprint)}
        ]
    return body


def _publisher(p: Any) -> dict[str, Any]:
    out = {"category": "vendor", "name": p.name, "namespace": p.namespace}
    if p.contact_details:
        out["contact_details"] = p.contact_details
    return out


def public_key(ctx: Context, fingerprint: str) -> str:
    """The armoured public key with this fingerprint, or ``NotFound``."""
    key = ctx.openpgp
    if key is None or not key.exists() or fingerprint.upper() != key.fingerprint():
        raise NotFound(f"no OpenPGP key {fingerprint!r}")
    return key.public_key()


def index_txt(ctx: Context) -> str:
    """§7.1.12: the path of every published document below the TLP folder, one a line."""
    return "".join(f"{r.path}\n" for r in sorted(_published(ctx), key=lambda r: str(r.path)))


def changes_csv(ctx: Context) -> str:
    """§7.1.13: path and current release date of every document, newest change first."""
    rows = []
    for record in _published(ctx):
        current = record.document["document"]["tracking"]["current_release_date"]
        rows.append((str(record.path), str(current)))
    rows.sort(key=lambda r: r[1], reverse=True)
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerows(rows)
    return out.getvalue()


def served_file(ctx: Context, path: str) -> ServedFile:
    """A published document (``YYYY/NAME.json``) or its ``.sha256``, ``.sha512`` or
    ``.asc``; ``NotFound`` for anything else."""
    match = _FILE.match(path)
    if match is None:
        raise NotFound(f"no CSAF file {path!r}")
    document_path = f"{match.group(1)}/{match.group(2)}"
    with ctx.read_uow() as uow:
        record = uow.advisories.by_path(document_path)
    if record is None or record.text is None:
        raise NotFound(f"no CSAF file {path!r}")
    data = record.text.encode()
    suffix = match.group(3)
    name = match.group(2)
    if suffix == ".sha256":
        return ServedFile(f"{hashlib.sha256(data).hexdigest()}  {name}\n".encode(), "text/plain")
    if suffix == ".sha512":
        return ServedFile(f"{hashlib.sha512(data).hexdigest()}  {name}\n".encode(), "text/plain")
    if suffix == ".asc":
        if not record.signature:
            raise Conflict(f"advisory {record.id} has no signature")
        return ServedFile(record.signature.encode(), "application/pgp-signature")
    return ServedFile(data, "application/json")


def listing(ctx: Context, year: str | None) -> list[str]:
    """§7.1.14: the entries of the TLP:WHITE folder (years, index.txt, changes.csv) or of
    one year's folder (each document with its hash and signature files)."""
    published = _published(ctx)
    if year is None:
        years = sorted({str(r.path).split("/")[0] for r in published})
        return [f"{y}/" for y in years] + ["changes.csv", "index.txt"]
    names: list[str] = []
    for record in sorted(published, key=lambda r: str(r.path)):
        folder, _, name = str(record.path).partition("/")
        if folder == year:
            names += [name, f"{name}.asc", f"{name}.sha256", f"{name}.sha512"]
    if not names:
        raise NotFound(f"no CSAF folder {year!r}")
    return names


def rolie_feed(ctx: Context, base_url: str) -> dict[str, Any]:
    """The ROLIE feed of the TLP:WHITE documents (CSAF 2.0 §7.1.16, RFC 8322 in JSON)."""
    base = base_url.rstrip("/")
    published = _published(ctx)
    entries = []
    for record in published:
        url = shapes.document_url(base, record.path or "")
        tracking = record.document["document"]["tracking"]
        entries.append(
            {
                "id": record.id,
                "title": record.title,
                "link": [
                    {"rel": "self", "href": url},
                    {"rel": "hash", "href": f"{url}.sha256"},
                    {"rel": "hash", "href": f"{url}.sha512"},
                    {"rel": "signature", "href": f"{url}.asc"},
                ],
                "published": tracking["initial_release_date"],
                "updated": tracking["current_release_date"],
                "content": {"type": "application/json", "src": url},
                "format": {
                    "schema": "https://docs.oasis-open.org/csaf/csaf/v2.0/csaf_json_schema.json",
                    "version": "2.0",
                },
            }
        )
    updated = published[0].published_at if published else sources.policy_in_force(ctx).applied_at
    return {
        "feed": {
            "id": f"{csaf_slug(sources.policy(ctx).organisation)}-csaf-feed-tlp-white",
            "title": f"{sources.policy(ctx).organisation} CSAF feed (TLP:WHITE)",
            "link": [{"rel": "self", "href": f"{base}{ROLIE_FEED}"}],
            "category": [
                {"scheme": "urn:ietf:params:rolie:category:information-type", "term": "csaf"}
            ],
            "updated": rfc3339(updated),
            "entry": entries,
        }
    }
