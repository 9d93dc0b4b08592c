"""ews-sub end to end: the real ewsd, real sockets, a real SQLite file, ews-sub as staff run it.

(a) --format csv parses with Python's csv module under the header seq,at,event,level,
    previous_level,locality,name,region,score,confidence,alert_id, quoting locality names that
    hold a comma or double quotes (RFC 4180); --format json prints the payloads; --events,
    --min-level and --region filter what is printed; --count counts printed alerts only.
(b) ews-sub is killed with SIGKILL while demo weeks keep arriving in the spool, and started
    again with the same --state: its two outputs together hold every seq exactly once, in
    order, and equal the query endpoint's replay from 1 to the last seq.
(c) ewsd is killed with SIGKILL while demo weeks keep arriving and restarted after more than
    three heartbeat intervals, while an ews-sub runs: it reconnects, and its output still holds
    every event exactly once, in order.
(c2) Later, ewsd and the restarted ews-sub of (b) are both killed with SIGKILL in the middle
    of a week's events, and both started again (ews-sub with the same --state): the three
    outputs of that subscriber together hold every event exactly once, in order.
(d) SIGTERM exits 0; a bad --events exits 2 naming the valid events; a --state file that
    cannot be read or written exits 3; a query endpoint that never answers while a replay is
    needed exits 1 after --give-up.
(e) With CURVE on both endpoints (ewsctl keygen keys, an authorized-keys directory), an
    authorized subscriber receives live and replayed events with --server-key as a file or as
    Z85 text; an unauthorized key exits 1 at once; a plain client or a wrong server key exits 1
    after --give-up; a public certificate as --key-file is a usage error.
"""
import csv
import datetime
import glob
import io
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

from harness import EWS_SUB, FIXTURES, Workspace, check, fail, free_port, replay_all, today

CSV_HEADER = ["seq", "at", "event", "level", "previous_level", "locality", "name", "region", "score",
              "confidence", "alert_id"]
RANK = {"none": 0, "watch": 1, "warning": 2, "critical": 3}


class Sub:
    """One ews-sub process writing to files in `directory`."""

    def __init__(self, directory, name, *args):
        self.out_path = os.path.join(directory, name + ".out")
        self.err_path = os.path.join(directory, name + ".err")
        self.out = open(self.out_path, "w")
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen([EWS_SUB, *args], stdout=self.out, stderr=self.err)

    def text(self):
        with open(self.out_path) as f:
            return f.read()

    def stderr(self):
        with open(self.err_path) as f:
            return f.read()

    def json_lines(self):
        """The complete lines so far; once the process has ended, a cut last line is a failure."""
        text = self.text()
        if not text.endswith("\n") and text and self.proc.poll() is not None:
            fail("%s ends with a cut line: %r" % (self.out_path, text[-200:]))
        return [json.loads(line) for line in text[:text.rfind("\n") + 1].splitlines() if line.strip()]

    def wait_for(self, predicate, seconds):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if predicate(self):
                return True
            if self.proc.poll() is not None:
                return predicate(self)
            time.sleep(0.05)
        return predicate(self)

    def terminate(self, seconds=10):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            fail("ews-sub did not stop within %d s of SIGTERM" % seconds)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.out.close()
        self.err.close()


def run_sub(*args, timeout=60):
    return subprocess.run([EWS_SUB, *args], capture_output=True, text=True, timeout=timeout)


def csv_cells(payload):
    """The CSV row ews-sub must print for `payload`, as the csv module reads it back."""
    def cell(v):
        if v is None:
            return ""
        if isinstance(v, str):
            return v
        return json.dumps(v)
    loc = payload["locality"]
    alert_id = payload["alert_id"] if "alert_id" in payload else payload["id"]
    return [cell(payload["seq"]), cell(payload["at"]), cell(payload["event"]), cell(payload["level"]),
            cell(payload["previous_level"]), cell(loc["id"]), cell(loc["name"]), cell(loc["region"]),
            cell(payload["score"]), cell(payload["confidence"]), cell(alert_id)]


def shown(payload, events=None, min_level="none", region=""):
    """The filter rule of docs/protocol.md section 12, written out independently."""
    if events is not None and payload["event"] not in events:
        return False
    if region and not (payload["locality"]["region"] + "/").startswith(region.rstrip("/") + "/"):
        return False
    if RANK.get(payload["level"], -1) >= RANK[min_level]:
        return True
    return payload["event"] in ("resolved", "deescalated") and RANK.get(payload["previous_level"], -1) >= RANK[min_level]


