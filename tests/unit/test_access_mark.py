"""The access mark (adapters/db/access_mark.py): which writes move it, and that it stands
only between revoking transactions, across connections and engines of one database."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from patchgate.adapters.db import access_mark
from patchgate.adapters.db.engine import make_engines


@pytest.mark.parametrize(
    ("statement", "moves"),
    [
        ("UPDATE devices SET token_hash=?, removed_at=? WHERE devices.id = ?", True),
        ("UPDATE devices SET controller_id=? WHERE devices.id = ?", True),
        ("UPDATE devices SET last_seen=? WHERE devices.id = ?", False),
        ("UPDATE devices SET open_action_id=? WHERE devices.token_hash = ?", False),
        ("DELETE FROM devices WHERE devices.id = ?", True),
        ("UPDATE releases SET state=? WHERE releases.id = ?", True),
        ('UPDATE "tenants" SET gateway_token_hash=? WHERE tenants.id = ?', True),
        ("DELETE FROM release_artifacts WHERE release_artifacts.id = ?", True),
        ("DELETE FROM blobs WHERE blobs.sha256 = ?", True),
        ("DELETE FROM actions WHERE actions.device_id = ?", True),
        ("UPDATE actions SET status=? WHERE actions.id = ?", False),
        ("INSERT INTO devices (controller_id) VALUES (?)", False),
        ("SELECT token_hash FROM devices", False),
        ("update releases set state = 'withdrawn'", True),
        ("\n  UPDATE devices SET removed_at=? WHERE devices.id = ?", True),
        ("WITH x AS (SELECT 1) UPDATE releases SET state = 'withdrawn'", True),
        ("WITH x AS (SELECT 1) SELECT * FROM x", False),
        ("INSERT OR REPLACE INTO devices (id) VALUES (?)", True),
        ("REPLACE INTO blobs (sha256) VALUES (?)", True),
    ],
)
def test_which_statements_revoke(statement: str, moves: bool) -> None:
    assert access_mark.revokes(statement) is moves


def test_the_mark_stands_only_between_revoking_transactions(tmp_path: Path) -> None:
    database = tmp_path / "m.db"
    engines = make_engines(f"sqlite:///{database}")
    other = make_engines(f"sqlite:///{database}")  # another process's engines, in effect
    mark = access_mark.AccessMark(str(database) + access_mark.SUFFIX)  # a mapping of its own
    with engines.write.begin() as conn:
        conn.execute(text("CREATE TABLE devices (id INTEGER PRIMARY KEY, token_hash TEXT)"))
        conn.execute(text("CREATE TABLE releases (id INTEGER PRIMARY KEY, state TEXT)"))
        conn.execute(text("INSERT INTO devices (id, token_hash) VALUES (1, 'a')"))
        conn.execute(text("INSERT INTO releases (id, state) VALUES (1, 'signed')"))
    first = mark.stamp()
    assert first is not None

    with other.write.begin() as conn:
        conn.execute(text("UPDATE devices SET id = 1 WHERE id = 1"))  # revokes nothing
    assert mark.stamp() == first

    with other.write.begin() as conn:
        conn.execute(text("UPDATE devices SET token_hash = 'b' WHERE id = 1"))
        assert mark.stamp() is None  # in flight: nothing may be reused
        conn.execute(text("UPDATE devices SET token_hash = 'c' WHERE id = 1"))
    second = mark.stamp()
    assert second is not None and second != first

    conn = engines.write.connect()
    transaction = conn.begin()
    conn.execute(text("UPDATE releases SET state = 'withdrawn' WHERE id = 1"))
    assert mark.stamp() is None
    transaction.rollback()
    conn.close()
    third = mark.stamp()
    assert third is not None and third != second

    # a writer that died inside its transaction: only settling clears it
    mark.begin()
    assert mark.stamp() is None
    access_mark.settle(engines.write)
    settled = mark.stamp()
    assert settled is not None and settled != third
    mark.end()  # the dead writer's late end cannot carry the mark past itself
    assert mark.stamp() == settled
    engines.write.dispose()
    engines.read.dispose()
    other.write.dispose()
    other.read.dispose()


def test_no_mark_for_a_database_in_memory() -> None:
    assert access_mark.for_database(":memory:") is None
    assert access_mark.for_database(None) is None
