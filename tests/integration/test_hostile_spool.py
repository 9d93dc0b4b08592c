"""Every file of the hostile corpus (tests/data/bad/, CSV and JSON Lines) dropped into a running daemon's spool:
the daemon keeps running and serving, each file ends in done/ (with NAME.rejected.csv when
rows were rejected) or failed/ (with NAME.error), the reports locate every expected error,
and the database holds exactly the accepted rows and is intact."""
import glob
import os
import sqlite3
import time

from harness import SOURCE, Workspace, check, fail, query

CORPUS = os.path.join(SOURCE, "tests", "data", "bad")


def read_expected(path):
    accepted, errors, more = None, [], False
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line == "...":
                more = True
            if not line or line.startswith("#") or line == "...":
                continue
            if line.startswith("accepted: "):
                accepted = int(line[len("accepted: "):])
                continue
            where, text = line.split(": ", 1)
            row, col = where.split(":")
            errors.append((int(row), int(col), text))
    if accepted is None:
        fail("%s has no 'accepted:' line" % path)
    return accepted, errors, more


def main():
    files = sorted(p for p in glob.glob(os.path.join(CORPUS, "*.csv")) +
                   glob.glob(os.path.join(CORPUS, "*.jsonl"))
                   if os.path.basename(p) != "localities.csv")
    check(len(files) >= 34, "the hostile corpus is there (%d files)" % len(files))
    ws = Workspace()
    try:
        ws.ewsctl("localities", "import", os.path.join(CORPUS, "localities.csv"))
        ws.start()
        check(ws.wait_log("started", timeout=60), "ewsd started")
        for path in files:
            ws.drop(path)
        deadline = time.time() + 60
        while time.time() < deadline:
            pending = [n for n in os.listdir(ws.spool)
                       if n.endswith((".csv", ".jsonl")) and not n.startswith(".")]
            if not pending or ws.daemon.poll() is not None:
                break
            time.sleep(0.2)
        check(ws.daemon.poll() is None, "ewsd is still running after the whole corpus")
        check(not pending, "every corpus file left the spool (%s)" % pending)
        status = query(ws.query, {"op": "status"})
        check(status.get("localities") == 3, "ewsd still answers queries: %s" % status)

        done = os.path.join(ws.spool, "done")
        failed = os.path.join(ws.spool, "failed")
        committed = {}
        for path in files:
            name = os.path.basename(path)
            stem = os.path.splitext(name)[0]
            accepted, errors, more = read_expected(path + ".expected")
            rejected_csv = os.path.join(done, stem + ".rejected.csv")
            error_file = os.path.join(failed, stem + ".error")
            # Policy partial: a file with a good row, or with no error at all, is committed.
            if accepted > 0 or not (errors or more):
                committed[name] = accepted
                if not os.path.exists(os.path.join(done, name)):
                    fail("%s: expected in done/, found in %s" % (
                        name, "failed/" if os.path.exists(os.path.join(failed, name)) else "neither"))
                if errors or more:
                    check(os.path.exists(rejected_csv), "%s: done/ with %s.rejected.csv" % (name, stem))
                    with open(rejected_csv, encoding="utf-8", errors="replace") as f:
                        report = f.read()
                    for row, col, text in errors:
                        if "\n%d,%d," % (row, col) not in report:
                            fail("%s: done/%s.rejected.csv lacks line %d column %d (%s):\n%s"
                                 % (name, stem, row, col, text, report))
                else:
                    check(not os.path.exists(rejected_csv), "%s: done/ and nothing rejected" % name)
            else:
                if not os.path.exists(os.path.join(failed, name)):
                    fail("%s: expected in failed/, found elsewhere" % name)
                check(os.path.exists(error_file), "%s: failed/ with %s.error" % (name, stem))
                with open(error_file, encoding="utf-8", errors="replace") as f:
                    report = f.read()
                for row, col, text in errors:
                    where = "%s:%d:%d: " % (name, row, col) if col else "%s:%d: " % (name, row)
                    if where not in report or text not in report:
                        fail("%s: failed/%s.error lacks %s%s:\n%s" % (name, stem, where, text, report))

        rc, _ = ws.stop()
        check(rc == 0, "clean stop after the corpus")
        db = sqlite3.connect(os.path.join(ws.state, "ewsd.db"))
        try:
            check(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "database intact")
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            check({"observations", "localities", "ingests"} <= tables,
                  "no table was dropped by SQL fragments in the data")
            recorded = {os.path.basename(name): accepted
                        for name, accepted in db.execute("SELECT name, accepted FROM ingests")}
            check(recorded == committed,
                  "the ingests table records exactly the committed files and their accepted rows")
            # Files share natural keys (re-ingesting replaces), so rows <= the accepted total.
            n = db.execute("SELECT count(*) FROM observations").fetchone()[0]
            check(0 < n <= sum(committed.values()),
                  "the database holds no more than the accepted rows (%d)" % n)
            sources = {r[0] for r in db.execute("SELECT DISTINCT source FROM observations")}
            check("monitor-1--" in sources, "SQL-looking text that fits its pattern is stored as text")
        finally:
            db.close()
    finally:
        ws.cleanup()


if __name__ == "__main__":
    main()
