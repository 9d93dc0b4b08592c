"""The ingest endpoint: a tool pushes batches (CSV or JSON Lines) to the real ewsd over tcp with
a plain pyzmq REQ socket and gets every rejected row back. Asserts the reply of a good batch,
of bad rows under each policy, of a duplicate, of a JSON Lines batch and of malformed
requests (the daemon keeps serving); that a pushed batch is evaluated (alerts are raised for
the deteriorating localities); that `ewsctl ingest` goes through the endpoint while the
daemon runs; and, once it is stopped, that exactly the acknowledged rows are in the SQLite
file."""
import json
import os
import sqlite3
import subprocess
import time

import zmq

from harness import EWSCTL, Workspace, check, fail, free_port, query, replay_all


def push(endpoint, frames, timeout_ms=30000):
    """Sends one request (a list of frames) from a fresh REQ socket; returns the JSON reply."""
    s = zmq.Context.instance().socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, timeout_ms)
    s.connect(endpoint)
    try:
        s.send_multipart([f if isinstance(f, bytes) else f.encode() for f in frames])
        return json.loads(s.recv())
    except zmq.Again:
        fail("no reply from the ingest endpoint within %d ms" % timeout_ms)
    finally:
        s.close()


def batch(endpoint, content, fmt="csv", name=None, policy=None):
    header = {"format": fmt}
    if name:
        header["name"] = name
    if policy:
        header["policy"] = policy
    return push(endpoint, [json.dumps(header), content])


