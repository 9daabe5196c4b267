"""SQLAlchemy implementation of the revert plans' port (``services/revert_ports.py``)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from patchgate.adapters.db.models import Action, Device, RevertTarget
from patchgate.services import revert_ports as p

_CHUNK = 500


class SqlRevertRepository(p.RevertRepository):
    def __init__(self, session: Session) -> None:
        self.session = session

    def histories(self, device_ids: Collection[int]) -> Mapping[int, Sequence[p.RanAction]]:
        ids = sorted(set(device_ids))
        found: dict[int, list[p.RanAction]] = {i: [] for i in ids}
        for start in range(0, len(ids), _CHUNK):
            query = (
                select(
                    Action.device_id,
                    Action.id,
                    Action.release_id,
                    Action.campaign_id,
                    Action.from_version,
                    Action.status,
                    Action.active,
                )
                .where(Action.device_id.in_(ids[start : start + _CHUNK]))
                .order_by(Action.device_id, Action.id)
            )
            for r in self.session.execute(query):
                found[r.device_id].append(
                    p.RanAction(
                        r.id,
                        r.release_id,
                        r.campaign_id,
                        r.from_version,
                        succeeded=r.status == "finished",
                        active=bool(r.active),
                    )
                )
        return found

    def plans(self, campaign_ids: Collection[int]) -> Sequence[p.PlannedRevert]:
        if not campaign_ids:
            return ()
        query = (
            select(
                RevertTarget.campaign_id,
                RevertTarget.device_id,
                Device.controller_id,
                RevertTarget.release_id,
                RevertTarget.reason,
            )
            .join(Device, Device.id == RevertTarget.device_id)
            .where(RevertTarget.campaign_id.in_(list(campaign_ids)))
            .order_by(RevertTarget.campaign_id, RevertTarget.device_id)
        )
        return [p.PlannedRevert(*r) for r in self.session.execute(query)]

    def save(
        self,
        campaign_id: int,
        targets: Mapping[int, tuple[int | None, str | None]],
        now: datetime,
    ) -> None:
        ids = sorted(targets)
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            self.session.execute(
                delete(RevertTarget).where(
                    RevertTarget.campaign_id == campaign_id, RevertTarget.device_id.in_(chunk)
                )
            )
            self.session.execute(
                insert(RevertTarget),
                [
                    {
                        "campaign_id": campaign_id,
                        "device_id": d,
                        "release_id": targets[d][0],
                        "reason": _reason(targets[d][1]),
                        "planned_at": now,
                    }
                    for d in chunk
                ],
            )


def _reason(reason: str | None) -> str | None:
    return reason[:255] if reason else None


__all__ = ["SqlRevertRepository"]
