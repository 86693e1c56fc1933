"""What the running daemon is doing, for `helpdesk status` and health checks.

The daemon writes a small JSON snapshot every few seconds (atomically); the
status command reads it and adds what the database knows. A snapshot older than
a minute means the daemon is not running (or is stuck), and says so.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, is_dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import select

from helpdesk import clock
from helpdesk.spool import Spool
from helpdesk.store.db import session_scope
from helpdesk.store.models import Outbox, Quarantine

STALE_AFTER_S = 60


def snapshot_path(data_dir: Path) -> Path:
    return data_dir / "status.json"


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def write_snapshot(data_dir: Path, data: dict[str, Any]) -> None:
    path = snapshot_path(data_dir)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(_plain({**data, "written_at": clock.now()}), indent=2))
    os.replace(tmp, path)


def read_snapshot(data_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(snapshot_path(data_dir).read_text())
    except (FileNotFoundError, ValueError):
        return None
    written = datetime.fromisoformat(data["written_at"])
    data["age_s"] = round((clock.now() - written).total_seconds(), 1)
    data["running"] = data["age_s"] < STALE_AFTER_S
    return data


def spool_figures(spool: Spool | None) -> dict[str, int]:
    """Mails waiting in the spool and entries set aside, read from disk as they are now;
    None: there is no spool yet (nothing ever arrived)."""
    if spool is None:
        return {"waiting": 0, "set_aside": 0}
    return {"waiting": spool.waiting(), "set_aside": len(spool.bad_entries())}


def database_figures(engine: Engine) -> dict[str, Any]:
    with session_scope(engine) as session:
        by_status = dict(session.exec(
            select(Outbox.status, func.count()).group_by(Outbox.status)).all())
        held = session.exec(select(func.count()).select_from(Quarantine)
                            .where(Quarantine.status == "held")).one()
    return {"outbox": {k: int(v) for k, v in by_status.items()}, "quarantined": int(held)}