def write_signal(path, values, day):
    with open(path, "w") as f:
        f.write("locality,time,kind,value\n")
        for loc, value in values.items():
            f.write("%s,%s,test.signal,%s\n" % (loc, day, value))


def wait_events(ws, predicate, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        events = [e["payload"] for e in replay_all(ws.query)]
        if predicate(events):
            return events
        time.sleep(0.2)
    return [e["payload"] for e in replay_all(ws.query)]


def formats_and_filters(out_dir):
    """(a) on a small scripted scenario: a fixture plugin scores test.signal / 10."""
    plugins = tempfile.mkdtemp(prefix="ewsd-it-plugins-")
    shutil.copy(os.path.join(FIXTURES, "fixture_good.so"), plugins)
    ws = Workspace(plugin_dir=plugins)
    live = None
    try:
        with open(ws.config) as f:
            text = f.read()
        with open(ws.config, "w") as f:
            f.write(text.replace("evaluate_every_s = 3600", "evaluate_every_s = 1"))
        localities = os.path.join(ws.dir, "localities.csv")
        with open(localities, "w") as f:
            f.write('id,name,region,population,neighbours\n'
                    'Q-1,"Kibera, North",Q/Q1,500,\n'
                    'Q-2,"The ""Old"" Town",Q/Q2,500,\n'
                    'R-1,Riverside,R/R1,500,\n')
        ws.ewsctl("localities", "import", localities)
        ws.start()
        check(ws.wait_log("evaluation (full)", timeout=60), "(a) ewsd started on the scripted scenario")

        # A live subscriber from seq 0, in CSV, before anything is published.
        live = Sub(out_dir, "a-live", "--endpoint", ws.pub, "--query", ws.query, "--replay-from", "0",
                   "--format", "csv")
        check(live.wait_for(lambda s: s.text() == ",".join(CSV_HEADER) + "\n", 10),
              "(a) the CSV header comes first, alone: %r" % live.text())

        # Scores 90, 70, 50 (signal / 10 x 100): critical (raise 80), warning (60), watch (45
        # in this config); raise_after = 1 raises each at the next evaluation.
        high = os.path.join(ws.dir, "high.csv")
        write_signal(high, {"Q-1": 9, "Q-2": 7, "R-1": 5}, today() - datetime.timedelta(days=1))
        ws.drop(high)
        events = wait_events(ws, lambda ev: len([e for e in ev if e["event"] == "raised"]) == 3, 20)
        raised = {e["locality"]["id"]: e["level"] for e in events if e["event"] == "raised"}
        check(raised == {"Q-1": "critical", "Q-2": "warning", "R-1": "watch"},
              "(a) the three localities raised at critical, warning, watch: %s" % raised)
        r = run_sub("--endpoint", ws.pub, "--query", ws.query, "--snapshot", "--format", "csv", "--timeout", "1.5")
        rows = list(csv.reader(io.StringIO(r.stdout, newline="")))
        check(r.returncode == 0 and rows[0] == CSV_HEADER and
              sorted((row[5], row[2], row[3]) for row in rows[1:]) ==
              [("Q-1", "raised", "critical"), ("Q-2", "raised", "warning"), ("R-1", "raised", "watch")],
              "(a) --snapshot prints the three open alerts once: %s" % rows[1:])
        # All three fall to 0: clear_after = 2 evaluations later each alert is resolved.
        low = os.path.join(ws.dir, "low.csv")
        write_signal(low, {"Q-1": 0, "Q-2": 0, "R-1": 0}, today())
        ws.drop(low)
        events = wait_events(ws, lambda ev: len([e for e in ev if e["event"] == "resolved"]) == 3, 20)
        resolved = {e["locality"]["id"]: e["previous_level"] for e in events if e["event"] == "resolved"}
        check(resolved == {"Q-1": "critical", "Q-2": "warning", "R-1": "watch"},
              "(a) the three alerts resolved: %s" % resolved)
        last = events[-1]["seq"]

        check(live.wait_for(lambda s: len(s.text().splitlines()) == 1 + len(events), 10),
              "(a) the live CSV subscriber printed %d rows" % len(events))
        rc = live.terminate()
        check(rc == 0, "(d) SIGTERM: ews-sub exits 0 (%s)" % rc)
        text = live.text()
        rows = list(csv.reader(io.StringIO(text, newline="")))
        check(rows[0] == CSV_HEADER, "(a) the CSV header is %s" % rows[0])
        check(rows[1:] == [csv_cells(e) for e in events],
              "(a) each CSV row holds its event's fields, %d rows for seq 1..%d" % (len(rows) - 1, last))
        check('"Kibera, North"' in text and '"The ""Old"" Town"' in text,
              "(a) a name with a comma is quoted, a double quote doubled (RFC 4180)")
        names = {r[5]: r[6] for r in rows[1:]}
        check(names == {"Q-1": "Kibera, North", "Q-2": 'The "Old" Town', "R-1": "Riverside"},
              "(a) the csv module reads the names back exactly: %s" % names)

        # The same events replayed in JSON, filtered.
        r = run_sub("--endpoint", ws.pub, "--query", ws.query, "--replay-from", "0", "--format", "json",
                    "--timeout", "2")
        check(r.returncode == 0 and [json.loads(l) for l in r.stdout.splitlines()] == events,
              "(a) --format json prints every payload as replayed (%d lines, exit %d)"
              % (len(r.stdout.splitlines()), r.returncode))

        # raised and resolved at warning or above: Q-1 (critical) and Q-2 (warning) raised,
        # then both resolved (their previous level was at least warning); R-1 (watch) not.
        r = run_sub("--endpoint", ws.pub, "--query", ws.query, "--replay-from", "0", "--format", "json",
                    "--events", "raised,resolved", "--min-level", "warning", "--timeout", "2")
        got = [(p["locality"]["id"], p["event"]) for p in map(json.loads, r.stdout.splitlines())]
        check(sorted(got) == [("Q-1", "raised"), ("Q-1", "resolved"), ("Q-2", "raised"), ("Q-2", "resolved")],
              "(a) --events raised,resolved --min-level warning: %s" % got)
        expected = [e for e in events if shown(e, {"raised", "resolved"}, "warning")]
        check([json.loads(l) for l in r.stdout.splitlines()] == expected, "(a) ... in seq order")

        # --region Q, resolved only, in CSV: Q-1 and Q-2.
        r = run_sub("--endpoint", ws.pub, "--query", ws.query, "--replay-from", "0", "--format", "csv",
                    "--region", "Q", "--events", "resolved", "--timeout", "2")
        rows = list(csv.reader(io.StringIO(r.stdout, newline="")))
        check(rows[0] == CSV_HEADER and sorted(row[5] for row in rows[1:]) == ["Q-1", "Q-2"] and
              all(row[2] == "resolved" and row[3] == "none" for row in rows[1:]),
              "(a) --region Q --events resolved --format csv: %s" % rows[1:])

        # --count counts printed alerts: two raised, then exit 0 without waiting.
        started = time.time()
        r = run_sub("--endpoint", ws.pub, "--query", ws.query, "--replay-from", "0", "--format", "json",
                    "--events", "raised", "--count", "2", "--timeout", "30")
        got = [json.loads(l)["event"] for l in r.stdout.splitlines()]
        check(r.returncode == 0 and got == ["raised", "raised"] and time.time() - started < 10,
              "(a) --events raised --count 2 prints two raised events and exits 0 (%d, %s)" % (r.returncode, got))
        rc, _ = ws.stop()
        check(rc == 0, "(a) ewsd stopped")
    finally:
        if live:
            live.close()
        ws.cleanup()
        shutil.rmtree(plugins, ignore_errors=True)


def usage_and_failures(out_dir):
    """(d) exit statuses that need no daemon."""
    r = run_sub("--events", "raised,escalated,promoted")
    check(r.returncode == 2 and 'unknown event "promoted"' in r.stderr and
          "raised escalated deescalated resolved reminder flapping_started flapping_stopped data_gap "
          "data_restored" in r.stderr,
          "(d) --events with an unknown name exits 2 listing the valid ones (%d: %s)"
          % (r.returncode, r.stderr.strip().splitlines()[0] if r.stderr.strip() else ""))
    r = run_sub("--format", "xml")
    check(r.returncode == 2, "(d) --format xml exits 2")
    r = run_sub("--state", os.path.join(out_dir, "s"))
    check(r.returncode == 2 and "--query" in r.stderr, "(d) --state without --query exits 2")

    nowhere = "tcp://127.0.0.1:%d" % free_port()
    garbage = os.path.join(out_dir, "garbage.state")
    with open(garbage, "w") as f:
        f.write("not a seq\n")
    for state, why in ((garbage, "a malformed state file"), (out_dir, "a directory"),
                       (os.path.join(out_dir, "missing", "dir", "s.state"), "a state file in a missing directory")):
        r = run_sub("--endpoint", nowhere, "--query", nowhere, "--state", state, "--timeout", "5")
        check(r.returncode == 3 and state in r.stderr, "(d) --state %s exits 3 (%d: %s)" % (why, r.returncode, r.stderr.strip()))

    started = time.time()
    r = run_sub("--endpoint", nowhere, "--query", nowhere, "--replay-from", "0", "--give-up", "1.5")
    took = time.time() - started
    check(r.returncode == 1 and "did not answer" in r.stderr and 1.4 < took < 8,
          "(d) an unreachable query endpoint exits 1 after --give-up 1.5 (%d after %.1f s: %s)"
          % (r.returncode, took, r.stderr.strip()[-200:]))


def restarts(out_dir):
    """(b) and (c) on the demo: 240 localities, a year of history, then one week at a time."""
    ws = Workspace()
    subs = []
    try:
        data, _ = ws.gen_demo(localities=240, seed=11, feed_weeks=10)
        ws.drop(os.path.join(data, "history.csv"))
        ws.start()
        check(ws.wait_log("evaluation (full)", timeout=120), "(b) ewsd ingested the history and evaluated")
        history = len(replay_all(ws.query))
        check(history > 0, "(b) the history published %d events" % history)

        state = os.path.join(out_dir, "b.state")
        common = ["--endpoint", ws.pub, "--query", ws.query, "--replay-from", "0", "--format", "json"]
        a1 = Sub(out_dir, "b-first", *common, "--state", state)
        c = Sub(out_dir, "c", *common)
        subs += [a1, c]
        check(a1.wait_for(lambda s: len(s.json_lines()) >= history, 20) and
              c.wait_for(lambda s: len(s.json_lines()) >= history, 20),
              "(b) both subscribers caught up with the %d events of the history" % history)

        weeks = sorted(glob.glob(os.path.join(data, "feed", "*.csv")))
        check(len(weeks) == 10, "(b) the demo has 10 feed weeks")
        a2 = a3 = None
        killed_at = restarted_at = both_killed_at = None
        for k, week in enumerate(weeks, 1):
            before = len(replay_all(ws.query)) if ws.daemon.poll() is None else None
            ws.drop(week)
            if k == 3:
                # Kill the subscriber while this week's events arrive: as soon as it has
                # printed one of them, or after 3 s.
                a1.wait_for(lambda s: before is not None and len(s.json_lines()) > before, 3)
                a1.proc.send_signal(signal.SIGKILL)
                a1.proc.wait()
                killed_at = len(a1.json_lines())
            elif k == 4:
                time.sleep(1.0)  # this week is published while the subscriber is down
                a2 = Sub(out_dir, "b-second", *common, "--state", state)
                subs.append(a2)
            elif k == 6:
                # Kill the daemon right after this week's first events, stay down for more than
                # 3 heartbeat intervals (heartbeat_s = 1), and start it again.
                c.wait_for(lambda s: before is not None and len(s.json_lines()) > before, 3)
                ws.daemon.send_signal(signal.SIGKILL)
                ws.daemon.wait()
                restarted_at = len(c.json_lines())
                time.sleep(5.5)
                ws.start()
                check(ws.wait_log("evaluation (full)", timeout=60), "(c) ewsd restarted after SIGKILL")
                continue
            elif k == 8:
                # Kill both, the daemon and the subscriber, in the middle of this week's events,
                # then start both again: first the subscriber, then the daemon.
                a2.wait_for(lambda s: before is not None and s.json_lines() and s.json_lines()[-1]["seq"] > before, 3)
                ws.daemon.send_signal(signal.SIGKILL)
                a2.proc.send_signal(signal.SIGKILL)
                ws.daemon.wait()
                a2.proc.wait()
                both_killed_at = len(a2.json_lines())
                time.sleep(1.0)
                a3 = Sub(out_dir, "b-third", *common, "--state", state)
                subs.append(a3)
                time.sleep(1.0)
                ws.start()
                check(ws.wait_log("evaluation (full)", timeout=60), "(c2) ewsd restarted after SIGKILL")
                continue
            time.sleep(1.5)

        # Quiet: the outbox stops growing; both subscribers reach its last seq.
        events = replay_all(ws.query)
        for _ in range(20):
            time.sleep(1)
            now = replay_all(ws.query)
            if len(now) == len(events):
                break
            events = now
        seqs = [e["payload"]["seq"] for e in events]
        check(seqs == list(range(1, len(seqs) + 1)), "(b) the outbox holds seq 1..%d" % len(seqs))
        check(len(seqs) > history + 10, "(b) the feed weeks published %d more events" % (len(seqs) - history))
        last = seqs[-1]
        for s, name in ((a3, "the subscriber restarted twice"), (c, "the subscriber that outlived ewsd")):
            check(s.wait_for(lambda s: s.json_lines() and s.json_lines()[-1]["seq"] == last, 30),
                  "(b) %s reached seq %d" % (name, last))
        for s, name in ((a3, "the subscriber restarted twice"), (c, "the subscriber that outlived ewsd")):
            rc = s.terminate()
            check(rc == 0, "(d) SIGTERM: %s exits 0 (%s)" % (name, rc))

        payloads = [e["payload"] for e in events]
        first, second, third = a1.json_lines(), a2.json_lines(), a3.json_lines()
        check(0 < killed_at < len(seqs) and first and second,
              "(b) SIGKILL came after %d events; the restart printed %d" % (killed_at, len(second)))
        check(second[0]["seq"] == first[-1]["seq"] + 1,
              "(b) the restart went on at seq %d, after the killed one's last %d" % (second[0]["seq"], first[-1]["seq"]))
        check(0 < both_killed_at and second[-1]["seq"] < last and third,
              "(c2) ewsd and the subscriber were killed together at seq %d (%d events into the second "
              "run); the third run printed %d" % (second[-1]["seq"], both_killed_at, len(third)))
        check(third[0]["seq"] == second[-1]["seq"] + 1,
              "(c2) the third run went on at seq %d, after the second's last %d" % (third[0]["seq"], second[-1]["seq"]))
        union = first + second + third
        check([p["seq"] for p in union] == seqs,
              "(b, c2) the three outputs hold seq 1..%d exactly once, in order" % last)
        check(union == payloads, "(b, c2) ... and each line equals the replayed payload")
        with open(state) as f:
            saved = json.load(f)
        check(saved.get("seq") == last and saved.get("endpoint") == ws.pub,
              "(b) the state file holds the last seq: %s" % saved)

        check(0 < restarted_at < len(seqs), "(c) ewsd was killed after the subscriber had %d events" % restarted_at)
        lines = c.json_lines()
        check([p["seq"] for p in lines] == seqs and lines == payloads,
              "(c) across the daemon's SIGKILL and restart the subscriber printed seq 1..%d once, in order" % last)
        err = c.stderr()
        check("(3 heartbeat intervals); opening a new connection" in err and "connected to %s again" % ws.pub in err,
              "(c) it noticed the silence of 3 heartbeats, reconnected and said so:\n" + err.strip())
        rc, _ = ws.stop()
        check(rc == 0, "ewsd stopped")
    finally:
        for s in subs:
            s.close()
        ws.cleanup()


def operational_events(out_dir):
    """(a) Operational events take seqs too: printed in json and pretty, not in csv, not counted."""
    plugins = tempfile.mkdtemp(prefix="ewsd-it-plugins-")
    for name in ("fixture_good.so", "fixture_throws.so"):
        shutil.copy(os.path.join(FIXTURES, name), plugins)
    ws = Workspace(plugin_dir=plugins)
    try:
        with open(ws.config) as f:
            text = f.read()
        with open(ws.config, "w") as f:
            f.write(text.replace("evaluate_every_s = 3600", "evaluate_every_s = 1\nquarantine_after = 2"))
        localities = os.path.join(ws.dir, "localities.csv")
        with open(localities, "w") as f:
            f.write("id,name,region,population,neighbours\nQ-1,Quarry,Q/Q1,500,\n")
        ws.ewsctl("localities", "import", localities)
        ws.start()
        check(ws.wait_log("quarantined until its file changes", timeout=30),
              "(a) the throwing plugin was quarantined after 2 failing evaluations")
        signal_file = os.path.join(ws.dir, "high.csv")
        write_signal(signal_file, {"Q-1": 9}, today() - datetime.timedelta(days=1))
        ws.drop(signal_file)
        events = wait_events(ws, lambda ev: any(e.get("event") == "raised" for e in ev), 20)
        ops = [e for e in events if e["schema"] == "ews.ops/1"]
        alerts = [e for e in events if e["schema"] == "ews.alert/1"]
        check(len(ops) == 1 and ops[0]["event"] == "plugin_quarantined" and len(alerts) >= 1,
              "(a) the outbox holds %d ops event(s) and %d alert event(s)" % (len(ops), len(alerts)))

        common = ["--endpoint", ws.pub, "--query", ws.query, "--replay-from", "0", "--timeout", "1.5"]
        r = run_sub(*common, "--format", "json")
        check(r.returncode == 0 and [json.loads(l) for l in r.stdout.splitlines()] == events,
              "(a) json prints the ops event among the alerts, in seq order")
        r = run_sub(*common, "--format", "pretty", "--events", "raised")
        op = ops[0]
        ops_lines = [l for l in r.stdout.splitlines() if l.startswith("ops: ")]
        check(ops_lines == ["ops: plugin_quarantined #%d %s " % (op["seq"], op["at"]) +
                            " ".join("%s=%s" % (k, v) for k, v in op.items()
                                     if k not in ("schema", "seq", "event", "at"))],
              "(a) pretty prints it as one line, whatever --events says: %s" % ops_lines)
        check(sum(1 for l in r.stdout.splitlines() if " RAISED " in l) == 1,
              "(a) ... and the raised alert as a block")
        r = run_sub(*common, "--format", "csv")
        rows = list(csv.reader(io.StringIO(r.stdout, newline="")))
        check([row[0] for row in rows[1:]] == [str(e["seq"]) for e in alerts],
              "(a) csv has rows for the alert events only: %s" % [row[0] for row in rows[1:]])
        r = run_sub("--endpoint", ws.pub, "--query", ws.query, "--replay-from", "0", "--format", "json",
                    "--events", "raised", "--count", "1", "--timeout", "20")
        got = [json.loads(l) for l in r.stdout.splitlines()]
        raised = [e for e in alerts if e["event"] == "raised"][0]
        expected = [e for e in events if e["seq"] <= raised["seq"] and (e in ops or e is raised)]
        check(r.returncode == 0 and got == expected,
              "(a) --count 1 stops after the first alert; the ops event before it is not counted (%s)"
              % [(e["seq"], e["event"]) for e in got])
        rc, _ = ws.stop()
        check(rc == 0, "(a) ewsd stopped")
    finally:
        ws.cleanup()
        shutil.rmtree(plugins, ignore_errors=True)


def curve(out_dir):
    """(e) CURVE on both sockets against a daemon whose endpoints admit only authorized keys."""
    plugins = tempfile.mkdtemp(prefix="ewsd-it-plugins-")
    shutil.copy(os.path.join(FIXTURES, "fixture_good.so"), plugins)
    ws = Workspace(plugin_dir=plugins)
    try:
        keys = os.path.join(ws.dir, "keys")
        for name in ("server", "alice", "mallory"):
            ws.ewsctl("keygen", name, "--dir", keys)
        authorized = os.path.join(ws.dir, "authorized")
        os.makedirs(authorized)
        shutil.copy(os.path.join(keys, "alice.key"), authorized)
        with open(ws.config) as f:
            text = f.read()
        secured = 'curve_secret_key_file = "keys/server.key_secret"\nauthorized_keys_dir = "authorized"\n'
        for endpoint in (ws.pub, ws.query):
            text = text.replace('bind = "%s"\n' % endpoint, 'bind = "%s"\n%s' % (endpoint, secured))
        with open(ws.config, "w") as f:
            f.write(text.replace("evaluate_every_s = 3600", "evaluate_every_s = 1"))
        localities = os.path.join(ws.dir, "localities.csv")
        with open(localities, "w") as f:
            f.write("id,name,region,population,neighbours\nQ-1,Quarry,Q/Q1,500,\n")
        ws.ewsctl("localities", "import", localities)
        ws.start()
        check(ws.wait_log("evaluation (full)", timeout=60), "(e) ewsd started with CURVE on both endpoints")

        server_key = os.path.join(keys, "server.key")
        alice = ["--server-key", server_key, "--key-file", os.path.join(keys, "alice.key_secret")]
        first = Sub(out_dir, "e-alice", "--endpoint", ws.pub, "--query", ws.query, "--replay-from", "0",
                    "--format", "json", "--count", "1", "--timeout", "30", *alice)
        time.sleep(1)
        signal_file = os.path.join(ws.dir, "high.csv")
        write_signal(signal_file, {"Q-1": 9}, today() - datetime.timedelta(days=1))
        ws.drop(signal_file)
        rc = first.proc.wait(timeout=40)
        lines = first.json_lines()
        check(rc == 0 and len(lines) == 1 and lines[0]["event"] == "raised" and lines[0]["locality"]["id"] == "Q-1",
              "(e) an authorized key receives the raise over CURVE (%d: %s %s)" % (rc, lines, first.stderr().strip()))
        first.close()

        with open(server_key) as f:
            z85 = [l.split("=", 1)[1].strip().strip('"') for l in f if l.strip().startswith("public-key")][0]
        check(len(z85) == 40, "(e) the server's public key is 40 characters of Z85")
        r = run_sub("--endpoint", ws.pub, "--query", ws.query, "--replay-from", "0", "--format", "json",
                    "--count", "1", "--timeout", "20", "--server-key", z85,
                    "--key-file", os.path.join(keys, "alice.key_secret"))
        check(r.returncode == 0 and [json.loads(l) for l in r.stdout.splitlines()] == lines,
              "(e) --server-key as Z85 text: the same event, replayed over CURVE (%d: %s)" % (r.returncode, r.stderr.strip()))

        started = time.time()
        r = run_sub("--endpoint", ws.pub, "--query", ws.query, "--replay-from", "0", "--server-key", server_key,
                    "--key-file", os.path.join(keys, "mallory.key_secret"), "--give-up", "20", "--timeout", "30")
        check(r.returncode == 1 and "refused this subscriber's key" in r.stderr and time.time() - started < 10,
              "(e) a key that is not authorized exits 1 at once (%d after %.1f s: %s)"
              % (r.returncode, time.time() - started, r.stderr.strip()))
        r = run_sub("--endpoint", ws.pub, "--query", ws.query, "--replay-from", "0", "--give-up", "2", "--timeout", "30")
        check(r.returncode == 1 and ("handshake" in r.stderr or "did not answer" in r.stderr),
              "(e) a plain client of CURVE endpoints exits 1 after --give-up (%d: %s)" % (r.returncode, r.stderr.strip()))
        r = run_sub("--endpoint", ws.pub, "--query", ws.query, "--replay-from", "0", "--give-up", "2", "--timeout", "30",
                    "--server-key", os.path.join(keys, "mallory.key"), "--key-file", os.path.join(keys, "alice.key_secret"))
        check(r.returncode == 1, "(e) a wrong --server-key exits 1 after --give-up (%d: %s)" % (r.returncode, r.stderr.strip()))
        r = run_sub("--endpoint", ws.pub, "--query", ws.query, "--server-key", server_key,
                    "--key-file", os.path.join(keys, "alice.key"))
        check(r.returncode == 2 and "no secret-key" in r.stderr,
              "(e) a public certificate as --key-file is a usage error (%d: %s)" % (r.returncode, r.stderr.strip()))
        r = run_sub("--endpoint", ws.pub, "--query", ws.query, "--server-key", "not-a-key",
                    "--key-file", os.path.join(keys, "alice.key_secret"))
        check(r.returncode == 2 and "--server-key" in r.stderr,
              "(e) a --server-key that is neither file nor key is a usage error (%d)" % r.returncode)
        rc, _ = ws.stop()
        check(rc == 0, "(e) ewsd stopped")
    finally:
        ws.cleanup()
        shutil.rmtree(plugins, ignore_errors=True)


def main():
    out_dir = tempfile.mkdtemp(prefix="ews-sub-it-")
    try:
        usage_and_failures(out_dir)
        formats_and_filters(out_dir)
        operational_events(out_dir)
        restarts(out_dir)
        curve(out_dir)
    finally:
        if os.environ.get("EWS_KEEP_TEST_DIRS"):
            print("kept " + out_dir)
        else:
            shutil.rmtree(out_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
