"""``patchgate simulate``: a virtual fleet through a campaign, under patchgate's gates and
under hawkBit's and AWS IoT Jobs' rules, with faults (docs/contract.md)."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from patchgate.entrypoints.cli.common import emit_json, fail

if TYPE_CHECKING:
    # The simulator (numpy), its HTTP modes (httpx) and Rich are imported when the
    # command runs, not when it is named: `patchgate simulate --help` needs none of them.
    from rich.console import Console

    from patchgate.sim.engine import RunResult
    from patchgate.sim.scenario import Scenario


def register(cli: typer.Typer) -> None:
    cli.command("simulate")(simulate_command)


def simulate_command(
    devices: Annotated[int, typer.Option("--devices", help="Fleet size.")] = 1000,
    fault: Annotated[
        str, typer.Option("--fault", help="none | boot:P (fails to boot) | crash:P (per day).")
    ] = "none",
    baseline_crash: Annotated[
        float, typer.Option("--baseline-crash", help="Crashes per device-day of the old release.")
    ] = 0.005,
    power_loss: Annotated[
        float, typer.Option("--power-loss", help="Share of installs that lose power.")
    ] = 0.0,
    offline: Annotated[
        float, typer.Option("--offline", help="Share of devices offline at any time.")
    ] = 0.0,
    offline_hours: Annotated[
        float, typer.Option("--offline-hours", help="Mean length of an offline period.")
    ] = 6.0,
    slow_links: Annotated[
        float, typer.Option("--slow-links", help="Share of devices on a 256 kbit/s link.")
    ] = 0.05,
    strategy: Annotated[
        str, typer.Option("--strategy", help="patchgate | hawkbit | aws | all.")
    ] = "patchgate",
    seed: Annotated[int, typer.Option("--seed")] = 1,
    mode: Annotated[str, typer.Option("--mode", help="inprocess | http.")] = "inprocess",
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    plot_file: Annotated[
        str | None, typer.Option("--plot", help="Write the fleet over time (.png or .svg).")
    ] = None,
    stages: Annotated[
        str | None, typer.Option("--stages", help="Stage spec as for campaign create.")
    ] = None,
    poll_minutes: Annotated[float, typer.Option("--poll-minutes")] = 15.0,
    deadline_hours: Annotated[
        float, typer.Option("--deadline-hours", help="Deadline from the release (critical: 72).")
    ] = 72.0,
    horizon_hours: Annotated[float, typer.Option("--horizon-hours")] = 14 * 24.0,
    optin: Annotated[
        float, typer.Option("--optin", help="Share of devices in canary-optin.")
    ] = 0.1,
    internal: Annotated[
        int | None, typer.Option("--internal", help="Devices in each of internal and qa.")
    ] = None,
    push: Annotated[
        bool | None,
        typer.Option("--push/--no-push", help="Push notices (default: patchgate and aws)."),
    ] = None,
    stop_after_stage: Annotated[
        str | None, typer.Option("--stop-after-stage", help="Stop once this stage is left.")
    ] = None,
    stop_hours: Annotated[float | None, typer.Option("--stop-hours")] = None,
    time_scale: Annotated[
        float, typer.Option("--time-scale", help="http mode: simulated seconds per real second.")
    ] = 60.0,
    http_timeout: Annotated[
        float, typer.Option("--http-timeout", help="http mode: real seconds at most.")
    ] = 1800.0,
    before_boot: Annotated[
        float,
        typer.Option(
            "--before-boot", help="Share of devices whose client reports success before reboot."
        ),
    ] = 0.0,
    client_kinds: Annotated[
        str,
        typer.Option("--client-kinds", help="detect | configured (group rauc is before-boot)."),
    ] = "detect",
    server: Annotated[
        str | None,
        typer.Option("--server", help="http mode: drive this deployment instead of a new one."),
    ] = None,
    token: Annotated[
        str | None, typer.Option("--token", help="--server: a release_manager API token.")
    ] = None,
    prefix: Annotated[
        str | None, typer.Option("--prefix", help="--server: controller id prefix of the fleet.")
    ] = None,
    production: Annotated[
        bool,
        typer.Option(
            "--i-know-this-is-production", help="--server: run on a production instance too."
        ),
    ] = False,
) -> None:
    """Simulate a campaign on a virtual fleet and report blast radius, bricked devices,
    reverts, time to halt and patched share at the deadline."""
    from patchgate.sim.plot import check_plot_path, plot
    from patchgate.sim.scenario import MODES, STRATEGY_NAMES, Fault, Scenario

    problems = []
    if strategy not in (*STRATEGY_NAMES, "all"):
        problems.append(f"strategy: {strategy!r} is not patchgate, hawkbit, aws or all")
    if mode not in MODES:
        problems.append(f"mode: {mode!r} is not inprocess or http")
    if problems:
        fail(*problems)
    if plot_file is not None:
        check_plot_path(plot_file)
    scenario = Scenario(
        devices=devices,
        fault=Fault.parse(fault),
        baseline_crash=baseline_crash,
        power_loss=power_loss,
        offline=offline,
        offline_hours=offline_hours,
        slow_links=slow_links,
        poll_minutes=poll_minutes,
        seed=seed,
        deadline_hours=deadline_hours,
        horizon_hours=horizon_hours,
        stages=stages,
        optin=optin,
        internal=internal,
        push=push,
        stop_after_stage=stop_after_stage,
        stop_hours=stop_hours,
        before_boot=before_boot,
        client_kinds=client_kinds,
    )
    if server is not None or token is not None:
        if mode != "http" or not server or not token:
            fail("simulate: --server and --token go together, with --mode http")
        target = Target(server, token, prefix, production)
        _http(scenario, strategy, json_out, time_scale, http_timeout, target)
        return
    if mode == "http":
        _http(scenario, strategy, json_out, time_scale, http_timeout)
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from patchgate.sim.engine import simulate
    from patchgate.sim.scenario import Fleet

    names = STRATEGY_NAMES if strategy == "all" else (strategy,)
    err = Console(stderr=True)
    started = time.perf_counter()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[hours]} h simulated"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task("building the fleet", total=1.0, hours="0")
        fleet = Fleet(scenario)

        def progress(name: str, t: float, total: float) -> None:
            bar.update(
                task,
                description=f"{name:<9}",
                completed=min(1.0, t / total),
                hours=f"{t / 60:.0f}",
            )

        results = simulate(scenario, names, progress=progress, fleet=fleet)
    wall = time.perf_counter() - started
    run = {"wall_seconds": round(wall, 2), "peak_rss_mb": round(_peak_rss_mb(), 1)}
    if plot_file is not None:
        plot(results, plot_file)
    payloads = {name: {**r.to_json(), **run} for name, r in results.items()}
    if json_out:
        if strategy == "all":
            emit_json({"strategies": payloads, "scenario": scenario.to_json(), "run": run})
        else:
            emit_json({**payloads[strategy], "scenario": scenario.to_json()})
        return
    _table(Console(), scenario, results, run)
    if plot_file is not None:
        typer.echo(f"plot written to {plot_file}")


@dataclass(frozen=True)
class Target:
    """``--server URL --token T [--prefix P] [--i-know-this-is-production]``."""

    url: str
    token: str
    prefix: str | None
    allow_production: bool


def _http(
    scenario: Scenario,
    strategy: str,
    json_out: bool,
    time_scale: float,
    timeout: float,
    target: Target | None = None,
) -> None:
    """``--mode http``: a real server on a fresh data folder (or the deployment at
    ``--server``), the fleet over DDI."""
    if strategy != "patchgate":
        fail("simulate --mode http: only --strategy patchgate (the real server's gates)")
    if time_scale <= 0 or timeout <= 0:
        fail("simulate --mode http: --time-scale and --http-timeout must be more than 0")
    from rich.console import Console
    from rich.table import Table

    from patchgate.sim.http_server import ServerError, simulate_http

    err = Console(stderr=True)

    def on_status(status: Mapping[str, Any]) -> None:
        if err.is_terminal:
            counts = status.get("counts") or {}
            stage = (status.get("stage") or {}).get("name")
            err.print(
                f"{status.get('state')} · stage {stage} · offered {counts.get('offered')} · "
                f"succeeded {counts.get('succeeded')} · failed {counts.get('failed')}",
                highlight=False,
            )

    try:
        if target is None:
            out = simulate_http(
                scenario, time_scale=time_scale, timeout_seconds=timeout, on_status=on_status
            )
        else:
            out = _remote(scenario, target, time_scale, timeout, on_status)
    except ServerError as exc:
        fail(f"simulate --mode http: {exc}")
    out["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    if json_out:
        emit_json({**out, "scenario": scenario.to_json()})
        return
    table = Table(title=f"http mode · {scenario.devices:,} devices · fault {scenario.fault}")
    table.add_column("")
    table.add_column("patchgate", justify="right")
    for key in (
        "exposed",
        "bricked",
        "reverted",
        "exposed_on_known_good",
        "halted_at_stage",
        "minutes_to_halt",
        "false_halt",
        "patched_fraction_at_deadline",
        "polls",
        "wall_seconds",
    ):
        table.add_row(key.replace("_", " "), str(out.get(key)))
    Console().print(table)


def _remote(
    scenario: Scenario,
    target: Target,
    time_scale: float,
    timeout: float,
    on_status: Callable[[Mapping[str, Any]], None],
) -> dict[str, Any]:
    from patchgate.sim.http_mode import Rehearsal
    from patchgate.sim.http_remote import ApiServerSide, simulate_remote

    soak_minutes = 60.0
    soak = f"{max(1, round(soak_minutes * 60 / time_scale))}s"
    server = ApiServerSide(
        target.url,
        target.token,
        prefix=target.prefix,
        soak=soak,
        allow_production=target.allow_production,
    )
    rehearsal = Rehearsal(
        time_scale=time_scale,
        timeout_seconds=timeout,
        start_spread=scenario.poll_minutes * 60 / time_scale,
        on_status=on_status,
    )
    return simulate_remote(scenario, server, rehearsal, soak_minutes=soak_minutes)


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _patched(result: RunResult) -> str:
    """After a halt the fleet was reverted: say so next to the share (never a bare 0 %
    beside a halt that reads as a contradiction)."""
    share = f"{result.patched_fraction_at_deadline:.2%}"
    return f"{share} (reverted)" if result.halted else share


def _minutes(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _table(
    console: Console, scenario: Scenario, results: dict[str, RunResult], run: dict[str, Any]
) -> None:
    from rich.table import Table

    table = Table(
        title=(
            f"{scenario.devices:,} devices · fault {scenario.fault} · power loss "
            f"{scenario.power_loss:.1%} · offline {scenario.offline:.0%} · seed {scenario.seed}"
        )
    )
    table.add_column("")
    for name in results:
        table.add_column(name, justify="right")
    rows: list[tuple[str, Any]] = [
        ("exposed", lambda r: f"{r.exposed:,} ({r.exposed / r.devices:.2%})"),
        ("bricked", lambda r: f"{r.bricked}"),
        ("reverted", lambda r: f"{r.reverted:,}"),
        ("exposed back on known-good", lambda r: f"{r.exposed_on_known_good:,} of {r.exposed:,}"),
        # The stage is a name: "100 %" is the stage offering the whole fleet, not a share.
        ("halted in", lambda r: f"stage '{r.halted_at_stage}'" if r.halted else "not halted"),
        ("minutes to halt", lambda r: _minutes(r.minutes_to_halt)),
        ("false halt", lambda r: "yes" if r.false_halt else "no"),
        ("patched at deadline", _patched),
        ("minutes to 95 %", lambda r: _minutes(r.minutes_to_95pct)),
        ("offline at deadline (unpatched)", lambda r: f"{r.unpatched_offline_at_deadline:,}"),
        ("power cuts during installs", lambda r: f"{r.power_cuts:,}"),
    ]
    for label, cell in rows:
        table.add_row(label, *(cell(r) for r in results.values()))
    console.print(table)
    for name, result in results.items():
        if result.halt_reason:
            console.print(f"[bold]{name}[/bold] halt: {result.halt_reason}")
    console.print(f"{run['wall_seconds']} s, peak memory {run['peak_rss_mb']} MB")