def main():
    ws = Workspace()
    ingest = "tcp://127.0.0.1:%d" % free_port()
    with open(ws.config) as f:
        text = f.read()
    with open(ws.config, "w") as f:
        f.write(text.replace('policy = "partial"', 'policy = "partial"\nbind = "%s"' % ingest, 1))
    try:
        data, trajectories = ws.gen_demo(localities=120, seed=11, feed_weeks=0)
        rising = {l for l, t in trajectories.items() if t == "rising"}
        a, b = sorted(trajectories)[:2]
        ws.start()
        check(ws.wait_log("evaluation (full)", timeout=60), "ewsd started with an ingest endpoint")

        good = ("locality,time,kind,value,weight,source\n"
                "%s,2026-01-05,incident.armed_violence,2,1,monitor-1\n"
                "%s,2026-01-05,incident.armed_violence,1,1,monitor-1\n" % (a, b))
        r = batch(ingest, good, name="good.csv")
        check(r == {"name": "good.csv", "accepted": 2, "rejected": [], "rejected_total": 0,
                    "committed": True, "duplicate": False},
              "a good CSV batch is committed and acknowledged: %s" % r)

        bad = ("locality,time,kind,value,weight,source\n"
               "%s,2026-01-06,incident.armed_violence,2,1,monitor-1\n"
               "NOWHERE-1,2026-01-06,incident.armed_violence,2,1,monitor-1\n"
               "%s,2026-01-06,incident.armed_violence,-3,1,monitor-1\n"
               "%s,not-a-date,incident.armed_violence,1,1,monitor-1\n" % (a, a, a))
        r = batch(ingest, bad, name="bad.csv")
        where = [(e["line"], e["column"]) for e in r.get("rejected", [])]
        check(not r["committed"] and r["accepted"] == 0 and where == [(3, 1), (4, 4), (5, 2)],
              "under the default endpoint_policy (reject_file) nothing is committed and each bad "
              "row is listed: %s" % where)
        check("unknown locality 'NOWHERE-1'" in r["rejected"][0]["reason"]
              and "negative count" in r["rejected"][1]["reason"],
              "each rejected row says why")

        r = batch(ingest, bad, name="bad.csv", policy="partial")
        check(r["committed"] and r["accepted"] == 1 and r["rejected_total"] == 3
              and [(e["line"], e["column"]) for e in r["rejected"]] == where,
              "with policy partial the good row is committed and the same rows are listed")

        r = batch(ingest, good, name="good-again.csv")
        check(r["duplicate"] and r["accepted"] == 0 and not r["rejected"],
              "the same batch again is recognised as a duplicate: %s" % r)

        lines = ['{"locality":"%s","time":"2026-01-07","kind":"presence.report","value":0.4,'
                 '"source":"field-a"}' % b,
                 '{"locality":"%s","time":"2026-01-07","kind":"presence.report","value":"0.4"}' % b,
                 '{"locality":"%s","time":"2026-01-07","kind":"presence.report","value":0.2,'
                 '"child_name":"x"}' % b]
        expected = [(2, lines[1].index('"0.4"') + 1), (3, lines[2].index('"child_name"') + 1)]
        r = batch(ingest, "\r\n".join(lines) + "\r\n", fmt="jsonl", name="field.jsonl",
                  policy="partial")
        reasons = [e["reason"] for e in r["rejected"]]
        check(r["committed"] and r["accepted"] == 1
              and [(e["line"], e["column"]) for e in r["rejected"]] == expected
              and "must be a JSON number" in reasons[0] and "child_name" in reasons[1],
              "a JSON Lines batch: rejects located by line and character column: %s" % r)

        for frames, expect in (([json.dumps({"format": "csv"})], "expected 2 frames"),
                               (["{not json", good], "invalid JSON"),
                               ([json.dumps({"format": "xml"}), good], "format must be"),
                               ([json.dumps({"format": "csv", "policy": "maybe"}), good], "policy")):
            r = push(ingest, frames)
            check(expect in r.get("error", ""), "a malformed request gets an error reply: %s" % r)
        check(query(ws.query, {"op": "status"}).get("localities") == 120,
              "the daemon keeps serving after malformed requests")

        # A pushed batch is evaluated like a spool file: the deteriorating localities raise.
        before = replay_all(ws.query, 0)
        last = before[-1]["payload"]["seq"] if before else 0
        with open(os.path.join(data, "history.csv"), "rb") as f:
            history = f.read()
        r = batch(ingest, history, name="history.csv", policy="partial")
        check(r["committed"] and r["accepted"] > 1000, "the history is pushed (%d rows)" % r["accepted"])
        raised = set()
        deadline = time.time() + 30
        while time.time() < deadline and len(rising & raised) < len(rising):
            for e in replay_all(ws.query, last):
                p = e["payload"]
                if p.get("event") == "raised" and p.get("level") != "none":
                    raised.add(p["locality"]["id"])
            time.sleep(0.2)
        check(rising and len(rising & raised) >= max(1, len(rising) // 2),
              "%d of %d deteriorating localities raised alerts after the pushed batch"
              % (len(rising & raised), len(rising)))
        check("history.csv (ingest endpoint): %d rows committed" % r["accepted"] in ws.log_text(),
              "the pushed batch is logged like a spool file")

        # ewsctl ingest goes through the endpoint while the daemon runs.
        monitor = os.path.join(ws.dir, "monitor.csv")
        with open(monitor, "w") as f:
            f.write("locality,time,kind,value,weight,source\n"
                    "%s,2026-01-08,incident.abduction,1,1,monitor-2\n"
                    "NOWHERE-2,2026-01-08,incident.abduction,1,1,monitor-2\n" % a)
        out = ws.ewsctl("ingest", monitor, check_rc=False)
        check(out.returncode == 1 and "monitor.csv:3:1: unknown locality 'NOWHERE-2'" in out.stdout
              and "1 rows committed, 1 rejected by the running daemon" in out.stdout,
              "ewsctl ingest reports the daemon's rejects (exit 1): %s" % out.stdout.strip())
        out = subprocess.run([EWSCTL, "--config", ws.config, "ingest", "--format", "jsonl", "-"],
                             input='{"locality":"%s","time":"2026-01-09","kind":"incident.abduction",'
                                   '"value":2,"source":"monitor-3"}\n' % a,
                             capture_output=True, text=True)
        check(out.returncode == 0 and "stdin: 1 rows committed, 0 rejected by the running daemon"
              in out.stdout, "ewsctl ingest --format jsonl - pushes stdin: %s" % out.stdout.strip())

        # A JSON Lines file dropped into the spool is ingested like a CSV one.
        feed = os.path.join(ws.dir, "feed.jsonl")
        with open(feed, "w") as f:
            f.write('{"locality":"%s","time":"2026-01-09","kind":"incident.abduction","value":1,'
                    '"source":"monitor-1"}\n{"locality":"%s","time":"2026-01-09"}\n' % (b, b))
        ws.drop(feed)
        check(ws.wait_log("feed.jsonl: 1 rows committed, 1 rejected", timeout=20),
              "a .jsonl spool file is ingested")
        check(os.path.exists(os.path.join(ws.spool, "done", "feed.rejected.csv")),
              "its rejected row is listed in done/feed.rejected.csv")

        rc, _ = ws.stop()
        check(rc == 0, "clean stop")

        db = sqlite3.connect(os.path.join(ws.state, "ewsd.db"))
        try:
            pushed = db.execute("SELECT count(*) FROM observations "
                                "WHERE source IN ('monitor-1', 'monitor-2', 'monitor-3')").fetchone()[0]
            names = {n for (n,) in db.execute("SELECT name FROM ingests")}
        finally:
            db.close()
        # good: 2, bad (partial): 1, monitor.csv: 1, stdin: 1, feed.jsonl: 1; nothing from the
        # refused batches.
        check(pushed == 6, "exactly the acknowledged monitor rows are in the database (%d)" % pushed)
        check({"good.csv", "bad.csv", "field.jsonl", "history.csv"} <= names,
              "each committed batch is recorded under its name: %s" % sorted(names))
    finally:
        ws.cleanup()


if __name__ == "__main__":
    main()
