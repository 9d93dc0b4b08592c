"""A damaged database at start: the real ewsd (daemon mode, and --once) must refuse to start,
exit non-zero with an error that names the database file, and leave the file's bytes exactly
as they were (no silent repair, no overwrite, no truncation, no new database in its place).

One sound database is built first (localities, a year of demo history, one evaluation with its
outbox events) and shown to start; then each damage is applied to a fresh copy of it:
  garbage header   the first 100 bytes (the SQLite header) replaced by random bytes
  truncated        the file cut at a page boundary in its middle, and at an odd byte count
  random page      one page in the middle of the observations b-tree overwritten with random
                   bytes (the damage is first shown to be visible to SQLite's own check)
  not sqlite       a text file, and a file of random bytes, in the database's place
The seed of the random bytes is printed (EWS_CORRUPT_SEED repeats another)."""
import hashlib
import os
import random
import shutil
import sqlite3
import subprocess
import time

from harness import EWSD, Workspace, check, fail

SEED = int(os.environ.get("EWS_CORRUPT_SEED", "20251203"))
START_TIMEOUT_S = 60


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def run_ewsd(ws, *extra):
    """Runs ewsd on the workspace's config until it exits (or START_TIMEOUT_S, after which it
    is killed: a daemon that runs on a damaged database is itself the failure).
    Returns: (exit status or None when it kept running, its output)."""
    log = os.path.join(ws.dir, "attempt.log")
    with open(log, "w") as out:
        p = subprocess.Popen([EWSD, "--config", ws.config, *extra], stdout=out, stderr=subprocess.STDOUT)
        try:
            rc = p.wait(timeout=START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            rc = None
    with open(log) as f:
        return rc, f.read()


def page_of_observations(path):
    """Returns: (page size, a page number in the middle of the observations table's b-tree)."""
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        pages = [p for (p,) in db.execute(
            "SELECT pageno FROM dbstat WHERE name='observations' AND pagetype='leaf' ORDER BY pageno")]
    finally:
        db.close()
    if len(pages) < 3:
        fail("the sound database has only %d observation leaf pages; the test needs more" % len(pages))
    return page_size, pages[len(pages) // 2]


def sqlite_sees_damage(path):
    """Whether SQLite's own integrity_check (Python's sqlite3, read-only) finds the damage."""
    try:
        db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
        try:
            return db.execute("PRAGMA integrity_check").fetchall() != [("ok",)]
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return True


def main():
    print("corrupt database test seed %d (set EWS_CORRUPT_SEED to repeat another)" % SEED)
    rng = random.Random(SEED)
    ws = Workspace()
    try:
        data, _ = ws.gen_demo(localities=60, seed=5)
        ws.ewsctl("ingest", os.path.join(data, "history.csv"))
        rc, out = run_ewsd(ws, "--once")
        if rc != 0:
            fail("ewsd --once on the sound database exited %s: %s" % (rc, out[-1500:]))
        db_file = os.path.join(ws.state, "ewsd.db")
        for suffix in ("-wal", "-shm"):
            if os.path.exists(db_file + suffix) and os.path.getsize(db_file + suffix) > 0 and suffix == "-wal":
                fail("a clean exit left a non-empty %s behind" % (db_file + suffix))
        sound = os.path.join(ws.dir, "sound.db")
        shutil.copyfile(db_file, sound)
        size = os.path.getsize(sound)
        page_size, middle_page = page_of_observations(sound)
        print("sound database: %d bytes, %d pages of %d bytes; page %d damaged below"
              % (size, size // page_size, page_size, middle_page))

        # The control: this very database starts (so a refusal below is the damage's doing).
        ws.start()
        check(ws.wait_log(" started: ", timeout=START_TIMEOUT_S) and ws.wait_log("evaluation (full)", 30),
              "ewsd starts on the sound database")
        rc, _ = ws.stop(timeout=30)
        check(rc == 0, "and stops cleanly")
        shutil.copyfile(db_file, sound)  # as the clean stop left it
        size = os.path.getsize(sound)

        def garbage_header(path):
            with open(path, "r+b") as f:
                f.write(bytes(rng.randrange(256) for _ in range(100)))

        def truncate_page(path):
            with open(path, "r+b") as f:
                f.truncate((size // page_size // 2) * page_size)

        def truncate_odd(path):
            with open(path, "r+b") as f:
                f.truncate(size // 2 + 1237)

        def random_page(path):
            with open(path, "r+b") as f:
                f.seek((middle_page - 1) * page_size)
                f.write(bytes(rng.randrange(256) for _ in range(page_size)))

        def text_file(path):
            with open(path, "w") as f:
                f.write("locality,time,kind,value\n" + "this is not a database\n" * 500)

        def random_file(path):
            with open(path, "wb") as f:
                f.write(bytes(rng.randrange(256) for _ in range(64 * 1024)))

        cases = [("garbage header", garbage_header), ("truncated at a page boundary", truncate_page),
                 ("truncated at an odd size", truncate_odd), ("a page of random bytes", random_page),
                 ("a text file, not SQLite", text_file), ("random bytes, not SQLite", random_file)]
        for name, damage in cases:
            for leftover in (db_file + "-wal", db_file + "-shm"):
                if os.path.exists(leftover):
                    os.remove(leftover)
            shutil.copyfile(sound, db_file)
            damage(db_file)
            if not sqlite_sees_damage(db_file):
                fail("(%s) SQLite's integrity_check does not see this damage; the case proves nothing" % name)
            before = digest(db_file)
            before_size = os.path.getsize(db_file)
            for mode in ([], ["--once"]):
                label = "%s, %s" % (name, "--once" if mode else "daemon")
                started = time.monotonic()
                rc, out = run_ewsd(ws, *mode)
                took = time.monotonic() - started
                if rc is None:
                    fail("(%s) ewsd kept running on a damaged database for %d s: %s"
                         % (label, START_TIMEOUT_S, out[-1500:]))
                check(rc != 0, "(%s) ewsd refuses to start: exit %d after %.1f s" % (label, rc, took))
                lowered = out.lower()
                check(db_file in out and ("corrupt" in lowered or "not an sqlite database" in lowered
                                          or "not a database" in lowered),
                      "(%s) the error names the file and what is wrong with it: %s"
                      % (label, out.strip().splitlines()[-1][:400] if out.strip() else "(no output)"))
                check(" started: " not in out and "evaluation (" not in out,
                      "(%s) nothing was started or evaluated on it" % label)
                after_size = os.path.getsize(db_file)
                check(digest(db_file) == before and after_size == before_size,
                      "(%s) the file is unchanged, byte for byte (%d bytes)" % (label, after_size))
                wal = db_file + "-wal"
                check(not os.path.exists(wal) or os.path.getsize(wal) == 0,
                      "(%s) nothing was written beside it into a WAL" % label)
    finally:
        ws.cleanup()


if __name__ == "__main__":
    main()
