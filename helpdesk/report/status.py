"""What the running daemon is doing, for `helpdesk status` and health checks.

The daemon writes a small JSON snapshot every few seconds (atomically); the
status command reads it and adds what the database knows, and whether the rules
files on disk load. A snapshot older than a minute means the daemon is not
running (or is stuck), and says so. `render` is the table a person reads,
`attention` the reasons `helpdesk status` exits 1.
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
from helpdesk.config.settings import Settings
from helpdesk.spool import Spool
from helpdesk.store.api_models import HookDelivery
from helpdesk.store.db import session_scope
from helpdesk.store.models import Outbox, Quarantine
from helpdesk.throughput import empty_in

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


def with_backlog(spool: dict[str, Any], snapshot: dict[str, Any] | None) -> dict[str, Any]:
    """The spool figures counted now, plus how fast the running daemon drains it and when
    it will be empty at that rate (None: mail waits and nothing drains). Without a running
    daemon there is no rate to tell."""
    if not _running(snapshot):
        return spool
    rate = float((snapshot or {}).get("spool", {}).get("drain_per_s", 0.0))
    eta = empty_in(spool["waiting"], rate)
    return {**spool, "drain_per_s": rate, "empty_in_s": None if eta is None else round(eta)}


def _spool_detail(spool: dict[str, Any]) -> str:
    detail = f"{spool['waiting']} waiting, {spool['set_aside']} set aside"
    if "drain_per_s" not in spool:
        return detail
    detail += f", draining {spool['drain_per_s']:.1f}/s over the last minute"
    if spool["waiting"]:
        eta = spool["empty_in_s"]
        detail += (", not draining" if eta is None else f", empty in about {_span(eta)}")
    return detail


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{max(1, round(seconds))} s"
    if seconds < 7200:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def database_figures(engine: Engine) -> dict[str, Any]:
    with session_scope(engine) as session:
        by_status = dict(session.exec(
            select(Outbox.status, func.count()).group_by(Outbox.status)).all())
        held = session.exec(select(func.count()).select_from(Quarantine)
                            .where(Quarantine.status == "held")).one()
        hooks = dict(session.exec(select(HookDelivery.status, func.count())
                                  .group_by(HookDelivery.status)).all())
    return {"outbox": {k: int(v) for k, v in by_status.items()}, "quarantined": int(held),
            "webhooks": {k: int(v) for k, v in hooks.items()}}


def rules_figures(settings: Settings, snapshot: dict[str, Any] | None) -> dict[str, Any]:
    """Whether the rules files on disk load (if not, the next start fails) and whether the
    running daemon refused its last reload (it then keeps the previous rules)."""
    from helpdesk.errors import RuleError
    from helpdesk.rules.context import load_from_settings

    try:
        load_from_settings(settings)
        error = None
    except RuleError as err:
        error = str(err)
    refused = (snapshot or {}).get("rules_error") if _running(snapshot) else None
    return {"ok": error is None and refused is None, "error": error, "daemon_error": refused}


def _running(snapshot: dict[str, Any] | None) -> bool:
    return bool(snapshot and snapshot["running"])


def attention(data: dict[str, Any]) -> list[str]:
    """What needs the admin, in words; empty when all is well (`helpdesk status` exits 0)."""
    daemon = data["daemon"]
    found = []
    if not daemon:
        found.append("daemon: no status written yet (not running?)")
    elif not daemon["running"]:
        found.append(f"daemon: not running (last seen {daemon['age_s']}s ago)")
    for box in daemon.get("imap", []) if _running(daemon) else []:
        if box.get("stalled_since") or not box.get("connected"):
            found.append(f"imap {box['name']}: {_imap_state(box)}")
    rules = data["rules"]
    if rules["error"]:
        found.append("rules: the files on disk are refused (a running daemon keeps its "
                     "previous rules; a restart would fail)")
    elif rules["daemon_error"]:
        found.append("rules: the daemon still runs the previous rules (it refused an earlier "
                     "edit); they load on the next change or SIGHUP")
    # a database that is away, or on another schema version, needs the admin too
    if "error" in data["database"]:
        found.append(f"database: {data['database']['error']}")
    return found


def _imap_state(box: dict[str, Any]) -> str:
    if box.get("stalled_since"):
        return f"STALLED since {box['stalled_since']}"
    return "ok" if box.get("connected") else "not connected"


def _daemon_rows(daemon: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    if not daemon:
        return [("daemon", "UNKNOWN", "no status written yet (not running?)")]
    if not daemon["running"]:
        return [("daemon", "NOT RUNNING", f"last seen {daemon['age_s']}s ago, "
                 f"pid {daemon['pid']}")]
    smtp = daemon["smtp"]
    rows = [("daemon", "running", f"pid {daemon['pid']}"),
            ("smtp", "listening" if smtp["listening"] else "off",
             f"port {smtp['port']}" if smtp["listening"] else "")]
    for box in daemon["imap"]:
        detail = (f"state {box['state']}, last contact {box['last_contact'] or 'never'}, "
                  f"spooled {box['spooled']}")
        if box["last_error"]:
            detail += f", last error: {box['last_error']}"
        rows.append((f"imap {box['name']}", _imap_state(box).split(" since ")[0], detail))
    return rows


def _rules_row(rules: dict[str, Any]) -> tuple[str, str, str]:
    if rules["error"]:
        return ("rules", "REFUSED", "a restart would fail; the errors are below")
    if rules["daemon_error"]:
        return ("rules", "NOT LOADED", "valid on disk; the daemon runs the previous rules "
                "until the next change or SIGHUP")
    return ("rules", "ok", "")


def _database_rows(db_info: dict[str, Any]) -> list[tuple[str, str, str]]:
    if "error" in db_info:
        return [("database", "ERROR", db_info["error"])]
    outbox = db_info["outbox"]
    counts = ", ".join(f"{n} {status}" for status, n in sorted(outbox.items())) or "empty"
    # lower case: worth a look, but not what makes `helpdesk status` exit 1
    dead = "; `helpdesk outbox list --status dead`" if outbox.get("dead") else ""
    held = "; `helpdesk quarantine list`" if db_info["quarantined"] else ""
    rows = [("database", "ok", ""),
            ("outbox", "dead mail" if outbox.get("dead") else "ok", counts + dead),
            ("quarantine", "held" if db_info["quarantined"] else "ok",
             f"{db_info['quarantined']} held{held}")]
    hooks = db_info.get("webhooks") or {}
    if hooks:  # only where webhooks are in use
        given_up = "; `helpdesk api hooks log --status dead`" if hooks.get("dead") else ""
        rows.append(("webhooks", "given up" if hooks.get("dead") else "ok",
                     ", ".join(f"{n} {status}" for status, n in sorted(hooks.items()))
                     + given_up))
    return rows


def _one_line(text: str) -> str:
    """A driver's multi-line error as one table cell."""
    return " ".join(text.split())


