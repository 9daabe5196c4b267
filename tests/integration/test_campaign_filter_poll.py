"""A campaign on a device query through the server's poll path, on both backends: the
prepared poll reads (the synchronous one, and PostgreSQL's awaited one) carry what a query
reads, the query is evaluated on the poll's row, and the offer checks it again under the
device's row lock (docs/device-filters.md "Campaigns on a filter")."""

from __future__ import annotations

import asyncio
import json

from patchgate.bootstrap import make_async_device_auth_reader, make_device_auth_reader
from patchgate.services import ddi, metadata
from patchgate.services import devices as device_service
from patchgate.services.devices import saved_filters
from tests.campaign_support import Fleet, release, started, status
from tests.conftest import Env


class ReadFleet(Fleet):
    """Devices whose polls read through the prepared reader ``patchgate serve`` uses."""

    def __init__(self, env: Env) -> None:
        super().__init__(env)
        self.poller.reader = make_device_auth_reader(env.app)

    def caller(self, cid: str) -> ddi.Caller:
        return self.poller.authenticate("DEFAULT", cid, f"TargetToken {self.tokens[cid]}")


def test_the_poll_reads_carry_attributes_and_metadata_as_stored_json(env: Env) -> None:
    made = device_service.add_device(env.ctx, "gw-1", actor="test")
    metadata.set_device(env.ctx, "gw-1", "site", "berlin", actor="test")
    token_hash = ddi.hash_token(made.token)
    row = make_device_auth_reader(env.app).by_token("DEFAULT", token_hash)
    assert row is not None
    assert json.loads(row.metadata_json or "") == {"site": "berlin"}
    assert json.loads(row.attributes_json or "{}") == {}
    awaited = make_async_device_auth_reader(env.app)
    if awaited is not None:  # PostgreSQL: the event loop's reader reads the same row
        assert asyncio.run(awaited.by_token("DEFAULT", token_hash)) == row


def test_a_device_that_starts_matching_after_the_start_is_offered_at_its_next_poll(
    env: Env,
) -> None:
    made = release(env, "2.0.0", 2)
    fleet = ReadFleet(env)
    fleet.add("a", "1.0.0")
    saved_filters.create(env.ctx, "berlin", "metadata.site==berlin", actor="test")
    campaign = started(env, made, stages="100", saved_filter="berlin")
    assert status(env, campaign)["counts"]["eligible"] == 0
    assert fleet.offered("a") is None
    metadata.set_device(env.ctx, "a", "site", "berlin", actor="test")
    fleet.add("b", "1.0.0")  # registered after the start
    metadata.set_device(env.ctx, "b", "site", "berlin", actor="test")
    assert fleet.offered("a") == made.id
    assert fleet.offered("b") == made.id
    assert status(env, campaign)["counts"]["eligible"] == 2


def test_a_device_that_stops_matching_between_the_read_and_the_offer_is_not_offered(
    env: Env,
) -> None:
    made = release(env, "2.0.0", 2)
    fleet = ReadFleet(env)
    fleet.add("gw", "1.0.0", "field")
    started(env, made, stages="100", filter="group==field")
    caller = fleet.caller("gw")
    ready = fleet.poller.prepare(caller)
    assert isinstance(ready, ddi.Pending) and ready.decision is not None
    assert ready.decision.offer is not None  # the poll's read matched
    # Moved out of the group before the offer is written: the locked re-check refuses it.
    device_service.tag_device(env.ctx, "gw", ["field"], remove=True, actor="test")
    state = fleet.poller.poll(caller, ready)
    assert state.open_action_id is None
    assert fleet.offered("gw") is None
    device_service.tag_device(env.ctx, "gw", ["field"], actor="test")
    assert fleet.offered("gw") == made.id


def test_a_query_on_attributes_reads_what_the_device_reported(env: Env) -> None:
    made = release(env, "2.0.0", 2)
    fleet = ReadFleet(env)
    fleet.add("ab", "1.0.0")
    fleet.add("single", "1.0.0")
    started(env, made, stages="100", filter="attribute.slots==ab")
    for cid, slots in (("ab", "ab"), ("single", "single")):
        ddi.config_data(env.ctx, fleet.caller(cid), {"slots": slots}, "merge")
    assert fleet.offered("ab") == made.id
    assert fleet.offered("single") is None
