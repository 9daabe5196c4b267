"""Request bodies and parameters from outside, read the one strict way for the device API
(DDI) and the management API alike.

A body is read in chunks up to a limit (413 as soon as it passes it, never buffered whole)
and decoded by ``domain.strict``: deep nesting, text that is not valid Unicode or holds
NUL, oversize text, NaN/Infinity and integers past 64 bits are refused with a message
(DDI: 400, management API: 422), before any handler sees them. The management API gets
the same through :class:`StrictRoute`, which also checks path and query parameters.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.datastructures import FormData
from starlette.types import Receive

from patchgate.domain import strict
from patchgate.domain.errors import TooLarge

MAX_PARAMETER = 2048  # characters in one path or query parameter


async def read_bytes(receive: Receive, limit: int) -> bytes:
    """The raw body of an ASGI request, read in chunks; ``TooLarge`` (413) as soon as it
    passes ``limit`` bytes, so a large body is never buffered whole."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"request body over {limit} bytes")
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


async def read_json(receive: Receive, limit: int, *, where: str = "the body") -> Any:
    """The JSON body of an ASGI request (``None`` when empty), strictly decoded."""
    raw = await read_bytes(receive, limit)
    return strict.loads_json(raw, where=where) if raw.strip() else None


def check_form(form: FormData) -> None:
    """Every text field and file name of a parsed multipart body, checked like JSON text
    (a multipart upload is not JSON, so :class:`StrictRoute` does not see it)."""
    for name, value in form.multi_items():
        strict.check_text(name, "a field name", MAX_PARAMETER)
        if isinstance(value, str):
            strict.check_text(value, f"the field {name}")
        elif value.filename is not None:
            strict.check_text(value.filename, f"the file name of {name}", MAX_PARAMETER)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return True  # FastAPI reads a body without a type as JSON
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _is_int(annotation: Any) -> bool:
    if annotation is int:
        return True
    return int in typing.get_args(annotation)


class StrictRoute(APIRoute):
    """An API route whose JSON body is decoded by ``domain.strict`` and whose path and query
    parameters are checked (valid Unicode, no NUL, bounded length, integers within 64 bits)
    before FastAPI validates them against the handler's types."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        params = _parameters(self.dependant)
        names = [p.alias for p in params]
        int_names = [p.alias for p in params if _is_int(p.field_info.annotation)]
        reads_body = self.body_field is not None

        async def strict_handler(request: Request) -> Response:
            _check_parameters(request, names, int_names)
            if reads_body:
                # Read here, so a body over the limit answers 413 (TooLarge), never the
                # generic 400 FastAPI gives for any failure while it reads.
                raw = await request.body()
                if raw.strip() and _is_json(request.headers.get("content-type")):
                    # Starlette's Request.json() returns what is cached here.
                    request._json = strict.loads_json(raw)
            return await handler(request)

        return strict_handler


def _parameters(dependant: Dependant) -> list[Any]:
    """The path and query parameters of a handler and of all its dependencies."""
    found = [*dependant.path_params, *dependant.query_params]
    for sub in dependant.dependencies:
        found.extend(_parameters(sub))
    return found


def _check_parameters(request: Request, names: list[str], int_names: list[str]) -> None:
    for name in names:
        values = request.query_params.getlist(name)
        if name in request.path_params:
            values.append(str(request.path_params[name]))
        for value in values:
            strict.check_text(value, f"the parameter {name}", MAX_PARAMETER)
            if name in int_names:
                try:
                    number = int(value)
                except ValueError:
                    continue  # FastAPI's own validation names it
                strict.check_int(number, f"the parameter {name}")
