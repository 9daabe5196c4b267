"""Importing a fleet from CSV (docs/devices.md, "Importing a fleet"): the rows stream
from the file through the same checks as a single device (``rows.check_row``) to the
writer a batch at a time (on PostgreSQL COPYed into the fleet's tables at once, on SQLite
staged) and are written in one transaction: all of them, or —
on a bad row, a controllerId the tenant has, or an interruption — none. Memory holds one
batch of rows, the IDs seen (duplicates are refused) and the new tokens, printed once
after the commit."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from patchgate.domain.errors import Conflict, InvalidInput, NotFound
from patchgate.services import audit
from patchgate.services.access import hash_token
from patchgate.services.context import Context
from patchgate.services.device_import_ports import DeviceImportWriter, StagedRow
from patchgate.services.device_ports import DEFAULT_TENANT
from patchgate.services.devices.commands import known_hardware, new_target_tokens
from patchgate.services.devices.rows import (
    Cells,
    check_controller_id,
    check_groups,
    check_row,
    csv_cells,
    row_of,
)

BATCH = 10_000
MAX_PROBLEMS = 100


@dataclass(frozen=True)
class Imported:
    """What an import provisioned: each device's controllerId and target token (shown
    once), in file order."""

    tokens: tuple[tuple[str, str], ...]

    @property
    def count(self) -> int:
        return len(self.tokens)


class _Stager:
    """Checks rows as they stream in and stages the good ones a batch at a time.

    A row's groups, hardware and version repeat across a fleet's file, so their checks
    (``rows.check_row``, the same rules and messages) run once per distinct combination;
    only the controllerId is checked on every row."""

    def __init__(self, ctx: Context, writer: DeviceImportWriter, groups: tuple[str, ...]) -> None:
        self.writer = writer
        self.groups = groups
        self.known = known_hardware(ctx)
        self.seen: set[str] = set()
        self.problems: list[str] = []
        self.tokens: list[tuple[str, str]] = []
        self.batch: list[tuple[int, str, Any]] = []
        self.checked: dict[tuple[Any, ...], tuple[str, Any]] = {}

    def _rest(self, cells: Cells) -> tuple[str, Any]:
        """("", (groups with the import's, hardware, version)) or ("problem", None)."""
        key = cells[2:]
        found = self.checked.get(key)
        if found is None:
            try:
                row = check_row(row_of((cells[0], "x", *key)), self.known)
            except InvalidInput as exc:
                found = (exc.message, None)
            else:
                groups = tuple(sorted(set(row.groups) | set(self.groups)))
                found = ("", (groups, row.hardware, row.version))
            if len(self.checked) < 10_000:
                self.checked[key] = found
        return found

    def take(self, item: Cells | str) -> None:
        if isinstance(item, str):
            self.problems.append(item)
            return
        line, controller_id = item[0], item[1]
        try:
            check_controller_id(controller_id)
        except InvalidInput as exc:
            self.problems.append(f"line {line}: {exc.message}")
            return
        problem, rest = self._rest(item)
        if problem:
            self.problems.append(f"line {line}: {problem}")
            return
        if controller_id in self.seen:
            self.problems.append(f"line {line}: device ID {controller_id!r} appears twice")
            return
        self.seen.add(controller_id)
        if self.problems:
            return  # nothing will be written: only look for more problems
        self.batch.append((line, controller_id, rest))
        if len(self.batch) >= BATCH:
            self.flush()

    def flush(self) -> None:
        """Give the batch its tokens (drawn for the whole batch at once) and stage it."""
        if self.batch and not self.problems:
            tokens = new_target_tokens(len(self.batch))
            staged = []
            for (line, controller_id, (groups, hardware, version)), token in zip(
                self.batch, tokens, strict=True
            ):
                self.tokens.append((controller_id, token))
                staged.append(
                    StagedRow(line, controller_id, hash_token(token), hardware, version, groups)
                )
            self.writer.stage(staged)
        self.batch = []


def _clash_problems(writer: DeviceImportWriter) -> list[str]:
    out = []
    for clash in writer.clashes(limit=MAX_PROBLEMS):
        if clash.removed:
            why = "was removed; a removed device's ID is not reused"
        else:
            why = "already exists"
        out.append(f"line {clash.line}: device {clash.controller_id!r} {why}")
    return out


def _stream(stager: _Stager, lines: Iterable[str]) -> tuple[int, list[tuple[str, str]]]:
    """Check and stage every row, then write them (or refuse naming each problem)."""
    for item in csv_cells(lines):
        stager.take(item)
        if len(stager.problems) >= MAX_PROBLEMS:
            break
    stager.flush()
    problems = stager.problems or ([] if stager.tokens else ["no devices given"])
    if problems:
        raise InvalidInput(problems[0], problems=problems)
    clashes = _clash_problems(stager.writer)
    if clashes:
        raise Conflict(clashes[0], problems=clashes)
    return stager.writer.write(), stager.tokens


def import_csv(
    ctx: Context,
    lines: Iterable[str],
    *,
    groups: Sequence[str] = (),
    tenant: str = DEFAULT_TENANT,
    actor: str,
) -> Imported:
    """Provision every device of a CSV stream (``id,groups,hardware,version``) in one
    transaction, each also put in ``groups``; refuses the whole file naming every bad
    line (up to :data:`MAX_PROBLEMS`)."""
    extra = check_groups(groups)
    with ctx.uow() as uow:
        record = uow.tenants.get(tenant)
        if record is None:
            raise NotFound(f"no tenant called {tenant!r}")
        writer = uow.devices.import_writer(record.id, ctx.clock())
        try:
            count, tokens = _stream(_Stager(ctx, writer, extra), lines)
        finally:
            writer.close()  # before the transaction ends, committed or not
        audit.record(
            ctx,
            uow,
            actor=actor,
            action="device.import",
            subject=f"tenant:{tenant}",
            details={
                "devices": [cid for cid, _ in tokens[:1000]],
                "count": count,
                "groups": list(extra),
            },
        )
        uow.commit()
    return Imported(tuple(tokens))


def read_lines(path: str) -> Iterator[str]:
    """The lines of a CSV file, streamed (UTF-8, a byte-order mark allowed)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            yield from handle
    except OSError as exc:
        raise InvalidInput(f"cannot read CSV file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"CSV file {path} is not UTF-8 text") from exc
