"""`helpdesk contacts export`: everything kept about one customer, in one zip, against the
running daemon: their ticket with its history and the agent's reply (the internal note
only when asked for), the mail they wrote on someone else's ticket, and the originals of
the mails they sent, byte for byte. Admins download the same from the customer's page."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.agents_toml import agent, agents_toml
from tests.conftest import MakeSettings
from tests.helpers import all_messages, make_mail, run_cli, send, wait_ticket
from tests.sched import with_agents
from tests.web_helpers import Desk, sign_in


def _export(settings: Any, out: Path, *extra: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    done = run_cli(settings, "contacts", "export", "carol@customer.test", "--out", str(out),
                   *extra)
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(out) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    return json.loads(files.pop("customer.json")), files


def test_a_customers_tickets_mails_and_originals_are_exported(
        make_settings: MakeSettings, start_daemon: Any, tmp_path: Path) -> None:
    settings = with_agents(make_settings())
    daemon = start_daemon(settings)
    first = make_mail(subject="Printer on fire", body="Flames everywhere.",
                      message_id="<first@customer.test>")
    send(daemon.port, first)
    wait_ticket(settings, 1)
    for args in (("reply", "HD-1", "--as", "alice", "-m", "On our way."),
                 ("note", "HD-1", "--as", "alice", "-m", "Third fire this month.")):
        done = run_cli(settings, "tickets", *args)
        assert done.returncode == 0, done.stderr
    # Dan's ticket, Carol on copy, and Carol's answer on it
    send(daemon.port, make_mail(sender="Dan <dan@customer.test>", subject="Scanner jammed",
                                cc="carol@customer.test", message_id="<dan@customer.test>"),
         sender="dan@customer.test")
    wait_ticket(settings, 2)
    send(daemon.port, make_mail(subject="Re: [HD-2] Scanner jammed", body="Mine too.",
                                message_id="<on-dans@customer.test>",
                                in_reply_to="<dan@customer.test>"))
    wait_ticket(settings, 2, lambda t: len(t["messages"]) == 2, what="Carol's answer")

    data, originals = _export(settings, tmp_path / "carol.zip")
    assert (data["address"], data["name"], data["vip"]) == (
        "carol@customer.test", "Carol Customer", False)
    assert data["internal_notes_included"] is False
    [ticket] = data["tickets"]
    assert ticket["id"] == "HD-1" and ticket["subject"] == "Printer on fire"
    texts = [m["body_text"].strip() for m in ticket["messages"]]
    assert texts[0] == "Flames everywhere." and texts[1].startswith("On our way.")
    assert not any("Third fire" in t for t in texts)  # the staff's note is not hers
    assert "watchers" not in ticket and ticket["events"]
    assert not any("raw_path" in m for m in ticket["messages"])
    [elsewhere] = data["mails_on_other_tickets"]
    assert (elsewhere["ticket"], elsewhere["body_text"].strip()) == ("HD-2", "Mine too.")
    assert sorted(originals) == sorted(f"mail/HD-{t}/{n}.eml" for t, n in (
        (1, ticket["messages"][0]["number"]), (2, elsewhere["number"])))
    assert originals[f"mail/HD-1/{ticket['messages'][0]['number']}.eml"].endswith(
        first.as_bytes().split(b"\n\n", 1)[1].replace(b"\n", b"\r\n"))  # the body, untouched

    data, _ = _export(settings, tmp_path / "with-notes.zip", "--internal")
    assert data["internal_notes_included"] is True
    assert any("Third fire" in m["body_text"] for m in data["tickets"][0]["messages"])

    nobody = run_cli(settings, "contacts", "export", "nobody@nowhere.test", "--out",
                     str(tmp_path / "nobody.zip"))
    assert nobody.returncode == 1
    assert "the helpdesk has nothing of nobody@nowhere.test" in nobody.stderr.decode()
    assert not (tmp_path / "nobody.zip").exists()

    if settings.database_url.startswith("sqlite"):  # originals are files there
        lost = settings.data_dir / next(
            m for m in all_messages(settings) if m["number"] == ticket["messages"][0]["number"]
        )["raw_path"]
        lost.unlink()
        done = run_cli(settings, "contacts", "export", "carol@customer.test", "--out",
                       str(tmp_path / "partial.zip"))
        assert done.returncode == 1
        assert f"not exported: HD-1 #{ticket['messages'][0]['number']}: " in \
            done.stderr.decode()
        with zipfile.ZipFile(tmp_path / "partial.zip") as archive:
            assert sorted(archive.namelist()) == [
                "customer.json", f"mail/HD-2/{elsewhere['number']}.eml"]


def test_an_admin_downloads_the_same_export_from_the_customer_page(
        make_desk: Callable[..., Desk]) -> None:
    desk = make_desk(agents=agents_toml(agent("alice", "support"),
                                        agent("ada", "support", role="admin")))
    desk.deliver(make_mail(subject="Printer on fire", body="Flames everywhere."))
    contact = wait_ticket(desk.settings, 1)["customer"]
    assert contact == "carol@customer.test"
    ada, alice = sign_in(desk, "ada"), sign_in(desk, "alice")
    page = ada.get("/desk/customer/carol@customer.test")
    link = re.search(r'href="(/desk/customer/(\d+)/export)" download', page.text)
    assert link, page.text
    assert "/export" not in alice.get("/desk/customer/carol@customer.test").text

    answer = ada.get(link[1])
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/zip"
    assert 'filename="carol-at-customer.test.zip"' in answer.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        data = json.loads(archive.read("customer.json"))
        assert any(name.startswith("mail/HD-1/") for name in archive.namelist())
    assert data["address"] == "carol@customer.test" and data["tickets"][0]["id"] == "HD-1"
    assert data["internal_notes_included"] is False

    assert alice.get(link[1]).status_code == 403
    assert ada.get("/desk/customer/999999/export").status_code == 404
