"""Reproduce the figures of BENCHMARKS.md "Fleet simulator".

    .venv/bin/python bench/fleet_simulator.py boot        # 100,000 and 1,000 devices, boot:0.3
    .venv/bin/python bench/fleet_simulator.py regression  # 100 seeds, crash 2 %/day vs 0.5 %/day
    .venv/bin/python bench/fleet_simulator.py good        # 100 seeds, a good release
    .venv/bin/python bench/fleet_simulator.py deadline    # 72 h critical, 10 % offline
    .venv/bin/python bench/fleet_simulator.py million     # 1,000,000 devices, five stages
    .venv/bin/python bench/fleet_simulator.py planner     # 24 h / 36 h, 10 % offline, both plans

Each prints what it measured; ``million`` and ``deadline`` run the ``patchgate simulate``
command itself (as a user would) and read its JSON.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

from patchgate.sim.engine import simulate
from patchgate.sim.scenario import Fault, Scenario

PATCHGATE = str(Path(sys.executable).with_name("patchgate"))
TIME = "/usr/bin/time"
MC_DEVICES = 100_000


def cli(*args: str) -> dict:
    out = subprocess.run([PATCHGATE, "simulate", *args, "--json"], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout)


def boot() -> None:
    for devices in (100_000, 1_000):
        for stages in (None, "canary:2,10,50,100"):
            args = ["--devices", str(devices), "--fault", "boot:0.3", "--power-loss", "0.01"]
            args += ["--strategy", "all", "--seed", "1"]
            if stages:
                args += ["--stages", stages]
            data = cli(*args)
            print(f"## {devices:,} devices, stages {stages or 'default'}: {' '.join(args)}")
            for name, r in data["strategies"].items():
                print(
                    f"{name:10} exposed {r['exposed']:>7,} ({r['exposed_fraction']:.4%})"
                    f"  halted {r['halted_at_stage']!s:9} after {r['minutes_to_halt']} min"
                    f"  bricked {r['bricked']}  reverted {r['reverted']:,}"
                    f"  exposed back on known-good {r['exposed_on_known_good']:,}"
                    f"  power cuts {r['power_cuts']}"
                )


def _share(fault: str, runs: int, **kw: object) -> None:
    halted_in_canary = halted = 0
    minutes = []
    stages: dict[str, int] = {}
    started = time.perf_counter()
    for seed in range(1, runs + 1):
        sc = Scenario(devices=MC_DEVICES, fault=Fault.parse(fault), seed=seed, **kw)  # type: ignore[arg-type]
        r = simulate(sc, ("patchgate",))["patchgate"]
        if r.halted:
            halted += 1
            stages[str(r.halted_at_stage)] = stages.get(str(r.halted_at_stage), 0) + 1
            assert r.minutes_to_halt is not None
            minutes.append(r.minutes_to_halt)
            if r.halted_at_stage_index is not None and r.halted_at_stage_index <= 1:
                halted_in_canary += 1
        print(f"seed {seed}: halted {halted}", file=sys.stderr, flush=True)
    print(
        f"{MC_DEVICES:,} devices, fault {fault}, {runs} seeds: halted {halted}/{runs}, "
        f"before leaving the canary {halted_in_canary}/{runs}, stages {stages}, "
        f"median minutes to halt {statistics.median(minutes) if minutes else None}, "
        f"{time.perf_counter() - started:.0f} s"
    )


def regression(runs: int = 100) -> None:
    _share("crash:0.02", runs, baseline_crash=0.005, stop_after_stage="canary", stop_hours=48)


def good(runs: int = 100) -> None:
    _share("none", runs, baseline_crash=0.005)


def deadline() -> None:
    args = ["--devices", "100000", "--offline", "0.1", "--poll-minutes", "15"]
    args += ["--deadline-hours", "72", "--seed", "1"]
    r = cli(*args)
    print(" ".join(args))
    print(
        f"patched at the 72 h deadline {r['patched_fraction_at_deadline']:.2%}, 95 % after "
        f"{r['minutes_to_95pct']} min; offline at the deadline {r['offline_at_deadline']:,}, "
        f"unpatched {r['unpatched_at_deadline']:,} of which offline "
        f"{r['unpatched_offline_at_deadline']:,}; halted {r['halted']}; planned soaks "
        f"{r['settings']['planned_soaks_hours']} h"
    )


def planner() -> None:
    """The deadline planner with and without the fleet's offline share: 100,000 devices,
    10 % offline (6 h on average), deadlines of 24 h and 36 h, seed 1."""
    for hours in (24, 36):
        for aware in (False, True):
            sc = Scenario(
                devices=100_000, offline=0.1, deadline_hours=hours, seed=1, plan_offline=aware
            )
            r = simulate(sc, ("patchgate",))["patchgate"]
            print(
                f"{hours} h, planner {'with' if aware else 'without'} the offline share: "
                f"soaks {r.settings['planned_soaks_hours']} h, patched at the deadline "
                f"{r.patched_fraction_at_deadline:.2%} (plan said "
                f"{r.settings['planned_patched_at_deadline']}), 95 % after "
                f"{r.minutes_to_95pct} min, halted {r.halted}"
            )


def million() -> None:
    """The 1,000,000-device run under ``/usr/bin/time -v``: wall time, the process's CPU
    time (user + system: the wall time a quiet machine would show, since the simulator
    runs on one core) and peak RSS."""
    args = ["--devices", "1000000", "--power-loss", "0.01", "--seed", "1"]
    command = [PATCHGATE, "simulate", *args, "--json"]
    timed = Path(TIME).exists()
    if timed:
        command = [TIME, "-v", *command]
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    r = json.loads(out.stdout)
    print(" ".join(args))
    print(
        f"completed {r['completed']} after {r['minutes_to_complete']} simulated min, "
        f"{len(r['stages'])} stages, patched at deadline {r['patched_fraction_at_deadline']:.2%}, "
        f"bricked {r['bricked']}, power cuts {r['power_cuts']:,}; wall {r['wall_seconds']} s, "
        f"peak RSS {r['peak_rss_mb']} MB (the simulator's own figures)"
    )
    if timed:
        fields = dict(
            line.strip().rsplit(": ", 1) for line in out.stderr.splitlines() if ": " in line
        )
        cpu = float(fields["User time (seconds)"]) + float(fields["System time (seconds)"])
        rss = int(fields["Maximum resident set size (kbytes)"]) / 2**20
        print(
            f"/usr/bin/time -v: elapsed {fields['Elapsed (wall clock) time (h:mm:ss or m:ss)']}, "
            f"CPU {cpu:.1f} s (user + system), maximum RSS {rss:.2f} GiB; "
            f"load average after {Path('/proc/loadavg').read_text().split()[:3]}"
        )
    tracemalloc.start()
    sc = Scenario(devices=100_000, seed=1)
    simulate(sc, ("patchgate",))
    _, peak = tracemalloc.get_traced_memory()
    print(f"tracemalloc peak, 100,000 devices (patchgate, good release): {peak / 2**20:.0f} MiB")


if __name__ == "__main__":
    commands = {
        "boot": boot,
        "regression": regression,
        "good": good,
        "deadline": deadline,
        "million": million,
        "planner": planner,
    }
    for name in sys.argv[1:] or list(commands):
        commands[name]()
