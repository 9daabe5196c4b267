"""``patchgate campaign …``: phased rollouts (INTERFACES.md).

The CLI works on the database directly; a running server obeys what it commits from its
next poll (a halt included). Commands that change a campaign also evaluate the gates of
every running campaign first, so a CLI-only installation advances and halts too, and
``campaign tick`` runs one evaluation round (for cron, or a server started without its
timer).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from patchgate.entrypoints.cli.common import actor, app, emit_json

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
IdArg = Annotated[int, typer.Argument(help="Campaign id.")]


def register(cli: typer.Typer) -> None:
    """Add the campaign commands to ``cli``."""
    group = typer.Typer(help="Campaigns: phased rollouts with health gates.", no_args_is_help=True)
    group.command("create")(campaign_create)
    group.command("start")(campaign_start)
    group.command("pause")(campaign_pause)
    group.command("resume")(campaign_resume)
    group.command("approve")(campaign_approve)
    group.command("complete")(campaign_complete)
    group.command("halt")(campaign_halt)
    group.command("revert")(campaign_revert)
    group.command("cancel")(campaign_cancel)
    group.command("status")(campaign_status)
    group.command("list")(campaign_list)
    group.command("tick")(campaign_tick)
    cli.add_typer(group, name="campaign")


def _wait_for_notices() -> None:
    from patchgate.adapters.webhooks import HttpWebhooks

    hooks = app().context.webhooks
    if isinstance(hooks, HttpWebhooks):
        hooks.wait()


def _show(payload: dict[str, Any], as_json: bool) -> None:
    _wait_for_notices()
    if as_json:
        emit_json(payload)
        return
    stage = payload["stage"]
    typer.echo(
        f"campaign {payload['id']}: release {payload['release_id']} "
        f"({payload['product']} {payload['release_version']})"
    )
    typer.echo(f"  state: {payload['state']}   stage {stage['index'] + 1}: {stage['name']}")
    typer.echo(f"  stages: {payload['stage_spec']}")
    if payload["selector"]["versions"]:
        typer.echo(f"  target versions: {payload['selector']['versions']}")
    counts = payload["counts"]
    typer.echo(
        "  counts: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v or k == "eligible")
    )
    for s in payload["stages"]:
        c = s["counts"]
        typer.echo(
            f"    {s['index'] + 1}. {s['name']:<12} eligible {c['eligible']:>6}  "
            f"succeeded {c['succeeded']:>6}  failed {c['failed']:>4}  "
            f"timed out {c['timed_out']:>4}  soak {s['gates']['min_soak']}"
        )
    gate = payload["last_gate"]
    if gate:
        typer.echo(f"  last gate: {gate['verdict']} — {'; '.join(gate['reasons'])}")
    if payload["halt_reason"]:
        typer.echo(f"  HALTED at {payload['halted_at']}: {payload['halt_reason']}")
    if payload["revert_to_release_id"]:
        typer.echo(f"  reverting to release {payload['revert_to_release_id']}")
    if payload["deadline_at"]:
        risk = " — AT RISK" if payload["deadline_at_risk"] else ""
        typer.echo(f"  deadline: {payload['deadline_at']}{risk}")
    if payload["forecast_complete_at"]:
        typer.echo(f"  forecast complete: {payload['forecast_complete_at']}")
    for warning in payload["warnings"]:
        typer.echo(f"  warning: {warning}")


def campaign_create(
    release_id: Annotated[int, typer.Argument(help="Release to roll out.")],
    stages: Annotated[
        str | None,
        typer.Option("--stages", help="Like internal,canary:2,10,50,100 (group, name:P or P)."),
    ] = None,
    max_failure_rate: Annotated[
        float | None, typer.Option("--max-failure-rate", help="Gate: e.g. 0.05.")
    ] = None,
    min_finished: Annotated[
        int | None, typer.Option("--min-finished", help="Gate: devices finished per stage.")
    ] = None,
    soak: Annotated[str | None, typer.Option("--soak", help="Gate: e.g. 2h, 30m.")] = None,
    manual: Annotated[bool, typer.Option("--manual", help="Each stage waits for approve.")] = False,
    confirm_required: Annotated[
        bool, typer.Option("--confirm-required", help="The device's user must confirm.")
    ] = False,
    rate: Annotated[str | None, typer.Option("--rate", help="Offers per minute: N/min.")] = None,
    window: Annotated[
        str | None, typer.Option("--window", help="Maintenance window CRON,DURATION,TZ.")
    ] = None,
    soft: Annotated[bool, typer.Option("--soft", help="The device may defer.")] = False,
    download_only: Annotated[
        bool, typer.Option("--download-only", help="Download, do not install.")
    ] = False,
    fill_canary: Annotated[
        bool,
        typer.Option("--fill-canary", help="Fill the canary from other devices when short."),
    ] = False,
    group: Annotated[
        list[str] | None, typer.Option("--group", help="Target only these groups (repeatable).")
    ] = None,
    supersedes: Annotated[
        int | None, typer.Option("--supersedes", help="Halted campaign to roll forward from.")
    ] = None,
    versions: Annotated[
        str | None,
        typer.Option(
            "--versions",
            help='Target only devices on these versions, e.g. "<1.0.1", ">=1.0, <2.0".',
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a draft campaign for a release."""
    from patchgate.services import campaigns

    options = campaigns.CreateOptions(
        stages=stages,
        max_failure_rate=max_failure_rate,
        min_finished=min_finished,
        soak=soak,
        manual=manual,
        confirm_required=confirm_required,
        rate=rate,
        window=window,
        forced=not soft,
        download_only=download_only,
        fill_canary=fill_canary,
        groups=tuple(group or ()),
        supersedes=supersedes,
        versions=versions,
    )
    _show(campaigns.create(app().context, release_id, options, actor=actor()), as_json)


