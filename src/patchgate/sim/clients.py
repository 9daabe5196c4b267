"""DDI client kinds in the simulated fleet (docs/campaigns.md "What counts as success").

A device's client either reports ``closed``/``success`` once the new release booted healthy
(the patchgate agent, SWUpdate's suricatta) or as soon as the image is written, before the
reboot (rauc-hawkbit-updater, whose devices the fleet model puts in the group ``rauc``).
The server decides which from the configured kind of the device's group or, unconfigured,
from the feedback's timing; the simulator asks the same domain rule
(:func:`~patchgate.domain.actions.client_kind`,
:func:`~patchgate.domain.actions.success_proves_boot`) with the reports its device sent,
so a success from a before-boot client counts only once the device is seen again on the
new version within the confirmation window.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final

from patchgate.domain import actions as action_rules
from patchgate.domain import executions as ex
from patchgate.domain.actions import ClientKind

# The group of devices whose client reports success before the reboot.
BEFORE_BOOT_GROUP: Final = "rauc"
CLIENT_KIND_MODES: Final = ("detect", "configured")

_PROGRESS: Final = action_rules.Execution.PROCEEDING.value
_CLOSED: Final = action_rules.Execution.CLOSED.value
_NONE: Final = action_rules.Finished.NONE.value
_SUCCESS: Final = action_rules.Finished.SUCCESS.value


def configured_kinds(mode: str) -> Mapping[str, ClientKind]:
    """The server's client-kind configuration (``PATCHGATE_CLIENT_KINDS``) in a scenario:
    ``configured`` names the ``rauc`` group before-boot, ``detect`` configures nothing."""
    if mode == "configured":
        return {BEFORE_BOOT_GROUP: ClientKind.BEFORE_BOOT}
    return {}


def success_report(kind: ClientKind, *, progress_at: datetime, success_at: datetime) -> ex.Event:
    """The execution event of a ``closed``/``success`` report sent at ``success_at`` after
    the device's last progress report at ``progress_at``: confirmed (a healthy boot) or
    not, by the server's rule."""
    reports = ((progress_at, _PROGRESS, _NONE), (success_at, _CLOSED, _SUCCESS))
    confirmed = action_rules.success_proves_boot(kind, reports, 1)
    return ex.Event(ex.SUCCESS_REPORTED, success_at, confirmed=confirmed)
