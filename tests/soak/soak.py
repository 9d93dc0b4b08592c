#!/usr/bin/python3
"""Soak test of the real ewsd: sustained ingest, several subscribers, for a set time.

Builds nothing: it runs the ewsd and ewsctl of an existing build (--build, default
build/release) with the plugins of that build. See tests/soak/README.md for what it does, what
it measures and how to read the result. Exit status: 0 when memory stayed within the limit and
every event and row is accounted for, 1 when not, 2 on a usage or set-up error.
"""
import argparse
import collections
import csv
import datetime
import hashlib
import json
import math
import multiprocessing as mp
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.normpath(os.path.join(HERE, "../.."))

# Incident categories of the monitoring feed (hour-to-date counts) and the sentinels probed.
BULK_KINDS = ("incident.drug_trafficking", "incident.armed_violence",
              "incident.violence_against_children", "presence.report")
WINDOW_DAYS = 28  # community_incidents' default window_days (not changed in the config)


def die(message, code=2):
    print("soak: " + message, file=sys.stderr, flush=True)
    sys.exit(code)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def iso(t):
    return datetime.datetime.fromtimestamp(int(t), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_date(d):
    return d.strftime("%Y-%m-%d")


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100); None when empty."""
    if not values:
        return None
    v = sorted(values)
    rank = max(1, min(len(v), math.ceil(p / 100 * len(v))))
    return v[rank - 1]


def payload_digest(payload):
    return hashlib.sha1(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


# ---- the workspace ---------------------------------------------------------------------------

class Localities:
    """L localities in 4 provinces x 25 districts, each neighbouring the next in its district."""

    def __init__(self, count):
        self.ids = ["SK-%05d" % i for i in range(count)]
        self.region = {}
        self.district = {}
        self.population = {}
        for i, loc in enumerate(self.ids):
            p, d = 1 + i % 4, 1 + (i // 4) % 25
            self.region[loc] = "SK/SK-%d/SK-%d-%02d" % (p, p, d)
            self.district[loc] = "%d-%02d" % (p, d)
            self.population[loc] = 300 + (i * 7919) % 2700

    def csv(self):
        by_district = collections.defaultdict(list)
        for loc in self.ids:
            by_district[self.district[loc]].append(loc)
        lines = ["id,name,region,population,neighbours"]
        for members in by_district.values():
            for j, loc in enumerate(members):
                nb = [members[k] for k in (j - 1, j + 1) if 0 <= k < len(members)]
                lines.append("%s,Locality %s,%s,%d,%s" % (loc, loc[3:], self.region[loc],
                                                          self.population[loc], ";".join(nb)))
        return "\n".join(lines) + "\n"


def write_config(path, plugins, ingest, pub, query, evaluate_every):
    with open(path, "w") as f:
        f.write(f"""# ewsd configuration of a soak run (tests/soak/soak.py)
[daemon]
state_dir = "state"
plugin_dir = "{plugins}"
evaluate_every_s = {evaluate_every}
heartbeat_s = 1
log_level = "info"

[ingest]
policy = "partial"
bind = "{ingest}"

[[publish]]
name = "main"
bind = "{pub}"

[query]
bind = "{query}"

[scoring]
raise_after = 1
clear_after = 2

[scoring.levels.watch]
raise = 45
clear = 35

[privacy]
min_cell = 5

[plugins.school_dropout]

[plugins.community_incidents]

[plugins.group_presence]

