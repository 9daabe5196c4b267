"""The fleet registry (docs/devices.md): ``commands`` change it, ``views`` read it, and
``rows`` checks what is to be provisioned. The names below are its public surface."""

from patchgate.services.device_ports import DEFAULT_TENANT
from patchgate.services.devices.commands import (
    Provisioned,
    add_device,
    create_gateway_token,
    import_devices,
    new_target_token,
    revoke_gateway_token,
    set_anonymous,
    tag_device,
)
from patchgate.services.devices.lifecycle import (
    Removed,
    RotatedToken,
    remove_device,
    rotate_token,
)
from patchgate.services.devices.rows import (
    DeviceRow,
    check_controller_id,
    check_groups,
    parse_csv,
)
from patchgate.services.devices.views import (
    DeviceDetail,
    DevicePage,
    device_detail,
    device_page,
    iter_devices,
    show_device,
)

__all__ = [
    "DEFAULT_TENANT",
    "DeviceDetail",
    "DevicePage",
    "DeviceRow",
    "Provisioned",
    "Removed",
    "RotatedToken",
    "add_device",
    "check_controller_id",
    "check_groups",
    "create_gateway_token",
    "device_detail",
    "device_page",
    "import_devices",
    "iter_devices",
    "new_target_token",
    "parse_csv",
    "remove_device",
    "revoke_gateway_token",
    "rotate_token",
    "set_anonymous",
    "show_device",
    "tag_device",
]
