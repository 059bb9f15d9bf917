"""Structured JSON logging, one object per line on stderr.

Exception *messages* are never logged, only their type and where they were raised: libraries such as pydantic
echo the offending input in their messages, and that input can be patient data. Payloads are never logged.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime

# FastStream passes these as `extra`; they name where a message came from, never what it said.
_CONTEXT_FIELDS = ("topic", "group_id", "message_id", "partition", "offset", "service", "hospital", "reason", "event")


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in _CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value not in (None, ""):
                entry[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, _, tb = record.exc_info
            entry["exc_type"] = exc_type.__name__
            entry["exc_where"] = [f"{f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(tb)[-5:]]
        return json.dumps(entry, default=str)


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(service: str) -> logging.Logger:
    return logging.getLogger(f"aimass.{service}")
