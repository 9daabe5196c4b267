"""The A/B state machine: examples of each rule, and Hypothesis properties over random
event sequences (power cuts included) that must never leave a device without a good,
bootable slot."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patchgate.domain import ab_state
from patchgate.domain.ab_state import (
    BootEnv,
    Offer,
    Outcome,
    PersistEnv,
    Phase,
    Reboot,
    SlotState,
)
from patchgate.domain.errors import InvalidInput, TransitionRefused

FACTORY = "f" * 64


def fresh(bootlimit: int = 3) -> BootEnv:
    return ab_state.fresh_env(version="1.0", sha256=FACTORY, size=10, bootlimit=bootlimit)


def offer(n: int = 1, security_version: int = 1) -> Offer:
    return Offer(str(n), f"2.{n}", f"{n:064x}", 20, security_version, f"fw/{n}")


def install(env: BootEnv, n: int = 1, security_version: int = 1) -> BootEnv:
    o = offer(n, security_version)
    env = ab_state.begin_download(env, o).env
    env = ab_state.image_written(env, o).env
    return ab_state.switch(env).env


def test_a_fresh_device_runs_slot_a_marked_good() -> None:
    env = fresh()
    assert (env.active_slot, env.booted_slot, env.installed_version) == ("a", "a", "1.0")
    assert ab_state.check_invariants(env) == []


def test_the_slot_being_written_is_marked_bad_before_the_first_byte() -> None:
    step = ab_state.begin_download(fresh(), offer())
    assert step.commands == (PersistEnv(step.env),)
    assert step.env.slots["b"].state is SlotState.BAD
    assert step.env.active_slot == "a"


def test_switching_persists_the_env_before_it_reboots() -> None:
    o = offer()
    env = ab_state.image_written(ab_state.begin_download(fresh(), o).env, o).env
    step = ab_state.switch(env)
    assert isinstance(step.commands[0], PersistEnv) and isinstance(step.commands[-1], Reboot)
    assert step.env.active_slot == "b" and step.env.upgrade_available
    assert step.env.slots["a"].state is SlotState.GOOD


def test_a_trial_boot_that_passes_its_health_check_is_committed() -> None:
    env = ab_state.boot(install(fresh())).env
    assert env.phase is Phase.TRIAL_BOOT and env.bootcount == 1
    env = ab_state.commit(env).env
    assert env.slots["b"].state is SlotState.GOOD and not env.upgrade_available
    assert env.report is not None and env.report.outcome is Outcome.SUCCESS
    assert ab_state.report_delivered(env, "1").env.phase is Phase.IDLE


def test_a_failed_health_check_reverts_to_the_known_good_slot() -> None:
    env = ab_state.boot(install(fresh())).env
    step = ab_state.revert(env, "health check failed")
    assert step.env.active_slot == "a" and step.env.slots["b"].state is SlotState.BAD
    assert step.env.slots["a"] == fresh().slots["a"]
    assert isinstance(step.commands[-1], Reboot)
    assert step.env.report is not None and step.env.report.outcome is Outcome.FAILURE


def test_the_bootloader_falls_back_once_bootcount_exceeds_bootlimit() -> None:
    env = install(fresh(bootlimit=2))
    booted = []
    for _ in range(3):
        env = ab_state.boot(env).env
        booted.append(env.booted_slot)
    assert booted == ["b", "b", "a"]
    assert env.phase is Phase.REVERTED and env.slots["b"].state is SlotState.BAD


def test_an_offer_below_the_security_floor_is_refused() -> None:
    env = dataclasses.replace(fresh(), security_floor=3)
    assert ab_state.admissible(env, 2) is not None
    with pytest.raises(TransitionRefused, match="security floor"):
        ab_state.begin_download(env, offer(security_version=2))


def test_the_floor_rises_only_to_the_running_images_security_version() -> None:
    env = ab_state.commit(ab_state.boot(install(fresh(), security_version=4)).env).env
    env = ab_state.report_delivered(env, "1").env
    assert ab_state.raise_floor(env, 9).env.security_floor == 4
    assert ab_state.raise_floor(ab_state.raise_floor(env, 3).env, 1).env.security_floor == 3


def test_the_floor_does_not_move_while_an_update_is_on_trial() -> None:
    with pytest.raises(TransitionRefused):
        ab_state.raise_floor(ab_state.boot(install(fresh())).env, 1)


def test_no_second_download_starts_while_one_is_under_way() -> None:
    env = ab_state.begin_download(fresh(), offer()).env
    with pytest.raises(TransitionRefused):
        ab_state.begin_download(env, offer(2))


def test_the_env_survives_a_round_trip_through_its_dict_form() -> None:
    env = ab_state.boot(install(fresh())).env
    assert BootEnv.from_dict(env.to_dict()) == env


def test_a_malformed_env_is_rejected() -> None:
    with pytest.raises(InvalidInput):
        BootEnv.from_dict({"slots": {}})


# -- properties ----------------------------------------------------------------------------

EVENTS = st.sampled_from(
    [
        "download",
        "written",
        "switch",
        "abort",
        "boot",
        "commit",
        "revert",
        "report",
        "floor",
        "power-cut",
    ]
)


def apply(env: BootEnv, event: str, n: int) -> BootEnv:
    """One event; a refused transition leaves the env as it was (as the agent does)."""
    o = offer(n, security_version=n % 4)
    try:
        if event == "download":
            return ab_state.begin_download(env, o).env
        if event == "written":
            return ab_state.image_written(
                env, dataclasses.replace(o, action_id=env.action_id or "")
            ).env
        if event == "switch":
            return ab_state.switch(env).env
        if event == "abort":
            return ab_state.abort_install(env, "aborted").env
        if event in ("boot", "power-cut"):
            return ab_state.boot(env).env
        if event == "commit":
            return ab_state.commit(env).env
        if event == "revert":
            return ab_state.revert(env, "unhealthy").env
        if event == "report":
            return ab_state.report_delivered(env, env.report.action_id if env.report else "").env
        if event == "floor":
            return ab_state.raise_floor(env, n).env
    except TransitionRefused:
        return env
    raise AssertionError(event)


@settings(max_examples=400, deadline=None)
@given(
    events=st.lists(st.tuples(EVENTS, st.integers(0, 9)), max_size=60),
    bootlimit=st.integers(1, 4),
)
def test_random_event_sequences_always_leave_a_good_bootable_slot(
    events: list[tuple[str, int]], bootlimit: int
) -> None:
    env = fresh(bootlimit)
    floor = 0
    for event, n in events:
        env = apply(env, event, n)
        assert ab_state.check_invariants(env) == [], (event, env)
        assert env.security_floor >= floor  # the floor never drops
        floor = env.security_floor
        # Whatever happens next, booting without a commit reaches a good slot in time.
        probe = env
        for _ in range(env.bootlimit + 1):
            probe = ab_state.boot(probe).env
        assert probe.slots[probe.booted_slot].state is SlotState.GOOD
        assert probe.slots[probe.booted_slot].security_version >= probe.security_floor


@settings(max_examples=200, deadline=None)
@given(events=st.lists(st.tuples(EVENTS, st.integers(0, 9)), max_size=40))
def test_a_good_slot_is_never_overwritten_while_it_is_the_fallback(
    events: list[tuple[str, int]],
) -> None:
    env = fresh()
    for event, n in events:
        before = env
        env = apply(env, event, n)
        if env.phase is Phase.DOWNLOADING and before.phase is not Phase.DOWNLOADING:
            # The slot about to be written is neither the running nor the fallback slot.
            assert env.inactive_slot != env.booted_slot
            assert env.slots[env.active_slot].state is SlotState.GOOD
