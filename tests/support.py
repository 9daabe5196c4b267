"""Test support: fresh databases on SQLite and PostgreSQL, the CLI in-process, a live server.

Each test gets a database of its own, migrated to head (SQLite: a copy of a migrated file;
PostgreSQL: CREATE DATABASE from a migrated template). That isolates tests as a rolled-back
transaction would, and also works when the code under test runs in another process (the
CLI, a second server), which one shared transaction cannot.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

from patchgate.adapters.db import migrate
from patchgate.adapters.db.engine import make_throwaway_engine
from patchgate.domain.clock import utcnow

PG_ADMIN_URL = os.environ.get("PATCHGATE_TEST_POSTGRES", "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_conninfo(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _pg_with_db(url: str, name: str) -> str:
    base = _pg_conninfo(url).rsplit("/", 1)[0]
    return f"{base}/{name}"


class DatabaseFactory:
    """Makes fresh, migrated databases for one test session (one per xdist worker)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._sqlite_template: Path | None = None
        self._pg_template: str | None = None
        self._pg_created: list[str] = []

    def sqlite(self, target_dir: Path) -> str:
        if self._sqlite_template is None:
            template = self.workdir / "template.db"
            engine = make_throwaway_engine(f"sqlite:///{template}")
            migrate.upgrade(engine, utcnow())
            engine.dispose()
            self._sqlite_template = template
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / "patchgate.db"
        shutil.copyfile(self._sqlite_template, target)
        return f"sqlite:///{target}"

    def postgresql(self) -> str:
        if not PG_ADMIN_URL:
            raise RuntimeError("PATCHGATE_TEST_POSTGRES is not set")
        if self._pg_template is None:
            name = f"pgt_tpl_{uuid.uuid4().hex[:10]}"
            self._admin(f'CREATE DATABASE "{name}"')
            engine = make_throwaway_engine(_pg_with_db(PG_ADMIN_URL, name))
            migrate.upgrade(engine, utcnow())
            engine.dispose()
            self._pg_template = name
            self._pg_created.append(name)
        name = f"pgt_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self._pg_template}"')
        self._pg_created.append(name)
        return _pg_with_db(PG_ADMIN_URL, name)

    def drop(self, url: str) -> None:
        if url.startswith("postgresql"):
            name = url.rsplit("/", 1)[1]
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if name in self._pg_created:
                self._pg_created.remove(name)

    def close(self) -> None:
        for name in list(reversed(self._pg_created)):
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._pg_created.clear()

    def _admin(self, sql: str) -> None:
        with psycopg.connect(_pg_conninfo(PG_ADMIN_URL), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]  # DDL built from our own names


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict:  # type: ignore[type-arg]
        import json

        return json.loads(self.stdout)  # type: ignore[no-any-return]


def run_cli(args: list[str], env: dict[str, str]) -> CliResult:
    """Run ``patchgate ARGS`` in this process with ``env`` applied, capturing its output."""
    from patchgate.entrypoints.cli import common, main

    saved = {k: os.environ.get(k) for k in env}
    # The CLI sets a process-wide umask for server-side commands (docs/security.md); run
    # in this process, it must not outlive the command and tighten the test's own files.
    umask = os.umask(0o022)
    os.umask(umask)
    os.environ.update(env)
    common.app.cache_clear()
    common.DATA_DIR["value"] = None
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main.main(args)
            except SystemExit as exc:
                code = int(exc.code or 0)
    finally:
        os.umask(umask)
        with contextlib.suppress(Exception):
            common.app().close()
        common.app.cache_clear()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return CliResult(code, out.getvalue(), err.getvalue())


def run_cli_process(args: list[str], env: dict[str, str], timeout: float = 120) -> CliResult:
    """Run the installed ``patchgate`` command in a child process."""
    proc = subprocess.run(
        [sys.executable, "-m", "patchgate.entrypoints.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


class LiveServer:
    """``patchgate serve`` in a child process on a free loopback port."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90) -> LiveServer:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "patchgate.entrypoints.cli", "serve", "--port", str(self.port)],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()  # never leave a server that did not answer running behind the test
        raise RuntimeError(f"server did not answer: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@contextlib.contextmanager
def live_server(env: dict[str, str], log_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(env, log_path).start()
    try:
        yield server
    finally:
        server.stop()
