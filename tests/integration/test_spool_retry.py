"""A spool file that meets a database failure is kept and retried without a new file.

Another process holds the database's write lock (BEGIN IMMEDIATE, as a stuck maintenance job
would) for longer than the daemon's busy timeout (5 s): the daemon cannot commit the file
that arrives meanwhile, logs that it keeps it, and leaves it in the spool. Once the lock is
released, the daemon ingests the file by itself within its retry interval, with no other
file arriving to wake it, and nothing is lost.
"""
import os
import sqlite3
import time

from harness import Workspace, check, query


def main():
    ws = Workspace()
    try:
        data, _ = ws.gen_demo(localities=40, seed=5)
        ws.start()
        check(ws.wait_log("evaluation (full)", timeout=60), "ewsd started")
        db = sqlite3.connect(os.path.join(ws.state, "ewsd.db"), timeout=1, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")  # the write lock, held
        try:
            ws.drop(os.path.join(data, "history.csv"))
            check(ws.wait_log("retried in 5 s", timeout=30),
                  "the daemon cannot commit while the lock is held and keeps the file")
            check(os.path.exists(os.path.join(ws.spool, "history.csv")), "the file is still in the spool")
            time.sleep(1)
        finally:
            db.execute("ROLLBACK")
            db.close()
        released = time.time()
        check(ws.wait_log(" rows committed", timeout=30),
              "after the lock is released the file is ingested with no new file arriving")
        took = time.time() - released
        check(took < 15, "within the retry interval (%.1f s after the release)" % took)
        check(not os.path.exists(os.path.join(ws.spool, "history.csv")), "the file left the spool")
        rows = query(ws.query, {"op": "status"}).get("ingest", {}).get("rows", 0)
        check(rows > 0, "status counts %d committed rows" % rows)
        rc, _ = ws.stop()
        check(rc == 0, "ewsd stops with exit status 0")
    finally:
        ws.cleanup()


if __name__ == "__main__":
    main()
