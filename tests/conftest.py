"""Fixtures: a fresh config and database per test (SQLite and PostgreSQL), a relay sink,
and the daemon running for real on loopback."""

from __future__ import annotations

import os
import tomllib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpdesk import clock
from helpdesk.config import settings as config
from helpdesk.config.imap import ImapSection
from helpdesk.config.settings import Settings
from helpdesk.ingest.imap import ImapPoller
from helpdesk.spool import Spool
from tests.api_helpers import Receiver
from tests.browser import page  # noqa: F401  (fixture: a real browser's page)
from tests.dovecot import Account, Dovecot
from tests.helpers import DaemonThread, RelaySink, free_port
from tests.oauth import TokenServer
from tests.web_helpers import make_desk  # noqa: F401  (fixture: a daemon with the web desk)

PG_DSN = os.environ.get("HELPDESK_TEST_PG", "host=127.0.0.1 port=5432 user=postgres")


def _pg_admin():  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(f"{PG_DSN} dbname=postgres", autocommit=True, connect_timeout=3)


def postgres_available() -> str:
    """'' when PostgreSQL answers, else why not."""
    try:
        with _pg_admin():
            return ""
    except Exception as err:
        return f"PostgreSQL not reachable at {PG_DSN}: {err}".strip()


def need_server(missing: str | None) -> None:
    """A test that needs a real server (PostgreSQL, Dovecot, Postfix, systemd-analyze):
    skipped with the reason on a developer's machine, a failure under CI=true, where
    scripts/test has installed everything and a skip would hide a broken setup."""
    if not missing:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {missing}")
    pytest.skip(missing)


def require_postgres() -> None:
    why = postgres_available()
    need_server(f"{why} (start it, or these tests stay skipped)" if why else None)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL database of its own, dropped afterwards."""
    require_postgres()
    name = f"helpdesk_test_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    host = dict(p.split("=", 1) for p in PG_DSN.split())
    yield (f"postgresql+psycopg://{host.get('user', 'postgres')}@{host.get('host', '127.0.0.1')}:"
           f"{host.get('port', '5432')}/{name}")
    with _pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'helpdesk.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'data' / 'helpdesk.db'}"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in value.items()) + " }"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_toml(path: Path, data: dict[str, Any]) -> None:
    lines: list[str] = []

    def section(prefix: str, table: dict[str, Any]) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict)
                   and not (isinstance(v, list) and v and isinstance(v[0], dict))}
        if prefix:
            lines.append(f"[{prefix}]")
        lines.extend(f'"{k}" = {_toml_value(v)}' if " " in k else f"{k} = {_toml_value(v)}"
                     for k, v in scalars.items())
        for k, v in table.items():
            if isinstance(v, dict):
                section(f"{prefix}.{k}" if prefix else k, v)
            elif isinstance(v, list) and v and isinstance(v[0], dict):
                for item in v:
                    lines.append(f"[[{prefix + '.' if prefix else ''}{k}]]")
                    lines.extend(f"{ik} = {_toml_value(iv)}" for ik, iv in item.items())

    section("", data)
    path.write_text("\n".join(lines) + "\n")
    tomllib.loads(path.read_text())  # the writer must produce valid TOML


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


MakeSettings = Callable[..., Settings]


@pytest.fixture
def make_settings(tmp_path: Path, database_url: str) -> MakeSettings:
    """A config file in tmp_path with overrides; returns the loaded Settings."""
    counter = {"n": 0}

    def make(overrides: dict[str, Any] | None = None, *, name: str = "helpdesk") -> Settings:
        counter["n"] += 1
        base = {
            "helpdesk": {
                "name": "Example Helpdesk",
                "address": "support@example.test",
                "domains": ["example.test"],
                "data_dir": str(tmp_path / "data"),
                "database_url": database_url,
                "secret": "test-secret",
            },
            "smtp": {"host": "127.0.0.1", "port": 0},
            # many daemons per run: never a fixed port
            "http": {"listen": "127.0.0.1:0", "public": "127.0.0.1:0"},
            "outgoing": {"backoff_base": 0.2, "backoff_max": 1.0, "lease": 2.0},
            "queue": {"support": {"team": "support"},
                      "billing": {"team": "support", "address": "billing@example.test"}},
        }
        data = _merge(base, overrides or {})
        cfg_dir = tmp_path / "config"
        cfg_dir.mkdir(exist_ok=True)
        path = cfg_dir / f"{name}.toml"
        write_toml(path, data)
        return config.load(path)

    return make


@pytest.fixture
def relay() -> Iterator[RelaySink]:
    sink = RelaySink().start()
    yield sink
    sink.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback (tests/api_helpers.Receiver)."""
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def desk_overrides() -> dict[str, Any]:
    """Config for `desk` beyond the relay; a test module overrides this fixture."""
    return {}


