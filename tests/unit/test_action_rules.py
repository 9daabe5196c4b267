"""The DDI action state rules (patchgate.domain.actions), pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patchgate.domain import actions as rules
from patchgate.domain.actions import Execution, Finished, Status

ACTIVE_OFFERED = [Status.OFFERED, Status.DOWNLOADING, Status.DOWNLOADED, Status.RUNNING]
RANK = {s: i for i, s in enumerate(ACTIVE_OFFERED)}


@given(
    st.sampled_from(ACTIVE_OFFERED),
    st.lists(st.tuples(st.sampled_from(list(Execution)), st.sampled_from(list(Finished)))),
)
def test_feedback_only_ever_moves_an_action_forward_until_it_closes(
    start: Status, messages: list[tuple[Execution, Finished]]
) -> None:
    status = start
    for execution, finished in messages:
        if rules.is_terminal(status):
            with pytest.raises(rules.ActionGone):
                rules.after_deployment_feedback(status, execution, finished)
            continue
        new = rules.after_deployment_feedback(status, execution, finished)
        if not rules.is_terminal(new):
            assert RANK[new] >= RANK[status]
        status = new


@pytest.mark.parametrize("closed", [Status.FINISHED, Status.ERROR, Status.CANCELED])
@pytest.mark.parametrize("execution", list(Execution))
def test_any_feedback_for_a_closed_action_is_gone(closed: Status, execution: Execution) -> None:
    with pytest.raises(rules.ActionGone):
        rules.after_deployment_feedback(closed, execution, Finished.SUCCESS)


def test_closed_maps_to_finished_or_error_as_hawkbit_does() -> None:
    assert rules.after_deployment_feedback("running", Execution.CLOSED, Finished.SUCCESS) is (
        Status.FINISHED
    )
    assert rules.after_deployment_feedback("running", Execution.CLOSED, Finished.NONE) is (
        Status.FINISHED
    )
    assert rules.after_deployment_feedback("offered", Execution.CLOSED, Finished.FAILURE) is (
        Status.ERROR
    )


def test_deployment_feedback_while_waiting_for_consent_is_refused() -> None:
    with pytest.raises(rules.ActionNotOffered):
        rules.after_deployment_feedback("waiting_confirmation", Execution.PROCEEDING, Finished.NONE)


def test_a_download_only_action_is_closed_as_downloaded_not_installed() -> None:
    new = rules.after_deployment_feedback(
        "downloading", Execution.DOWNLOADED, Finished.NONE, download_only=True
    )
    assert new is Status.DOWNLOADED
    assert rules.closes(new, download_only=True)
    assert rules.result_of(new) == "downloaded"
    assert not rules.closes(Status.DOWNLOADED, download_only=False)


@pytest.mark.parametrize("start", ACTIVE_OFFERED)
def test_canceled_on_the_deployment_channel_is_recorded_and_changes_nothing(
    start: Status,
) -> None:
    assert rules.after_deployment_feedback(start, Execution.CANCELED, Finished.NONE) is start


def test_canceled_on_the_cancel_channel_is_only_a_warning() -> None:
    assert rules.after_cancel_feedback("canceling", Execution.CANCELED, Finished.NONE) is (
        Status.CANCELING
    )


def test_cancelling_closes_an_unconfirmed_action_at_once_and_asks_the_device_otherwise() -> None:
    assert rules.request_cancel("waiting_confirmation") is Status.CANCELED
    assert rules.request_cancel("running") is Status.CANCELING
    with pytest.raises(rules.ActionGone):
        rules.request_cancel("finished")


def test_cancel_feedback_confirms_rejects_or_leaves_the_cancellation_pending() -> None:
    assert rules.after_cancel_feedback("canceling", Execution.CLOSED, Finished.SUCCESS) is (
        Status.CANCELED
    )
    assert rules.after_cancel_feedback("canceling", Execution.REJECTED, Finished.NONE) is (
        Status.RUNNING
    )
    assert rules.after_cancel_feedback("canceling", Execution.CLOSED, Finished.FAILURE) is (
        Status.RUNNING
    )
    assert rules.after_cancel_feedback("canceling", Execution.PROCEEDING, Finished.NONE) is (
        Status.CANCELING
    )
    assert rules.after_cancel_feedback("canceled", Execution.CLOSED, Finished.SUCCESS) is (
        Status.CANCELED
    )
    with pytest.raises(rules.ActionNotOffered):
        rules.after_cancel_feedback("running", Execution.CLOSED, Finished.SUCCESS)


def test_a_denied_confirmation_keeps_the_action_waiting() -> None:
    assert rules.after_confirmation("waiting_confirmation", False) is Status.WAITING_CONFIRMATION
    assert rules.after_confirmation("waiting_confirmation", True) is Status.OFFERED
    with pytest.raises(rules.ActionNotOffered):
        rules.after_confirmation("offered", True)


@given(st.integers(min_value=0, max_value=10**7))
def test_polling_sleep_is_hh_mm_ss_within_hawkbits_bounds(seconds: int) -> None:
    text = rules.polling_sleep(seconds)
    assert len(text) == 8 and text.count(":") == 2
    hours, minutes, secs = (int(x) for x in text.split(":"))
    assert hours < 24 and minutes < 60 and secs < 60
    total = hours * 3600 + minutes * 60 + secs
    assert total == min(max(seconds, 30), 23 * 3600 + 59 * 60 + 59)


def test_polling_sleep_of_a_day_or_more_is_capped_at_23_59_59() -> None:
    assert rules.polling_sleep(25 * 3600) == "23:59:59"
    assert rules.polling_sleep(86_400) == "23:59:59"
    assert rules.polling_sleep(5) == "00:00:30"


def test_the_sleep_is_shortened_before_a_maintenance_window_opens() -> None:
    now = datetime(2026, 3, 4, 12, tzinfo=UTC)
    # An hour to the window, three polls before it: every 20 minutes.
    assert rules.sleep_before_window(7200, now + timedelta(hours=1), now) == 1200
    # Never longer than the usual interval, never under the minimum.
    assert rules.sleep_before_window(300, now + timedelta(hours=1), now) == 300
    assert rules.sleep_before_window(300, now + timedelta(seconds=10), now) == 30
    # An open window or none: the usual interval.
    assert rules.sleep_before_window(7200, now - timedelta(minutes=1), now) == 7200
    assert rules.sleep_before_window(7200, None, now) == 7200


def test_action_history_keeps_the_devices_messages_newest_first() -> None:
    events = [
        ("deployment", ("installed",), None),
        ("server", ("cancellation requested",), None),
        ("deployment", ("step 2", "step 2b"), 7),
        ("deployment", ("step 1",), None),
    ]
    assert rules.history_messages(events, 100) == (
        "installed",
        "step 2",
        "step 2b",
        "Device reported status code: 7",
        "step 1",
    )
    assert rules.history_messages(events, 2) == ("installed", "step 2")


def test_the_maintenance_window_turns_update_into_skip_outside_it() -> None:
    now = datetime(2026, 3, 4, 12, tzinfo=UTC)
    hour = timedelta(hours=1)
    assert rules.window_state(None, None, now) is None
    assert rules.window_state(now - hour, now + hour, now) == "available"
    assert rules.window_state(now + hour, now + 2 * hour, now) == "unavailable"
    assert rules.effective_update("forced", "unavailable") == "skip"
    assert rules.effective_update("attempt", "available") == "attempt"


@given(st.integers(1, 2**40), st.sampled_from(list(Status)), st.integers(1, 2**40))
def test_the_cache_key_is_a_signed_32_bit_integer(
    action: int, status: Status, release: int
) -> None:
    key = rules.cache_key(action, status, release)
    assert -(2**31) <= key < 2**31


def test_poll_links_follow_the_open_action_state() -> None:
    def links(status: str | None, installed: int | None = None, config: bool = False) -> set[str]:
        state = rules.PollState(1 if status else None, status, 5, installed, config)
        return set(rules.poll_links(state))

    assert links("offered") == {"deploymentBase"}
    assert links("waiting_confirmation") == {"confirmationBase"}
    assert links("canceling") == {"cancelAction"}
    assert links(None, installed=3) == {"installedBase"}
    assert links(None, config=True) == {"configData"}
    assert links(None) == set()


def test_the_client_kind_comes_from_the_first_configured_group_else_detection() -> None:
    kinds = rules.parse_client_kinds("rauc=before-boot, swu=after-boot")
    assert rules.client_kind(["zz", "swu", "rauc"], kinds) is rules.ClientKind.BEFORE_BOOT
    assert rules.client_kind(["swu"], kinds) is rules.ClientKind.AFTER_BOOT
    assert rules.client_kind(["lab"], kinds) is rules.ClientKind.DETECT
    for bad in ("rauc", "=after-boot", "rauc=sometimes"):
        with pytest.raises(ValueError, match="group=kind"):
            rules.parse_client_kinds(bad)


def test_a_success_sent_in_the_install_session_is_detected_as_before_the_reboot() -> None:
    t = datetime(2026, 3, 4, 12, tzinfo=UTC)
    quick = [(t, "proceeding", "none"), (t + timedelta(seconds=3), "closed", "success")]
    after_reboot = [(t, "proceeding", "none"), (t + timedelta(minutes=2), "closed", "success")]
    bare = [(t, "closed", "success")]
    detect = rules.ClientKind.DETECT
    assert not rules.success_proves_boot(detect, quick, 1)
    assert rules.success_proves_boot(detect, after_reboot, 1)
    assert rules.success_proves_boot(detect, bare, 0)
    assert rules.success_proves_boot(rules.ClientKind.AFTER_BOOT, quick, 1)
    assert not rules.success_proves_boot(rules.ClientKind.BEFORE_BOOT, after_reboot, 1)
