"""Benchmark: drain a backlog from a throwaway Dovecot through the IMAP poller into the spool.

Beside it, a baseline measured in the same run against the same mails: plain
imapclient fetching BODY.PEEK[] in the same batch size, with no processing.
Each round seeds a fresh mailbox, runs the baseline three times (the fastest
counts), then lets the poller drain it (fetch, spool bundle with fsync, MOVE to
Processed); every round is printed, and the median ratio is the figure (target
>= 0.4). Needs root and dovecot (see
tests/dovecot.py). Not a test:  python bench/imap.py [--mails 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpdesk.config.imap import ImapSection
from helpdesk.ingest.imap import ImapPoller
from helpdesk.spool import Spool
from tests.dovecot import Account, Dovecot, make_mail, unavailable_reason


def baseline(account: Account, batch: int) -> tuple[int, float]:
    start = time.perf_counter()
    with account.client() as c:
        c.select_folder("INBOX", readonly=True)
        uids = c.search()
        got = 0
        for i in range(0, len(uids), batch):
            got += len(c.fetch(uids[i:i + batch], ["BODY.PEEK[]"]))
    return got, time.perf_counter() - start


def poller_run(account: Account, workdir: Path, batch: int, total: int) -> tuple[int, float]:
    entry = ImapSection(name="bench", host="127.0.0.1", port=account.server.imap_port,
                        security="none", username=account.username, password=account.password,
                        batch_size=batch)
    spool = Spool(workdir / "spool")
    poller = ImapPoller(entry, spool, None, workdir / "state")
    start = time.perf_counter()
    poller.start()
    try:
        while poller.status().last_uid < total:
            if time.perf_counter() - start > 600:
                raise SystemExit(f"poller stuck: {poller.status()}")
            time.sleep(0.01)
        took = time.perf_counter() - start
    finally:
        poller.stop()
        poller.join(30)
    spool.unbundle()  # the pipeline's job, outside the timing: count every mail stored
    return len(spool.pending()), took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mails", type=int, default=5000)
    ap.add_argument("--size", type=int, default=4000, help="approximate bytes per mail")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None, help="spool dir (default: a temp dir)")
    args = ap.parse_args()
    if (why := unavailable_reason()) is not None:
        raise SystemExit(why)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    server = Dovecot()
    server.start()
    ratios: list[float] = []
    try:
        for round_no in range(1, args.rounds + 1):
            account = server.add_user()
            t = time.perf_counter()
            account.append(*[make_mail(i, "bench", args.size) for i in range(args.mails)])
            seeded = time.perf_counter() - t
            # the baseline is read-only, so it can run three times: the fastest counts
            # (a stricter baseline than one run, and steadier)
            n, base_s = min((baseline(account, args.batch) for _ in range(3)),
                            key=lambda r: r[1])
            workdir = Path(tempfile.mkdtemp(dir=args.workdir))
            try:
                stored, poll_s = poller_run(account, workdir, args.batch, args.mails)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            if stored != args.mails or n != args.mails:
                raise SystemExit(f"expected {args.mails}, baseline got {n}, spool has {stored}")
            base_rate, poll_rate = n / base_s, stored / poll_s
            ratios.append(poll_rate / base_rate)
            print(f"round {round_no}: {args.mails} mails of ~{args.size} B (seeded in "
                  f"{seeded:.1f} s), batches of {args.batch}")
            print(f"  baseline  imapclient fetch only  : {base_rate:8.0f} mails/s "
                  f"({base_s:.2f} s)")
            print(f"  poller    fetch+spool(fsync)+MOVE: {poll_rate:8.0f} mails/s "
                  f"({poll_s:.2f} s)   ratio {ratios[-1]:.2f}")
        print(f"ratio (median of {len(ratios)}) {statistics.median(ratios):.2f} "
              f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)}; target >= 0.40)")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
