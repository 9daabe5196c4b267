"""Structured logs: one JSON object per line on stderr, never a secret."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from patchgate.adapters.db.engine import unreachable

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as JSON with its ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class OutageAsWarning(logging.Filter):
    """A background loop that fails because the database is away (restarting, say) logs
    one warning line with the reason, not an error with a traceback each round: the loop
    retries by itself, and the outage ends on its own (docs/deploy.md, "When PostgreSQL
    restarts"). The same for SQLAlchemy's pool, which logs a connection the outage broke
    as it throws it away. Every other failure keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and unreachable(error):
            record.msg = f"{record.getMessage()}: {error}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def configure(level: str = "INFO") -> None:
    """Send patchgate's logs to stderr as JSON lines (idempotent)."""
    root = logging.getLogger("patchgate")
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(OutageAsWarning())
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    # The pool's own reports (a broken connection thrown away) in the same form.
    pool = logging.getLogger("sqlalchemy.pool")
    pool.addHandler(handler)
    pool.propagate = False
