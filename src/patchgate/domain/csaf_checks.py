"""A subset of the CSAF 2.0 mandatory tests (§6.1), run before a document is published
(pure, standard library only). The full set runs in the test suite with the BSI's
reference validator; these are the ones a generated document could plausibly break."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any


def _defined_ids(node: Any) -> list[str]:
    """Every ``product_id`` the product tree defines (branches, full product names,
    relationships)."""
    out: list[str] = []
    if isinstance(node, dict):
        product = node.get("product") or node.get("full_product_name")
        if isinstance(product, dict) and "product_id" in product:
            out.append(str(product["product_id"]))
        if "product_id" in node and "name" in node and "product" not in node:
            out.append(str(node["product_id"]))
        for key in ("branches", "full_product_names", "relationships"):
            for child in node.get(key, []) or []:
                out.extend(_defined_ids(child))
    return out


def _referenced_ids(vulnerability: Mapping[str, Any]) -> list[str]:
    ids: list[str] = []
    for group in (vulnerability.get("product_status") or {}).values():
        ids.extend(group)
    for key in ("flags", "remediations", "threats"):
        for item in vulnerability.get(key, []) or []:
            ids.extend(item.get("product_ids", []))
    for score in vulnerability.get("scores", []) or []:
        ids.extend(score.get("products", []))
    return ids


def mandatory_problems(doc: Mapping[str, Any]) -> list[str]:
    """Problems found by CSAF 2.0 §6.1.1 (missing product ID definition), §6.1.2 (multiple
    definition), §6.1.6 (contradicting product status) and §6.1.16 (latest document
    version). The schema is checked separately."""
    problems: list[str] = []
    defined = _defined_ids(doc.get("product_tree", {}))
    twice = sorted({i for i in defined if defined.count(i) > 1})
    problems += [f"6.1.2: product ID {i!r} is defined more than once" for i in twice]
    known = set(defined)
    for index, vulnerability in enumerate(doc.get("vulnerabilities", []) or []):
        where = f"/vulnerabilities/{index}"
        missing = sorted({i for i in _referenced_ids(vulnerability) if i not in known})
        problems += [f"6.1.1: {where} names product ID {i!r} that is not defined" for i in missing]
        status = vulnerability.get("product_status") or {}
        affected = set(status.get("known_affected", [])) | set(status.get("first_affected", []))
        affected |= set(status.get("last_affected", []))
        groups = {
            "affected": affected,
            "not affected": set(status.get("known_not_affected", [])),
            "fixed": set(status.get("fixed", [])) | set(status.get("first_fixed", [])),
            "under investigation": set(status.get("under_investigation", [])),
        }
        names = list(groups)
        for i, first in enumerate(names):
            for second in names[i + 1 :]:
                for pid in sorted(groups[first] & groups[second]):
                    problems.append(f"6.1.6: {where}: {pid!r} is both {first} and {second}")
    tracking = doc.get("document", {}).get("tracking", {})
    numbers = [r.get("number") for r in tracking.get("revision_history", [])]
    if numbers and tracking.get("version") != max(numbers, key=_number_key):
        problems.append("6.1.16: tracking.version is not the latest revision history number")
    return problems


def _number_key(number: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in re.split(r"[.+-]", number))
