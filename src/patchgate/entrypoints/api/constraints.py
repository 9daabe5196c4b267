"""The input rules the management API enforces, stated in its OpenAPI document
(docs/security.md "What the API document states"): each is a JSON Schema pattern, enum or
bound, written in the subset of regular expressions that ECMA-262 (JSON Schema) and
Python share, so a request the document calls valid is accepted. The services keep
their own checks; ``tests/unit/test_api_constraints.py`` holds each pattern against them.

What the document cannot state (whether a named product, release or vulnerability
exists, a date in the future, the grammars of a device query, a stage plan, a version
range, a cron window, a policy in TOML or a device CSV) is answered 404, 409 or 422 with
the problem named.
"""

from __future__ import annotations

from typing import Any, Final

from patchgate.domain.vulnerabilities import ART14_KINDS, SEVERITY_ORDER, STATUSES
from patchgate.services.releases.rules import UPDATE_TYPES

# Text with no NUL: the strict reader refuses NUL anywhere (domain/strict.py).
NO_NUL: Final = r"^[^\x00]*$"
# Text with something in it besides white space (and no NUL).
NOT_BLANK: Final = r"^[^\x00]*[^\s\x00-\x1f\x85][^\x00]*$"
# A justification: 10 or more characters once surrounding white space is stripped.
JUSTIFICATION: Final = r"^[ \t\n\r]*[^\s\x00-\x1f\x85][^\x00]{8,}[^\s\x00-\x1f\x85][ \t\n\r]*$"
# A vulnerability ID (services/vulnerabilities/rules.py VULN_ID).
VULN_ID: Final = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
# Vulnerability IDs separated by commas (``release create --fixes``), or nothing.
VULN_ID_LIST: Final = r"^([A-Za-z0-9][A-Za-z0-9._:-]{0,127}(,[A-Za-z0-9][A-Za-z0-9._:-]{0,127})*)?$"
# A DDI controllerId (services/devices/rows.py).
CONTROLLER_ID: Final = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
# A group name (services/devices/rows.py).
GROUP: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# A hardware model as a device names it (printable, 1–128 characters).
HARDWARE: Final = r"^[^\x00-\x1f]{1,128}$"
# A version patchgate can order (domain/versions.py is_version, releases' charset):
# dotted numbers, then up to three identifiers after - + or ~.
_IDENT: Final = r"([A-Za-z0-9]{2,16}|[0-9A-WYZa-wyz])"
VERSION: Final = rf"^[0-9]{{1,9}}(\.[0-9]{{1,9}}){{0,5}}([-+~]{_IDENT}(\.{_IDENT}){{0,2}})?$"
# A product name as a path segment (services/advisories/views.py check_product_name).
PRODUCT_NAME: Final = (
    r"^(?!\.\.?$)[^/\\\x00-\x1f\x85\s]([^/\\\x00-\x1f]{0,253}[^/\\\x00-\x1f\x85\s])?$"
)
# A rate: offers per minute, hour or second (domain/ratelimit.py), more than zero.
RATE: Final = (
    r"^([0-9]*[1-9][0-9]*(\.[0-9]+)?|[0-9]+\.[0-9]*[1-9][0-9]*)"
    r"(/(min|m|minute|h|hour|s|sec|second))?$"
)
# A duration (domain/durations.py): 0, a sum of <number><unit> parts, or ISO 8601 PnDTnH….
_N: Final = "[0-9]{1,4}"
_HMS: Final = rf"({_N}[hH]({_N}[mM])?({_N}[sS])?|{_N}[mM]({_N}[sS])?|{_N}[sS])"
DURATION: Final = (
    rf"^(0|({_N}[wdhmsWDHMS]){{1,4}}|[pP]({_N}[wW])?{_N}[dD]|[pP]{_N}[wW]"
    rf"|[pP]({_N}[wW])?({_N}[dD])?[tT]{_HMS})$"
)
# A point in time as the campaign schedule takes it (domain/campaign_timing.py): an ISO 8601
# date and time, to the minute or finer, in UTC (Z) or with an offset.
TIMESTAMP: Final = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]{1,6})?)?"
    r"(Z|z|[+-][0-9]{2}:?[0-9]{2})?$"
)
# CVSS vectors in the specifications' order: v3.0/v3.1 base metrics (with the temporal
# ones optional) and v4.0 base metrics (with exploit maturity optional).
_CVSS3: Final = (
    r"CVSS:3\.[01]/AV:[NALP]/AC:[LH]/PR:[NLH]/UI:[NR]/S:[UC]/C:[NLH]/I:[NLH]/A:[NLH]"
    r"(/E:[XUPFH])?(/RL:[XOTWU])?(/RC:[XURC])?"
)
_CVSS4: Final = (
    r"CVSS:4\.0/AV:[NALP]/AC:[LH]/AT:[NP]/PR:[NLH]/UI:[NPA]/VC:[HLN]/VI:[HLN]/VA:[HLN]"
    r"/SC:[HLN]/SI:[HLN]/SA:[HLN](/E:[XAPU])?"
)
CVSS: Final = rf"^({_CVSS3}|{_CVSS4})$"

SEVERITIES: Final = list(SEVERITY_ORDER)
REPORT_KINDS: Final = list(ART14_KINDS)
TRIAGE_STATUSES: Final = list(STATUSES)
ACTION_TYPES: Final = ["forced", "soft", "downloadonly"]
RELEASE_TYPES: Final = list(UPDATE_TYPES)


def enum(values: list[Any]) -> dict[str, Any]:
    """``json_schema_extra`` for a field or parameter that takes one of ``values``."""
    return {"enum": values}


def pattern(regex: str, **extra: Any) -> dict[str, Any]:
    """``json_schema_extra`` for a text field or parameter following ``regex``."""
    return {"pattern": regex, **extra}


def closed_bodies(schema: dict[str, Any]) -> None:
    """Request bodies name every field they read: an object with properties takes no
    others (the server ignores unknown fields; the document does not invite them)."""
    components = schema.get("components", {}).get("schemas", {})
    seen: set[str] = set()

    def close(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                name = ref.rsplit("/", 1)[1]
                if name not in seen and name in components:
                    seen.add(name)
                    close(components[name])
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and "requestBody" in operation:
                close(operation["requestBody"])


def no_nul_strings(node: Any) -> None:
    """State the strict reader's rule in the whole document: every text without a
    pattern, enum or format of its own has no NUL, and neither has any key of an object
    (domain/strict.py refuses NUL anywhere in a body or a parameter)."""
    if isinstance(node, dict):
        if node.get("type") == "string" and not {"pattern", "enum", "format", "const"} & set(node):
            node["pattern"] = NO_NUL
        if node.get("type") == "object":
            node.setdefault("propertyNames", {"pattern": NO_NUL})
        for value in node.values():
            no_nul_strings(value)
    elif isinstance(node, list):
        for value in node:
            no_nul_strings(value)
