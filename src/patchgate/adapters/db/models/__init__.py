"""All table definitions. Importing this package registers every table on ``Base``."""

from patchgate.adapters.db.models.base import Base
from patchgate.adapters.db.models.core import (
    ApiToken,
    AuditCheckpointRow,
    AuditEntryRow,
    AuditHead,
    PolicyVersion,
    StateVersion,
    Tenant,
)
from patchgate.adapters.db.models.devices import (
    Action,
    ActionEvent,
    Device,
    DeviceGroup,
    HealthReport,
)
from patchgate.adapters.db.models.releases import Blob, Release, ReleaseArtifact, ReleaseFix

__all__ = [
    "Action",
    "ActionEvent",
    "ApiToken",
    "AuditCheckpointRow",
    "AuditEntryRow",
    "AuditHead",
    "Base",
    "Blob",
    "Device",
    "DeviceGroup",
    "HealthReport",
    "PolicyVersion",
    "Release",
    "ReleaseArtifact",
    "ReleaseFix",
    "StateVersion",
    "Tenant",
]
