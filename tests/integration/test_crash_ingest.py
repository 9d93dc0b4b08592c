"""Crash test of ingest: the real ewsd is killed with SIGKILL at random points while it ingests
batches of spool files, and restarted, over several rounds. After every kill and at the end,
the database (read with Python's sqlite3) must be intact and acknowledgement must equal
commit: a file in done/ has its ingest recorded and every row stored exactly once with its
value; a file still in the spool is all or nothing (its digest recorded and all its rows
stored, or neither); a file never dropped has no row. At the end every file is in done/.

The kill delays and file sizes come from a fixed seed (EWS_CRASH_SEED overrides it), printed
so that a failing run can be repeated."""
import calendar
import datetime
import hashlib
import os
import random
import signal
import sqlite3
import time

from harness import Workspace, check, fail

SEED = int(os.environ.get("EWS_CRASH_SEED", "20251128"))
ROUNDS = 8
FILES_PER_ROUND = 5
LOCALITIES = 120
KINDS = ["incident.recruitment_attempt", "incident.abduction", "incident.armed_violence",
         "school.dropouts", "presence.report"]
DAY0 = datetime.date(2025, 1, 1)


def make_file(rng, index, path):
    """Writes a CSV of distinct rows whose natural keys belong to this file alone (its own
    source), and returns (bytes, {(locality, kind, unix time, source): (value, weight)})."""
    rows = {}
    n = rng.choice([rng.randint(50, 800), rng.randint(2000, 12000)])
    source = "crash-%03d" % index
    lines = ["locality,time,kind,value,weight,source"]
    slots = rng.sample(range(LOCALITIES * len(KINDS) * 365), n)
    for slot in slots:
        loc = "CR-%03d" % (slot % LOCALITIES + 1)
        kind = KINDS[slot // LOCALITIES % len(KINDS)]
        day = DAY0 + datetime.timedelta(days=slot // (LOCALITIES * len(KINDS)))
        value = round(rng.random(), 3) if kind == "presence.report" else rng.randint(0, 9)
        weight = rng.choice([1, 0.5, 2])
        lines.append("%s,%s,%s,%s,%s,%s" % (loc, day.isoformat(), kind, value, weight, source))
        t = calendar.timegm(day.timetuple())
        rows[(loc, kind, t, source)] = (float(value), float(weight))
    data = ("\n".join(lines) + "\n").encode()
    with open(path, "wb") as f:
        f.write(data)
    return data, rows


class File:
    def __init__(self, name, data, rows):
        self.name = name
        self.digest = hashlib.sha1(data).hexdigest()
        self.rows = rows
        self.source = next(iter(rows))[3]
        self.dropped = False


def where_is(ws, f):
    places = [p for p in ("spool", "done", "failed")
              if os.path.exists(os.path.join(ws.spool if p == "spool" else os.path.join(ws.spool, p),
                                             f.name))]
    if len(places) > 1:
        fail("%s is in more than one place: %s" % (f.name, places))
    return places[0] if places else None


def verify(ws, files, when, final=False):
    """Checks the database against the files' places. Read-only, so that the check itself
    neither recovers nor checkpoints the WAL the daemon left behind."""
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(ws.state, "ewsd.db"), uri=True)
    try:
        ok = db.execute("PRAGMA integrity_check").fetchall()
        if ok != [("ok",)]:
            fail("%s: integrity_check: %s" % (when, ok))
        digests = {d for (d,) in db.execute("SELECT digest FROM ingests")}
        counts = {"done": 0, "spool committed": 0, "spool not committed": 0, "not dropped": 0}
        for f in files:
            stored = {(l, k, t, s): (v, w) for l, k, t, s, v, w in db.execute(
                "SELECT locality, kind, time, source, value, weight FROM observations WHERE source=?",
                (f.source,))}
            place = where_is(ws, f) if f.dropped else None
            if f.dropped and place is None:
                fail("%s: %s was dropped and is nowhere" % (when, f.name))
            if place == "failed":
                fail("%s: %s (a good file) went to failed/" % (when, f.name))
            recorded = f.digest in digests
            if place == "done" or (place == "spool" and recorded):
                if not recorded:
                    fail("%s: %s is in done/ but its ingest is not recorded" % (when, f.name))
                if stored != f.rows:
                    missing = len(set(f.rows) - set(stored))
                    differ = sum(1 for k in f.rows if k in stored and stored[k] != f.rows[k])
                    fail("%s: %s (%s) has %d of %d rows stored, %d missing, %d with other values"
                         % (when, f.name, place, len(stored), len(f.rows), missing, differ))
                counts["done" if place == "done" else "spool committed"] += 1
            else:
                if recorded or stored:
                    fail("%s: %s (%s, digest recorded: %s) is partly visible: %d of %d rows"
                         % (when, f.name, place or "not dropped", recorded, len(stored), len(f.rows)))
                counts["spool not committed" if place == "spool" else "not dropped"] += 1
            if final and place != "done":
                fail("%s: %s ended in %s, not done/" % (when, f.name, place))
        extra = db.execute("SELECT count(*) FROM observations WHERE source NOT LIKE 'crash-%'").fetchone()[0]
        if extra:
            fail("%s: %d rows no file wrote" % (when, extra))
        return counts
    finally:
        db.close()


def main():
    print("crash test seed %d (set EWS_CRASH_SEED to repeat another)" % SEED)
    rng = random.Random(SEED)
    ws = Workspace()
    try:
        loc_csv = os.path.join(ws.dir, "localities.csv")
        with open(loc_csv, "w") as f:
            f.write("id,name,region,population,neighbours\n")
            for i in range(1, LOCALITIES + 1):
                f.write("CR-%03d,Place %d,CR/CR-%d,%d,\n" % (i, i, i % 4 + 1, 300 + i))
        ws.ewsctl("localities", "import", loc_csv)
        src = os.path.join(ws.dir, "files")
        os.makedirs(src)
        files = []
        for i in range(ROUNDS * FILES_PER_ROUND):
            name = "batch-%03d.csv" % i
            data, rows = make_file(rng, i, os.path.join(src, name))
            files.append(File(name, data, rows))
        print("%d files, %d rows in all" % (len(files), sum(len(f.rows) for f in files)))

        started = time.time()
        totals = {}
        for r in range(ROUNDS):
            delay = rng.uniform(0, 0.3)
            # Half the rounds drop their batch while the daemon is down, so that the kill
            # lands in the ingest of the backlog at start-up; the others drop into a running,
            # idle daemon (after its first evaluation), so that it lands in a live ingest.
            at_start = rng.random() < 0.5
            batch = files[r * FILES_PER_ROUND:(r + 1) * FILES_PER_ROUND]
            if at_start:
                for f in batch:
                    ws.drop(os.path.join(src, f.name))
                    f.dropped = True
            ws.start()
            # "started" is logged once the store is open, just before the backlog is ingested.
            if at_start and not ws.wait_log("started", timeout=60):
                fail("round %d: ewsd did not start: %s" % (r, ws.log_text()[-2000:]))
            if not at_start:
                if not ws.wait_log("evaluation (full)", timeout=60):
                    fail("round %d: ewsd did not become ready: %s" % (r, ws.log_text()[-2000:]))
                for f in batch:
                    ws.drop(os.path.join(src, f.name))
                    f.dropped = True
            time.sleep(delay)
            if ws.daemon.poll() is not None:
                fail("round %d: ewsd exited by itself (%s): %s"
                     % (r, ws.daemon.returncode, ws.log_text()[-2000:]))
            ws.daemon.send_signal(signal.SIGKILL)
            ws.daemon.wait()
            ws.log.close()
            when = "kill %d, %.0f ms after %s" % (r + 1, delay * 1000,
                                                  "start-up" if at_start else "the drop")
            counts = verify(ws, files, "after " + when)
            print("%s: %s" % (when, counts))
            for k, v in counts.items():
                totals[k] = totals.get(k, 0) + v
            if time.time() - started > 200:
                fail("the crash rounds take too long (%.0f s)" % (time.time() - started))
        check(True, "%d kills, database intact and all-or-nothing after each: %s" % (ROUNDS, totals))

        # Recovery: the daemon finishes what is left in the spool, then stops cleanly.
        ws.start()
        # Started first: a SIGTERM before the daemon has blocked it ends the process by the
        # signal's default action, which is not what this checks.
        check(ws.wait_log(" started: "), "ewsd starts again after the kills")
        deadline = time.time() + 60
        while time.time() < deadline and ws.daemon.poll() is None:
            if not [n for n in os.listdir(ws.spool) if n.endswith(".csv") and not n.startswith(".")]:
                break
            time.sleep(0.2)
        rc, _ = ws.stop()
        check(rc == 0, "after the kills ewsd finishes the spool and stops cleanly (status %s): %s"
              % (rc, ws.log_text()[-1500:] if rc != 0 else ""))
        counts = verify(ws, files, "at the end", final=True)
        check(counts["done"] == len(files),
              "every file is in done/ with all its rows stored exactly once (%d files)" % len(files))
    finally:
        ws.cleanup()


if __name__ == "__main__":
    main()