@pytest.fixture
def desk_settings(make_settings: MakeSettings, relay: RelaySink,
                  tmp_path: Path) -> Callable[..., Settings]:
    """Factory: desk_settings(agents=..., rules=..., **config) -> the Settings of an
    agents' desk: agents.toml (tests/agent_desk.py's unless given), rules.toml when
    given, mail going out through `relay`, and the config overrides."""
    from tests.agent_desk import AGENTS, relay_overrides, write_agents

    def make(agents: str = AGENTS, rules: str | None = None, **extra: Any) -> Settings:
        write_agents(tmp_path, agents)
        if rules is not None:
            (tmp_path / "config" / "rules.toml").write_text(rules)
        return make_settings(relay_overrides(relay, **extra))

    return make


@pytest.fixture
def desk(desk_settings: Callable[..., Settings], start_daemon: Callable[..., DaemonThread],
         desk_overrides: dict[str, Any],
         request: pytest.FixtureRequest) -> tuple[Settings, DaemonThread]:
    """A running daemon with the agents of tests/agent_desk.py, mailing through `relay`;
    `pytest.mark.parametrize("desk", [{...config...}], indirect=True)` adds config."""
    settings = desk_settings(**{**desk_overrides, **getattr(request, "param", {})})
    return settings, start_daemon(settings)


@pytest.fixture
def settings_with_relay(make_settings: MakeSettings, relay: RelaySink) -> Settings:
    return make_settings({"outgoing": {"relay_host": "127.0.0.1", "relay_port": relay.port}})


@pytest.fixture
def start_daemon() -> Iterator[Callable[..., DaemonThread]]:
    started: list[DaemonThread] = []

    def start(settings: Settings, **kwargs: Any) -> DaemonThread:
        d = DaemonThread(settings, **kwargs).start()
        started.append(d)
        return d

    yield start
    for d in reversed(started):
        d.stop()


@pytest.fixture
def daemon(
    settings_with_relay: Settings, start_daemon: Callable[..., DaemonThread]
) -> DaemonThread:
    return start_daemon(settings_with_relay)


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    yield
    clock.set_source(None)


__all__ = ["free_port"]


@pytest.fixture(autouse=True)
def _dispose_engines() -> Iterator[None]:
    yield
    from tests.helpers import dispose_engines

    dispose_engines()


# --- IMAP: a real Dovecot on loopback (tests/dovecot.py) ------------------------------


def _need_dovecot() -> None:
    from tests.dovecot import unavailable_reason

    reason = unavailable_reason()
    need_server(f"IMAP tests need Dovecot: {reason}" if reason else None)


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[Dovecot]:
    """One Dovecot for the session; each test gets its own user (see imap_account)."""
    _need_dovecot()
    server = Dovecot()
    server.start()
    yield server
    server.cleanup()


def _running(server: Dovecot) -> Iterator[Dovecot]:
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def own_dovecot() -> Iterator[Dovecot]:
    """A Dovecot of this test's own, for tests that stop and restart the server."""
    _need_dovecot()
    yield from _running(Dovecot())


@pytest.fixture
def tokens() -> Iterator[TokenServer]:
    """An OAuth 2.0 token server on loopback (tests/oauth.py)."""
    server = TokenServer().start()
    yield server
    server.stop()


@pytest.fixture
def oauth_dovecot(tokens: TokenServer) -> Iterator[Dovecot]:
    """A Dovecot that checks XOAUTH2 logins at the `tokens` server."""
    _need_dovecot()
    yield from _running(Dovecot(oauth_introspection=tokens.introspection_url))


@pytest.fixture
def imap_account(dovecot_server: Dovecot) -> Account:
    return dovecot_server.add_user()


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool")


@pytest.fixture
def start_poller(tmp_path: Path, spool: Spool) -> Iterator[Callable[..., ImapPoller]]:
    """Factory: start_poller(entry, **kwargs) -> a running ImapPoller, stopped at teardown."""
    running: list[ImapPoller] = []

    def start(entry: ImapSection, **kwargs: Any) -> ImapPoller:
        kwargs.setdefault("on_spooled", None)
        poller = ImapPoller(entry, spool, kwargs.pop("on_spooled"), tmp_path / "state",
                            **kwargs)
        poller.start()
        running.append(poller)
        return poller

    yield start
    for poller in running:
        poller.stop()
    for poller in running:
        poller.join(15)


# --- the daemon as a real process (tests/procs.py) ----------------------------------


@pytest.fixture
def daemon_procs(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Factory: daemon_procs(settings, name, installed=None) -> DaemonProc (not started);
    killed at teardown."""
    from tests.procs import DaemonProc

    made: list[DaemonProc] = []

    def make(settings: Settings, name: str = "daemon", installed: Path | None = None
             ) -> DaemonProc:
        proc = DaemonProc(settings, tmp_path / f"{name}.log", installed)
        made.append(proc)
        return proc

    yield make
    for proc in made:
        proc.kill()
