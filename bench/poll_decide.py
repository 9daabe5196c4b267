"""The device poll's own CPU cost, in-process and single-threaded: the prepared read of the
device's row (``SqlDeviceAuthReader.by_controller``) and ``Poller.prepare`` (the campaign
core's decision) for 1,000 devices round-robin, with no campaign, or with a running
campaign whose device query matches no device (so every poll evaluates it and writes
nothing). Without the HTTP server, wrk and the other processes of bench/poll.sh, so the
difference a query makes is not lost in their noise.
usage: python bench/poll_decide.py [QUERY] [--polls N] [--rounds R]
(run `patchgate init` on a fresh data folder, $PATCHGATE_DATA_DIR, first; prints one
JSON line)"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from sqlalchemy import update
from sqlalchemy.orm import Session

from patchgate.adapters.db.models import Device
from patchgate.bootstrap import Settings, build, make_device_auth_reader
from patchgate.services import ddi, policy, releases
from patchgate.services import devices as device_service
from patchgate.services.campaigns import commands
from patchgate.services.campaigns.options import CreateOptions
from patchgate.services.campaigns.poll import PollEngine
from patchgate.services.devices import DeviceRow
from patchgate.services.setup import demo_policy_source


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("query", nargs="?")
    parser.add_argument("--polls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    app = build(Settings.from_env())
    ctx = app.context
    policy.apply(ctx, demo_policy_source(), actor="bench")
    rows = [DeviceRow(f"bench-{i}", (), "demo-gw-1", "1.0.0") for i in range(1000)]
    device_service.import_devices(ctx, rows, actor="bench")
    if hasattr(Device, "meta"):  # (the bench also runs on code from before metadata)
        with Session(app.engines.write) as s, s.begin():
            s.execute(update(Device).values(meta={"site": "paris", "ring": "2"}))
    if args.query:
        made = releases.create_release(
            ctx,
            product="Demo Gateway",
            version="9.0.0",
            artifacts=[releases.ArtifactUpload("fw.bin", [b"bench"])],
            actor="bench",
            security_version=9,
        )
        options = CreateOptions(stages="100", filter=args.query)
        campaign = commands.create(ctx, made.id, options, actor="bench")
        commands.start(ctx, campaign, actor="bench")
    reader = make_device_auth_reader(app)
    poller = ddi.Poller(ctx, reader=reader)
    engine = PollEngine(ctx)
    poller.plug(engine.decide, engine.load, engine.create)
    ids = [f"bench-{i}" for i in range(1000)]
    per_poll = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        for n in range(args.polls):
            row = reader.by_controller("DEFAULT", ids[n % 1000])
            assert row is not None
            answer = poller.prepare(ddi.Caller(row, row.controller_id or "", False))
            assert not isinstance(answer, ddi.Pending), "the bench expects no offer"
        per_poll.append((time.perf_counter() - start) / args.polls * 1e6)
    json.dump(
        {
            "query": args.query,
            "polls_per_round": args.polls,
            "us_per_poll_median": round(statistics.median(per_poll), 1),
            "us_per_poll_rounds": [round(x, 1) for x in per_poll],
            "decisions": engine.decisions,
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