def _transition(name: str) -> Callable[..., None]:
    def run(campaign_id: IdArg, as_json: JsonFlag = False) -> None:
        from patchgate.services import campaigns

        ctx = app().context
        campaigns.tick(ctx)
        fn = getattr(campaigns, name)
        _show(fn(ctx, campaign_id, actor=actor()), as_json)

    run.__doc__ = {
        "start": "Start a draft campaign: its first stage opens.",
        "pause": "Pause: no new offers; open actions continue.",
        "resume": "Resume a paused campaign.",
        "approve": "Approve the current stage (it advances once its gates pass).",
        "complete": "Complete at the last stage; a rollout raises the security floor.",
    }[name]
    return run


campaign_start = _transition("start")
campaign_pause = _transition("pause")
campaign_resume = _transition("resume")
campaign_approve = _transition("approve")
campaign_complete = _transition("complete")


def campaign_halt(
    campaign_id: IdArg,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded and sent).")],
    as_json: JsonFlag = False,
) -> None:
    """Halt: from its commit no device is offered the release; pending actions cancelled."""
    from patchgate.services import campaigns

    ctx = app().context
    _show(campaigns.halt(ctx, campaign_id, reason=reason, actor=actor()), as_json)


def campaign_revert(
    campaign_id: IdArg,
    to: Annotated[
        int | None, typer.Option("--to", help="Known-good release (default: the previous).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Revert a halted campaign: offer the known-good release to devices on the bad one."""
    from patchgate.services import campaigns

    ctx = app().context
    _show(campaigns.revert(ctx, campaign_id, to_release=to, actor=actor()), as_json)


def campaign_cancel(
    campaign_id: IdArg,
    reason: Annotated[str, typer.Option("--reason", help="Why.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Cancel a campaign: nothing more is offered; pending actions are cancelled."""
    from patchgate.services import campaigns

    ctx = app().context
    _show(campaigns.cancel(ctx, campaign_id, reason=reason, actor=actor()), as_json)


def campaign_status(campaign_id: IdArg, as_json: JsonFlag = False) -> None:
    """A campaign's state, stages, counts, last gate, forecast and deadline."""
    from patchgate.services import campaigns

    ctx = app().context
    campaigns.tick(ctx)
    _show(campaigns.status(ctx, campaign_id), as_json)


def campaign_list(as_json: JsonFlag = False) -> None:
    """Every campaign."""
    from patchgate.services import campaigns

    rows = campaigns.list_campaigns(app().context)
    if as_json:
        emit_json({"campaigns": rows})
        return
    for row in rows:
        reason = f"  ({row['halt_reason']})" if row["halt_reason"] else ""
        typer.echo(
            f"{row['id']:>5}  release {row['release_id']:>5}  {row['state']:<10} "
            f"stage {row['stage']['index'] + 1} {row['stage']['name']}{reason}"
        )


def campaign_tick(as_json: JsonFlag = False) -> None:
    """Evaluate the gates of every running campaign once (advance, complete or halt)."""
    from patchgate.services import campaigns

    verdicts = campaigns.tick(app().context)
    _wait_for_notices()
    if as_json:
        emit_json({"verdicts": {str(k): v for k, v in verdicts.items()}})
        return
    for campaign_id, verdict in verdicts.items():
        typer.echo(f"campaign {campaign_id}: {verdict}")