[actions]
watch = ["Share with the community child-protection committee for review at its next meeting"]
warning = ["Convene the community child-protection committee within a week"]
critical = ["Activate referral pathways for recovery and reintegration support"]
""")


# ---- the subscribers (one process each) ------------------------------------------------------

def request(ctx, endpoint, req, timeout_ms=15000):
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, timeout_ms)
    s.setsockopt(zmq.SNDTIMEO, timeout_ms)
    s.connect(endpoint)
    try:
        s.send_string(json.dumps(req))
        return json.loads(s.recv_string())
    finally:
        s.close()


def subscriber_main(index, slow, pub, query, stop, final_seq, progress, events_out, result_path,
                    away_every, away_for, slow_delay):
    """Follows the alert stream the way docs/protocol.md section 8 says: subscribe first, keep
    `last`, replay every gap (an event beyond last + 1, or a heartbeat beyond last). A slow
    reader takes `slow_delay` seconds per event and is away (socket closed) for `away_for` seconds every
    `away_every` seconds, so it falls behind and fills its gap by replay."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ctx = zmq.Context()
    digests = {}           # seq -> payload digest, every event handled (live or replayed)
    live = replayed = overlaps = 0
    out_of_order = []      # live events not above the previous live one on this connection
    replay_errors = []
    mismatches = []        # a seq seen twice with different payloads
    last = 0
    max_behind = 0

    def handle(seq, topic, payload, how, at):
        nonlocal last
        d = payload_digest(payload)
        if seq in digests:
            if digests[seq] != d and len(mismatches) < 20:
                mismatches.append(seq)
            return False
        digests[seq] = d
        last = max(last, seq)
        if events_out is not None and topic.startswith("alert/"):
            ev = payload.get("event")
            if ev in ("raised", "resolved"):
                loc = topic.rstrip("/").rsplit("/", 1)[-1]
                events_out.put((loc, ev, seq, at, how))
        return True

    def catch_up():
        nonlocal last, replayed
        while True:
            r = request(ctx, query, {"op": "replay", "since": last, "limit": 1000})
            if "error" in r:
                replay_errors.append(r["error"])
                return
            prev = last
            for e in r["events"]:
                seq = e["payload"]["seq"]
                if seq <= prev:
                    replay_errors.append("replay returned seq %d after %d" % (seq, prev))
                prev = seq
                if handle(seq, e["topic"], e["payload"], "replay", time.monotonic()):
                    replayed += 1
            last = max(last, r["last_seq"])
            if not r["more"]:
                return

    def connect():
        s = ctx.socket(zmq.SUB)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVHWM, 0 if not slow else 1000)
        for p in ("alert/", "ops/", "hb/"):
            s.setsockopt_string(zmq.SUBSCRIBE, p)
        s.connect(pub)
        return s

    sock = connect()
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    next_away = time.monotonic() + away_every
    last_live = 0
    try:
        while not stop.is_set():
            if slow and time.monotonic() >= next_away:
                poller.unregister(sock)
                sock.close()
                stop.wait(away_for)
                sock = connect()
                poller.register(sock, zmq.POLLIN)
                last_live = 0
                next_away = time.monotonic() + away_every
                continue
            if not poller.poll(100):
                continue
            frames = sock.recv_multipart()
            at = time.monotonic()
            if len(frames) != 2:
                continue
            topic = frames[0].decode()
            payload = json.loads(frames[1])
            seq = payload.get("seq", 0)
            if topic == "hb/":
                max_behind = max(max_behind, seq - last)
                if seq > last:
                    catch_up()
                continue
            if seq <= last_live:
                out_of_order.append((last_live, seq))
            last_live = seq
            max_behind = max(max_behind, seq - last)
            if seq > last + 1:
                catch_up()
            if handle(seq, topic, payload, "live", at):
                live += 1
            else:
                overlaps += 1  # already had it from a replay: expected, not a duplicate
            progress[index] = last
            if slow:
                time.sleep(slow_delay)
        # The end: everything up to the endpoint's last seq, by replay where it was not live.
        while last < final_seq.value:
            before = last
            catch_up()
            if last == before:
                break
        progress[index] = last
    except Exception as e:  # reported, not raised: the main process judges the result
        replay_errors.append("subscriber failed: %r" % e)
    finally:
        sock.close()
        with open(result_path, "w") as f:
            json.dump({"index": index, "slow": slow, "live": live, "replayed": replayed,
                       "overlaps": overlaps, "out_of_order": out_of_order[:20],
                       "out_of_order_count": len(out_of_order), "replay_errors": replay_errors[:20],
                       "mismatches": mismatches, "max_behind": max_behind, "last": last,
                       "digests": digests}, f)
        ctx.term()


# ---- the load ---------------------------------------------------------------------------------

