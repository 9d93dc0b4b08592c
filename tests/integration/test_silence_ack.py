"""Silences and acknowledgements, end to end: the real ewsd and ewsctl, the control socket,
the PUB socket, a real SQLite file.

(a) With the daemon running, ewsctl goes through its control socket: a region silence holds
    that region's alerts off the PUB socket (others still publish) and counts what it held;
    expiring it publishes the held alert at the next evaluation; reminders of an open alert
    arrive every repeat_every_s and stop once it is acknowledged; an unknown alert or silence
    is refused with exit 1; a malformed request leaves the daemon running; the socket file is
    0660, removed at a clean stop, and a killed daemon's stale file does not block a restart.
(b) Without a daemon, the same commands work on the store directly, and `ewsctl evaluate
    --at` respects a silence added that way.
Both leave their trace in the audit table.
"""
import datetime
import json
import os
import shutil
import signal
import sqlite3
import stat
import tempfile
import time

import zmq

from harness import FIXTURES, Workspace, check, fail, query, today

REPEAT_EVERY_S = 3


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


class Subscriber:
    """Collects everything published on alert/ since it connected."""

    def __init__(self, endpoint):
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt_string(zmq.SUBSCRIBE, "alert/")
        self.sock.connect(endpoint)
        self.events = []

    def receive(self, seconds):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.sock.poll(100):
                _, body = self.sock.recv_multipart()
                self.events.append(json.loads(body))

    def wait_for(self, predicate, seconds):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if any(predicate(e) for e in self.events):
                return True
            self.receive(0.2)
        return any(predicate(e) for e in self.events)

    def of(self, locality, event=None):
        return [e for e in self.events
                if e["locality"]["id"] == locality and (event is None or e["event"] == event)]


def write_signal(path, values, day):
    with open(path, "w") as f:
        f.write("locality,time,kind,value\n")
        for loc, value in values.items():
            f.write("%s,%s,test.signal,%s\n" % (loc, day, value))


def audit(ws):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(ws.state, "ewsd.db"), uri=True)
    try:
        return [row[0] for row in db.execute("SELECT what FROM audit ORDER BY id")]
    finally:
        db.close()


def sql(ws, statement, *args):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(ws.state, "ewsd.db"), uri=True)
    try:
        return db.execute(statement, args).fetchall()
    finally:
        db.close()


def silence_list(ws, *extra):
    r = ws.ewsctl("silence", "list", "--json", *extra)
    return {s["id"]: s for s in json.loads(r.stdout)}


