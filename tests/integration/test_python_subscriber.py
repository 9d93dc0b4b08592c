"""docs/examples/ews_subscriber.py against the real ewsd: demo data and a feed of weeks.

Five runs of the example, as subprocesses of this interpreter (which has pyzmq):

  A  --replay-from 0 --json, started BEFORE the daemon: its first replay request gets no
     reply, so it retries on new sockets (lazy pirate) until the daemon answers; then it
     prints the events already stored and follows the live stream.
  B  --json, every region, started after the first evaluation: prints from its join point.
  C  --region <one province>, text lines: settles the jumps that other regions' events make
     with a replay for its prefix.
  D  --replay-from K --count 5 --json after the feed: prints seq K+1..K+5 and exits 0.
  E  --snapshot --region <province>: prints the open alerts the snapshot holds.

Each must print alerts exactly once, in seq order, identical to the daemon's own replay from
the query endpoint (A all of them, B a gapless run up to the last, C every event of its
province after its first). Then: a query endpoint that never answers makes the example exit
1 after its retries, and --server-key without --key-file is a usage error (exit 2).
"""
import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

from harness import SOURCE, Workspace, check, fail, free_port, query, replay_all

EXAMPLE = os.path.join(SOURCE, "docs", "examples", "ews_subscriber.py")


class Run:
    """One run of the example, its stdout and stderr in files of the workspace."""

    def __init__(self, ws, name, *args):
        self.name = name
        self.out_path = os.path.join(ws.dir, name + ".out")
        self.err_path = os.path.join(ws.dir, name + ".err")
        self.out = open(self.out_path, "w")
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen([sys.executable, EXAMPLE, "--endpoint", ws.pub, "--query", ws.query, *args],
                                     stdout=self.out, stderr=self.err)

    def lines(self):
        with open(self.out_path) as f:
            return [line for line in f.read().splitlines() if line.strip()]

    def stderr(self):
        with open(self.err_path) as f:
            return f.read()

    def payloads(self):
        try:
            return [json.loads(line) for line in self.lines()]
        except ValueError as e:
            fail("%s printed a line that is not JSON: %s" % (self.name, e))

    def wait_until_seq(self, seq, seconds, text=False):
        deadline = time.time() + seconds
        while time.time() < deadline:
            lines = self.lines()
            if lines and int(lines[-1].split()[0] if text else json.loads(lines[-1])["seq"]) >= seq:
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.2)
        return False

    def stop(self):
        """SIGTERM; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            fail("%s did not stop within 10 s of SIGTERM" % self.name)
        self.out.close()
        self.err.close()
        return rc


def wait_spooled(ws, names, seconds=90):
    """Waits until the daemon has taken every named spool file and evaluated after the last."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        taken = all(any(os.path.exists(os.path.join(ws.spool, d, n)) for d in ("done", "failed"))
                    for n in names)
        log = ws.log_text()
        at = log.rfind(names[-1])
        if taken and at >= 0 and log.find("evaluation (", at) >= 0:
            return
        time.sleep(0.2)
    fail("the daemon did not take and evaluate %s within %d s" % (names, seconds))


