"""A flood of hostile and careless clients on the query endpoint of the real ewsd, while a
producer keeps pushing batches to the ingest endpoint.

For FLOOD_S seconds, WORKERS threads open connection after connection to the query port
(several hundred in all, up to HOLD at once), each doing one of:
  - TCP connect and close at once; connect, send random bytes (no ZeroMQ greeting), close;
  - connect, send half a ZMTP greeting, hang up mid-handshake;
  - ZeroMQ REQ: a malformed request (bad JSON, a JSON array, an unknown op, a wrong type,
    invalid UTF-8, an empty frame, several frames), then close without reading the reply;
  - ZeroMQ REQ: a valid request (status, snapshot, replay with huge limits), reading the reply
    (which must be a JSON object: the answer, or {"error": ...} for the bad ones);
  - ZeroMQ DEALER: requests without the REQ envelope, and many requests never read;
  - a request over the endpoint's 1 MiB message limit (libzmq drops the connection);
and a set of HOLD raw connections kept open together for a while, then dropped at once.

During the flood, every REQ client that waits for its reply gets it within 10 s, a JSON
object ({"error": ...} for the malformed requests). (This caught a real fault: with a libzmq
REP socket, a request without an envelope from a DEALER that then went away made the socket
send a later client's reply nowhere; the endpoint is a ROUTER since, see daemon/query.cpp.)
Afterwards: the daemon is alive; a valid status request is answered within STATUS_LIMIT_S;
the daemon's open file descriptors (/proc/PID/fd) come back to within FD_SLACK of the count
before the flood; every batch the ingest endpoint acknowledged during the flood is in the
SQLite file with its values once the daemon has stopped cleanly, and the producer was not
starved (it got acknowledgements throughout the flood).
The seed is printed (EWS_FLOOD_SEED repeats another)."""
import datetime
import json
import os
import random
import shutil
import socket
import sqlite3
import tempfile
import threading
import time

import zmq

from harness import FIXTURES, Workspace, check, fail, free_port, query

