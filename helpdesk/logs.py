"""Logging setup: one line per event; JSON lines when configured."""

from __future__ import annotations

import json
import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the listener process runs without pydantic (smtp_process.py)
    from helpdesk.config.settings import Settings

# passed as `extra=` by the pipeline and the outbox, so log lines can be searched by
# ticket or Message-ID without parsing the message text
EVENT_FIELDS = ("ticket", "message_id", "route")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in EVENT_FIELDS:
            value = getattr(record, key, None)
            if value:
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def setup(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log.json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log.level)
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # two INFO lines per scheduler pass ("Running job", "executed successfully"), every
    # minute: kept for those who ask for DEBUG; helpdesk.schedule.service logs what a pass did
    debug = root.level <= logging.DEBUG
    logging.getLogger("apscheduler").setLevel(logging.NOTSET if debug else logging.WARNING)
