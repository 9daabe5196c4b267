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

__all__ = [
    "ApiToken",
    "AuditCheckpointRow",
    "AuditEntryRow",
    "AuditHead",
    "Base",
    "PolicyVersion",
    "StateVersion",
    "Tenant",
]
