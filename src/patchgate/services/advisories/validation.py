"""Validation of CSAF documents and provider metadata against the official CSAF 2.0 JSON
schemas (shipped in ``schemas/``, resolved locally: no network is needed), plus the
mandatory tests of CSAF 2.0 §6.1 that the domain implements."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4, DRAFT7, DRAFT202012

from patchgate.domain import csaf_checks
from patchgate.domain.errors import InvalidInput

DOCUMENT_SCHEMA = "csaf_json_schema.json"
PROVIDER_SCHEMA = "provider_json_schema.json"
_CVSS = ("cvss-v2.0.json", "cvss-v3.0.json", "cvss-v3.1.json")


def _load(name: str) -> dict[str, Any]:
    text = (
        resources.files(__package__).joinpath("schemas").joinpath(name).read_text(encoding="utf-8")
    )
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _registry() -> Registry[Any]:
    resources_: list[tuple[str, Resource[Any]]] = []
    for name in (DOCUMENT_SCHEMA, PROVIDER_SCHEMA):
        schema = _load(name)
        resources_.append((schema["$id"], DRAFT202012.create_resource(schema)))
    for name in _CVSS:
        # FIRST's schemas name themselves with a date query the CSAF schema omits.
        schema = _load(name)
        uri = str(schema.get("$id") or schema.get("id")).partition("?")[0]
        spec = DRAFT7 if "draft-07" in schema["$schema"] else DRAFT4
        resources_.append((uri, spec.create_resource(schema)))
    return Registry().with_resources(resources_)


@cache
def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(
        _load(name), registry=_registry(), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def schema_problems(name: str, instance: Mapping[str, Any]) -> list[str]:
    """Every problem of ``instance`` against the shipped schema ``name`` (a CSAF document's,
    ``DOCUMENT_SCHEMA``, or a ``provider-metadata.json``'s, ``PROVIDER_SCHEMA``, CSAF 2.0
    §7.2.1); empty when valid."""
    errors = sorted(
        _validator(name).iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path]
    )
    return [
        f"schema: /{'/'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in errors
    ]


def document_problems(document: Mapping[str, Any]) -> list[str]:
    """Every problem of a CSAF document: the schema's, then §6.1's (empty when valid)."""
    return schema_problems(DOCUMENT_SCHEMA, document) + csaf_checks.mandatory_problems(document)


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of published bytes, as the ``.sha256`` file states it."""
    return hashlib.sha256(data).hexdigest()


def require_valid(document: Mapping[str, Any], message: str) -> None:
    """Raise ``InvalidInput`` (``message``, then one line per problem) for an invalid
    document."""
    problems = document_problems(document)
    if problems:
        raise InvalidInput(message, problems=[message, *problems])
