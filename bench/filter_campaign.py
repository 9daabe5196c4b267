"""bench/poll.sh's FILTER=QUERY set-up: every bench device gets operator metadata
(site=paris), and a running campaign targets the device query QUERY (docs/device-filters.md
"Campaigns on a filter"). With a query no device matches, every poll evaluates it (reading
the metadata from the poll's row) and answers with nothing to do, as the plain poll does.
usage: python bench/filter_campaign.py QUERY   (PATCHGATE_DATA_DIR / _DATABASE_URL set)"""

from __future__ import annotations

import sys

from sqlalchemy import update
from sqlalchemy.orm import Session

from patchgate.adapters.db.models import Device
from patchgate.bootstrap import Settings, build
from patchgate.services import policy, releases
from patchgate.services.campaigns import commands
from patchgate.services.campaigns.options import CreateOptions
from patchgate.services.setup import demo_policy_source

app = build(Settings.from_env())
ctx = app.context
policy.apply(ctx, demo_policy_source(), actor="bench")
made = releases.create_release(
    ctx,
    product="Demo Gateway",
    version="9.0.0",
    artifacts=[releases.ArtifactUpload("fw.bin", [b"bench"])],
    actor="bench",
    security_version=9,
)
with Session(app.engines.write) as s, s.begin():
    s.execute(update(Device).values(meta={"site": "paris", "ring": "2"}))
campaign = commands.create(
    ctx, made.id, CreateOptions(stages="100", filter=sys.argv[1]), actor="bench"
)
commands.start(ctx, campaign, actor="bench")
print(f"campaign {campaign} on {sys.argv[1]!r} running", file=sys.stderr)
