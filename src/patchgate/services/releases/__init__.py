"""Releases: signed, content-addressed artifacts (docs/releases.md).

- ``rules``: names, trust mode, what a new release must satisfy, ``require_installable``;
- ``commands``: use cases that change state (create, sign, withdraw, keys, floor);
- ``views``: read models (frozen dataclasses), rendered by the release presenter.

The names below are re-exported for the other areas (campaigns, vulnerabilities, setup)
that ask releases a question or create one.
"""

from patchgate.services.release_ports import ArtifactView, NativeCheck, ReleaseRecord, TargetSpec
from patchgate.services.releases.commands import (
    UNUSED_BLOB_AGE_SECONDS,
    ArtifactUpload,
    WithdrawResult,
    create_release,
    raise_floor,
    rotate_keys,
    sign_release,
    sign_targets,
    sweep_unused_blobs,
    withdraw_release,
)
from patchgate.services.releases.rules import (
    MAX_SBOM_BYTES,
    STATE_AWAITING,
    STATE_SIGNED,
    STATE_WITHDRAWN,
    UPDATE_TYPES,
    TrustMode,
    check_filename,
    require_installable,
    target_path,
    trust_mode,
    validate_sbom,
)
from patchgate.services.releases.views import (
    ReleaseDetail,
    ReleaseList,
    TrustView,
    downloadable,
    get_release,
    list_releases,
    release_detail,
    release_list,
    sbom_blob,
    security_floor,
    trust_status,
)

__all__ = [
    "MAX_SBOM_BYTES",
    "STATE_AWAITING",
    "STATE_SIGNED",
    "STATE_WITHDRAWN",
    "UNUSED_BLOB_AGE_SECONDS",
    "UPDATE_TYPES",
    "ArtifactUpload",
    "ArtifactView",
    "NativeCheck",
    "ReleaseDetail",
    "ReleaseList",
    "ReleaseRecord",
    "TargetSpec",
    "TrustMode",
    "TrustView",
    "WithdrawResult",
    "check_filename",
    "create_release",
    "downloadable",
    "get_release",
    "list_releases",
    "raise_floor",
    "release_detail",
    "release_list",
    "require_installable",
    "rotate_keys",
    "sbom_blob",
    "security_floor",
    "sign_release",
    "sign_targets",
    "sweep_unused_blobs",
    "target_path",
    "trust_mode",
    "trust_status",
    "validate_sbom",
    "withdraw_release",
]
