"""Saved filters and operator metadata as JSON and text (docs/device-filters.md)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from patchgate.domain.clock import rfc3339
from patchgate.entrypoints.presenters.text import table
from patchgate.services.targeting_ports import SavedFilterRecord


def saved_filter_json(f: SavedFilterRecord) -> dict[str, Any]:
    """A saved filter: ``name``, ``query`` (canonical), ``description``, ``tenant``, who
    made and last changed it, and when."""
    return {
        "name": f.name,
        "query": f.query,
        "description": f.description,
        "tenant": f.tenant,
        "created_at": rfc3339(f.created_at),
        "created_by": f.created_by,
        "updated_at": rfc3339(f.updated_at),
        "updated_by": f.updated_by,
    }


def saved_filters_json(found: Iterable[SavedFilterRecord]) -> dict[str, Any]:
    return {"filters": [saved_filter_json(f) for f in found]}


def saved_filter_text(f: SavedFilterRecord) -> list[str]:
    lines = [f"saved filter {f.name}: {f.query}"]
    if f.description:
        lines.append(f"  {f.description}")
    lines.append(f"  updated {rfc3339(f.updated_at)} by {f.updated_by}")
    lines.append(f"  devices: patchgate device list --filter @{f.name}")
    return lines


def saved_filters_text(found: Iterable[SavedFilterRecord]) -> list[str]:
    rows = [(f.name, f.query, f.description) for f in found]
    if not rows:
        return ["no saved filters"]
    return table(("NAME", "QUERY", "DESCRIPTION"), rows)


def metadata_json(subject: str | int, values: Mapping[str, str]) -> dict[str, Any]:
    """The metadata of a device (``id`` its controllerId) or a release (``id`` a number)."""
    return {"id": subject, "metadata": dict(sorted(values.items()))}


def metadata_text(values: Mapping[str, str]) -> list[str]:
    if not values:
        return ["no metadata"]
    return [f"{key}={value}" for key, value in sorted(values.items())]
