"""What a device to provision must look like (docs/devices.md, "Provisioning"): its
controllerId, groups, hardware model and installed version, from the command line, the
API or a CSV file, checked before anything is written."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass

from patchgate.domain.errors import InvalidInput
from patchgate.domain.versions import is_version

__all__ = [
    "CSV_COLUMNS",
    "Cells",
    "DeviceRow",
    "check_controller_id",
    "check_groups",
    "check_row",
    "csv_cells",
    "csv_rows",
    "parse_csv",
    "row_of",
]

CSV_COLUMNS = ("id", "groups", "hardware", "version")
# hawkBit accepts controllerIds up to 256 characters; a path segment must not need escaping.
_CONTROLLER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
_GROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TEXT = re.compile(r"^[^\x00-\x1f]{1,128}$")


@dataclass(frozen=True)
class DeviceRow:
    """One device to provision, as given (``line``: its line in a CSV file, if any)."""

    controller_id: str
    groups: tuple[str, ...] = ()
    hardware: str | None = None
    version: str | None = None
    line: int | None = None


def check_controller_id(controller_id: str) -> str:
    """The controllerId if it is usable in a DDI path, else ``InvalidInput``."""
    if not _CONTROLLER_ID.match(controller_id or ""):
        raise InvalidInput(
            f"device ID {controller_id!r} must be 1–128 characters of letters, digits and "
            "._:@- (starting with a letter or digit)"
        )
    return controller_id


def check_groups(groups: Sequence[str]) -> tuple[str, ...]:
    """Group names, checked and de-duplicated."""
    out: list[str] = []
    for group in groups:
        name = group.strip()
        if not _GROUP.match(name):
            raise InvalidInput(
                f"group {group!r} must be 1–64 characters of letters, digits and ._- "
                "(starting with a letter or digit)"
            )
        if name not in out:
            out.append(name)
    return tuple(out)


def _text(value: str | None, what: str) -> str | None:
    if value is None or value == "":
        return None
    if not _TEXT.match(value):
        raise InvalidInput(f"{what} must be 1–128 printable characters")
    return value


def check_row(row: DeviceRow, known_hardware: Collection[str]) -> DeviceRow:
    """``row`` with its groups normalised, or ``InvalidInput`` naming the first problem.

    The hardware model must be one the policy names (when it names any): a typo would
    make every release for that board pass the device by. The version must be a version
    (``1.4.2``, ``2026.03-rc1``): the register counts a device as exposed by comparing
    it with the affected ranges, and a device on ``banana`` would silently count as safe.
    """
    check_controller_id(row.controller_id)
    groups = check_groups(row.groups)
    hardware = _text(row.hardware, "hardware")
    version = _text(row.version, "version")
    if hardware is not None and known_hardware and hardware not in known_hardware:
        raise InvalidInput(
            f"unknown hardware model {hardware!r} (the policy names "
            f"{', '.join(sorted(known_hardware))})"
        )
    if version is not None and not is_version(version):
        raise InvalidInput(
            f"version {version!r} is not a version (digits first, like 1.4.2 or 2026.03-rc1)"
        )
    return DeviceRow(row.controller_id, groups, hardware, version, row.line)


def parse_csv(text: str) -> list[DeviceRow]:
    """Rows of a device CSV (columns ``id,groups,hardware,version``; groups separated by
    ``;``; a header row naming the columns is optional). Each row keeps its line number,
    so a problem found later names the line."""
    rows: list[DeviceRow] = []
    problems: list[str] = []
    for item in csv_rows(io.StringIO(text)):
        if isinstance(item, str):
            problems.append(item)
        else:
            rows.append(item)
    if problems:
        raise InvalidInput(problems[0], problems=problems)
    return rows


def csv_rows(lines: Iterable[str]) -> Iterator[DeviceRow | str]:
    """The rows of a device CSV as they stream in, each with its line number, or a
    problem naming its line (a bad header ends the stream: nothing after it is read)."""
    for item in csv_cells(lines):
        if isinstance(item, str):
            yield item
        else:
            yield row_of(item)


# A CSV row's cells as read: (line, id, groups cell, hardware cell, version cell), each
# stripped, a missing cell empty.
Cells = tuple[int, str, str, str, str]


def row_of(cells: Cells) -> DeviceRow:
    """The device a row's cells give (groups split at ``;``, an empty cell none)."""
    line, controller_id, groups_cell, hardware, version = cells
    groups = tuple(g for g in groups_cell.split(";") if g.strip()) if groups_cell else ()
    return DeviceRow(controller_id, groups, hardware or None, version or None, line=line)


def csv_cells(lines: Iterable[str]) -> Iterator[Cells | str]:
    """:func:`csv_rows` as cells: a million-row import reads them without making a
    ``DeviceRow`` per row."""
    columns: list[str] = list(CSV_COLUMNS)
    at: tuple[int, int, int, int] | None = None  # each column's cell, once the header is known
    reader = csv.reader(lines)
    while True:
        try:
            raw = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InvalidInput(f"not a CSV file: line {reader.line_num}: {exc}") from exc
        line_no = reader.line_num
        cells = [c.strip() for c in raw]
        if not any(cells):
            continue
        if line_no == 1 and cells[0].lower() == "id":
            unknown = [c for c in cells if c.lower() not in CSV_COLUMNS]
            if unknown:
                known = ",".join(CSV_COLUMNS)
                yield f"line {line_no}: unknown column {unknown[0]!r} (known: {known})"
                return
            columns = [c.lower() for c in cells]
            continue
        count = len(cells)
        if count > len(columns):
            yield f"line {line_no}: {count} cells, expected at most {len(columns)}"
            continue
        if at is None:  # a column the header leaves out is past every row's cells
            where = {name: i for i, name in enumerate(columns)}
            i, g, h, v = (where.get(name, len(columns)) for name in CSV_COLUMNS)
            at = (i, g, h, v)
        i, g, h, v = at
        yield (
            line_no,
            cells[i] if i < count else "",
            cells[g] if g < count else "",
            cells[h] if h < count else "",
            cells[v] if v < count else "",
        )