def main():
    plugins = tempfile.mkdtemp(prefix="ewsd-it-plugins-")
    # The fixture plugin scores the latest test.signal value / 10: 9 is critical, 0 is none.
    shutil.copy(os.path.join(FIXTURES, "fixture_good.so"), plugins)
    ws = Workspace(plugin_dir=plugins)
    try:
        with open(ws.config) as f:
            text = f.read()
        text = text.replace("evaluate_every_s = 3600", "evaluate_every_s = 1")
        text = text.replace("[scoring]\n", "[scoring]\nrepeat_every_s = %d\n" % REPEAT_EVERY_S, 1)
        with open(ws.config, "w") as f:
            f.write(text)
        localities = os.path.join(ws.dir, "localities.csv")
        with open(localities, "w") as f:
            f.write("id,name,region,population,neighbours\n"
                    "N-1,North One,N/N1,500,\nN-2,North Two,N/N2,500,\nS-1,South One,S/S1,500,\n")
        ws.ewsctl("localities", "import", localities)
        yesterday = str(today() - datetime.timedelta(days=1))
        until = str(today() + datetime.timedelta(days=7))
        sock_file = os.path.join(ws.state, "control.sock")
        control = "ipc://" + sock_file

        # ---- (a) the daemon runs: every change goes through its control socket ----------
        sub = Subscriber(ws.pub)
        ws.start()
        check(ws.wait_log("evaluation (full)", timeout=60), "ewsd started and evaluated")
        check(stat.S_ISSOCK(os.stat(sock_file).st_mode), "the control socket is at %s" % sock_file)
        check(stat.S_IMODE(os.stat(sock_file).st_mode) == 0o660, "the control socket's mode is 0660 (%o)"
              % stat.S_IMODE(os.stat(sock_file).st_mode))

        r = ws.ewsctl("silence", "add", "--region", "N/N1", "--until", until, "--reason",
                      "committee already visiting", "--by", "ana")
        check(r.stdout.strip() == "1", "silence add prints the new id (%r)" % r.stdout)

        r = ws.ewsctl("silence", "add", "--region", "N/N1", "--until", "2026-13-01", "--reason", "x",
                      "--by", "ana", check_rc=False)
        check(r.returncode == 1 and 'until: not an RFC 3339 date or date-time: "2026-13-01"' in r.stderr,
              "a malformed --until is refused with exit 1 naming the key (%d: %s)" % (r.returncode, r.stderr.strip()))
        r = ws.ewsctl("silence", "add", "--locality", "NOWHERE", "--until", until, "--reason", "x",
                      "--by", "ana", check_rc=False)
        check(r.returncode == 1 and "NOWHERE" in r.stderr,
              "a silence of an unknown locality is refused (%d: %s)" % (r.returncode, r.stderr.strip()))
        r = ws.ewsctl("silence", "add", "--until", until, "--reason", "x", "--by", "ana", check_rc=False)
        check(r.returncode == 2, "silence add without --locality or --region is a usage error (%d)" % r.returncode)
        r = ws.ewsctl("silence", "add", "--locality", "N-1", "--region", "N", "--until", until,
                      "--reason", "x", "--by", "ana", check_rc=False)
        check(r.returncode == 2, "silence add with both --locality and --region is a usage error (%d)" % r.returncode)

        signal_file = os.path.join(ws.dir, "high.csv")
        write_signal(signal_file, {"N-1": 9, "N-2": 9, "S-1": 9}, yesterday)
        ws.drop(signal_file)
        check(sub.wait_for(lambda e: e["locality"]["id"] == "S-1" and e["event"] == "raised", 20),
              "S-1 (not silenced) raised its alert on the PUB socket")
        check(sub.wait_for(lambda e: e["locality"]["id"] == "N-2" and e["event"] == "raised", 10),
              "N-2 (region N/N2, beside the silenced N/N1) raised its alert too")
        sub.receive(2)
        check(not sub.of("N-1"), "nothing was published for N-1 under the silence (%s)" % sub.of("N-1"))
        silences = silence_list(ws)
        check(silences[1]["held"] > 0 and silences[1]["active"] and silences[1]["region"] == "N/N1",
              "silence list shows the silence holding %d events" % silences[1]["held"])
        r = ws.ewsctl("silence", "list")
        lines = r.stdout.splitlines()
        check(lines[0].split() == ["ID", "SCOPE", "UNTIL", "BY", "HELD", "STATE", "REASON"] and
              lines[1].split()[:3] == ["1", "region", "N/N1"] and "active" in lines[1] and
              lines[1].rstrip().endswith("committee already visiting"),
              "the silence table lists it:\n" + r.stdout)
        held = sql(ws, "SELECT locality, event, reason FROM held_events WHERE silence_id = 1")
        check(("N-1", "raised", "silence 1") in held, "the held raise is stored: %s" % held)

        r = ws.ewsctl("alerts")
        rows = {line.split("\t")[1].split("@")[0]: line for line in r.stdout.splitlines() if "\t" in line}
        check("silenced (silence 1)" in rows.get("N-1", "") and "not silenced" in rows.get("S-1", ""),
              "ewsctl alerts tells which open alert is silenced:\n" + r.stdout)

        # Reminders of S-1's open alert, every repeat_every_s, until someone acknowledges it.
        check(sub.wait_for(lambda e: e["locality"]["id"] == "S-1" and e["event"] == "reminder",
                           REPEAT_EVERY_S * 3),
              "a reminder of S-1's open alert arrived within %d s" % (REPEAT_EVERY_S * 3))
        s1_alert = sub.of("S-1", "raised")[0]["id"]
        reminders = sub.of("S-1", "reminder")
        check(all(e["id"] == s1_alert for e in reminders), "reminders carry the alert's id %s" % s1_alert)
        r = ws.ewsctl("ack", s1_alert, "--by", "ben", "--note", "outreach under way")
        check(s1_alert in r.stdout and "ben" in r.stdout, "ack confirms: %s" % r.stdout.strip())
        acks = sql(ws, "SELECT at, by, note FROM acknowledgements WHERE alert_id = ?", s1_alert)
        check(len(acks) == 1 and acks[0][1:] == ("ben", "outreach under way"), "the acknowledgement is stored: %s" % acks)
        acked_at = datetime.datetime.fromtimestamp(acks[0][0], datetime.timezone.utc)
        sub.receive(REPEAT_EVERY_S * 3)
        # An evaluation's time may run a second ahead of the wall clock (evaluation times are
        # strictly increasing), so the last reminder before the ack may carry a later "at";
        # reminders going on would come every REPEAT_EVERY_S, the second past this bound.
        late = [e for e in sub.of("S-1", "reminder")
                if parse_iso(e["at"]) > acked_at + datetime.timedelta(seconds=REPEAT_EVERY_S)]
        check(not late, "no reminder of S-1 after its acknowledgement (%s)" % [e["at"] for e in late])
        check(sub.of("N-2", "reminder"), "the unacknowledged N-2 alert is still reminded of")
        r = ws.ewsctl("alerts")
        check(any("acknowledged by ben" in line and line.split("\t")[1] == s1_alert
                  for line in r.stdout.splitlines()),
              "ewsctl alerts shows who acknowledged S-1:\n" + r.stdout)

        r = ws.ewsctl("ack", "S-1@20990101T000000Z", "--by", "ben", check_rc=False)
        check(r.returncode == 1 and "no open alert" in r.stderr and "S-1@20990101T000000Z" in r.stderr,
              "ack of an unknown alert exits 1 and says so (%d: %s)" % (r.returncode, r.stderr.strip()))

        # Malformed requests on the socket itself are answered, and the daemon goes on.
        reply = query(control, {"op": "silence_add", "region": "N", "until": "2026-13-01",
                                "reason": "x", "by": "y"})
        check(reply == {"error": 'until: not an RFC 3339 date or date-time: "2026-13-01"'},
              "a malformed request gets an error naming the key: %s" % reply)
        s = zmq.Context.instance().socket(zmq.REQ)  # raw bytes, not JSON
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVTIMEO, 10000)
        s.connect(control)
        s.send(b"{not json")
        reply = json.loads(s.recv())
        s.close()
        check("malformed request" in reply.get("error", "") and "at byte" in reply["error"],
              "invalid JSON is reported with its position: %s" % reply)
        reply = query(control, {"op": "status"})
        check(reply.get("schema") == "ews.status/1" and ws.daemon.poll() is None,
              "the daemon still runs and answers status on the control socket")

        # Expiring the silence publishes what it held at the next evaluation.
        r = ws.ewsctl("silence", "expire", "1", "--by", "ana")
        check(r.returncode == 0, "silence expire: %s" % r.stdout.strip())
        check(sub.wait_for(lambda e: e["locality"]["id"] == "N-1" and e["event"] == "raised", 10),
              "N-1's alert was published after the silence expired")
        n1_alert = sub.of("N-1", "raised")[0]["id"]
        r = ws.ewsctl("silence", "expire", "1", "--by", "ana", check_rc=False)
        check(r.returncode == 1 and "no silence 1 in force" in r.stderr,
              "expiring it again exits 1 (%d: %s)" % (r.returncode, r.stderr.strip()))
        r = ws.ewsctl("silence", "list")
        check(r.stdout.strip() == "no silences in force", "silence list is empty: %r" % r.stdout)
        silences = silence_list(ws, "--all")
        check(silences[1]["expired_by"] == "ana" and not silences[1]["active"],
              "silence list --all shows it expired by ana")
        r = ws.ewsctl("silence", "list", "--all")
        check("expired" in r.stdout.splitlines()[1], "the table says expired:\n" + r.stdout)

        # A killed daemon leaves its socket file; the next one binds over it.
        ws.daemon.send_signal(signal.SIGKILL)
        ws.daemon.wait()
        check(os.path.exists(sock_file), "the killed daemon left its socket file behind")
        ws.start()
        check(ws.wait_log("evaluation (full)", timeout=60), "ewsd restarted over the stale socket file")
        r = ws.ewsctl("silence", "list", "--all", "--json")
        check(len(json.loads(r.stdout)) == 1, "the restarted daemon answers on the control socket")
        rc, _ = ws.stop()
        check(rc == 0 and not os.path.exists(sock_file), "a clean stop removes the socket file (rc %s)" % rc)

        trail = audit(ws)
        for needle in ("silence 1 added by ana", "silence 1 expired by ana",
                       "alert %s acknowledged by ben: outreach under way" % s1_alert):
            check(any(needle in line for line in trail), "the audit table records %r" % needle)

        # ---- (b) no daemon: ewsctl works on the store itself ------------------------------
        r = ws.ewsctl("silence", "add", "--locality", "S-1", "--until", until, "--reason", "data being corrected",
                      "--by", "cy")
        check(r.stdout.strip() == "2", "silence add without a daemon prints id 2 (%r)" % r.stdout)
        r = ws.ewsctl("silence", "add", "--locality", "NOWHERE", "--until", until, "--reason", "x",
                      "--by", "cy", check_rc=False)
        check(r.returncode == 1 and "NOWHERE" in r.stderr, "the unknown locality is refused without a daemon too")
        silences = silence_list(ws)
        check(list(silences) == [2] and silences[2]["locality"] == "S-1", "silence list shows it: %s" % silences)

        r = ws.ewsctl("ack", n1_alert, "--by", "dee")
        check(n1_alert in r.stdout, "ack without a daemon: %s" % r.stdout.strip())
        r = ws.ewsctl("ack", "N-1@20990101T000000Z", "--by", "dee", check_rc=False)
        check(r.returncode == 1 and "no open alert" in r.stderr, "an unknown alert is refused without a daemon")
        r = ws.ewsctl("silence", "expire", "9", "--by", "dee", check_rc=False)
        check(r.returncode == 1 and "no silence 9 in force" in r.stderr, "an unknown silence is refused")

        # S-1's data falls to 0: its resolution is held by silence 2, N-1 and N-2 resolve.
        low = os.path.join(ws.dir, "low.csv")
        write_signal(low, {"N-1": 0, "N-2": 0, "S-1": 0}, str(today()))
        ws.ewsctl("ingest", low)
        last_seq = sql(ws, "SELECT max(seq) FROM outbox WHERE endpoint = 'main'")[0][0]
        start = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(hours=1)
        for hours in (0, 1):  # clear_after = 2
            ws.ewsctl("evaluate", "--at", iso(start + datetime.timedelta(hours=hours)))
        published = sql(ws, "SELECT locality, json_extract(payload, '$.event') FROM outbox "
                            "WHERE endpoint = 'main' AND seq > ?", last_seq)
        check(("N-1", "resolved") in published and ("N-2", "resolved") in published,
              "evaluate --at resolved N-1 and N-2: %s" % published)
        check(not [p for p in published if p[0] == "S-1"], "nothing about S-1 was published: %s" % published)
        silences = silence_list(ws)
        check(silences[2]["held"] > 0, "silence 2 held %d events" % silences[2]["held"])

        ws.ewsctl("silence", "expire", "2", "--by", "cy")
        ws.ewsctl("evaluate", "--at", iso(start + datetime.timedelta(hours=2)))
        published = sql(ws, "SELECT locality, json_extract(payload, '$.event') FROM outbox "
                            "WHERE endpoint = 'main' AND seq > ?", last_seq)
        check(("S-1", "resolved") in published, "after the silence expired, S-1's resolution was published")

        trail = audit(ws)
        for needle in ("silence 2 added by cy", "silence 2 expired by cy", "alert %s acknowledged by dee" % n1_alert):
            check(any(needle in line for line in trail), "the audit table records %r" % needle)
    finally:
        ws.cleanup()
        shutil.rmtree(plugins, ignore_errors=True)


if __name__ == "__main__":
    main()
