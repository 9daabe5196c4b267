"""Dynamic targeting against a real server, on SQLite and PostgreSQL: a campaign on a device
query (saved or given) is evaluated at each real DDI poll, so a device registered after the
start is offered the release once it matches, and one that stops matching before its offer
is not; saved filters and operator metadata from the CLI and the API, validated and
audited (docs/device-filters.md)."""

from __future__ import annotations

import httpx

from tests.conftest import Env
from tests.e2e.test_campaigns import HW, Device, add_device, api, create
from tests.factories import make_release
from tests.support import LiveServer

QUERY = "metadata.site==berlin;group!=quarantine"


def _offered(device: Device) -> str | None:
    """The version offered at this poll (the deployment fetched as a client does), or None."""
    link = device.poll().get("deploymentBase")
    if link is None:
        return None
    body = httpx.get(link["href"], headers=device._headers(), timeout=30).json()
    return str(body["deployment"]["chunks"][0]["version"])


def _set_site(client: httpx.Client, cid: str, site: str) -> None:
    answer = client.put(f"/api/v1/devices/{cid}/metadata/site", json={"value": site})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": cid, "metadata": {"site": site}}


def test_a_campaign_on_a_saved_filter_offers_devices_registered_after_its_start(
    env: Env, server: LiveServer
) -> None:
    made = make_release(env, "2.0.0", {"fw.bin": b"fix"}, hardware=[HW], security_version=2)
    early = add_device(env, server, "early")
    outsider = add_device(env, server, "outsider")
    with api(server, env) as client:
        _set_site(client, "early", "berlin")
        _set_site(client, "outsider", "paris")
        saved = client.post("/api/v1/filters", json={"name": "berlin", "query": QUERY})
        assert saved.status_code == 201, saved.text
        shown = create(env, made, "--saved-filter", "berlin", "--stages", "100")
        campaign = int(shown["id"])
        assert shown["filter"] == QUERY
        assert shown["selector"]["saved_filter"] == "berlin"
        assert shown["counts"]["eligible"] == 1
        started = env.cli("campaign", "start", str(campaign), "--json")
        assert started.code == 0, started.stderr

        assert _offered(early) == made.version
        assert _offered(outsider) is None

        # Registered after the start: offered as soon as it matches, at its own poll.
        late = add_device(env, server, "late")
        assert _offered(late) is None  # no site yet
        _set_site(client, "late", "berlin")
        assert _offered(late) == made.version

        # Matched when registered, then moved out of the query before it polled.
        moved = add_device(env, server, "moved")
        _set_site(client, "moved", "berlin")
        tagged = client.post("/api/v1/devices/moved/groups", json={"groups": ["quarantine"]})
        assert tagged.status_code == 200, tagged.text
        assert _offered(moved) is None
        # A query's metadata changed on the device outside the campaign: not offered either.
        _set_site(client, "outsider", "berlin")
        client.delete("/api/v1/devices/outsider/metadata/site").raise_for_status()
        assert _offered(outsider) is None

        status = client.get(f"/api/v1/campaigns/{campaign}").json()
        assert status["filter"] == QUERY
        assert status["counts"]["eligible"] == 2  # early and late
        assert status["counts"]["offered"] + status["counts"]["downloading"] == 2
    text = env.cli("campaign", "status", str(campaign))
    assert f"target filter: {QUERY} (saved filter berlin), evaluated at each poll" in text.stdout


def test_a_campaign_on_a_query_keeps_its_stages_and_gates(env: Env, server: LiveServer) -> None:
    made = make_release(env, "2.0.0", {"fw.bin": b"fix"}, hardware=[HW], security_version=2)
    qa = add_device(env, server, "qa-1", "qa")
    field = add_device(env, server, "field-1", "field")
    other = add_device(env, server, "other-1")
    shown = create(env, made, "--filter", "group=in=(qa,field)", "--stages", "qa,100", "--json")
    campaign = int(shown["id"])
    assert env.cli("campaign", "start", str(campaign)).code == 0
    assert _offered(qa) == made.version
    assert _offered(field) is None  # matches the query, but its stage (100 %) is not open
    assert _offered(other) is None
    status = env.cli("campaign", "status", str(campaign), "--json").json()
    assert [s["counts"]["eligible"] for s in status["stages"]] == [1, 1]


