"""The bodies of DDI answers, field by field as hawkBit's ``hawkbit-ddi-api`` models shape
them (docs/ddi.md, "Resources")."""

from __future__ import annotations

from typing import Any

from patchgate.domain import actions as rules
from patchgate.services import ddi
from patchgate.services.device_ports import ArtifactView, ReleaseView

# patchgate offers a release as one software module of this type (hawkBit's default
# module type key for a device's system image).
MODULE_PART = "os"


def artifact_json(release: ReleaseView, artifact: ArtifactView, base: str) -> dict[str, Any]:
    """One ``DdiArtifact``. ``download-http``/``md5sum-http`` always; ``download`` and
    ``md5sum`` (hawkBit's HTTPS links) only when the links are HTTPS."""
    href = f"{base}/softwaremodules/{release.id}/artifacts/{artifact.filename}"
    links = {"download-http": {"href": href}, "md5sum-http": {"href": f"{href}.MD5SUM"}}
    if href.startswith("https://"):
        links = {"download": {"href": href}, "md5sum": {"href": f"{href}.MD5SUM"}, **links}
    return {
        "filename": artifact.filename,
        "hashes": {"sha1": artifact.sha1, "md5": artifact.md5, "sha256": artifact.sha256},
        "size": artifact.size,
        "_links": links,
    }


def _metadata(release: ReleaseView) -> list[dict[str, str]]:
    metadata = [
        {"key": "release_id", "value": str(release.id)},
        {"key": "release_type", "value": release.type},
    ]
    if len(release.artifacts) == 1:
        metadata.insert(0, {"key": "tuf_target", "value": release.artifacts[0].tuf_target})
    else:
        metadata[:0] = [
            {"key": f"tuf_target:{a.filename}", "value": a.tuf_target} for a in release.artifacts
        ]
    return metadata


def chunks_json(release: ReleaseView, base: str) -> list[dict[str, Any]]:
    """``deployment.chunks``: one chunk per software module (a release is one module, so
    its artifacts, an image and its signature say, arrive together)."""
    return [
        {
            "part": MODULE_PART,
            "version": release.version,
            "name": release.product,
            "metadata": _metadata(release),
            "artifacts": [artifact_json(release, a, base) for a in release.artifacts],
        }
    ]


def deployment_json(view: ddi.DeploymentView, base: str, key: str) -> dict[str, Any]:
    """``deploymentBase``/``confirmationBase``/``installedBase`` body."""
    deployment: dict[str, Any] = {
        "download": view.download,
        "update": view.update,
        "chunks": chunks_json(view.release, base),
    }
    if view.maintenance_window is not None:
        deployment["maintenanceWindow"] = view.maintenance_window
    body: dict[str, Any] = {"id": str(view.action.id), key: deployment}
    if view.history:
        status = rules.HAWKBIT_STATUS.get(rules.Status(view.action.status), "RUNNING")
        body["actionHistory"] = {"status": status, "messages": list(view.history)}
    return body


def auto_confirm_json(state: ddi.AutoConfirm, base: str) -> dict[str, Any]:
    auto: dict[str, Any] = {"active": state.active}
    if state.active:
        if state.initiator:
            auto["initiator"] = state.initiator
        if state.remark:
            auto["remark"] = state.remark
        if state.activated_at:
            auto["activatedAt"] = int(state.activated_at.timestamp() * 1000)
    links: dict[str, Any] = {}
    if state.active:
        links["deactivateAutoConfirm"] = {"href": f"{base}/confirmationBase/deactivateAutoConfirm"}
    else:
        links["activateAutoConfirm"] = {"href": f"{base}/confirmationBase/activateAutoConfirm"}
    if state.waiting_action_id is not None:
        key = rules.cache_key(
            state.waiting_action_id,
            rules.Status.WAITING_CONFIRMATION,
            state.waiting_release_id or 0,
        )
        links["confirmationBase"] = {
            "href": f"{base}/confirmationBase/{state.waiting_action_id}?c={key}"
        }
    return {"autoConfirm": auto, "_links": links}


def poll_json(state: rules.PollState, sleep: str, base: str) -> dict[str, Any]:
    links = {name: {"href": f"{base}/{rel}"} for name, rel in rules.poll_links(state).items()}
    return {"config": {"polling": {"sleep": sleep}}, "_links": links}
