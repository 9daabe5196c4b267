"""The CSAF provider (CSAF 2.0 §7.1, TLP:WHITE), the public advisory pages and the
products' support statements.

Files are answered directly, never through a redirect (§7.1.6); folders answer with a
listing (§7.1.14), with or without their trailing slash.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from patchgate import __version__
from patchgate.entrypoints.presenters import advisories as present
from patchgate.entrypoints.presenters import compliance as present_compliance
from patchgate.entrypoints.runtime import Runtime, runtime
from patchgate.entrypoints.web import render
from patchgate.services.advisories import provider, views
from patchgate.services.compliance import support

router = APIRouter(include_in_schema=False)
Rt = Annotated[Runtime, Depends(runtime)]
NO_CACHE = {"Cache-Control": "no-cache"}


@router.get("/.well-known/csaf/provider-metadata.json")
def provider_metadata(request: Request, rt: Rt) -> JSONResponse:
    return JSONResponse(provider.metadata(rt.ctx, rt.base_url(request)), headers=NO_CACHE)


@router.get("/.well-known/csaf/feed-tlp-white.json")
def rolie_feed(request: Request, rt: Rt) -> JSONResponse:
    return JSONResponse(provider.rolie_feed(rt.ctx, rt.base_url(request)), headers=NO_CACHE)


@router.get("/.well-known/csaf/openpgp/{fingerprint}.asc")
def public_key(fingerprint: str, rt: Rt) -> PlainTextResponse:
    return PlainTextResponse(
        provider.public_key(rt.ctx, fingerprint), media_type="application/pgp-keys"
    )


def _listing(request: Request, rt: Rt, title: str, names: list[str]) -> HTMLResponse:
    html = (
        render.templates()
        .get_template("csaf_listing.html")
        .render(title=title, names=names, version=__version__, trust_mode=rt.trust_mode())
    )
    return HTMLResponse(html, headers=NO_CACHE)


@router.get("/.well-known/csaf/white/")
@router.get("/.well-known/csaf/white")
def white_folder(request: Request, rt: Rt) -> HTMLResponse:
    return _listing(request, rt, "/.well-known/csaf/white/", provider.listing(rt.ctx, None))


@router.get("/.well-known/csaf/white/index.txt")
def index_txt(rt: Rt) -> PlainTextResponse:
    return PlainTextResponse(provider.index_txt(rt.ctx), headers=NO_CACHE)


@router.get("/.well-known/csaf/white/changes.csv")
def changes_csv(rt: Rt) -> PlainTextResponse:
    return PlainTextResponse(provider.changes_csv(rt.ctx), media_type="text/csv", headers=NO_CACHE)


@router.get("/.well-known/csaf/white/{year}/")
@router.get("/.well-known/csaf/white/{year}")
def year_folder(year: str, request: Request, rt: Rt) -> HTMLResponse:
    names = provider.listing(rt.ctx, year)
    return _listing(request, rt, f"/.well-known/csaf/white/{year}/", names)


@router.get("/.well-known/csaf/white/{year}/{name}")
def document_file(year: str, name: str, rt: Rt) -> Response:
    served = provider.served_file(rt.ctx, f"{year}/{name}")
    return Response(served.body, media_type=served.media_type)


@router.get("/advisories", response_class=HTMLResponse)
def advisories_page(request: Request, rt: Rt) -> HTMLResponse:
    html = (
        render.templates()
        .get_template("advisories.html")
        .render(
            advisories=[
                present.advisory_json(v)
                for v in views.advisories(rt.ctx, rt.base_url(request), published_only=True)
            ],
            version=__version__,
            trust_mode=rt.trust_mode(),
        )
    )
    return HTMLResponse(html, headers=NO_CACHE)


@router.get("/advisories/{advisory_id}.md")
def advisory_markdown(advisory_id: str, rt: Rt) -> PlainTextResponse:
    record = views.get(rt.ctx, advisory_id, published_only=True)
    return PlainTextResponse(
        present.markdown(record.document), media_type="text/markdown; charset=utf-8"
    )


@router.get("/advisories/{advisory_id}", response_class=HTMLResponse)
def advisory_page(advisory_id: str, request: Request, rt: Rt) -> HTMLResponse:
    record = views.get(rt.ctx, advisory_id, published_only=True)
    url = views.view(record, rt.base_url(request)).url
    links = [
        ("CSAF (JSON)", url),
        ("Markdown", f"/advisories/{record.id}.md"),
        ("OpenPGP signature", f"{url}.asc"),
    ]
    html = present.html(
        record.document, links=links, version=__version__, trust_mode=rt.trust_mode()
    )
    return HTMLResponse(html, headers=NO_CACHE)


@router.get("/products/{name}", response_class=HTMLResponse)
def product_page(name: str, rt: Rt) -> HTMLResponse:
    """A product's public support statement (CRA Art. 13(8))."""
    statement = present_compliance.support_json(support.view(rt.ctx, name))
    html = (
        render.templates()
        .get_template("product.html")
        .render(s=statement, version=__version__, trust_mode=rt.trust_mode())
    )
    return HTMLResponse(html, headers=NO_CACHE)
