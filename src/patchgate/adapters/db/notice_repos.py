"""The notice outbox on SQLAlchemy (``services.notice_ports.NoticeOutbox``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from patchgate.adapters.db.models import NoticeDelivery, NoticeRow
from patchgate.domain.clock import as_utc
from patchgate.domain.notices import Notice
from patchgate.services.notice_ports import (
    DeliveryView,
    NewDelivery,
    NoticeOutbox,
    NoticeView,
    PendingDelivery,
)

PENDING = "pending"
SENT = "sent"


def _utc(value: datetime | None) -> datetime | None:
    return as_utc(value) if value is not None else None


class SqlNoticeOutbox(NoticeOutbox):
    def __init__(self, session: Session) -> None:
        self.session = session

    def known(self, keys: Sequence[str]) -> set[str]:
        if not keys:
            return set()
        return set(self.session.scalars(select(NoticeRow.key).where(NoticeRow.key.in_(keys))))

    def add(self, notice: Notice, deliveries: Sequence[NewDelivery], now: datetime) -> bool:
        # A savepoint: another process may store the same key at the same moment; its row
        # wins and this one is dropped without undoing the rest of the transaction.
        try:
            with self.session.begin_nested():
                row = NoticeRow(
                    key=notice.key,
                    kind=notice.kind.value,
                    subject=notice.subject,
                    body=notice.body,
                    link=notice.link,
                    payload=dict(notice.facts),
                    at=notice.at,
                    created_at=now,
                )
                self.session.add(row)
                self.session.flush()
                for d in deliveries:
                    self.session.add(
                        NoticeDelivery(
                            notice_id=row.id,
                            channel=d.channel,
                            target=d.target,
                            state=PENDING,
                            attempts=0,
                            next_attempt_at=now,
                        )
                    )
                self.session.flush()
        except IntegrityError:
            return False
        return True

    def claim_due(self, now: datetime, until: datetime, limit: int) -> list[PendingDelivery]:
        rows = self.session.execute(
            select(NoticeDelivery, NoticeRow)
            .join(NoticeRow, NoticeRow.id == NoticeDelivery.notice_id)
            .where(
                NoticeDelivery.state == PENDING,
                NoticeDelivery.next_attempt_at <= now,
                or_(NoticeDelivery.claimed_until.is_(None), NoticeDelivery.claimed_until < now),
            )
            .order_by(NoticeDelivery.id)
            .limit(limit)
        ).all()
        claimed: list[PendingDelivery] = []
        for delivery, notice in rows:
            # Compare-and-set on the claim: of two processes reading the same row, one wins.
            result = self.session.execute(
                update(NoticeDelivery)
                .where(
                    NoticeDelivery.id == delivery.id,
                    NoticeDelivery.state == PENDING,
                    or_(
                        NoticeDelivery.claimed_until.is_(None),
                        NoticeDelivery.claimed_until < now,
                    ),
                )
                .values(claimed_until=until)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount:  # type: ignore[attr-defined]  # CursorResult has it
                claimed.append(
                    PendingDelivery(
                        id=delivery.id,
                        channel=delivery.channel,
                        target=delivery.target,
                        attempts=delivery.attempts,
                        key=notice.key,
                        kind=notice.kind,
                        subject=notice.subject,
                        body=notice.body,
                        link=notice.link,
                        at=as_utc(notice.at),
                        facts=notice.payload,
                    )
                )
        return claimed

    def sent(self, delivery_id: int, now: datetime) -> None:
        self.session.execute(
            update(NoticeDelivery)
            .where(NoticeDelivery.id == delivery_id)
            .values(
                state=SENT,
                sent_at=now,
                attempts=NoticeDelivery.attempts + 1,
                claimed_until=None,
                last_error=None,
            )
            .execution_options(synchronize_session=False)
        )

    def failed(self, delivery_id: int, error: str, retry_at: datetime) -> None:
        self.session.execute(
            update(NoticeDelivery)
            .where(NoticeDelivery.id == delivery_id)
            .values(
                attempts=NoticeDelivery.attempts + 1,
                next_attempt_at=retry_at,
                claimed_until=None,
                last_error=error[:2000],
            )
            .execution_options(synchronize_session=False)
        )

    def delivered(self, kind: str) -> list[Mapping[str, Any]]:
        reached = (
            select(NoticeDelivery.notice_id)
            .where(NoticeDelivery.notice_id == NoticeRow.id, NoticeDelivery.state == SENT)
            .exists()
        )
        return [
            dict(payload)
            for payload in self.session.scalars(
                select(NoticeRow.payload).where(NoticeRow.kind == kind, reached)
            )
        ]

    def page(self, *, limit: int, before_id: int | None) -> list[NoticeView]:
        query = select(NoticeRow).order_by(NoticeRow.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(NoticeRow.id < before_id)
        notices = list(self.session.scalars(query))
        by_notice: dict[int, list[DeliveryView]] = {}
        if notices:
            for d in self.session.scalars(
                select(NoticeDelivery)
                .where(NoticeDelivery.notice_id.in_([n.id for n in notices]))
                .order_by(NoticeDelivery.id)
            ):
                by_notice.setdefault(d.notice_id, []).append(
                    DeliveryView(
                        channel=d.channel,
                        target=d.target,
                        state=d.state,
                        attempts=d.attempts,
                        next_attempt_at=_utc(d.next_attempt_at) if d.state == PENDING else None,
                        last_error=d.last_error,
                        sent_at=_utc(d.sent_at),
                    )
                )
        return [
            NoticeView(
                id=n.id,
                key=n.key,
                kind=n.kind,
                subject=n.subject,
                body=n.body,
                link=n.link,
                at=as_utc(n.at),
                created_at=as_utc(n.created_at),
                deliveries=tuple(by_notice.get(n.id, ())),
            )
            for n in notices
        ]
