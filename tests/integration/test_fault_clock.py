"""The wall clock steps backwards and forwards under the real ewsd, and only under it.

The daemon runs with libfaketime preloaded (Debian package `faketime`), its offset read from a
file on every call (FAKETIME_TIMESTAMP_FILE + FAKETIME_NO_CACHE=1), so the test moves the
daemon's CLOCK_REALTIME while it runs; its monotonic clock is left alone
(FAKETIME_DONT_FAKE_MONOTONIC=1), as on a real machine whose clock is stepped. The test
itself, and every other process, keeps the true time. Each step is first seen in the `at` of
the daemon's heartbeats, so a libfaketime that does not reach the daemon fails the test
rather than passing it vacuously.

Under the sanitizer build (EWS_SANITIZED=1) the ASan runtime must come first in the list of
loaded libraries: it is preloaded before libfaketime (its path taken from `ldd ewsd`).

Phases, each with a batch pushed to the ingest endpoint (the last evaluations every 2 s):
  true time        group A's signal goes high: A raised
  an hour back     A low, B high: B raised, A resolved (clear_after = 2: the timer's full
                   evaluations must go on while the clock is behind the last evaluation)
  a day ahead      B low, C high: C raised, B resolved; events carry the new date
  back to true     C low, D high: D raised, C resolved (the clock a day behind the last
                   evaluation now)
Checks: every batch is acknowledged and all its rows are in the database after a clean stop;
full evaluations go on in every phase; the events the subscriber received have strictly
increasing seq, are the replayed ones (seq gapless from 1, same payloads), and their `at`
never goes back; no locality is raised twice without a resolution between, and each event's
previous_level is the level of that locality's event before it."""
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

from harness import EWSD, FIXTURES, Workspace, check, fail, free_port, push_batch, replay_all

SANITIZED = os.environ.get("EWS_SANITIZED") == "1"
FAKETIME_LIBS = ["/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
                 "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"]
GROUP = 15
GROUPS = "ABCD"
WAIT_S = 60 if SANITIZED else 30


def faketime_lib():
    for lib in FAKETIME_LIBS:
        if os.path.exists(lib):
            return lib
    fail("libfaketime is not installed (%s); install the Debian package faketime "
         "(`./run deps` does)" % " or ".join(FAKETIME_LIBS))


