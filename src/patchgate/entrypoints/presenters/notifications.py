"""Notices and their deliveries as JSON (API and ``notify list --json``) and as text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from patchgate.domain.clock import rfc3339
from patchgate.services.notice_ports import NoticeView


def notice_json(n: NoticeView) -> dict[str, Any]:
    return {
        "id": n.id,
        "key": n.key,
        "kind": n.kind,
        "subject": n.subject,
        "body": n.body,
        "link": n.link,
        "at": rfc3339(n.at),
        "created_at": rfc3339(n.created_at),
        "deliveries": [
            {
                "channel": d.channel,
                "target": d.target,
                "state": d.state,
                "attempts": d.attempts,
                "next_attempt_at": rfc3339(d.next_attempt_at),
                "last_error": d.last_error,
                "sent_at": rfc3339(d.sent_at),
            }
            for d in n.deliveries
        ],
    }


def notices_json(notices: Sequence[NoticeView]) -> dict[str, Any]:
    return {
        "notices": [notice_json(n) for n in notices],
        "next_before_id": notices[-1].id if notices else None,
    }


def _delivery_line(n: NoticeView) -> str:
    if not n.deliveries:
        return "no channel configured"
    sent = sum(1 for d in n.deliveries if d.state == "sent")
    line = f"{sent}/{len(n.deliveries)} sent"
    waiting = [d for d in n.deliveries if d.state != "sent"]
    if waiting:
        first = waiting[0]
        line += f"; {first.target}: {first.last_error or 'not tried yet'}"
    return line


def notices_text(notices: Sequence[NoticeView]) -> str:
    if not notices:
        return "no notices"
    rows = [(rfc3339(n.created_at) or "", n.subject, _delivery_line(n)) for n in notices]
    width = max(len(r[0]) for r in rows)
    return "\n".join(
        f"{when:<{width}}  {subject}\n{'':<{width}}  {state}" for when, subject, state in rows
    )