class Load:
    """The rows of the run and what was acknowledged of them.

    Bulk rows: a near-real-time monitoring feed re-sending each locality's hour-to-date counts
    (time = the start of the current UTC hour, so each new hour brings new keys and the windows
    slide with the wall clock), mostly zeros, now and then one more incident; presence.report
    carries the monitor's current confidence. Probes: a sentinel (recruitment attempt or
    abduction) at a locality without an open alert, which raises `watch`; 4 in 5 are dated a
    minute ago and corrected to 0 by the monitor 15 s later (the report did not verify), 1 in 5
    is dated just inside the 28-day window, so that it leaves the window within minutes.
    Either way the alert then resolves."""

    def __init__(self, locs, rng):
        self.locs = locs
        self.rng = rng
        self.counts = {}        # (loc, kind, hour) -> hour-to-date count
        self.next_row = 0
        self.pending = {}       # batch name -> list of (key, value) in the batch
        self.acked = {}         # natural key -> last acknowledged value
        self.corrections = []   # (due monotonic, loc, key)
        self.busy = set()       # localities with a probe in flight or an open probe alert
        self.open = set()       # localities with an alert open (raised, not yet resolved)
        self.free_at = {}       # loc -> monotonic time it may be probed again

    def source(self, loc, kind):
        if kind == "presence.report":
            return "presence-" + self.locs.district[loc][0]
        return "monitor-" + self.locs.district[loc]

    def bulk_rows(self, n, now):
        hour = iso(now - now % 3600)
        rows = []
        ids = self.locs.ids
        for _ in range(n):
            i = self.next_row
            self.next_row += 1
            # Kinds interleaved: every batch carries fresh presence confidences, so no two
            # batches are the same bytes (the daemon skips a batch it has committed before).
            loc = ids[(i // len(BULK_KINDS)) % len(ids)]
            kind = BULK_KINDS[i % len(BULK_KINDS)]
            if kind == "presence.report":
                value = round(self.rng.random() * 0.2, 3)
            else:
                k = (loc, kind, hour)
                value = self.counts.get(k, 0)
                if self.rng.random() < 0.0004:
                    value += 1
                self.counts[k] = value
            rows.append((loc, hour, kind, value, self.source(loc, kind)))
        return rows

    def pick_probe(self, now_m):
        for _ in range(50):
            loc = self.rng.choice(self.locs.ids)
            # Not where an alert is open already (the background counts raise some): a
            # sentinel there raises nothing new.
            if loc not in self.busy and loc not in self.open and self.free_at.get(loc, 0) <= now_m:
                return loc
        return None

    def probe_row(self, loc, wall, now_m, aging):
        self.busy.add(loc)
        if aging:
            # Just inside the window (now - 28 days, now]: leaves it in 30 to 120 s.
            t = int(wall) - WINDOW_DAYS * 86400 + self.rng.randint(30, 120)
            row = (loc, iso(t), "incident.abduction", 1, "monitor-" + self.locs.district[loc])
        else:
            t = int(wall) - 60
            row = (loc, iso(t), "incident.recruitment_attempt", 1, "monitor-" + self.locs.district[loc])
            self.corrections.append((now_m + 15, row))
        return row

    def due_corrections(self, now_m):
        out = []
        while self.corrections and self.corrections[0][0] <= now_m:
            _, row = self.corrections.pop(0)
            out.append((row[0], row[1], row[2], 0, row[4]))
        return out

    @staticmethod
    def csv(rows):
        return "locality,time,kind,value,source\n" + "".join(
            "%s,%s,%s,%s,%s\n" % r for r in rows)

    def record(self, name, rows):
        self.pending[name] = [((r[0], r[2], r[1], r[4]), r[3]) for r in rows]

    def ack(self, name):
        for key, value in self.pending.pop(name, ()):
            self.acked[key] = value


def history_batches(locs, rng, today):
    """Half a year of history per locality, as the programme's sources would have sent it:
    weekly incident counts of three categories, monthly school enrolment and dropouts, monthly
    presence reports. Returns CSV batches of about 20,000 rows."""
    rows = []
    for loc in locs.ids:
        src = "monitor-" + locs.district[loc]
        for w in range(26, 0, -1):
            day = iso_date(today - datetime.timedelta(days=7 * w))
            for kind in BULK_KINDS[:3]:
                rows.append((loc, day, kind, 1 if rng.random() < 0.05 else 0, src))
        enrolled = int(locs.population[loc] * 0.6)
        for m in range(6, 0, -1):
            day = iso_date(today - datetime.timedelta(days=30 * m))
            rows.append((loc, day, "school.enrolled", enrolled, "emis"))
            rows.append((loc, day, "school.dropouts", sum(rng.random() < 0.004 for _ in range(enrolled // 10)), "emis"))
            rows.append((loc, day, "presence.report", round(rng.random() * 0.15, 2),
                         "presence-" + locs.district[loc][0]))
    for i in range(0, len(rows), 20000):
        yield rows[i:i + 20000]


# ---- the daemon's resources --------------------------------------------------------------------

def proc_rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def proc_rss_parts_kib(pid):
    """(RssAnon, RssFile): heap and the like; mapped files, SQLite's WAL index among them."""
    parts = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(("RssAnon:", "RssFile:")):
                    parts[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        pass
    return parts.get("RssAnon"), parts.get("RssFile")


def proc_fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def file_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


# ---- main ---------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description="Soak test of the real ewsd (see tests/soak/README.md).")
    ap.add_argument("--build", default=os.path.join(SOURCE, "build/release"),
                    help="build directory holding ewsd, ewsctl and plugins/ (default build/release)")
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--rate", type=float, default=10000, help="observations per second (10000)")
    ap.add_argument("--batch-rows", type=int, default=100)
    ap.add_argument("--localities", type=int, default=10000)
    ap.add_argument("--subscribers", type=int, default=3, help="the last one is the slow reader")
    ap.add_argument("--probe-every", type=int, default=10, help="a probe in every Nth batch (10)")
    ap.add_argument("--report-every", type=float, default=30, help="seconds between reports (30)")
    ap.add_argument("--evaluate-every", type=int, default=60, help="full evaluation interval, s (the daemon's default)")
    ap.add_argument("--away-every", type=float, default=240, help="slow reader: away every N s")
    ap.add_argument("--away-for", type=float, default=45, help="slow reader: away for N s")
    ap.add_argument("--slow-delay", type=float, default=0.1, help="slow reader: s per event")
    ap.add_argument("--max-growth", type=float, default=10, help="memory growth limit, percent")
    ap.add_argument("--out", default=None, help="output directory (default soak-<time> here)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep the workspace (state, log)")
    a = ap.parse_args()

    ewsd = os.path.join(a.build, "ewsd")
    ewsctl = os.path.join(a.build, "ewsctl")
    plugins = os.path.abspath(os.path.join(a.build, "plugins"))
    for p in (ewsd, ewsctl):
        if not os.access(p, os.X_OK):
            die("no program at %s (build it first; --build DIR)" % p)
    if not os.path.isdir(plugins):
        die("no plugin directory at %s" % plugins)
    if a.subscribers < 2 or a.batch_rows < 2 or a.rate <= 0 or a.minutes <= 0:
        die("need --subscribers >= 2, --batch-rows >= 2, --rate > 0, --minutes > 0")
    out_dir = a.out or os.path.join(os.getcwd(), time.strftime("soak-%Y%m%dT%H%M%S"))
    os.makedirs(out_dir, exist_ok=True)

    work = tempfile.mkdtemp(prefix="ewsd-soak-")
    state = os.path.join(work, "state")
    os.makedirs(state)
    ingest_ep = "tcp://127.0.0.1:%d" % free_port()
    pub_ep = "tcp://127.0.0.1:%d" % free_port()
    query_ep = "tcp://127.0.0.1:%d" % free_port()
    config = os.path.join(work, "ewsd.toml")
    write_config(config, plugins, ingest_ep, pub_ep, query_ep, a.evaluate_every)
    rng = random.Random(a.seed)
    locs = Localities(a.localities)
    loc_csv = os.path.join(work, "localities.csv")
    with open(loc_csv, "w") as f:
        f.write(locs.csv())
    r = subprocess.run([ewsctl, "--config", config, "localities", "import", loc_csv],
                       capture_output=True, text=True)
    if r.returncode != 0:
        die("localities import failed: %s%s" % (r.stdout, r.stderr))

    log_path = os.path.join(work, "ewsd.log")
    log = open(log_path, "w")
    daemon = subprocess.Popen([ewsd, "--config", config], stdout=log, stderr=subprocess.STDOUT)
    db = os.path.join(state, "ewsd.db")
    ctx = zmq.Context()
    # Subscribers run in processes of their own (spawned: no ZeroMQ context is inherited), so
    # that the pusher's schedule does not wait on them.
    mpc = mp.get_context("spawn")
    procs = []
    stop = mpc.Event()
    failures = []

    def cleanup():
        stop.set()
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        if a.keep:
            print("soak: workspace kept in " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)

    try:
        deadline = time.time() + 60
        while True:
            if daemon.poll() is not None:
                die("ewsd exited %d at start; see its log:\n%s" % (daemon.returncode, open(log_path).read()[-3000:]))
            try:
                st = request(ctx, query_ep, {"op": "status"}, 1000)
                if st.get("schema") == "ews.status/1":
                    break
            except zmq.ZMQError:
                pass
            if time.time() > deadline:
                die("ewsd did not answer status within 60 s")

        # Subscribers first (they replay whatever they missed, from seq 0).
        final_seq = mpc.Value("q", 0)
        progress = mpc.Array("q", a.subscribers)
        events_q = mpc.Queue()
        for i in range(a.subscribers):
            slow = i == a.subscribers - 1
            p = mpc.Process(target=subscriber_main,
                           args=(i, slow, pub_ep, query_ep, stop, final_seq, progress,
                                 events_q if i == 0 else None,
                                 os.path.join(work, "sub%d.json" % i), a.away_every, a.away_for,
                                 a.slow_delay),
                           daemon=True)
            p.start()
            procs.append(p)

        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(ingest_ep)
        load = Load(locs, rng)

        # The history, before the clock starts.
        t0 = time.time()
        hist_rows = 0
        for k, rows in enumerate(history_batches(locs, rng, datetime.datetime.now(datetime.timezone.utc).date())):
            name = "history-%d" % k
            load.record(name, rows)
            dealer.send_multipart([json.dumps({"format": "csv", "name": name}).encode(),
                                   Load.csv(rows).encode()])
            if not dealer.poll(120000):
                die("no reply to the history batch %s within 120 s" % name)
            reply = json.loads(dealer.recv_multipart()[-1])
            if not reply.get("committed") or reply.get("accepted") != len(rows):
                die("history batch %s not committed: %s" % (name, json.dumps(reply)[:2000]))
            load.ack(name)
            hist_rows += len(rows)
        print("soak: %d localities, %d history rows ingested in %.1f s" % (
            a.localities, hist_rows, time.time() - t0), flush=True)

        # Wait for every subscriber to be in sync before the clock starts.
        st = request(ctx, query_ep, {"op": "status"})
        start_seq = st["last_seq"]["main"]
        deadline = time.time() + 60
        while min(progress[:]) < start_seq and time.time() < deadline:
            time.sleep(0.2)

        # ---- the run ----
        samples = []      # (t, rss_kib) every 5 s
        reports = []
        lock = threading.Lock()
        acks_interval = []     # ack latencies (ms) in the current interval
        probe_lat = []         # probe latencies (ms) in the current interval
        counters = collections.Counter()
        sampler_stop = threading.Event()
        run_start = time.monotonic()
        run_end = run_start + a.minutes * 60
        pid = daemon.pid

        def sample_loop():
            sctx = zmq.Context()
            next_report = run_start + a.report_every
            last_rows = 0
            while not sampler_stop.is_set():
                now = time.monotonic()
                rss = proc_rss_kib(pid)
                if rss is not None:
                    samples.append((now - run_start, rss))
                if now >= next_report:
                    next_report += a.report_every
                    try:
                        st = request(sctx, query_ep, {"op": "status"}, 10000)
                    except Exception as e:
                        st = {"error": repr(e)}
                    with lock:
                        acks = acks_interval[:]
                        acks_interval.clear()
                        probes = probe_lat[:]
                        probe_lat.clear()
                        rows_acked = counters["rows_acked"]
                        c = dict(counters)
                    anon, mapped = proc_rss_parts_kib(pid)
                    rep = {
                        "t_s": round(now - run_start, 1),
                        "rss_mib": round(rss / 1024, 1) if rss else None,
                        "rss_anon_mib": round(anon / 1024, 1) if anon else None,
                        "rss_file_mib": round(mapped / 1024, 1) if mapped else None,
                        "fds": proc_fds(pid),
                        "db_mib": round(file_size(db) / 2**20, 1),
                        "wal_mib": round(file_size(db + "-wal") / 2**20, 1),
                        "rows_acked": rows_acked,
                        "obs_per_s": round((rows_acked - last_rows) / a.report_every),
                        "ack_p50_ms": percentile(acks, 50), "ack_p99_ms": percentile(acks, 99),
                        "probes": len(probes),
                        "e2e_p50_ms": percentile(probes, 50), "e2e_p99_ms": percentile(probes, 99),
                        "observations_held": st.get("observations"),
                        "last_seq": (st.get("last_seq") or {}).get("main"),
                        "open_alerts": sum((st.get("open_alerts") or {}).values()),
                        "subscribers_at": list(progress[:]),
                        "raised": c.get("raised", 0), "resolved": c.get("resolved", 0),
                        "not_committed": c.get("not_committed", 0),
                    }
                    for k in ("ack_p50_ms", "ack_p99_ms", "e2e_p50_ms", "e2e_p99_ms"):
                        if rep[k] is not None:
                            rep[k] = round(rep[k], 2)
                    last_rows = rows_acked
                    reports.append(rep)
                    print("soak: t=%(t_s)6.0fs rss=%(rss_mib)sMiB (anon %(rss_anon_mib)s) fds=%(fds)s db=%(db_mib)sMiB "
                          "wal=%(wal_mib)sMiB acked=%(rows_acked)d (%(obs_per_s)d/s) "
                          "ack p50/p99=%(ack_p50_ms)s/%(ack_p99_ms)s ms e2e p50/p99=%(e2e_p50_ms)s/"
                          "%(e2e_p99_ms)s ms (%(probes)d probes) seq=%(last_seq)s open=%(open_alerts)s "
                          "subs=%(subscribers_at)s" % rep, flush=True)
                sampler_stop.wait(5)
            sctx.term()

        sampler = threading.Thread(target=sample_loop, daemon=True)
        sampler.start()

        interval = a.batch_rows / a.rate
        sent_at = {}          # batch name -> monotonic send time
        probe_sent = {}       # loc -> monotonic send time of its probe batch (awaiting raise)
        max_in_flight = 2000
        k = 0
        max_lag = 0.0

        def take_replies(timeout_ms):
            got = False
            while dealer.poll(timeout_ms):
                timeout_ms = 0
                got = True
                frames = dealer.recv_multipart()
                at = time.monotonic()
                reply = json.loads(frames[-1])
                name = reply.get("name")
                t = sent_at.pop(name, None)
                if reply.get("duplicate") and "error" not in reply:
                    # The same bytes were committed before: acknowledged, nothing changed.
                    with lock:
                        counters["duplicate_batches"] += 1
                    load.pending.pop(name, None)
                    continue
                ok = reply.get("committed") and "error" not in reply and \
                    reply.get("accepted") == len(load.pending.get(name, ()))
                with lock:
                    if ok:
                        counters["rows_acked"] += reply["accepted"]
                        if t is not None:
                            acks_interval.append((at - t) * 1000)
                    else:
                        counters["not_committed"] += 1
                        if counters["not_committed"] <= 5:
                            failures.append("batch %s not committed: %s" % (name, json.dumps(reply)[:500]))
                if ok:
                    load.ack(name)
                else:
                    load.pending.pop(name, None)
            return got

        def take_events():
            while True:
                try:
                    loc, ev, seq, at, how = events_q.get_nowait()
                except Exception:
                    return
                if ev == "raised":
                    load.open.add(loc)
                else:
                    load.open.discard(loc)
                with lock:
                    counters[ev] += 1
                    if ev == "raised" and loc in probe_sent:
                        probe_lat.append((at - probe_sent.pop(loc)) * 1000)
                        counters["probe_raised_" + how] += 1
                if ev == "resolved" and loc in load.busy:
                    load.busy.discard(loc)
                    load.free_at[loc] = at + 60

        while True:
            due = run_start + k * interval
            if due >= run_end:
                break
            while True:
                left = due - time.monotonic()
                if left <= 0:
                    break
                if left > 0.002:
                    take_replies(min(int(left * 1000) - 1, 5))
                else:
                    time.sleep(left)
            now_m = time.monotonic()
            max_lag = max(max_lag, now_m - due)
            wall = time.time()
            rows = load.due_corrections(now_m)
            probe_loc = None
            if k % a.probe_every == a.probe_every - 1:
                probe_loc = load.pick_probe(now_m)
                if probe_loc:
                    rows.append(load.probe_row(probe_loc, wall, now_m, aging=rng.random() < 0.2))
            rows += load.bulk_rows(a.batch_rows - len(rows), wall)
            name = "soak-%d" % k
            load.record(name, rows)
            sent_at[name] = time.monotonic()
            dealer.send_multipart([json.dumps({"format": "csv", "name": name}).encode(),
                                   Load.csv(rows).encode()])
            if probe_loc:
                probe_sent[probe_loc] = sent_at[name]
                counters["probes"] += 1
            k += 1
            take_replies(0)
            take_events()
            while len(sent_at) > max_in_flight:
                take_replies(100)
            if daemon.poll() is not None:
                failures.append("ewsd exited %d during the run" % daemon.returncode)
                break
        sent_end = time.monotonic()

        # Every batch's reply, then quiet for the alerts still on their way.
        deadline = time.monotonic() + 120
        while sent_at and time.monotonic() < deadline:
            take_replies(100)
        unanswered = len(sent_at)
        time.sleep(5)
        take_events()
        sampler_stop.set()
        sampler.join()

        st = request(ctx, query_ep, {"op": "status"})
        final_seq.value = st["last_seq"]["main"]
        held = st.get("observations")
        # The whole outbox, as the query endpoint replays it.
        outbox = {}
        since = 0
        while True:
            rr = request(ctx, query_ep, {"op": "replay", "since": since, "limit": 1000})
            if "error" in rr:
                failures.append("replay: " + rr["error"])
                break
            for e in rr["events"]:
                outbox[e["payload"]["seq"]] = payload_digest(e["payload"])
            since = rr["last_seq"]
            if not rr["more"]:
                break
        stop.set()
        for p in procs:
            p.join(timeout=300)
        take_events()
        subs = []
        for i in range(a.subscribers):
            try:
                with open(os.path.join(work, "sub%d.json" % i)) as f:
                    subs.append(json.load(f))
            except OSError:
                failures.append("subscriber %d wrote no result" % i)

        # ewsctl's count (through the daemon's control socket), then stop the daemon and check
        # every acknowledged key in the SQLite file itself.
        ctl = subprocess.run([ewsctl, "--config", config, "status"], capture_output=True, text=True)
        try:
            ctl_obs = json.loads(ctl.stdout).get("observations")
        except ValueError:
            ctl_obs = None
            failures.append("ewsctl status: %s%s" % (ctl.stdout[-500:], ctl.stderr[-500:]))
        daemon.send_signal(signal.SIGTERM)
        try:
            rc = daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            rc = "killed after 30 s"
            failures.append("ewsd did not stop within 30 s of SIGTERM")
        if rc != 0:
            failures.append("ewsd exited %s at SIGTERM" % rc)
        con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
        stored = {}
        for loc, kind, t, src, value in con.execute(
                "SELECT locality, kind, time, source, value FROM observations"):
            stored[(loc, kind, t, src)] = value
        con.close()

        def key_time(text):
            if len(text) == 10:
                text += "T00:00:00Z"
            return int(datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
                       .replace(tzinfo=datetime.timezone.utc).timestamp())

        missing = wrong = 0
        examples = []
        for (loc, kind, t, src), value in load.acked.items():
            got = stored.get((loc, kind, key_time(t), src))
            if got is None:
                missing += 1
                if len(examples) < 5:
                    examples.append("missing %s %s %s %s" % (loc, kind, t, src))
            elif abs(got - value) > 1e-9:
                wrong += 1
                if len(examples) < 5:
                    examples.append("%s %s %s %s: stored %s, acked %s" % (loc, kind, t, src, got, value))
        extra = len(stored) - (len(load.acked) - missing)

        # ---- the summary ----
        duration = sent_end - run_start
        window = min(300.0, duration / 3)
        first = [r for t, r in samples if t <= window]
        last = [r for t, r in samples if t >= duration - window]
        m_first = statistics.median(first) if first else None
        m_last = statistics.median(last) if last else None
        growth = (m_last / m_first - 1) * 100 if m_first and m_last else None
        memory_ok = growth is not None and growth <= a.max_growth

        expected = set(outbox)
        last_seq = final_seq.value
        gapless = expected == set(range(1, last_seq + 1))
        sub_results = []
        for s in subs:
            got = {int(q): d for q, d in s["digests"].items()}
            miss = sorted(set(range(1, last_seq + 1)) - set(got))
            differ = [q for q in got if q in outbox and outbox[q] != got[q]]
            ok = not miss and not differ and not s["mismatches"] and \
                s["out_of_order_count"] == 0 and not s["replay_errors"]
            sub_results.append({
                "subscriber": s["index"], "slow": s["slow"], "events": len(got),
                "live": s["live"], "by_replay": s["replayed"], "live_after_replay": s["overlaps"],
                "missing": len(miss), "first_missing": miss[:10],
                "payload_differs_from_outbox": len(differ),
                "same_seq_different_payload": len(s["mismatches"]),
                "live_out_of_order": s["out_of_order_count"], "replay_errors": s["replay_errors"],
                "max_behind": s["max_behind"], "ok": ok})
        events_ok = gapless and len(subs) == a.subscribers and all(s["ok"] for s in sub_results)
        rows_ok = missing == 0 and wrong == 0 and extra == 0 and unanswered == 0 and \
            counters["not_committed"] == 0 and ctl_obs == len(stored) and held == len(load.acked)
        probes_lost = len(probe_sent)
        summary = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": "%d cores, %s" % (os.cpu_count(), platform_text()),
            "ewsd": ewsd,
            "minutes": round(duration / 60, 2),
            "rate_target": a.rate, "rate_achieved": round(counters["rows_acked"] / duration),
            "max_behind_schedule_ms": round(max_lag * 1000, 1),
            "localities": a.localities, "history_rows": hist_rows,
            "rows_acked_in_run": counters["rows_acked"], "batches_not_committed": counters["not_committed"],
            "batches_unanswered": unanswered,
            "duplicate_batches": counters["duplicate_batches"],
            "distinct_keys_acked": len(load.acked), "observations_in_store": len(stored),
            "observations_ewsctl_status": ctl_obs, "observations_held_in_memory": held,
            "acked_keys_missing_from_store": missing, "acked_keys_with_other_value": wrong,
            "store_rows_not_acked": extra, "row_examples": examples,
            "memory_window_s": round(window), "rss_median_first_mib": m_first and round(m_first / 1024, 1),
            "rss_median_last_mib": m_last and round(m_last / 1024, 1),
            "rss_growth_percent": growth and round(growth, 2), "rss_growth_limit_percent": a.max_growth,
            "events_published": last_seq, "outbox_gapless": gapless,
            "raised_seen": counters["raised"], "resolved_seen": counters["resolved"],
            "probes": counters["probes"], "probes_raise_seen": counters["probes"] - probes_lost,
            "probes_raise_not_seen": probes_lost,
            "probes_raise_not_seen_examples": [
                {"locality": loc, "sent_s": round(t - run_start, 1)}
                for loc, t in sorted(probe_sent.items(), key=lambda x: x[1])[:10]],
            "latency_measure": "end to end: probe batch handed to the DEALER -> its 'raised' alert "
                               "received by subscriber 0 (a SUB); ack = batch sent -> committed reply",
            "subscribers": sub_results,
            "memory_ok": memory_ok, "events_ok": events_ok, "rows_ok": rows_ok,
            "failures": failures,
        }
        summary["pass"] = memory_ok and events_ok and rows_ok and not failures
        with open(os.path.join(out_dir, "timeseries.json"), "w") as f:
            json.dump(reports, f, indent=1)
        with open(os.path.join(out_dir, "timeseries.csv"), "w", newline="") as f:
            cols = [c for c in reports[0].keys() if c != "subscribers_at"] if reports else []
            w = csv.writer(f)
            w.writerow(cols)
            for rep in reports:
                w.writerow([rep[c] for c in cols])
        with open(os.path.join(out_dir, "rss_samples.csv"), "w") as f:
            f.write("t_s,rss_kib\n" + "".join("%.1f,%d\n" % s for s in samples))
        with open(os.path.join(out_dir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        shutil.copyfile(log_path, os.path.join(out_dir, "ewsd.log"))
        print(json.dumps(summary, indent=1))
        print("soak: %s; results in %s" % ("PASS" if summary["pass"] else "FAIL", out_dir), flush=True)
        return 0 if summary["pass"] else 1
    finally:
        cleanup()


def platform_text():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    distro = ""
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    distro = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return ", ".join(x for x in (model, distro) if x)


if __name__ == "__main__":
    sys.exit(main())
