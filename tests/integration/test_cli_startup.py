"""What the CLI's database commands import: the storage and the services they run, never
the server's web stack, the simulator, or the libraries of commands they do not run
(docs/cli.md, "Start-up"). Checked in a fresh interpreter after real commands."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.campaign_support import Fleet, release, started
from tests.conftest import Env

# Imported by other commands or by the server only: Alembic (db upgrade, init), the web
# stack (serve), numpy (simulate), Rich (progress bars), httpx (notices, witnesses, the
# agent), boto3 (an S3 store), TUF (release signing), PGPy (CSAF advisories), paho (push);
# Pydantic, which Typer converts values with, for no value these commands take.
NOT_IMPORTED = (
    "alembic",
    "fastapi",
    "starlette",
    "uvicorn",
    "granian",
    "jinja2",
    "numpy",
    "rich",
    "httpx",
    "boto3",
    "tuf",
    "securesystemslib",
    "pgpy",
    "paho",
    "pydantic",
    "pydantic_core",
)


def test_a_halt_and_the_everyday_reads_import_nothing_they_do_not_use(env: Env) -> None:
    made = release(env, "2.0.0", 2)
    fleet = Fleet(env)
    fleet.add("d-1", "1.0.0", "qa")
    campaign = started(env, made, stages="qa,100")
    assert fleet.offered("d-1") == made.id  # an open action for the halt to cancel
    script = (
        "import sys\n"
        "from patchgate.entrypoints.cli.main import main\n"
        f"commands = [['campaign', 'halt', '{campaign}', '--reason', 'x'],\n"
        f"    ['campaign', 'status', '{campaign}'], ['device', 'list'], ['vuln', 'list']]\n"
        "for args in commands:\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as exc:\n"
        "        print('EXIT', exc.code, file=sys.stderr)\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        f"print('LOADED', sorted(loaded & set({NOT_IMPORTED!r})), file=sys.stderr)\n"
        "print('SQLALCHEMY', 'sqlalchemy' in loaded, file=sys.stderr)\n"
        # The audit key is read without cryptography's serialization module (keys.py).
        "print('KEY SERIALIZATION', 'cryptography.hazmat.primitives.serialization' in "
        "sys.modules, file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, **env.vars},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.stderr.count("EXIT 0") == 4, proc.stderr
    assert "state: halted" in proc.stdout
    assert "LOADED []" in proc.stderr, proc.stderr
    assert "SQLALCHEMY True" in proc.stderr  # the commands did reach the database
    assert "KEY SERIALIZATION False" in proc.stderr
