"""``patchgate campaign …``: phased rollouts (docs/contract.md).

The CLI works on the database directly; a running server obeys what it commits from its
next poll (a halt included). Commands that change a campaign also evaluate the gates of
every running campaign first, so a CLI-only installation advances and halts too, and
``campaign tick`` runs one evaluation round (for cron, or a server started without its
timer).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from patchgate.entrypoints.cli.common import actor, add_group, app, emit_json

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
IdArg = Annotated[int, typer.Argument(help="Campaign id.")]


def register(cli: typer.Typer) -> None:
    """Add the campaign commands to ``cli``."""
    add_group(
        cli,
        "campaign",
        "Campaigns: phased rollouts with health gates.",
        {
            "create": campaign_create,
            "start": campaign_start,
            "pause": campaign_pause,
            "resume": campaign_resume,
            "approve": campaign_approve,
            "complete": campaign_complete,
            "halt": campaign_halt,
            "revert": campaign_revert,
            "cancel": campaign_cancel,
            "status": campaign_status,
            "list": campaign_list,
            "tick": campaign_tick,
        },
    )


def _wait_for_notices() -> None:
    """Send what a command caused (a halt notice) before the CLI exits: the CLI has no
    notice timer of its own, and a server's would only notice at its next tick."""
    from patchgate.bootstrap import notice_channels

    wired = app()
    channels = notice_channels(wired.settings)
    if channels is not None:
        from patchgate.services import notifications

        notifications.run_once(wired.context, channels, quick_retries=2)


def _show(campaign_id: int, as_json: bool) -> None:
    """Read the campaign's status view and print it (JSON or text)."""
    from patchgate.entrypoints.presenters import campaigns as present
    from patchgate.services.campaigns import views

    _wait_for_notices()
    view = views.status(app().context, campaign_id)
    if as_json:
        emit_json(present.status_json(view))
        return
    for line in present.status_text(view):
        typer.echo(line)


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
    offline_share: Annotated[
        float | None,
        typer.Option(
            "--offline-share",
            help="Deadline plan: share of the fleet offline at a time, e.g. 0.1.",
        ),
    ] = None,
    timeout: Annotated[
        str | None,
        typer.Option("--timeout", help="In-progress timeout of each attempt, e.g. 30m, 2h."),
    ] = None,
    retries: Annotated[
        int | None,
        typer.Option("--retries", help="Retries of a transient failure (0-10; default 2)."),
    ] = None,
    start_at: Annotated[
        str | None, typer.Option("--start-at", help="Start by itself at this ISO 8601 time.")
    ] = None,
    end_at: Annotated[
        str | None,
        typer.Option("--end-at", help="Stop at this ISO 8601 time (installs in flight finish)."),
    ] = None,
    query: Annotated[
        str | None,
        typer.Option(
            "--filter",
            metavar="QUERY",
            help="Target the devices that match this device query at each poll, devices "
            "registered later included (docs/device-filters.md); @NAME: a saved filter.",
        ),
    ] = None,
    saved_filter: Annotated[
        str | None,
        typer.Option("--saved-filter", metavar="NAME", help="Target a saved filter's devices."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a draft campaign for a release."""
    from patchgate.services.campaigns import commands
    from patchgate.services.campaigns.options import CreateOptions

    options = CreateOptions(
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
        offline_share=offline_share,
        timeout=timeout,
        retries=retries,
        start_at=start_at,
        end_at=end_at,
        filter=query,
        saved_filter=saved_filter,
    )
    _show(commands.create(app().context, release_id, options, actor=actor()), as_json)


def _transition(name: str) -> Callable[..., None]:
    def run(campaign_id: IdArg, as_json: JsonFlag = False) -> None:
        from patchgate.services.campaigns import commands

        ctx = app().context
        commands.tick(ctx)
        getattr(commands, name)(ctx, campaign_id, actor=actor())
        _show(campaign_id, as_json)

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
    from patchgate.services.campaigns import commands

    commands.halt(app().context, campaign_id, reason=reason, actor=actor())
    _show(campaign_id, as_json)


def campaign_revert(
    campaign_id: IdArg,
    to: Annotated[
        int | None,
        typer.Option(
            "--to",
            help="Offer this release to every device (default: each device's own last good one).",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Revert a halted campaign: each device on the bad release gets the last release it ran
    that is not halted or withdrawn (docs/campaigns.md "Revert")."""
    from patchgate.services.campaigns import commands

    commands.revert(app().context, campaign_id, to_release=to, actor=actor())
    _show(campaign_id, as_json)


def campaign_cancel(
    campaign_id: IdArg,
    reason: Annotated[str, typer.Option("--reason", help="Why.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Cancel a campaign: nothing more is offered; pending actions are cancelled."""
    from patchgate.services.campaigns import commands

    commands.cancel(app().context, campaign_id, reason=reason, actor=actor())
    _show(campaign_id, as_json)


def campaign_status(campaign_id: IdArg, as_json: JsonFlag = False) -> None:
    """A campaign's state, stages, counts, last gate, forecast and deadline."""
    from patchgate.services.campaigns import commands

    commands.tick(app().context)
    _show(campaign_id, as_json)


def campaign_list(as_json: JsonFlag = False) -> None:
    """Every campaign, oldest first."""
    from patchgate.entrypoints.presenters import campaigns as present
    from patchgate.services.campaigns import views

    ctx = app().context
    rows: list[views.CampaignSummary] = []
    after: int | None = 0
    while after is not None:
        page = views.list_campaigns(ctx, after=after, limit=views.MAX_PAGE)
        rows.extend(page.campaigns)
        after = page.next_after
    if as_json:
        emit_json({"campaigns": [present.summary_json(c) for c in rows]})
        return
    for row in rows:
        typer.echo(present.summary_text(row))


def campaign_tick(as_json: JsonFlag = False) -> None:
    """Evaluate the gates of every running campaign once (advance, complete or halt)."""
    from patchgate.services.campaigns import commands

    verdicts = commands.tick(app().context)
    _wait_for_notices()
    if as_json:
        emit_json({"verdicts": {str(k): v for k, v in verdicts.items()}})
        return
    for campaign_id, verdict in verdicts.items():
        typer.echo(f"campaign {campaign_id}: {verdict}")
