"""All table definitions. Importing this package registers every table on ``Base``."""

from patchgate.adapters.db.models.advisories import Advisory
from patchgate.adapters.db.models.base import Base
from patchgate.adapters.db.models.campaigns import (
    Campaign,
    CampaignExecution,
    CampaignFigure,
    RevertTarget,
)
from patchgate.adapters.db.models.core import (
    ApiToken,
    AuditCheckpointRow,
    AuditEntryRow,
    AuditHead,
    PolicyVersion,
    StateVersion,
    Tenant,
    TickClaim,
)
from patchgate.adapters.db.models.devices import (
    Action,
    ActionEvent,
    Device,
    DeviceGroup,
    HealthReport,
)
from patchgate.adapters.db.models.notices import NoticeDelivery, NoticeRow
from patchgate.adapters.db.models.releases import (
    Blob,
    ProductFloor,
    Release,
    ReleaseArtifact,
    ReleaseFix,
    TufMetadataRow,
)
from patchgate.adapters.db.models.sessions import ConsoleSessionRow
from patchgate.adapters.db.models.targeting import SavedFilter
from patchgate.adapters.db.models.vulnerabilities import (
    Art14Submission,
    RegisterVersion,
    Vulnerability,
    VulnerabilityProduct,
)

__all__ = [
    "Action",
    "ActionEvent",
    "Advisory",
    "ApiToken",
    "Art14Submission",
    "AuditCheckpointRow",
    "AuditEntryRow",
    "AuditHead",
    "Base",
    "Blob",
    "Campaign",
    "CampaignExecution",
    "CampaignFigure",
    "ConsoleSessionRow",
    "Device",
    "DeviceGroup",
    "HealthReport",
    "NoticeDelivery",
    "NoticeRow",
    "PolicyVersion",
    "ProductFloor",
    "RegisterVersion",
    "Release",
    "ReleaseArtifact",
    "ReleaseFix",
    "RevertTarget",
    "SavedFilter",
    "StateVersion",
    "Tenant",
    "TickClaim",
    "TufMetadataRow",
    "Vulnerability",
    "VulnerabilityProduct",
]