def render(data: dict[str, Any]) -> str:
    """`helpdesk status` for a person: one aligned row per part (a state in capitals is
    what makes the command exit 1), then the rules' errors and what needs attention."""
    spool = data["spool"]
    rows = [*_daemon_rows(data["daemon"]), _rules_row(data["rules"]),
            # counted now, not from the snapshot: mail waits there whether the daemon runs
            ("spool", "set aside" if spool["set_aside"] else "ok",
             _spool_detail(spool)),
            *_database_rows(data["database"])]
    rows.insert(0, ("PART", "STATE", "DETAIL"))
    rows = [(part, state, _one_line(detail)) for part, state, detail in rows]
    widths = [max(len(row[i]) for row in rows) for i in (0, 1)]
    lines = [f"{part:<{widths[0]}}  {state:<{widths[1]}}  {detail}".rstrip()
             for part, state, detail in rows]
    error = data["rules"]["error"] or data["rules"]["daemon_error"]
    if error:
        lines += ["", "rules refused:" if data["rules"]["error"] else
                  "rules refused earlier (now fixed on disk):"]
        lines += ["  " + line for line in error.splitlines()]
    found = attention(data)
    lines += ["", "needs attention:", *("  " + _one_line(f) for f in found)] if found else []
    return "\n".join(lines)
