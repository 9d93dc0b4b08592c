"""SIGKILL of the real ewsd at random points while it ingests, evaluates and publishes, over
several rounds, with a producer and a subscriber that outlive every daemon.

Throughout, a producer thread pushes small batches to the ingest endpoint (each with its own
source, so every row has its own natural key) and spool files are dropped; a subscriber
(SUB, connected once, reconnecting by itself) keeps every alert event it receives. Each round
starts ewsd, waits for its start-up evaluation, fills the subscriber's gaps by replay, and
then kills it with SIGKILL at a random point of one of:
  ingest      while batches are pushed and a spool file is ingested
  evaluation  after a large batch that moves most of N localities up a level has been
              acknowledged, within the time its evaluation takes
  publishing  once the subscriber has received a random part of that evaluation's events
After every kill, the database (read-only, Python's sqlite3) passes integrity_check and holds
every row of every batch the daemon acknowledged, with its value, and every spool file in
done/ has all its rows. After every restart, replay (from the start of the killed round, or
from the subscriber's first gap if earlier) fills what the subscriber missed: the seqs it
holds are then exactly 1..last_seq, and every event it received live from the killed daemon is
in the outbox with the same payload (published means committed; a seq is never reused for
another event; an event received twice is the same both times).
At the end (clean restart, spool drained, SIGTERM): the whole outbox is replayed and compared
with everything received live; every spool file is in done/; in the whole outbox no locality
is raised while its alert is open and every transition starts from the level the locality's
previous transition left (a restart never re-raises an open alert).

The kill points come from a seed, printed (EWS_KILL9_SEED sets another)."""
import datetime
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import tempfile
import threading
import time

import zmq

from harness import FIXTURES, Workspace, check, fail, free_port, push_batch, query

SANITIZED = os.environ.get("EWS_SANITIZED") == "1"
SEED = int(os.environ.get("EWS_KILL9_SEED", "20251203"))
N = 800 if SANITIZED else 2000
ROUNDS = 8 if SANITIZED else 15
BUDGET_S = 70 if SANITIZED else 45  # no new round starts after this
CYCLE = [1, 5, 7, 9]  # none, watch, warning, critical (scores 10, 50, 70, 90)


def utc_text(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Subscriber(threading.Thread):
    def __init__(self, endpoint):
        super().__init__(daemon=True)
        self.sub = zmq.Context.instance().socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(endpoint)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.live = {}         # seq -> [payload text received live, ...]
        self.replayed = {}     # seq -> payload text from replay
        self.beats = 0
        self.received = 0

    def run(self):
        while not self.stop.is_set():
            if not self.sub.poll(50):
                continue
            topic, payload = self.sub.recv_multipart()
            with self.lock:
                if topic == b"hb/":
                    self.beats += 1
                    continue
                seq = json.loads(payload)["seq"]
                self.live.setdefault(seq, []).append(payload.decode())
                self.received += 1
        self.sub.close()

    def have(self):
        with self.lock:
            return set(self.live) | set(self.replayed)


class Producer(threading.Thread):
    """Pushes small batches; keeps the rows of each acknowledged one."""

    def __init__(self, endpoint, localities, old, seed):
        super().__init__(daemon=True)
        self.endpoint = endpoint
        self.localities = localities
        self.old = old
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked = {}
        self.acked_batches = 0
        self.unanswered = 0
        self.errors = []
        self.n = 0

    def run(self):
        ctx = zmq.Context.instance()
        while not self.stop.is_set():
            self.n += 1
            source = "push-%05d" % self.n
            rows = {}
            lines = ["locality,time,kind,value,weight,source"]
            for i in range(20):
                loc = self.rng.choice(self.localities)
                t = self.old + self.n * 60 + i
                v = self.rng.randint(0, 3)
                lines.append("%s,%s,test.signal,%d,1,%s" % (loc, utc_text(t), v, source))
                rows[(loc, "test.signal", t, source)] = float(v)
            s = ctx.socket(zmq.REQ)
            s.setsockopt(zmq.LINGER, 0)
            s.connect(self.endpoint)
            s.send_multipart([json.dumps({"format": "csv", "name": source}).encode(),
                              ("\n".join(lines) + "\n").encode()])
            reply = None
            if s.poll(3000):
                reply = json.loads(s.recv())
            s.close()
            if reply is None:
                self.unanswered += 1  # the daemon died or was busy: unknown, not acknowledged
                time.sleep(0.05)
                continue
            if reply.get("committed") and reply.get("accepted") == len(rows):
                with self.lock:
                    self.acked.update(rows)
                    self.acked_batches += 1
            else:
                self.errors.append("a good batch %s was not committed: %s" % (source, reply))
            time.sleep(0.02)


def read_store(ws):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(ws.state, "ewsd.db"), uri=True)
    try:
        integrity = db.execute("PRAGMA integrity_check").fetchall()
        rows = {(l, k, t, s): v for l, k, t, s, v in db.execute(
            "SELECT locality, kind, time, source, value FROM observations")}
        return integrity, rows
    finally:
        db.close()


