"""What the management API's OpenAPI document promises, added once when the app is built
rather than route by route (docs/security.md "Errors the API documents"):

- every operation documents the error answers any of them can give (the token checks,
  the body limit, strict input, a named object that does not exist, a refused state
  change), each with the one error body patchgate sends (``error``, ``message``,
  ``problems``);
- every integer in a parameter or a body is bounded to the signed 64-bit range the
  server accepts (``domain.strict``), and every text and key is free of NUL;
- the input rules of each field are stated where JSON Schema can state them
  (``entrypoints/api/constraints.py``);
- the interactive documentation uses the Swagger UI files shipped with the package
  (``swagger-ui-bundle``), so it works without a network;
- a wrong method answers 405 with an ``Allow`` header naming every method of the path
  (Starlette names only those of the first route that matched it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from patchgate.domain import strict
from patchgate.entrypoints.api.constraints import closed_bodies, no_nul_strings

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error", "message", "problems"],
    "properties": {
        "error": {"type": "string", "description": "the kind of error"},
        "message": {"type": "string"},
        "problems": {"type": "array", "items": {"type": "string"}},
    },
}

HTTP_METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "HEAD"})

ERRORS = {
    "400": "The request cannot be read",
    "401": "No valid token",
    "403": "The token's role does not allow this",
    "404": "A named object does not exist",
    "409": "Refused by the current state",
    "413": "The request body is over the limit",
    "422": "The request is not valid; every problem is listed",
}


def _bound_integers(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("type") == "integer":
            node.setdefault("minimum", strict.INT64_MIN)
            node.setdefault("maximum", strict.INT64_MAX)
        for value in node.values():
            _bound_integers(value)
    elif isinstance(node, list):
        for value in node:
            _bound_integers(value)


def complete_schema(schema: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Add the common error answers and the integer bounds to an OpenAPI document."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in schema.get("paths", {}).items():
        if not path.startswith(prefix):
            continue
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, description in ERRORS.items():
                responses[status] = {"description": description, "content": error_ref}
    _bound_integers(schema)
    no_nul_strings(schema)
    closed_bodies(schema)
    return schema


def install(api: FastAPI, prefix: str) -> None:
    """Serve the completed document and answer HTTP errors in patchgate's error body."""

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            api.openapi_schema = complete_schema(
                get_openapi(
                    title=api.title,
                    version=api.version,
                    description=api.description,
                    routes=api.routes,
                ),
                prefix,
            )
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
    api.add_exception_handler(HTTPException, _http_error(api))


def allowed_methods(api: FastAPI, path: str) -> list[str]:
    """Every method the OpenAPI document names for ``path`` (with HEAD beside GET)."""
    methods: set[str] = set()
    for template, operations in api.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            methods |= {m.upper() for m in operations if m.upper() in HTTP_METHODS}
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def _http_error(api: FastAPI) -> Callable[[Request, Exception], Any]:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == 405 and (allowed := allowed_methods(api, request.url.path)):
            headers["Allow"] = ", ".join(allowed)
        message = str(exc.detail)
        return JSONResponse(
            {"error": "HttpError", "message": message, "problems": [message]},
            status_code=exc.status_code,
            headers=headers,
        )

    return handler


def serve_docs(api: FastAPI, path: str) -> None:
    """Swagger UI at ``path``, its scripts and styles from the installed package."""
    import swagger_ui_bundle

    assets = f"{path}/assets"
    api.mount(assets, StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger")

    @api.get(path, include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=str(api.openapi_url),
            title=f"{api.title} API",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon-32x32.png",
        )
