"""Start-up of the CLI's everyday commands on a small SQLite install (docs/cli.md, "Start-up").

Makes a data folder with ``init --demo`` and a started campaign, then runs each command
alternately on every source tree given, the data folder copied back before each halt;
prints each command's min / median wall time and the child's CPU time (user + system),
which moves less than the wall time when the machine is shared.

usage: .venv/bin/python bench/cli_startup.py [--runs 5] [--tree LABEL=SRC]...
(default: the checkout this runs from; e.g. ``--tree main=/tmp/main/src --tree branch=src``)
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from patchgate.entrypoints.cli.main import main; main()"]
COMMANDS = {
    "--version": ["--version"],
    "campaign halt --help": ["campaign", "halt", "--help"],
    "campaign halt": ["campaign", "halt", "1", "--reason", "bench"],
    "campaign status": ["campaign", "status", "1"],
    "device list": ["device", "list"],
    "vuln list": ["vuln", "list"],
}


def _run(src: str, args: list[str], data_dir: Path) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": src, "PATCHGATE_DATA_DIR": str(data_dir)}
    env.pop("PATCHGATE_DATABASE_URL", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = os.times().elapsed
    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, check=False)
    wall = os.times().elapsed - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode == 0, (args, done.stderr)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tree", action="append", metavar="LABEL=SRC")
    args = parser.parse_args()
    trees = dict(t.split("=", 1) for t in args.tree or [f"this={ROOT / 'src'}"])
    work = Path(tempfile.mkdtemp(prefix="patchgate-bench-cli-"))
    template, data = work / "template", work / "data"
    first = next(iter(trees.values()))
    for step in (["init", "--demo"], ["campaign", "create", "1"], ["campaign", "start", "1"]):
        _run(first, step, template)
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(args.runs):
        for name, command in COMMANDS.items():
            for label, src in trees.items():
                shutil.rmtree(data, ignore_errors=True)
                shutil.copytree(template, data)
                results.setdefault((name, label), []).append(_run(src, command, data))
    print(f"load average {os.getloadavg()}")
    for (name, label), runs in results.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        print(
            f"{name:22} {label:8} wall min {min(walls):.2f} median {statistics.median(walls):.2f}"
            f"  cpu min {min(cpus):.2f} median {statistics.median(cpus):.2f} s"
        )
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
