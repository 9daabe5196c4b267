"""SQL for action-history retention (services/retention.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, delete, exists, or_, select
from sqlalchemy.orm import Session

from patchgate.adapters.db.models import Action, ActionEvent, Campaign, Device
from patchgate.services.retention_ports import ActionRetention, PrunableAction

# Campaigns whose actions may go once they are old: the finished ones. A halted campaign
# keeps its actions (the evidence of why it stopped) until it is completed or cancelled.
_FINISHED = ("completed", "cancelled")


class SqlActionRetention(ActionRetention):
    def __init__(self, session: Session) -> None:
        self.session = session

    def prunable(self, closed_before: datetime, limit: int) -> Sequence[PrunableAction]:
        campaign_done = exists().where(
            Campaign.id == Action.campaign_id,
            Campaign.state.in_(_FINISHED),
            Campaign.finished_at < closed_before,
        )
        # Both device columns are looked up by index (ix_devices_open_action and
        # ix_devices_installed_action), so each candidate costs two index probes.
        in_use = or_(
            exists().where(Device.open_action_id == Action.id),
            exists().where(Device.installed_action_id == Action.id),
        )
        query = (
            select(Action.id, Action.campaign_id, Action.release_id, Action.status)
            .where(
                Action.active.is_(False),
                Action.closed_at < closed_before,
                or_(Action.campaign_id.is_(None), campaign_done),
                ~in_use,
            )
            .order_by(Action.id)
            .limit(limit)
        )
        return [PrunableAction(*row) for row in self.session.execute(query).all()]

    def delete(self, action_ids: Sequence[int]) -> int:
        if not action_ids:
            return 0
        ids = list(action_ids)
        self.session.execute(delete(ActionEvent).where(ActionEvent.action_id.in_(ids)))
        result = self.session.execute(
            delete(Action).where(and_(Action.id.in_(ids), Action.active.is_(False)))
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
