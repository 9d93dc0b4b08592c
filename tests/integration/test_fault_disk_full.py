"""The real ewsd with its state directory (database, WAL) on a small tmpfs that fills up.

The state directory is a tmpfs of FULL_SIZE, mounted for this test (as root; CI runs as root)
and unmounted at the end; the spool is on the ordinary file system beside it, so that a
producer can still drop a file while the database has no room. If the tmpfs cannot be
mounted the test fails with the reason: it never skips.

  fill     batches of unique rows are pushed to the ingest endpoint until one is refused;
           then a filler file takes every block left, and batches go on until 3 in a row
           are refused. Each refusal is an error reply saying the database is full and naming
           the file, and the daemon logs it as an error. (SQLite may still commit a batch into
           WAL space it reuses; whatever is acknowledged must be kept.)
  full     while full: the daemon is alive and answers status; a spool file dropped now is
           refused with an error and retried (the log says so twice), staying in the spool
           (not done/, not failed/).
  recover  the filler is deleted and the tmpfs grows (mount -o remount,size=...): the first
           refused batch, pushed again, is committed, new batches are committed, the spool
           file goes to done/ (the daemon retries it by itself), and the evaluation of new
           data publishes events again.
  verify   SIGTERM stops it cleanly; PRAGMA integrity_check is ok; every acknowledged row
           is in the database with its value, and no row of the refused batches not sent
           again; the outbox's seq is gapless from 1; every event
           a subscriber received during the test is in the outbox with the same payload.
"""
import datetime
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time

import zmq

from harness import FIXTURES, Workspace, check, fail, free_port, push_batch, query, replay_all, today

FULL_SIZE = "3m"
GROWN_SIZE = "64m"
LOCALITIES = 200
RESERVE = 40  # localities without data until the recovery, whose first data raises alerts
ROWS_PER_BATCH = 2000
MAX_BATCHES = 300
REFUSALS = 3      # refusals in a row that end the filling
SPOOL_ROWS = 8000


class Batches:
    """Unique rows per batch (own source, own times), so that every acknowledged row can be
    found again with its value."""

    def __init__(self):
        self.n = 0
        self.base = datetime.datetime.combine(today() - datetime.timedelta(days=20), datetime.time(),
                                              tzinfo=datetime.timezone.utc)

    def make(self, rows=ROWS_PER_BATCH, reserve=False):
        self.n += 1
        source = "full-%04d" % self.n
        lines = ["locality,time,kind,value,weight,source"]
        expected = {}
        for r in range(rows):
            loc = "DF-%03d" % (LOCALITIES + r % RESERVE + 1 if reserve else r % LOCALITIES + 1)
            t = self.base + datetime.timedelta(minutes=self.n * 10 + r // LOCALITIES)
            # High in odd batches, low in even ones, so that evaluations have alerts to raise
            # (outbox writes); always high for the reserve localities.
            value = 9 if self.n % 2 or reserve else (r * 7) % 3
            lines.append("%s,%s,test.signal,%d,1,%s" % (loc, t.strftime("%Y-%m-%dT%H:%M:%SZ"), value, source))
            expected[(loc, "test.signal", int(t.timestamp()), source)] = float(value)
        return source, "\n".join(lines) + "\n", expected


class Subscriber(threading.Thread):
    def __init__(self, endpoint):
        super().__init__(daemon=True)
        self.sub = zmq.Context.instance().socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"alert/")
        self.sub.connect(endpoint)
        self.stop = threading.Event()
        self.events = []

    def run(self):
        while not self.stop.is_set():
            if self.sub.poll(100):
                _, payload = self.sub.recv_multipart()
                self.events.append(json.loads(payload))
        self.sub.close()


def mount_tmpfs(path, size):
    if os.geteuid() != 0:
        fail("this test mounts a tmpfs for the state directory and needs root (CI runs as root); "
             "running as uid %d" % os.geteuid())
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0750" % size, "tmpfs", path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        fail("cannot mount a tmpfs of %s on %s: %s%s (the test needs a size-limited file system "
             "for the state directory; it does not skip)" % (size, path, r.stdout, r.stderr))


