"""Store lifecycle from the operator's side: `ewsctl backup` while the daemon runs, `ewsctl db
stats` and `db check`, retention keys accepted, and a corrupt database refused at start with
a message saying how to restore a backup."""
import json
import os
import sqlite3
import subprocess

from harness import EWSD, Workspace, check, fail, query


def main():
    ws = Workspace(extra_config="\n[retention]\nobservations_days = 800\nalerts_days = 400\n")
    try:
        data, trajectories = ws.gen_demo(localities=40, seed=9)
        ws.drop(os.path.join(data, "history.csv"))
        ws.start()
        check(ws.wait_log("evaluation (full)", timeout=60), "ewsd started with [retention] set")
        check(ws.wait_log("history.csv: ", timeout=30), "history ingested")

        out = os.path.join(ws.dir, "backups", "ewsd-backup.db")
        os.makedirs(os.path.dirname(out))
        r = ws.ewsctl("backup", out)
        check(os.path.exists(out), "ewsctl backup wrote %s while the daemon runs" % out)
        leftovers = [f for f in os.listdir(os.path.dirname(out)) if f != "ewsd-backup.db"]
        check(not leftovers, "no temporary file left beside the backup (%s)" % leftovers)
        db = sqlite3.connect(out)
        check(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "the backup passes integrity_check")
        rows = db.execute("SELECT count(*) FROM observations").fetchone()[0]
        locs = db.execute("SELECT count(*) FROM localities").fetchone()[0]
        db.close()
        status = query(ws.query, {"op": "status"})
        check(rows == status["observations"] and locs == len(trajectories),
              "the backup holds every observation (%d) and locality (%d)" % (rows, locs))

        r = ws.ewsctl("db", "stats", "--json")
        stats = json.loads(r.stdout)
        check(isinstance(stats, dict) and json.dumps(stats).find(str(rows)) >= 0,
              "db stats --json reports the observation count")
        r = ws.ewsctl("db", "check")
        check(r.returncode == 0, "db check says the live database is sound")
        rc, _ = ws.stop()
        check(rc == 0, "clean stop")

        # Damage the database: the daemon must refuse to run, saying how to restore.
        db_file = os.path.join(ws.state, "ewsd.db")
        with open(db_file, "r+b") as f:
            f.seek(4096 * 2)
            f.write(os.urandom(4096 * 3))
        r = subprocess.run([EWSD, "--config", ws.config, "--once"], capture_output=True, text=True, timeout=60)
        out_text = r.stdout + r.stderr
        check(r.returncode != 0, "ewsd refuses a corrupt database (exit %d)" % r.returncode)
        check("corrupt" in out_text.lower() and "backup" in out_text.lower(),
              "the refusal says how to restore a backup: %s" % out_text.strip()[-300:])
        r = ws.ewsctl("db", "check", check_rc=False)
        check(r.returncode == 1, "db check reports the damage (exit 1)")
    finally:
        ws.cleanup()


if __name__ == "__main__":
    main()
