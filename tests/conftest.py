"""Fixtures shared by every test layer."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

from patchgate.bootstrap import App, Settings, build
from patchgate.services import setup
from patchgate.services.context import Context
from tests.support import PG_ADMIN_URL, CliResult, DatabaseFactory, LiveServer, run_cli

BACKENDS = ["sqlite", "postgresql"]

# Property tests check behaviour, never speed: no per-example deadline (a busy machine can
# make one example take seconds, which Hypothesis would report as a failure).
settings.register_profile("patchgate", deadline=None)
settings.load_profile("patchgate")


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(tmp_path_factory.mktemp("db-templates"))
    yield factory
    factory.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Run the test on SQLite and on PostgreSQL. PostgreSQL is required, not optional, when
    ``PATCHGATE_TEST_POSTGRES`` is set (``make test`` sets it)."""
    if request.param == "postgresql" and not PG_ADMIN_URL:
        pytest.skip("PATCHGATE_TEST_POSTGRES is not set")
    return str(request.param)


@dataclass
class Env:
    """A fresh data folder and database, wired and initialised like `patchgate init`."""

    data_dir: Path
    database_url: str
    app: App
    admin_token: str

    @property
    def ctx(self) -> Context:
        return self.app.context

    @property
    def vars(self) -> dict[str, str]:
        return {
            "PATCHGATE_DATA_DIR": str(self.data_dir),
            "PATCHGATE_DATABASE_URL": self.database_url,
        }

    def cli(self, *args: str) -> CliResult:
        return run_cli(list(args), self.vars)


def _make_env(tmp_path: Path, databases: DatabaseFactory, backend: str, demo: bool) -> Env:
    data_dir = tmp_path / "data"
    url = databases.sqlite(data_dir) if backend == "sqlite" else databases.postgresql()
    app = build(Settings(data_dir=data_dir, database_url=url))
    # Tests bring their own fleets; the demo devices would skew their counts.
    result = setup.initialise(app.context, demo=demo, actor="test", demo_devices=False)
    assert result.admin_token is not None
    return Env(data_dir, url, app, result.admin_token)


@pytest.fixture
def env(tmp_path: Path, databases: DatabaseFactory, backend: str) -> Iterator[Env]:
    """An initialised installation on each backend."""
    made = _make_env(tmp_path, databases, backend, demo=False)
    yield made
    made.app.close()
    databases.drop(made.database_url)


@pytest.fixture
def demo_env(tmp_path: Path, databases: DatabaseFactory, backend: str) -> Iterator[Env]:
    """An initialised installation with the demo product, on each backend."""
    made = _make_env(tmp_path, databases, backend, demo=True)
    yield made
    made.app.close()
    databases.drop(made.database_url)


@pytest.fixture
def sqlite_env(tmp_path: Path, databases: DatabaseFactory) -> Iterator[Env]:
    """An initialised installation on SQLite only (for tests about things beside storage)."""
    made = _make_env(tmp_path, databases, "sqlite", demo=True)
    yield made
    made.app.close()


@pytest.fixture
def server(env: Env, tmp_path: Path) -> Iterator[LiveServer]:
    """``patchgate serve`` on a free port over ``env``."""
    srv = LiveServer(env.vars, tmp_path / "server.log").start()
    yield srv
    srv.stop()
