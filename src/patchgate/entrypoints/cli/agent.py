"""``patchgate agent``: the reference device agent; ``agent boot`` plays the bootloader and
``agent status`` shows the device's state.

``agent`` is a group whose callback runs the agent when no subcommand follows, so both
``patchgate agent --server URL …`` and ``patchgate agent boot --state-dir DIR`` work."""

from __future__ import annotations

import shlex
from typing import Annotated

import httpx
import typer

from patchgate.agent.core import AgentConfig
from patchgate.agent.push import WakeListener, WakeSignal, parse_broker_url
from patchgate.agent.runner import AgentSetupError, boot_device, build_agent, run, status
from patchgate.entrypoints.cli.common import emit_json, fail

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
StateDir = Annotated[str, typer.Option("--state-dir", help="The agent's state folder.")]


def register(cli: typer.Typer) -> None:
    group = typer.Typer(
        help="The reference device agent (A/B slots, DDI, TUF).",
        invoke_without_command=True,
    )
    group.callback()(agent_run)
    group.command("boot")(agent_boot)
    group.command("status")(agent_status)
    cli.add_typer(group, name="agent")


def _log(line: str) -> None:
    typer.echo(f"agent: {line}", err=True)


def agent_run(
    ctx: typer.Context,
    server: Annotated[str | None, typer.Option("--server", help="Server base URL.")] = None,
    device_id: Annotated[str | None, typer.Option("--device-id", help="Controller id.")] = None,
    token: Annotated[str | None, typer.Option("--token", help="Target token.")] = None,
    state_dir: Annotated[str | None, typer.Option("--state-dir", help="State folder.")] = None,
    trusted_root: Annotated[
        str | None, typer.Option("--trusted-root", help="Provisioned TUF root metadata.")
    ] = None,
    tenant: Annotated[str, typer.Option("--tenant")] = "DEFAULT",
    slot_a: Annotated[str | None, typer.Option("--slot-a", help="File or block device.")] = None,
    slot_b: Annotated[str | None, typer.Option("--slot-b", help="File or block device.")] = None,
    health_cmd: Annotated[
        str | None, typer.Option("--health-cmd", help="Exit 0 when the new image is healthy.")
    ] = None,
    hardware: Annotated[
        str | None, typer.Option("--hardware", help="This device's hardware model.")
    ] = None,
    initial_version: Annotated[
        str, typer.Option("--initial-version", help="Version of slot a when provisioning.")
    ] = "0",
    bootlimit: Annotated[int, typer.Option("--bootlimit", min=1)] = 3,
    reboot_cmd: Annotated[
        str | None, typer.Option("--reboot-cmd", help="Command that restarts the device.")
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="One poll, then exit.")] = False,
    mqtt: Annotated[
        str | None,
        typer.Option(
            "--mqtt",
            help="MQTT broker (mqtt://[user:pass@]host[:port] or mqtts://) whose wake-ups "
            "make the agent poll at once.",
        ),
    ] = None,
) -> None:
    """Run the agent: poll, verify, install into the inactive slot, switch, confirm."""
    if ctx.invoked_subcommand is not None:
        return
    missing = [
        flag
        for flag, value in (
            ("--server", server),
            ("--device-id", device_id),
            ("--token", token),
            ("--state-dir", state_dir),
            ("--trusted-root", trusted_root),
        )
        if not value
    ]
    if missing:
        fail(*(f"missing option {flag}" for flag in missing))
    if (slot_a is None) != (slot_b is None):
        fail("give both --slot-a and --slot-b, or neither")
    assert server and device_id and token and state_dir and trusted_root
    address = None
    if mqtt:
        try:
            address = parse_broker_url(mqtt)
        except ValueError as exc:
            fail(f"--mqtt: {exc}")
    config = AgentConfig(
        server=server,
        device_id=device_id,
        token=token,
        state_dir=state_dir,
        tenant=tenant,
        slot_paths={"a": slot_a, "b": slot_b} if slot_a and slot_b else {},
        hardware=hardware,
        initial_version=initial_version,
        bootlimit=bootlimit,
        reboot_cmd=tuple(shlex.split(reboot_cmd)) if reboot_cmd else (),
    )
    with httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0)) as client:
        try:
            agent = build_agent(
                config,
                trusted_root_path=trusted_root,
                health_cmd=health_cmd,
                client=client,
                log=_log,
            )
        except AgentSetupError as exc:
            fail(f"refusing to start: {exc}")
        listener = None
        if address is not None and not once:
            try:
                listener = WakeListener(
                    address, tenant=tenant, controller_id=device_id, signal=WakeSignal(), log=_log
                ).start()
            except AgentSetupError as exc:
                fail(str(exc))
        try:
            code = run(agent, once=once, log=_log, wake=listener.signal if listener else None)
        finally:
            if listener is not None:
                listener.stop()
    raise typer.Exit(code)


def agent_boot(state_dir: StateDir, json_out: JsonFlag = False) -> None:
    """Play the bootloader: count the boot, pick the slot, fall back past the boot limit."""
    try:
        env = boot_device(state_dir)
    except AgentSetupError as exc:
        fail(str(exc))
    if json_out:
        emit_json(status(state_dir))
    else:
        typer.echo(f"booted slot {env.booted_slot} ({env.installed_version}); {env.last_event}")


def agent_status(state_dir: StateDir, json_out: JsonFlag = False) -> None:
    """Show slots, versions, marks, boot counter and security floor."""
    try:
        data = status(state_dir)
    except AgentSetupError as exc:
        fail(str(exc))
    if json_out:
        emit_json(data)
        return
    typer.echo(
        f"booted {data['booted_slot']} · active {data['active_slot']} · "
        f"version {data['installed_version']} · phase {data['phase']} · "
        f"bootcount {data['bootcount']}/{data['bootlimit']} · floor {data['security_floor']}"
    )
    for name, slot in data["slots"].items():
        typer.echo(f"  slot {name}: {slot['state']:<7} {slot['version']} {slot['sha256']}")
    for problem in data["problems"]:
        typer.echo(f"  problem: {problem}")
