"""The campaign core's target rule with a device query (domain.campaigns rule 4): the query
is one more condition on the selector, read from the device's facts (metadata and
attributes included), and the stage still comes from the cohort bucket; the poll's lazy
JSON mapping reads what the row stored."""

from __future__ import annotations

from dataclasses import replace

from patchgate.domain import campaigns as c
from patchgate.domain import filters
from patchgate.services.campaigns.poll import StoredJson
from tests.unit.test_campaigns import T0, device, make_plan


def _on(query: str) -> c.Snapshot:
    plan = make_plan(stage=len(make_plan().stages) - 1)
    selector = replace(plan.selector, query=filters.parse(query))
    return c.Snapshot.build(1, [replace(plan, selector=selector)])


def test_a_query_narrows_the_target_and_reads_metadata_and_attributes() -> None:
    snapshot = _on("metadata.site==berlin;attribute.slots==ab")
    both = device(metadata={"site": "berlin"}, attributes={"slots": "ab"})
    assert c.decide(both, snapshot, T0).offer is not None
    wrong_site = device(metadata={"site": "paris"}, attributes={"slots": "ab"})
    assert c.decide(wrong_site, snapshot, T0).reason == c.NOT_TARGETED
    assert c.decide(device(), snapshot, T0).reason == c.NOT_TARGETED  # nothing stored


def test_a_query_on_groups_and_the_stage_of_the_bucket_both_apply() -> None:
    plan = make_plan(stage=0)  # the first stage admits only internal and qa
    snapshot = c.Snapshot.build(
        1, [replace(plan, selector=replace(plan.selector, query=filters.parse("group!=lab")))]
    )
    assert c.decide(device(groups=frozenset({"qa"})), snapshot, T0).offer is not None
    assert c.decide(device(groups=frozenset({"qa", "lab"})), snapshot, T0).reason == (
        c.NOT_TARGETED
    )
    assert c.decide(device(groups=frozenset({"field"})), snapshot, T0).reason == c.NOT_IN_STAGE


def test_the_rows_json_is_read_only_when_a_query_asks_for_it() -> None:
    stored = StoredJson('{"site": "berlin"}')
    assert stored._parsed is None
    assert stored.get("site") == "berlin" and dict(stored) == {"site": "berlin"}
    assert dict(StoredJson(None)) == {} and dict(StoredJson("null")) == {}