def main():
    print("kill -9 test seed %d (set EWS_KILL9_SEED to try another)" % SEED)
    rng = random.Random(SEED)
    plugins = tempfile.mkdtemp(prefix="ewsd-it-plugins-")
    shutil.copy(os.path.join(FIXTURES, "fixture_good.so"), plugins)
    # No flap damping: every large batch then changes the level of most localities, so
    # each evaluation it causes publishes many events.
    ws = Workspace(plugin_dir=plugins, extra_config="[scoring.flapping]\nhigh = 0\n")
    ingest = "tcp://127.0.0.1:%d" % free_port()
    with open(ws.config) as f:
        text = f.read()
    with open(ws.config, "w") as f:
        f.write(text.replace('policy = "partial"', 'policy = "partial"\nbind = "%s"' % ingest, 1))
    subscriber = producer = None
    started_at = time.monotonic()
    markers_removed = 0  # crash markers left by kills inside a plugin call
    try:
        localities = ["K-%05d" % i for i in range(1, N + 1)]
        loc_csv = os.path.join(ws.dir, "localities.csv")
        with open(loc_csv, "w") as f:
            f.write("id,name,region,population,neighbours\n")
            for i, l in enumerate(localities):
                f.write("%s,Place %d,K/K%02d,500,\n" % (l, i, i % 20))
        ws.ewsctl("localities", "import", loc_csv)
        now = int(time.time())
        old = now - 40 * 86400      # the producer's and the spool's rows: never the newest
        recent = now - 86400        # the large batches' rows: each the newest of its locality
        spool_src = os.path.join(ws.dir, "files")
        os.makedirs(spool_src)
        spool_files = {}            # name -> rows
        big_acked = {}
        step = [0]

        def big_batch():
            step[0] += 1
            t = recent + step[0] * 60
            source = "big-%03d" % step[0]
            lines = ["locality,time,kind,value,weight,source"]
            rows = {}
            for i, l in enumerate(localities):
                v = CYCLE[(step[0] + i) % len(CYCLE)]
                lines.append("%s,%s,test.signal,%d,1,%s" % (l, utc_text(t), v, source))
                rows[(l, "test.signal", t, source)] = float(v)
            return source, "\n".join(lines) + "\n", rows

        def drop_spool_file(index):
            name = "spool-%03d.csv" % index
            lines = ["locality,time,kind,value,weight,source"]
            rows = {}
            for i in range(rng.randint(200, 3000)):
                l = localities[(index * 7919 + i) % N]
                t = old - 86400 + index * 3600 + i
                v = (i * 13 + index) % 4
                lines.append("%s,%s,test.signal,%d,1,spool-%03d" % (l, utc_text(t), v, index))
                rows[(l, "test.signal", t, "spool-%03d" % index)] = float(v)
            path = os.path.join(spool_src, name)
            with open(path, "w") as f:
                f.write("\n".join(lines) + "\n")
            spool_files[name] = rows
            ws.drop(path)

        def start(label):
            ws.start()
            if not ws.wait_log("evaluation (full)", timeout=120):
                fail("%s: ewsd did not start: %s" % (label, ws.log_text()[-2000:]))

        def fill_gaps(label, check_from):
            """Replays from check_from (or from the first seq the subscriber lacks, if lower) to
            the end: fills its gaps and compares every replayed event with what it received
            live. Then checks that it holds 1..last_seq exactly and that no seq carried two
            different payloads."""
            last = query(ws.query, {"op": "status"})["last_seq"]["main"]
            have = subscriber.have()
            missing = sorted(set(range(1, last + 1)) - have)
            since = min([check_from] + ([missing[0] - 1] if missing else []))
            replayed = filled = 0
            while since < last:
                r = query(ws.query, {"op": "replay", "since": since, "limit": 1000})
                if "error" in r:
                    fail("%s: replay: %s" % (label, r))
                with subscriber.lock:
                    for e in r["events"]:
                        seq = e["payload"]["seq"]
                        if seq not in subscriber.live and seq not in subscriber.replayed:
                            filled += 1
                        old = subscriber.replayed.get(seq)
                        if old is not None and old != e["payload"]:
                            fail("%s: seq %d was replayed with two different payloads" % (label, seq))
                        subscriber.replayed[seq] = e["payload"]
                        replayed += 1
                since = r["last_seq"]
                if not r["more"]:
                    break
            with subscriber.lock:
                seqs = set(subscriber.live) | set(subscriber.replayed)
                mismatched = []
                for seq, texts in subscriber.live.items():
                    payloads = [json.loads(t) for t in texts]
                    if any(p != payloads[0] for p in payloads):
                        mismatched.append((seq, "received live twice with different content"))
                    if seq in subscriber.replayed and subscriber.replayed[seq] != payloads[0]:
                        mismatched.append((seq, "the payload received live is not the one stored"))
                live = len(subscriber.live)
            if mismatched:
                fail("%s: the same seq carried different events: %s" % (label, mismatched[:5]))
            # (Events after last_seq may have arrived meanwhile: the producer's batches are
            # evaluated too. The next call covers them.)
            gaps = sorted(set(range(1, last + 1)) - seqs)
            if gaps:
                fail("%s: after replay the subscriber still lacks seqs %s of 1..%d"
                     % (label, gaps[:10], last))
            return last, live, filled

        def verify_store(label, final=False):
            integrity, stored = read_store(ws)
            if integrity != [("ok",)]:
                fail("%s: integrity_check: %s" % (label, integrity[:5]))
            with producer.lock:
                acked = dict(producer.acked)
            acked.update(big_acked)
            lost = [k for k, v in acked.items() if stored.get(k) != v]
            if lost:
                fail("%s: %d acknowledged rows are not in the store (or differ), e.g. %s"
                     % (label, len(lost), lost[:3]))
            done = 0
            for name, rows in spool_files.items():
                in_done = os.path.exists(os.path.join(ws.spool, "done", name))
                if os.path.exists(os.path.join(ws.spool, "failed", name)):
                    fail("%s: %s went to failed/" % (label, name))
                if in_done:
                    done += 1
                    bad = [k for k, v in rows.items() if stored.get(k) != v]
                    if bad:
                        fail("%s: %s is in done/ but %d of its rows are not stored" % (label, name, len(bad)))
                elif final:
                    fail("%s: %s is not in done/" % (label, name))
            return len(acked), done

        # Round 0: no kill; measures the evaluation of a large batch.
        start("start")
        subscriber = Subscriber(ws.pub)
        subscriber.start()
        deadline = time.time() + 20
        while subscriber.beats == 0 and time.time() < deadline:
            time.sleep(0.05)
        producer = Producer(ingest, localities, old, SEED)
        producer.start()
        name, content, rows = big_batch()
        reply = push_batch(ingest, name, content, 60000, must_reply=False)
        if not (reply and reply.get("committed")):
            fail("the first large batch was not acknowledged: %s" % reply)
        big_acked.update(rows)
        deadline = time.time() + 60
        while time.time() < deadline and query(ws.query, {"op": "status"})["last_seq"]["main"] < N // 2:
            time.sleep(0.1)
        time.sleep(0.5)
        # "evaluation (incremental): 2000 localities in 153 ms, 1500 events published, ..."
        large = [(int(m.group(2)), int(m.group(3))) for m in re.finditer(
            r"evaluation \((full|incremental)\): \d+ localities in (\d+) ms, (\d+) events", ws.log_text())
            if int(m.group(3)) >= N // 4]
        if not large:
            fail("the first large batch's evaluation is not in the log: %s" % ws.log_text()[-1500:])
        eval_s = max(0.02, large[-1][0] / 1000.0)
        print("a large batch's evaluation: %.3f s, %d events" % (eval_s, large[-1][1]))

        round_start_seq = 0
        kinds = ["ingest", "evaluation", "publishing"]
        tally = {k: 0 for k in kinds}
        spool_index = 0
        for r in range(ROUNDS):
            label = "round %d" % (r + 1)
            if r > 0:
                start(label)
                deadline = time.time() + 20
                beats = subscriber.beats
                while subscriber.beats <= beats and time.time() < deadline:
                    time.sleep(0.05)
            last, live, replayed = fill_gaps(label + " (after restart)", round_start_seq)
            round_start_seq = last
            kind = kinds[r % 3] if r < 3 else rng.choice(kinds)
            tally[kind] += 1
            if kind == "ingest":
                spool_index += 1
                drop_spool_file(spool_index)
                delay = rng.uniform(0.0, 1.0)
                time.sleep(delay)
                what = "%.0f ms into ingest (spool file %d dropped, batches being pushed)" % (delay * 1000, spool_index)
            else:
                name, content, rows = big_batch()
                received = subscriber.received
                reply = push_batch(ingest, name, content, 60000, must_reply=False)
                if not (reply and reply.get("committed")):
                    fail("%s: a large batch was not acknowledged: %s" % (label, reply))
                big_acked.update(rows)
                if kind == "evaluation":
                    delay = rng.uniform(0, eval_s * 1.2)
                    time.sleep(delay)
                    what = "%.0f ms after a large batch was acknowledged (its evaluation takes ~%.0f ms)" % (
                        delay * 1000, eval_s * 1000)
                else:
                    want = rng.randint(1, N // 2)
                    deadline = time.time() + 15
                    while subscriber.received - received < want and time.time() < deadline:
                        time.sleep(0.002)
                    what = "with %d events of the evaluation received (aimed at %d)" % (
                        subscriber.received - received, want)
            if ws.daemon.poll() is not None:
                fail("%s: ewsd exited by itself (%s): %s" % (label, ws.daemon.returncode, ws.log_text()[-2000:]))
            ws.daemon.send_signal(signal.SIGKILL)
            ws.daemon.wait()
            ws.log.close()
            # A kill that lands inside a plugin call leaves the crash marker, and the next
            # start would quarantine the plugin (docs/plugin-guide.md: the daemon cannot tell
            # an outside SIGKILL from a crash). This test kills from outside on purpose and is
            # about data, not crash attribution (test_plugin_faults covers that): the marker
            # is removed, as an operator who knows why the daemon died would do.
            marker = os.path.join(ws.state, "plugin-call.marker")
            if os.path.exists(marker):
                os.unlink(marker)
                markers_removed += 1
            acked, done = verify_store(label)
            print("%s: killed during %s %s; store intact, %d acknowledged rows present, %d spool files in "
                  "done/; at the round's start: last_seq %d, %d received live, %d filled by replay"
                  % (label, kind, what, acked, done, last, live, replayed))
            if time.monotonic() - started_at > BUDGET_S:
                print("time budget of %d s reached after %d rounds" % (BUDGET_S, r + 1))
                break
        print("crash markers left by a kill inside a plugin call, removed before the restart: %d"
              % markers_removed)

        # Final: a clean run drains the spool; the subscriber's gaps are filled once more.
        start("final start")
        deadline = time.time() + 60
        while time.time() < deadline and [n for n in os.listdir(ws.spool)
                                          if n.endswith(".csv") and not n.startswith(".")]:
            time.sleep(0.1)
        time.sleep(0.5)
        producer.stop.set()
        producer.join(10)
        # The whole outbox, compared with everything received live.
        last, live, replayed = fill_gaps("final", 0)
        check(True, "after %d kills (%s) the subscriber holds seq 1..%d without a gap (%d received live, "
                    "the rest replayed) and no seq ever carried two different events" % (
                        sum(tally.values()), tally, last, live))
        rc, _ = ws.stop(timeout=30)
        check(rc == 0, "ewsd stops cleanly after the kills")
        acked, done = verify_store("final", final=True)
        check(not producer.errors, "every small batch answered was committed (%s)" % producer.errors[:3])
        check(producer.acked_batches >= 10,
              "%d acknowledged rows (%d small batches, %d large ones) are all in the store; %d small "
              "batches got no answer (in flight at a kill); all %d spool files are in done/ with their rows"
              % (acked, producer.acked_batches, len({k[3] for k in big_acked}), producer.unanswered, done))
        with subscriber.lock:
            events = [subscriber.replayed.get(s) or json.loads(subscriber.live[s][0]) for s in range(1, last + 1)]
        level = {}
        twice, chain = [], []
        counts = {}
        for e in events:
            counts[e["event"]] = counts.get(e["event"], 0) + 1
            l = e["locality"]["id"]
            before = level.get(l, "none")
            if e["event"] in ("raised", "escalated", "deescalated", "resolved"):
                if e["event"] == "raised" and before != "none":
                    twice.append((e["seq"], l))
                if e["previous_level"] != before:
                    chain.append((e["seq"], l, e["event"], e["previous_level"], before))
                level[l] = e["level"]
        check(not twice, "no locality was raised while its alert was open (%s)" % twice[:5])
        check(not chain, "every transition starts from the level the previous one left (%s)" % chain[:5])
        check(counts.get("raised", 0) >= N // 2, "the events: %s" % counts)
        print("run time %.1f s" % (time.monotonic() - started_at))
    finally:
        if producer is not None:
            producer.stop.set()
        if subscriber is not None:
            subscriber.stop.set()
        ws.cleanup()
        shutil.rmtree(plugins, ignore_errors=True)


if __name__ == "__main__":
    main()