def main():
    ws = Workspace()
    runs = []
    try:
        data, _ = ws.gen_demo(localities=240, seed=11, feed_weeks=6)
        ws.drop(os.path.join(data, "history.csv"))

        a = Run(ws, "A", "--replay-from", "0", "--json", "--request-timeout", "1", "--retries", "10")
        runs.append(a)
        time.sleep(2.5)  # two requests time out before the daemon exists
        check(a.proc.poll() is None, "A waits for the query endpoint instead of giving up")
        ws.start()
        check(ws.wait_log("evaluation (full)", timeout=120), "ewsd evaluated the history")
        b = Run(ws, "B", "--json")
        runs.append(b)
        first = replay_all(ws.query)
        check(len(first) > 0, "the first evaluation published %d events" % len(first))
        region = first[0]["payload"]["locality"]["region"].split("/")
        province = "/".join(region[:2])
        c = Run(ws, "C", "--region", province)
        runs.append(c)
        time.sleep(2)  # B and C have joined: heartbeats arrive every second

        feed = sorted(glob.glob(os.path.join(data, "feed", "*.csv")))
        for f in feed:
            ws.drop(f)
            time.sleep(1.5)
        wait_spooled(ws, [os.path.basename(f) for f in feed])
        time.sleep(2)  # heartbeats tell every subscriber the last seq
        events = replay_all(ws.query)
        alerts = [e for e in events if e["topic"].startswith("alert/")]
        seqs = [e["payload"]["seq"] for e in alerts]
        check(seqs == list(range(1, len(seqs) + 1)) and len(alerts) > len(first),
              "the daemon's replay holds alerts 1..%d, %d of them published during the feed"
              % (len(seqs), len(alerts) - len(first)))
        last = seqs[-1]
        for run in (a, b):
            if not run.wait_until_seq(last, 60):
                fail("%s did not print up to seq %d: %s" % (run.name, last, run.stderr()[-500:]))
        mine = [e for e in alerts if e["topic"].startswith("alert/%s/" % province)]
        if not c.wait_until_seq(mine[-1]["payload"]["seq"], 60, text=True):
            fail("C did not print up to seq %d: %s" % (mine[-1]["payload"]["seq"], c.stderr()[-500:]))
        time.sleep(1.5)  # nothing more may come: a duplicate would show now
        for run in (a, b, c):
            rc = run.stop()
            check(rc == 0, "%s exits 0 on SIGTERM (%d)" % (run.name, rc))

        printed = a.payloads()
        check([p["seq"] for p in printed] == seqs, "A printed every alert once, in seq order (1..%d)" % last)
        check(printed == [e["payload"] for e in alerts], "A's payloads equal the daemon's replay")
        check("no reply from" in a.stderr() and "asking again" in a.stderr(),
              "A retried on a new socket while the daemon was down: %s" % a.stderr().splitlines()[:1])

        printed = b.payloads()
        joined = printed[0]["seq"] if printed else None
        check(joined is not None and joined > 1,
              "B printed from its join point on (seq %s), not the stored events" % joined)
        check([p["seq"] for p in printed] == list(range(joined, last + 1)),
              "B printed a gapless run %d..%d, each once" % (joined, last))
        check(printed == [e["payload"] for e in alerts if e["payload"]["seq"] >= joined],
              "B's payloads equal the daemon's replay")

        lines = c.lines()
        start = int(lines[0].split()[0]) if lines else None
        expected = [e["payload"] for e in mine if start is not None and e["payload"]["seq"] >= start]
        shown = []
        for line in lines:
            # "<seq> <event> <level> <locality id> <"name" as JSON> <score or ->"
            seq, event, level, locality, rest = line.split(" ", 4)
            name, score = rest.rsplit(" ", 1)
            shown.append((int(seq), event, level, locality, json.loads(name),
                          None if score == "-" else float(score)))
        want = [(p["seq"], p["event"], p["level"], p["locality"]["id"], p["locality"]["name"], p["score"])
                for p in expected]
        check(len(shown) >= 5 and shown == want,
              "C printed the %d events of %s from seq %s on, once each, in order, one line each "
              "(seq, event, level, locality, score)" % (len(shown), province, start))
        jumps = sum(1 for prev, s in zip(shown, shown[1:]) if s[0] - prev[0] > 1)
        check(jumps >= 1, "C's seqs jump %d times, where other regions' events were" % jumps)

        # --replay-from K --count 5 prints K+1..K+5 and exits 0.
        k = last // 2
        d = Run(ws, "D", "--replay-from", str(k), "--count", "5", "--json", "--timeout", "30")
        runs.append(d)
        try:
            rc = d.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            fail("D did not exit after --count 5")
        d.stop()
        check(rc == 0 and [p["seq"] for p in d.payloads()] == list(range(k + 1, k + 6)),
              "--replay-from %d --count 5 printed seq %d..%d and exited 0 (%d)" % (k, k + 1, k + 5, rc))
        check(d.payloads() == [e["payload"] for e in alerts[k:k + 5]], "and they equal the replay")

        # --snapshot prints the open alerts, as the query endpoint's snapshot has them.
        e = Run(ws, "E", "--snapshot", "--json", "--region", province, "--timeout", "3")
        runs.append(e)
        rc = e.proc.wait(timeout=30)
        e.stop()
        snap = query(ws.query, {"op": "snapshot", "prefix": "alert/%s/" % province})
        check(rc == 0 and snap["alerts"] and e.payloads() == snap["alerts"],
              "--snapshot printed the %d open alerts of %s (%d)" % (len(snap["alerts"]), province, rc))

        rc, _ = ws.stop()
        check(rc == 0, "ewsd stopped cleanly")

        # A query endpoint that never answers: exit 1 after 1 + 2 attempts.
        dead = "tcp://127.0.0.1:%d" % free_port()
        started = time.time()
        r = subprocess.run([sys.executable, EXAMPLE, "--endpoint", ws.pub, "--query", dead, "--replay-from", "0",
                            "--request-timeout", "0.3", "--retries", "2"],
                           capture_output=True, text=True, timeout=30)
        took = time.time() - started
        # 0.3 + 0.6 + 1.2 s: each retry waits twice as long.
        waits = [float(w) for w in re.findall(r"within ([0-9.]+) s", r.stderr)]
        check(r.returncode == 1 and "did not answer 3 requests" in r.stderr and waits == [0.3, 0.6]
              and 2.1 <= took < 20,
              "a silent query endpoint: exit 1 after 3 attempts of 0.3, 0.6 and 1.2 s, in %.1f s (%d: %s)"
              % (took, r.returncode, r.stderr.strip().splitlines()[-1:]))
        r = subprocess.run([sys.executable, EXAMPLE, "--server-key", os.path.join(ws.dir, "server.key")],
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 2 and "--server-key and --key-file go together" in r.stderr,
              "--server-key without --key-file is a usage error (%d)" % r.returncode)
    finally:
        for run in runs:
            if run.proc.poll() is None:
                run.proc.kill()
                run.proc.wait()
        ws.cleanup()


if __name__ == "__main__":
    main()
