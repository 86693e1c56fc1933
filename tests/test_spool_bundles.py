"""A batch of IMAP mails is made durable in one file, then split for the pipeline."""

from __future__ import annotations

from pathlib import Path

from helpdesk.spool import Envelope, Spool


def _mail(n: int) -> bytes:
    return f"From: c{n}@customer.test\r\nSubject: mail {n}\r\n\r\nbody {n}\r\n".encode()


def test_a_bundle_comes_out_as_one_entry_per_mail_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    items = [(_mail(n), Envelope(route="imap:support", extra={"imap_uid": n})) for n in (1, 2, 3)]
    spool.put_bundle(items)
    assert spool.pending() == [] and len(list(spool.bundles.iterdir())) == 1
    claimed = [spool.claim() for _ in range(3)]
    assert [e.raw for e in claimed if e] == [_mail(1), _mail(2), _mail(3)]
    assert [e.envelope.extra["imap_uid"] for e in claimed if e] == [1, 2, 3]
    assert all(e.envelope.route == "imap:support" and e.envelope.received_at
               for e in claimed if e)
    assert spool.claim() is None
    assert list(spool.bundles.iterdir()) == []


def test_a_crash_while_splitting_only_repeats_mails_never_loses_them(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.put_bundle([(_mail(n), Envelope(route="imap:x")) for n in (1, 2)])
    bundle = next(spool.bundles.iterdir())
    kept = bundle.read_bytes()
    spool.unbundle()
    bundle.write_bytes(kept)  # as if the daemon died before removing the bundle
    restarted = Spool(tmp_path / "spool")
    restarted.unbundle()
    raws = sorted(restarted.claim().raw for _ in range(4))  # type: ignore[union-attr]
    assert raws == sorted([_mail(1), _mail(1), _mail(2), _mail(2)])  # the pipeline dedupes


def test_an_unreadable_bundle_is_set_aside_not_lost(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    (spool.bundles / "broken.r0.bundle").write_bytes(b"not json\n")
    assert spool.claim() is None
    assert [p.name for p in spool.bad.iterdir()] == ["broken.r0.bundle"]


def test_mails_in_bundles_count_as_waiting_before_and_after_the_split(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.put(_mail(0), Envelope(route="smtp"))
    spool.put_bundle([(_mail(n), Envelope(route="imap:x")) for n in (1, 2, 3)])
    spool.put_bundle([(_mail(n) * 500, Envelope(route="imap:x")) for n in (4, 5)])
    (spool.bundles / "broken.r0.bundle").write_bytes(b"not json\n")
    assert spool.pending() != [] and spool.waiting() == 6
    entry = spool.claim()  # splits the bundles (setting the broken one aside), takes one
    assert entry is not None
    assert list(spool.bundles.iterdir()) == [] and spool.waiting() == 6  # 1 being processed
    spool.finish(entry)
    assert spool.waiting() == 5
