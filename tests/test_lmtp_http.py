"""The LMTP listener answers per recipient; /healthz and /metrics over real HTTP, on the ops
listener, apart from the public one."""

from __future__ import annotations

import json
import smtplib
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpdesk.config import settings as config
from helpdesk.config.base import is_loopback
from helpdesk.errors import ConfigError
from helpdesk.web.server import split_listen
from tests.conftest import MakeSettings
from tests.helpers import (
    DaemonThread,
    RelaySink,
    all_tickets,
    free_port,
    make_mail,
    send,
    wait_until,
)

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, body = _get(port, "/metrics")
    assert status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples}


def test_lmtp_answers_each_recipient(make_settings: MakeSettings,
                                     start_daemon: Callable[..., DaemonThread]) -> None:
    settings = make_settings({"smtp": {"lmtp": True}})
    daemon = start_daemon(settings)
    msg = make_mail(to="support@example.test, billing@example.test")
    with smtplib.LMTP("127.0.0.1", daemon.port, timeout=30) as client:
        assert client.ehlo()[0] == 250  # smtplib.LMTP sends LHLO
        assert client.mail("carol@customer.test")[0] == 250
        assert client.rcpt("support@example.test")[0] == 250
        assert client.rcpt("someone@elsewhere.test")[0] == 550  # refused at RCPT
        assert client.rcpt("billing@example.test")[0] == 250
        # RFC 2033: after DATA one reply per accepted recipient, in order
        first = client.data(msg.as_bytes())
        second = client.getreply()
    assert first[0] == 250 and second[0] == 250
    tickets = wait_until(lambda: all_tickets(settings), what="the ticket")
    assert len(tickets) == 1 and len(tickets[0]["messages"]) == 1


def test_healthz_and_metrics(make_settings: MakeSettings, relay: RelaySink,
                             start_daemon: Callable[..., DaemonThread]) -> None:
    settings = make_settings({"outgoing": {"relay_host": "127.0.0.1", "relay_port": relay.port}})
    daemon = start_daemon(settings)
    port = daemon.daemon.http.port  # type: ignore[union-attr]
    status, body = _get(port, "/healthz")
    health: dict[str, Any] = json.loads(body)
    assert status == 200 and health["status"] == "ok", health
    assert health["database"]["ok"] and health["smtp"]["listening"]
    assert health["outbox"] == {"ok": True, "due": 0, "oldest_due_s": 0.0}

    send(daemon.port, make_mail())
    relay.wait_for(1)
    wait_until(lambda: _samples(port).get(("helpdesk_outbox_messages", (("status", "sent"),))),
               what="the acknowledgement counted as sent")
    m = _samples(port)
    assert m[("helpdesk_mails_received_total", (("route", "smtp"),))] == 1
    assert m[("helpdesk_tickets_opened_total", ())] == 1
    assert m[("helpdesk_mails_processed_total", (("outcome", "stored"), ("route", "smtp")))] == 1
    assert m[("helpdesk_processing_seconds_count", ())] == 1
    assert m[("helpdesk_intake_to_stored_seconds_count", ())] == 1
    assert m[("helpdesk_outbox_messages", (("status", "dead"),))] == 0
    assert m[("helpdesk_quarantine_held", ())] == 0
    assert m[("helpdesk_sla_breaches_total", ())] == 0
    assert m[("helpdesk_database_up", ())] == 1
    assert m[("helpdesk_spool_waiting", ())] == 0


def test_healthz_fails_when_the_database_is_away(
        make_settings: MakeSettings, start_daemon: Callable[..., DaemonThread]) -> None:
    # nothing listens there: the daemon starts anyway (mail waits in the spool)
    away = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/helpdesk"
    settings = make_settings({"helpdesk": {"database_url": away}})
    daemon = start_daemon(settings)
    port = daemon.daemon.http.port  # type: ignore[union-attr]
    status, body = _get(port, "/healthz")
    health = json.loads(body)
    assert status == 503 and health["status"] == "fail"
    assert not health["database"]["ok"] and health["database"]["error"]
    assert _samples(port)[("helpdesk_database_up", ())] == 0
    # mail still comes in and waits, visibly
    send(daemon.port, make_mail())
    send(daemon.port, make_mail())
    assert _samples(port)[("helpdesk_spool_waiting", ())] == 2


def test_health_and_metrics_are_not_served_where_the_public_pages_are(
        make_settings: MakeSettings, start_daemon: Callable[..., DaemonThread]) -> None:
    public = free_port()
    settings = make_settings({"http": {"public": f"127.0.0.1:{public}"},
                              "survey": {"enabled": True,
                                         "public_url": f"http://127.0.0.1:{public}"}})
    daemon = start_daemon(settings)
    ops = daemon.daemon.http.port  # type: ignore[union-attr]
    assert ops != public
    # what a customer (or anyone) reaches through the proxy: the rating pages only
    status, body = _get(public, "/survey/1/5?t=forged")
    assert status == 403 and b"not valid" in body
    assert _get(public, "/healthz")[0] == 404
    assert _get(public, "/metrics")[0] == 404
    # the ops listener: health and metrics only
    assert _get(ops, "/healthz")[0] == 200
    assert _get(ops, "/metrics")[0] == 200
    assert _get(ops, "/survey/1/5?t=forged")[0] == 404


def test_by_default_the_ops_listener_is_on_loopback_apart_from_the_public_one(
        database_url: str) -> None:  # (the module runs each test on SQLite; this needs none)
    http = config.parse({}).http
    assert is_loopback(split_listen(http.listen)[0])
    assert http.listen != http.public


def test_one_address_for_both_listeners_is_refused(make_settings: MakeSettings) -> None:
    with pytest.raises(ConfigError, match="must not be served on the public listener"):
        make_settings({"http": {"listen": "127.0.0.1:8025", "public": "127.0.0.1:8025"}})
    with pytest.raises(ConfigError, match=r"moved to \[http\] public"):
        make_settings({"survey": {"http": "127.0.0.1:8025"}})