def asan_runtime():
    """The ASan runtime ewsd links, to be preloaded before libfaketime."""
    r = subprocess.run(["ldd", EWSD], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        if "libasan" in line and "=>" in line:
            return line.split("=>")[1].split()[0]
    fail("EWS_SANITIZED=1 but `ldd %s` names no libasan: cannot preload it before libfaketime" % EWSD)


def utc(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)


def parse_at(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Subscriber(threading.Thread):
    """Everything from the publish endpoint: alert events and heartbeats."""

    def __init__(self, endpoint):
        super().__init__(daemon=True)
        self.sub = zmq.Context.instance().socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(endpoint)
        self.stop = threading.Event()
        self.events = []
        self.heartbeats = []  # (true time received, heartbeat payload)
        self.lock = threading.Lock()

    def run(self):
        while not self.stop.is_set():
            if self.sub.poll(100):
                topic, payload = self.sub.recv_multipart()
                with self.lock:
                    if topic == b"hb/":
                        self.heartbeats.append((time.time(), json.loads(payload)))
                    else:
                        self.events.append(json.loads(payload))
        self.sub.close()


def main():
    lib = faketime_lib()
    plugins = tempfile.mkdtemp(prefix="ewsd-it-plugins-")
    shutil.copy(os.path.join(FIXTURES, "fixture_good.so"), plugins)
    ws = Workspace(plugin_dir=plugins)
    ingest = "tcp://127.0.0.1:%d" % free_port()
    with open(ws.config) as f:
        text = f.read()
    text = text.replace('policy = "partial"', 'policy = "partial"\nbind = "%s"' % ingest, 1)
    text = text.replace("evaluate_every_s = 3600", "evaluate_every_s = 2", 1)
    with open(ws.config, "w") as f:
        f.write(text)
    clock_file = os.path.join(ws.dir, "faketime.rc")
    subscriber = None

    def set_offset(offset):
        tmp = clock_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(offset + "\n")
        os.rename(tmp, clock_file)

    try:
        members = {g: ["CK-%s%02d" % (g, i) for i in range(1, GROUP + 1)] for g in GROUPS}
        loc = os.path.join(ws.dir, "localities.csv")
        with open(loc, "w") as f:
            f.write("id,name,region,population,neighbours\n")
            for g in GROUPS:
                for l in members[g]:
                    f.write("%s,Place %s,CK/CK-%s,400,\n" % (l, l, g))
        ws.ewsctl("localities", "import", loc)

        set_offset("+0")
        env = dict(os.environ)
        env["LD_PRELOAD"] = " ".join(([asan_runtime()] if SANITIZED else []) + [lib])
        env["FAKETIME_TIMESTAMP_FILE"] = clock_file
        env["FAKETIME_NO_CACHE"] = "1"
        env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
        env.pop("FAKETIME", None)
        ws.log = open(ws.log_path, "w")
        ws.daemon = subprocess.Popen([EWSD, "--config", ws.config], stdout=ws.log,
                                     stderr=subprocess.STDOUT, env=env)
        check(ws.wait_log("evaluation (full)", timeout=60),
              "ewsd started under libfaketime (%s)" % env["LD_PRELOAD"])
        subscriber = Subscriber(ws.pub)
        subscriber.start()

        acked = {}
        batch_no = [0]
        # Observation times: two days back in true time, a minute apart per batch, so that
        # each batch holds the newest value of its localities whatever the daemon's clock says.
        base = time.time() - 2 * 86400

        def send(levels):
            """levels: {group: value}. Returns after the batch is acknowledged."""
            batch_no[0] += 1
            source = "clock-%02d" % batch_no[0]
            t = int(base) // 60 * 60 + batch_no[0] * 60
            lines = ["locality,time,kind,value,weight,source"]
            for g, value in levels.items():
                for l in members[g]:
                    lines.append("%s,%s,test.signal,%d,1,%s" % (l, utc(t).strftime("%Y-%m-%dT%H:%M:%SZ"), value, source))
                    acked[(l, "test.signal", t, source)] = float(value)
            reply = push_batch(ingest, source, "\n".join(lines) + "\n")
            if not (reply.get("committed") and reply.get("accepted") == len(lines) - 1):
                fail("batch %s was not acknowledged: %s" % (source, reply))
            return source

        def events_now():
            with subscriber.lock:
                return list(subscriber.events)

        def wait_for(what, predicate):
            deadline = time.time() + WAIT_S
            while time.time() < deadline:
                if predicate(events_now()):
                    return True
                if ws.daemon.poll() is not None:
                    fail("ewsd exited (%s): %s" % (ws.daemon.returncode, ws.log_text()[-2000:]))
                time.sleep(0.1)
            fail("%s: not within %d s; events: %s" % (what, WAIT_S, [(e["seq"], e["event"], e["locality"]["id"])
                                                                      for e in events_now()][-20:]))

        def wait_offset(label, offset_s):
            """Waits for a heartbeat stamped with the daemon's clock at offset_s from the truth."""
            deadline = time.time() + WAIT_S
            while time.time() < deadline:
                with subscriber.lock:
                    beats = list(subscriber.heartbeats)
                for received, hb in reversed(beats[-3:]):
                    if abs(parse_at(hb["at"]) - received - offset_s) <= 5:
                        check(True, "%s: the daemon's heartbeats say %s (true time %s)"
                              % (label, hb["at"], utc(received).strftime("%Y-%m-%dT%H:%M:%SZ")))
                        return
                time.sleep(0.2)
            last = beats[-1] if beats else None
            fail("%s: no heartbeat with the daemon's clock %+d s from the true time within %d s (last: %s); "
                 "libfaketime does not reach ewsd%s" % (label, offset_s, WAIT_S, last,
                                                        " (sanitizer build)" if SANITIZED else ""))

        def full_evaluations():
            return ws.log_text().count("evaluation (full)")

        def raised(group):
            return lambda evs: set(members[group]) <= {e["locality"]["id"] for e in evs if e["event"] == "raised"}

        def resolved(group, after_seq):
            return lambda evs: set(members[group]) <= {e["locality"]["id"] for e in evs
                                                       if e["event"] == "resolved" and e["seq"] > after_seq}

        def phase(label, offset, offset_s, low, high):
            if offset is not None:
                set_offset(offset)
            wait_offset(label, offset_s)
            fulls = full_evaluations()
            seq0 = max([e["seq"] for e in events_now()] or [0])
            true_before = time.time()
            send({**{g: 1 for g in low}, high: 9})
            wait_for("(%s) group %s raised" % (label, high), raised(high))
            for g in low:
                wait_for("(%s) group %s resolved" % (label, g), resolved(g, seq0))
            new = [e for e in events_now() if e["seq"] > seq0]
            ats = [parse_at(e["at"]) - true_before for e in new]
            deadline = time.time() + WAIT_S
            while full_evaluations() < fulls + 2 and time.time() < deadline:
                time.sleep(0.1)
            check(full_evaluations() >= fulls + 2,
                  "(%s) batch acknowledged, group %s raised%s, %d full evaluations since the step; "
                  "the new events' at is %+.0f..%+.0f s from the true time"
                  % (label, high, ", group %s resolved" % "".join(low) if low else "",
                     full_evaluations() - fulls, min(ats), max(ats)))
            return new, ats

        # Baseline: every locality low, nothing raised.
        send({g: 1 for g in GROUPS})
        phase("true time", None, 0, "", "A")
        phase("an hour back", "-1h", -3600, "A", "B")
        _, ats = phase("a day ahead", "+1d", 86400, "B", "C")
        check(min(ats) > 86400 - 120, "(a day ahead) the events carry the daemon's new date")
        phase("back to true time", "+0", 0, "C", "D")

        time.sleep(1.0)
        replayed = [e["payload"] for e in replay_all(ws.query)]
        subscriber.stop.set()
        subscriber.join(5)
        live = subscriber.events
        seqs = [e["seq"] for e in live]
        check(all(b > a for a, b in zip(seqs, seqs[1:])),
              "the %d events received live have strictly increasing seq" % len(seqs))
        rseqs = [e["seq"] for e in replayed]
        check(rseqs == list(range(1, len(rseqs) + 1)), "the outbox is gapless from seq 1 to %d" % len(rseqs))
        by_seq = {e["seq"]: e for e in replayed}
        check(all(by_seq.get(e["seq"]) == e for e in live) and set(seqs) == set(rseqs),
              "the subscriber received every event once, with the replayed payload")
        ats = [parse_at(e["at"]) for e in replayed]
        back = [(replayed[i]["seq"], replayed[i]["at"], replayed[i + 1]["at"])
                for i in range(len(ats) - 1) if ats[i + 1] < ats[i]]
        check(not back, "the events' at never goes back, whatever the clock did (%s)" % back[:3])
        level = {}
        twice = []
        chain = []
        for e in replayed:
            l = e["locality"]["id"]
            before = level.get(l, "none")
            if e["event"] == "raised" and before != "none":
                twice.append((e["seq"], l))
            if e["event"] in ("raised", "escalated", "deescalated", "resolved") and e["previous_level"] != before:
                chain.append((e["seq"], l, e["event"], e["previous_level"], before))
            if e["event"] in ("raised", "escalated", "deescalated", "resolved"):
                level[l] = e["level"]
        check(not twice, "no locality was raised again while its alert was open (%s)" % twice[:5])
        check(not chain, "each transition starts from the level before it (%s)" % chain[:5])
        counts = {}
        for e in replayed:
            counts[e["event"]] = counts.get(e["event"], 0) + 1
        check(counts.get("raised") == 4 * GROUP and counts.get("resolved") == 3 * GROUP,
              "one raise per locality of A..D and one resolution per locality of A..C: %s" % counts)

        check(ws.daemon.poll() is None, "ewsd ran through every step of the clock")
        rc, _ = ws.stop(timeout=30)
        check(rc == 0, "ewsd stops cleanly")
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(ws.state, "ewsd.db"), uri=True)
        try:
            stored = {(l, k, t, s): v for l, k, t, s, v in db.execute(
                "SELECT locality, kind, time, source, value FROM observations")}
        finally:
            db.close()
        missing = [k for k, v in acked.items() if stored.get(k) != v]
        check(not missing and len(stored) == len(acked),
              "all %d acknowledged rows are in the database, and nothing else (%d missing)" % (len(acked), len(missing)))
    finally:
        if subscriber is not None:
            subscriber.stop.set()
        ws.cleanup()
        shutil.rmtree(plugins, ignore_errors=True)


if __name__ == "__main__":
    main()