def fill_up(directory):
    """Writes a filler file until the file system has no block left. Returns: its path."""
    path = os.path.join(directory, "filler")
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError:
                break
    for size in (4096, 512, 1):
        with open(path, "ab", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                pass
    return path


def remount(path, size):
    r = subprocess.run(["mount", "-o", "remount,size=%s" % size, path], capture_output=True, text=True)
    if r.returncode != 0:
        fail("cannot grow the tmpfs on %s to %s: %s" % (path, size, r.stderr))


def main():
    plugins = tempfile.mkdtemp(prefix="ewsd-it-plugins-")
    shutil.copy(os.path.join(FIXTURES, "fixture_good.so"), plugins)
    ws = Workspace(plugin_dir=plugins)
    ingest = "tcp://127.0.0.1:%d" % free_port()
    spool = os.path.join(ws.dir, "spool")
    os.makedirs(spool)
    ws.spool = spool
    with open(ws.config) as f:
        text = f.read()
    with open(ws.config, "w") as f:
        f.write(text.replace('policy = "partial"', 'policy = "partial"\nbind = "%s"\nspool_dir = "%s"'
                             % (ingest, spool), 1))
    shutil.rmtree(ws.state)
    os.makedirs(ws.state)
    mounted = False
    subscriber = None
    try:
        mount_tmpfs(ws.state, FULL_SIZE)
        mounted = True
        loc = os.path.join(ws.dir, "localities.csv")
        with open(loc, "w") as f:
            f.write("id,name,region,population,neighbours\n")
            for n in range(1, LOCALITIES + RESERVE + 1):
                f.write("DF-%03d,Place %d,DF/DF-%d,400,\n" % (n, n, n % 4))
        ws.ewsctl("localities", "import", loc)
        ws.start()
        check(ws.wait_log("evaluation (full)", timeout=60), "ewsd started with its state on a %s tmpfs" % FULL_SIZE)
        subscriber = Subscriber(ws.pub)
        subscriber.start()
        time.sleep(0.5)

        # fill: batches until one is refused; then a filler file takes every block left, and
        # batches go on until REFUSALS in a row are refused (SQLite may still commit a batch
        # into WAL space it reuses: whatever it acknowledges must be kept).
        batches = Batches()
        acked = {}
        refused = []
        filler = None
        in_a_row = 0
        for _ in range(MAX_BATCHES):
            name, content, rows = batches.make()
            reply = push_batch(ingest, name, content, timeout_ms=60000)
            if reply.get("committed"):
                if reply.get("accepted") != len(rows):
                    fail("batch %s: accepted %s of %d rows" % (name, reply.get("accepted"), len(rows)))
                acked.update(rows)
                in_a_row = 0
                continue
            if "error" not in reply:
                fail("batch %s was neither committed nor refused with an error: %s" % (name, reply))
            refused.append((name, content, rows, reply))
            in_a_row += 1
            if filler is None:
                filler = fill_up(ws.state)
            if in_a_row == REFUSALS:
                break
        else:
            fail("%d batches of %d rows did not fill a %s tmpfs" % (MAX_BATCHES, ROWS_PER_BATCH, FULL_SIZE))
        usage = shutil.disk_usage(ws.state)
        check(len(acked) > 0, "%d batches acknowledged, %d refused (the last %d in a row), the file system "
              "full (%d of %d bytes used, %d by a filler file)" % (batches.n - len(refused), len(refused),
                                                                   REFUSALS, usage.used, usage.total,
                                                                   os.path.getsize(filler)))
        name, content, rows, reply = refused[0]
        error = reply.get("error", "")
        db_file = os.path.join(ws.state, "ewsd.db")
        check("full" in error.lower() and db_file in error,
              "a batch that does not fit is refused, and the sender is told why: %s" % error)
        check(all("full" in r[3].get("error", "").lower() for r in refused),
              "every refusal says the database or disk is full")
        check(ws.wait_log("ingest %s (ingest endpoint): " % name, timeout=5) and
              any(name in line and "full" in line.lower() and (" error " in line or "[error]" in line)
                  for line in ws.log_text().splitlines()),
              "the daemon logs the refusal as an error naming the batch and the full disk")

        # full
        check(ws.daemon.poll() is None, "ewsd keeps running with a full file system")
        status = query(ws.query, {"op": "status"})
        check(status.get("schema") == "ews.status/1", "status answers while the disk is full")
        sname, scontent, srows = batches.make(rows=SPOOL_ROWS)
        spool_file = os.path.join(ws.dir, "spooled.csv")
        with open(spool_file, "w") as f:
            f.write(scontent)
        ws.drop(spool_file)
        spooled = os.path.join(spool, "spooled.csv")

        def spool_errors():
            return [l for l in ws.log_text().splitlines() if spooled in l and "full" in l.lower()
                    and "retried" in l]
        deadline = time.time() + 30
        while time.time() < deadline and len(spool_errors()) < 2:
            time.sleep(0.2)
        check(len(spool_errors()) >= 2,
              "the spool file dropped while full is refused with an error and retried: %s"
              % (spool_errors()[-1:] or ws.log_text()[-800:]))
        check(os.path.exists(spooled) and not os.path.exists(os.path.join(spool, "done", "spooled.csv")) and
              not os.path.exists(os.path.join(spool, "failed", "spooled.csv")),
              "meanwhile it stays in the spool (not done/, not failed/)")
        check(ws.daemon.poll() is None, "ewsd is still running")

        # recover
        os.remove(filler)
        remount(ws.state, GROWN_SIZE)
        reply = push_batch(ingest, name, content, timeout_ms=60000)
        check(reply.get("committed") and reply.get("accepted") == len(rows) and not reply.get("duplicate"),
              "space returned: the first refused batch, sent again, is committed: %s" % reply)
        acked.update(rows)
        for _ in range(3):
            n, c, r = batches.make()
            rep = push_batch(ingest, n, c, timeout_ms=60000)
            if not rep.get("committed"):
                fail("batch %s after recovery: %s" % (n, rep))
            acked.update(r)
        check(True, "new batches are committed after recovery")
        deadline = time.time() + 30
        while time.time() < deadline and not os.path.exists(os.path.join(spool, "done", "spooled.csv")):
            time.sleep(0.2)
        check(os.path.exists(os.path.join(spool, "done", "spooled.csv")),
              "the spool file is retried by the daemon and goes to done/")
        acked.update(srows)
        seq_before = query(ws.query, {"op": "status"})["last_seq"]["main"]
        n, c, r = batches.make(rows=RESERVE, reserve=True)
        rep = push_batch(ingest, n, c, timeout_ms=60000)
        check(rep.get("committed"), "one more batch (%s): the first data of %d localities, all high" % (n, RESERVE))
        acked.update(r)
        deadline = time.time() + 30
        seq_after = seq_before
        while time.time() < deadline and seq_after <= seq_before:
            time.sleep(0.2)
            seq_after = query(ws.query, {"op": "status"})["last_seq"]["main"]
        time.sleep(1.0)
        seq_after = query(ws.query, {"op": "status"})["last_seq"]["main"]
        check(seq_after >= seq_before + RESERVE,
              "evaluations publish events again after recovery (seq %d -> %d)" % (seq_before, seq_after))
        time.sleep(1.0)
        replayed = [e["payload"] for e in replay_all(ws.query)]
        subscriber.stop.set()
        subscriber.join(5)

        # verify
        check(ws.daemon.poll() is None, "ewsd ran through the whole test")
        rc, _ = ws.stop(timeout=30)
        check(rc == 0, "ewsd stops cleanly with SIGTERM")
        db = sqlite3.connect("file:%s?mode=ro" % db_file, uri=True)
        try:
            integrity = db.execute("PRAGMA integrity_check").fetchall()
            check(integrity == [("ok",)], "PRAGMA integrity_check: %s" % integrity[:3])
            stored = {(l, k, t, s): v for l, k, t, s, v in db.execute(
                "SELECT locality, kind, time, source, value FROM observations WHERE source LIKE 'full-%'")}
        finally:
            db.close()
        missing = [k for k, v in acked.items() if stored.get(k) != v]
        check(not missing, "all %d acknowledged rows are in the database with their values (%d missing: %s)"
              % (len(acked), len(missing), missing[:3]))
        never = set(stored) - set(acked)
        check(not never, "no row the daemon did not acknowledge is stored (%d), none of the %d batches "
              "refused and not sent again" % (len(never), len(refused) - 1))
        seqs = [p["seq"] for p in replayed]
        check(seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= seq_after,
              "the outbox is gapless from seq 1 to %d" % (seqs[-1] if seqs else 0))
        by_seq = {p["seq"]: p for p in replayed}
        differ = [p["seq"] for p in subscriber.events if by_seq.get(p["seq"]) != p]
        check(subscriber.events and not differ,
              "each of the %d events the subscriber received is in the outbox with the same payload (%s)"
              % (len(subscriber.events), differ[:5]))
    finally:
        if subscriber is not None:
            subscriber.stop.set()
        if ws.daemon and ws.daemon.poll() is None:
            ws.daemon.kill()
            ws.daemon.wait()
        if mounted:
            r = subprocess.run(["umount", ws.state], capture_output=True, text=True)
            if r.returncode != 0:
                subprocess.run(["umount", "-l", ws.state])
        ws.cleanup()
        shutil.rmtree(plugins, ignore_errors=True)


if __name__ == "__main__":
    main()
