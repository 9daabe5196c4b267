"""The simulated device is the agent's A/B state machine: memoised transitions give the very
envs ``ab_state`` gives, and power cut at any point of an install never bricks a device."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patchgate.domain import ab_state
from patchgate.domain.ab_state import Phase, SlotState
from patchgate.sim.devices import CUT_POINTS, EnvTable, Timing, abort, run_install

OLD = ab_state.Offer("revert", "1.0", "0" * 64, 1, 1)
NEW = ab_state.Offer("rollout", "1.1", "1" * 64, 1, 2)


def table_with_device() -> tuple[EnvTable, int]:
    table = EnvTable()
    env = table.add(ab_state.fresh_env(version="1.0", sha256="0" * 64, size=1, security_version=1))
    table.register_offer(NEW)
    table.register_offer(OLD)
    return table, env


def install(
    table: EnvTable, env: int, key: str, *, boots: bool, cut: Phase | None
) -> tuple[int, str, bool]:
    env = table.apply(env, "begin_download", key)
    result = run_install(table, env, key, image_boots=boots, cut=cut, outage=10.0, timing=Timing())
    return result.env, result.outcome, result.sound


def test_memoised_transitions_return_the_envs_the_state_machine_computes() -> None:
    table, env = table_with_device()
    downloading = table.apply(env, "begin_download", "rollout")
    direct = ab_state.begin_download(table.env(env), NEW).env
    assert table.env(downloading) == direct
    assert table.apply(env, "begin_download", "rollout") == downloading
    written = table.apply(downloading, "image_written", "rollout")
    assert table.env(written) == ab_state.image_written(direct, NEW).env


def test_a_healthy_image_is_committed_and_the_device_runs_it() -> None:
    table, env = table_with_device()
    final, outcome, sound = install(table, env, "rollout", boots=True, cut=None)
    assert (outcome, sound) == ("success", True)
    assert table.env(final).installed_version == "1.1"
    assert table.env(final).phase is Phase.IDLE
    assert table.env(final).slots["a"].state is SlotState.GOOD


def test_an_image_that_does_not_boot_falls_back_to_the_known_good_slot() -> None:
    table, env = table_with_device()
    final, outcome, sound = install(table, env, "rollout", boots=False, cut=None)
    assert (outcome, sound) == ("reverted", True)
    after = table.env(final)
    assert after.installed_version == "1.0"
    assert after.failed_trials == 1
    assert not ab_state.check_invariants(after)


def test_a_cancelled_download_keeps_the_running_slot() -> None:
    table, env = table_with_device()
    downloading = table.apply(env, "begin_download", "rollout")
    final = table.env(abort(table, downloading, "cancelled by server"))
    assert final.installed_version == "1.0"
    assert final.phase is Phase.IDLE


@pytest.mark.parametrize("cut", CUT_POINTS)
@pytest.mark.parametrize("boots", [True, False])
def test_power_cut_at_any_point_of_an_install_never_bricks_the_device(
    cut: Phase, boots: bool
) -> None:
    table, env = table_with_device()
    final, outcome, sound = install(table, env, "rollout", boots=boots, cut=cut)
    assert sound
    assert not ab_state.check_invariants(table.env(final))
    expected = "1.1" if boots else "1.0"
    assert table.env(final).installed_version == expected
    assert outcome == ("success" if boots else "reverted")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([None, *CUT_POINTS]), st.booleans(), st.booleans()),
        min_size=1,
        max_size=6,
    )
)
def test_any_sequence_of_installs_and_reverts_with_power_cuts_leaves_a_bootable_device(
    steps: list[tuple[Phase | None, bool, bool]],
) -> None:
    table, env = table_with_device()
    for cut, boots, towards_new in steps:
        key = "rollout" if towards_new else "revert"
        if table.env(env).installed_version == table.offer(key).version:
            continue
        env, _, sound = install(table, env, key, boots=boots, cut=cut)
        assert sound
        assert not ab_state.check_invariants(table.env(env))
        assert table.env(env).installed_version in ("1.0", "1.1")