def test_saved_filters_are_validated_audited_and_usable_from_cli_and_api(
    env: Env, server: LiveServer
) -> None:
    for cid, groups in (("gw-1", ("qa",)), ("gw-2", ()), ("gw-3", ("qa",))):
        assert env.cli("device", "add", cid, *[f"--group={g}" for g in groups]).code == 0
    bad = env.cli("filter", "create", "qa-ring", "group==qa;colour==red")
    assert bad.code == 2
    assert "unknown field 'colour' at position 10" in bad.stderr
    made = env.cli("filter", "create", "qa-ring", "group==qa", "--description", "QA", "--json")
    assert made.code == 0, made.stderr
    assert made.json()["query"] == "group==qa"
    again = env.cli("filter", "create", "qa-ring", "group==qa")
    assert again.code == 2 and "exists" in again.stderr
    listed = env.cli("device", "list", "--filter", "@qa-ring", "--json").json()
    assert [d["id"] for d in listed["devices"]] == ["gw-1", "gw-3"]
    missing = env.cli("device", "list", "--filter", "@nope")
    assert missing.code == 2 and "no saved filter 'nope'" in missing.stderr
    with api(server, env) as client:
        malformed = client.post("/api/v1/filters", json={"name": "x", "query": "group=="})
        assert malformed.status_code == 422
        assert "a value at position 7" in malformed.json()["message"]
        taken = client.post("/api/v1/filters", json={"name": "qa-ring", "query": "id==a"})
        assert taken.status_code == 409
        badname = client.post("/api/v1/filters", json={"name": "a b", "query": "id==a"})
        assert badname.status_code == 422
        changed = client.patch("/api/v1/filters/qa-ring", json={"query": "group==qa and id!=gw-3"})
        assert changed.status_code == 200, changed.text
        assert changed.json()["query"] == "group==qa;id!=gw-3"
        assert changed.json()["description"] == "QA"
        page = client.get("/api/v1/devices", params={"filter": "@qa-ring"}).json()
        assert [d["id"] for d in page["devices"]] == ["gw-1"]
        upsert = client.put("/api/v1/filters/all-gw", json={"query": "id==gw-*"})
        assert upsert.status_code == 200, upsert.text
        names = [f["name"] for f in client.get("/api/v1/filters").json()["filters"]]
        assert names == ["all-gw", "qa-ring"]
        assert client.delete("/api/v1/filters/all-gw").status_code == 204
        assert client.get("/api/v1/filters/all-gw").status_code == 404
    shown = env.cli("filter", "show", "qa-ring", "--json").json()
    assert shown["query"] == "group==qa;id!=gw-3" and shown["updated_by"].startswith("token:")
    audit = env.cli("audit", "list", "--json").json()
    actions = [e["action"] for e in audit["entries"] if e["action"].startswith("filter.")]
    assert actions.count("filter.create") == 2  # qa-ring, all-gw
    assert "filter.update" in actions and "filter.delete" in actions


def test_metadata_on_devices_and_releases_is_bounded_audited_shown_and_queryable(
    env: Env, server: LiveServer
) -> None:
    made = make_release(env, "2.0.0", {"fw.bin": b"fix"}, hardware=[HW])
    assert env.cli("device", "add", "gw-1").code == 0
    assert env.cli("device", "add", "gw-2").code == 0
    assert env.cli("device", "meta", "set", "gw-1", "site", "Berlin Mitte").code == 0
    assert env.cli("device", "meta", "set", "gw-1", "owner", "ops").code == 0
    bad_key = env.cli("device", "meta", "set", "gw-1", "9lives", "x")
    assert bad_key.code == 2 and "must start with a letter" in bad_key.stderr
    missing = env.cli("device", "meta", "unset", "gw-2", "site")
    assert missing.code == 2 and "has no metadata key 'site'" in missing.stderr
    shown = env.cli("device", "show", "gw-1", "--json").json()
    assert shown["metadata"] == {"owner": "ops", "site": "Berlin Mitte"}
    assert "metadata" in env.cli("device", "show", "gw-1").stdout
    listed = env.cli("device", "list", "--filter", "metadata.site=='Berlin Mitte'", "--json")
    assert [d["id"] for d in listed.json()["devices"]] == ["gw-1"]
    assert env.cli("device", "meta", "unset", "gw-1", "owner").code == 0
    assert env.cli("device", "meta", "list", "gw-1", "--json").json() == {
        "id": "gw-1",
        "metadata": {"site": "Berlin Mitte"},
    }
    assert env.cli("release", "meta", "set", str(made.id), "approved_by", "qa-lead").code == 0
    rel = env.cli("release", "show", str(made.id), "--json").json()
    assert rel["metadata"] == {"approved_by": "qa-lead"}
    found = env.cli("release", "list", "--metadata", "approved_by=qa-*", "--json").json()
    assert [r["id"] for r in found["releases"]] == [made.id]
    none = env.cli("release", "list", "--metadata", "approved_by=nobody", "--json").json()
    assert none["releases"] == []
    with api(server, env) as client:
        too_long = client.put("/api/v1/devices/gw-2/metadata/note", json={"value": "x" * 4001})
        assert too_long.status_code == 422
        control = client.put("/api/v1/devices/gw-2/metadata/note", json={"value": "a\nb"})
        assert control.status_code == 422, control.text  # the schema states the rule
        assert "value" in str(control.json().get("problems") or control.json()), control.text
        nodevice = client.put("/api/v1/devices/nope/metadata/note", json={"value": "a"})
        assert nodevice.status_code == 404
        set_rel = client.put(f"/api/v1/releases/{made.id}/metadata/ticket", json={"value": "CR-7"})
        assert set_rel.status_code == 200, set_rel.text
        got = client.get("/api/v1/releases", params={"metadata": ["ticket=CR-7"]}).json()
        assert [r["id"] for r in got["releases"]] == [made.id]
        bad_pair = client.get("/api/v1/releases", params={"metadata": "ticket"})
        assert bad_pair.status_code == 422
        unset = client.delete(f"/api/v1/releases/{made.id}/metadata/ticket")
        assert unset.json() == {"id": made.id, "metadata": {"approved_by": "qa-lead"}}
        unknown = client.get("/api/v1/devices", params={"filter": "metadata==x"})
        assert unknown.status_code == 422 and "position 0" in unknown.json()["message"]
    audit = env.cli("audit", "list", "--json").json()
    actions = [e["action"] for e in audit["entries"] if ".metadata." in e["action"]]
    assert actions.count("device.metadata.set") == 2
    assert actions.count("device.metadata.unset") == 1
    assert actions.count("release.metadata.set") == 2
    assert actions.count("release.metadata.unset") == 1