SANITIZED = os.environ.get("EWS_SANITIZED") == "1"
SEED = int(os.environ.get("EWS_FLOOD_SEED", "20251203"))
FLOOD_S = 12
WORKERS = 12
HOLD = 300
STATUS_LIMIT_S = 10.0 if SANITIZED else 2.0
FD_SLACK = 8
LOCALITIES = 40


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class Producer(threading.Thread):
    """Pushes batches of unique rows to the ingest endpoint until stopped; keeps what was
    acknowledged (committed) and when."""

    def __init__(self, endpoint, day):
        super().__init__(daemon=True)
        self.endpoint = endpoint
        self.day = day
        self.stop = threading.Event()
        self.acked = {}       # (locality, kind, time text, source) -> value
        self.ack_times = []
        self.errors = []

    def run(self):
        ctx = zmq.Context.instance()
        i = 0
        while not self.stop.is_set():
            i += 1
            source = "flood-%04d" % i
            rows = {}
            lines = ["locality,time,kind,value,weight,source"]
            for n in range(1, LOCALITIES + 1):
                t = "%sT%02d:%02d:00Z" % (self.day, (i // 60) % 24, i % 60)
                value = (i * 7 + n) % 10
                lines.append("FL-%03d,%s,test.signal,%d,1,%s" % (n, t, value, source))
                rows[("FL-%03d" % n, "test.signal", t, source)] = float(value)
            s = ctx.socket(zmq.REQ)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.RCVTIMEO, 30000)
            s.connect(self.endpoint)
            try:
                s.send_multipart([json.dumps({"format": "csv", "name": source}).encode(),
                                  ("\n".join(lines) + "\n").encode()])
                reply = json.loads(s.recv())
            except zmq.Again:
                self.errors.append("batch %s: no reply within 30 s" % source)
                return
            finally:
                s.close()
            if reply.get("committed") and reply.get("accepted") == LOCALITIES:
                self.acked.update(rows)
                self.ack_times.append(time.monotonic())
            else:
                self.errors.append("batch %s: %s" % (source, reply))
                return
            time.sleep(0.05)


def raw_connect(port):
    s = socket.socket()
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    return s


def flood_one(rng, ctx, endpoint, port, answers, problems, slowest):
    kind = rng.randrange(10)
    started = time.monotonic()
    try:
        flood_kind(kind, rng, ctx, endpoint, port, answers, problems)
    finally:
        slowest[kind] = max(slowest.get(kind, 0), time.monotonic() - started)


def flood_kind(kind, rng, ctx, endpoint, port, answers, problems):
    if kind == 0:
        raw_connect(port).close()
    elif kind == 1:
        s = raw_connect(port)
        try:
            s.sendall(os.urandom(rng.randint(1, 3000)))
        except OSError:
            pass  # the daemon may drop a peer that speaks no ZMTP at once
        s.close()
    elif kind == 2:
        s = raw_connect(port)
        try:
            # The ZMTP 3 signature and part of the version/mechanism, then nothing.
            s.sendall(b"\xff" + b"\x00" * 8 + b"\x7f\x03\x00NUL"[: rng.randint(1, 6)])
            time.sleep(rng.uniform(0, 0.05))
        except OSError:
            pass
        s.close()
    elif kind in (3, 4):
        s = ctx.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(endpoint)
        bad = rng.choice([[b"{"], [b"[1,2,3]"], [b'{"op":"nothing"}'], [b'{"op":7}'],
                          [b'{"op":"replay","since":-1}'], [b'{"op":"replay","since":0,"limit":0}'],
                          [b'{"op":"snapshot","prefix":"ops/"}'], [b"\xff\xfe\x00garbage"], [b""],
                          [b'{"op":"status"}', b"second frame"], [os.urandom(200)]])
        s.send_multipart(bad)
        if kind == 4 and not s.poll(10000):
            problems.append("malformed request %r: no answer within 10 s" % bad)
        elif kind == 4:
            reply = s.recv()
            try:
                parsed = json.loads(reply)
            except ValueError:
                problems.append("a malformed request got a reply that is not JSON: %r" % reply[:200])
            else:
                if not isinstance(parsed, dict) or "error" not in parsed:
                    problems.append("malformed request %r got %r, not an error" % (bad, reply[:200]))
                else:
                    answers[0] += 1
        s.close()  # kind 3: disconnect before the reply (mid-request)
    elif kind in (5, 6):
        s = ctx.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(endpoint)
        req = rng.choice([{"op": "status"}, {"op": "snapshot", "prefix": "alert/"},
                          {"op": "replay", "since": 0, "limit": 10 ** 9},
                          {"op": "replay", "since": 10 ** 15}])
        s.send_string(json.dumps(req))
        if kind == 6 and not s.poll(10000):
            problems.append("valid request %s: no answer within 10 s" % req)
        elif kind == 6:
            parsed = json.loads(s.recv())
            if not isinstance(parsed, dict) or "error" in parsed:
                problems.append("valid request %s got %s" % (req, str(parsed)[:200]))
            else:
                answers[1] += 1
        s.close()
    elif kind in (7, 8):
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(endpoint)
        for _ in range(rng.randint(1, 40)):
            if kind == 7:
                s.send_multipart([b'{"op":"status"}'])  # no empty delimiter: not a REQ envelope
            else:
                s.send_multipart([b"", b'{"op":"replay","since":0,"limit":1}'])  # never read
        time.sleep(rng.uniform(0, 0.05))
        s.close()
    else:
        s = ctx.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(endpoint)
        s.send(b'{"op":"status","pad":"' + b"x" * (1 << 20) + b'"}')  # over the 1 MiB limit
        time.sleep(rng.uniform(0, 0.05))
        s.close()


def main():
    print("query flood seed %d (set EWS_FLOOD_SEED to repeat another)" % SEED)
    ingest = "tcp://127.0.0.1:%d" % free_port()
    plugins = tempfile.mkdtemp(prefix="ewsd-it-plugins-")
    shutil.copy(os.path.join(FIXTURES, "fixture_good.so"), plugins)
    ws = Workspace(plugin_dir=plugins)
    with open(ws.config) as f:
        text = f.read()
    with open(ws.config, "w") as f:
        f.write(text.replace('policy = "partial"', 'policy = "partial"\nbind = "%s"' % ingest, 1))
    try:
        loc = os.path.join(ws.dir, "localities.csv")
        with open(loc, "w") as f:
            f.write("id,name,region,population,neighbours\n")
            for n in range(1, LOCALITIES + 1):
                f.write("FL-%03d,Place %d,FL/FL-%d,400,\n" % (n, n, n % 3))
        ws.ewsctl("localities", "import", loc)
        ws.start()
        check(ws.wait_log("evaluation (full)", timeout=60), "ewsd started")
        pid = ws.daemon.pid
        r = query(ws.query, {"op": "status"})
        check(r.get("schema") == "ews.status/1", "status answers before the flood")
        time.sleep(0.5)
        baseline = fd_count(pid)
        print("open file descriptors before the flood: %d" % baseline)

        day = (datetime.datetime.now(datetime.timezone.utc).date() - datetime.timedelta(days=1)).isoformat()
        producer = Producer(ingest, day)
        producer.start()

        ctx = zmq.Context()
        ctx.setsockopt(zmq.MAX_SOCKETS, 4096)
        problems = []
        answers = [0, 0]  # error replies to malformed requests, answers to valid ones
        done = [0]
        lock = threading.Lock()
        deadline = time.monotonic() + FLOOD_S

        def worker(index):
            rng = random.Random(SEED * 100 + index)
            while time.monotonic() < deadline:
                try:
                    flood_one(rng, ctx, ws.query, ws.query_port, answers, problems, slowest)
                except Exception as e:  # a refused connection, a reply that is not JSON, ...
                    problems.append("%s: %s" % (type(e).__name__, e))
                    return
                with lock:
                    done[0] += 1

        slowest = {}
        held = []
        peak = [baseline]

        def holder():
            # HOLD raw connections at once, half with a partial greeting, kept a moment.
            t0 = time.monotonic()
            for _ in range(HOLD):
                s = raw_connect(ws.query_port)
                if len(held) % 2:
                    s.sendall(b"\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f")
                held.append(s)
            slowest["hold"] = time.monotonic() - t0
            time.sleep(1.0)
            peak[0] = max(peak[0], fd_count(pid))
            for s in held:
                s.close()

        started = time.monotonic()
        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(WORKERS)]
        threads.append(threading.Thread(target=holder, daemon=True))
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            if ws.daemon.poll() is not None:
                fail("ewsd exited during the flood (status %s): %s" % (ws.daemon.returncode, ws.log_text()[-2000:]))
            peak[0] = max(peak[0], fd_count(pid))
            time.sleep(0.2)
            if time.monotonic() - started > FLOOD_S + 60:
                fail("the flood's clients did not finish within %d s" % (FLOOD_S + 60))
        flood_s = time.monotonic() - started
        print("slowest client per kind (s): %s" % {k: round(v, 3) for k, v in slowest.items()})
        connections = done[0] + HOLD
        check(not problems, "every reply during the flood was well formed (%s)" % problems[:3])
        check(connections >= 500 and peak[0] >= baseline + HOLD // 2,
              "%d connections in %.1f s, up to %d descriptors open in the daemon at once (%d before); "
              "%d error replies to malformed requests, %d answers to valid ones"
              % (connections, flood_s, peak[0], baseline, answers[0], answers[1]))
        check(ws.daemon.poll() is None, "ewsd is alive after the flood")

        t0 = time.monotonic()
        try:
            r = query(ws.query, {"op": "status"}, timeout_ms=int(STATUS_LIMIT_S * 1000))
        except zmq.Again:
            fail("no answer to a valid status request within %.0f s after the flood" % STATUS_LIMIT_S)
        took = time.monotonic() - t0
        check(r.get("schema") == "ews.status/1" and took <= STATUS_LIMIT_S,
              "a valid status request is answered %.3f s after the flood (limit %.0f s)" % (took, STATUS_LIMIT_S))

        fds = fd_count(pid)
        wait_until = time.monotonic() + 20
        while fds > baseline + FD_SLACK and time.monotonic() < wait_until:
            time.sleep(0.25)
            fds = fd_count(pid)
        check(fds <= baseline + FD_SLACK,
              "the daemon's open descriptors come back to %d (baseline %d, peak %d, slack %d)"
              % (fds, baseline, peak[0], FD_SLACK))

        producer.stop.set()
        producer.join(60)
        check(not producer.errors, "the producer's batches were all acknowledged (%s)" % producer.errors[:2])
        during = [t for t in producer.ack_times if started <= t <= started + flood_s]
        # Acknowledged throughout: at least one per 2 s window of the flood.
        windows = {int((t - started) // 2) for t in during}
        check(len(during) >= 5 and len(windows) >= int(flood_s // 2) - 1,
              "ingest went on during the flood: %d batches acknowledged, in %d of its %d two-second windows"
              % (len(during), len(windows), int(flood_s // 2) + 1))
        rc, _ = ws.stop(timeout=30)
        check(rc == 0, "ewsd stops cleanly after the flood")
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(ws.state, "ewsd.db"), uri=True)
        try:
            stored = {}
            for l, k, t, s, v in db.execute(
                    "SELECT locality, kind, time, source, value FROM observations WHERE source LIKE 'flood-%'"):
                stored[(l, k, t, s)] = v
        finally:
            db.close()

        def key_time(text):
            return int(datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
                       .replace(tzinfo=datetime.timezone.utc).timestamp())
        missing = [k for k, v in producer.acked.items()
                   if stored.get((k[0], k[1], key_time(k[2]), k[3])) != v]
        check(producer.acked and not missing,
              "all %d acknowledged rows (%d batches) are in the database with their values (%d missing)"
              % (len(producer.acked), len(producer.ack_times), len(missing)))
        ctx.term()
    finally:
        ws.cleanup()
        shutil.rmtree(plugins, ignore_errors=True)


if __name__ == "__main__":
    main()
