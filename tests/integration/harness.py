"""Shared helpers for the integration tests: the real ewsd, real sockets, a real SQLite file.

Each test gets its own temporary directory, free TCP ports on 127.0.0.1, a config written
there, and the binaries from EWS_BUILD_DIR. Nothing is mocked.
"""
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("EWS_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build/dev"))
SOURCE = os.environ.get("EWS_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))
EWSD = os.path.join(BUILD, "ewsd")
EWSCTL = os.path.join(BUILD, "ewsctl")
EWS_SUB = os.path.join(BUILD, "ews-sub")
PLUGINS = os.path.join(BUILD, "plugins")
FIXTURES = os.path.join(BUILD, "fixtures")


def fail(message):
    print("FAIL: " + message, file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)
    print("ok: " + message)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def today():
    return datetime.datetime.now(datetime.timezone.utc).date()


class Workspace:
    """A temporary state directory, config file and ports for one daemon."""

    def __init__(self, plugin_dir=PLUGINS, extra_config=""):
        self.dir = tempfile.mkdtemp(prefix="ewsd-it-")
        self.state = os.path.join(self.dir, "state")
        self.spool = os.path.join(self.state, "spool")
        os.makedirs(self.spool)
        self.pub_port = free_port()
        self.query_port = free_port()
        self.pub = "tcp://127.0.0.1:%d" % self.pub_port
        self.query = "tcp://127.0.0.1:%d" % self.query_port
        self.config = os.path.join(self.dir, "ewsd.toml")
        self.log_path = os.path.join(self.dir, "ewsd.log")
        self.daemon = None
        with open(self.config, "w") as f:
            f.write(f"""
[daemon]
state_dir = "state"
plugin_dir = "{plugin_dir}"
evaluate_every_s = 3600
heartbeat_s = 1

[ingest]
policy = "partial"

[[publish]]
name = "main"
bind = "{self.pub}"

[query]
bind = "{self.query}"

[scoring]
raise_after = 1
clear_after = 2

[scoring.levels.watch]
raise = 45
clear = 35

[privacy]
min_cell = 5

[actions]
watch = ["Review with the child-protection committee"]
warning = ["Convene the child-protection committee", "School outreach"]
critical = ["Activate referral pathways for recovery and reintegration"]
{extra_config}
""")

    def ewsctl(self, *args, check_rc=True):
        r = subprocess.run([EWSCTL, "--config", self.config, *args], capture_output=True, text=True)
        if check_rc and r.returncode != 0:
            fail("ewsctl %s exited %d: %s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def gen_demo(self, localities=240, seed=11, feed_weeks=0):
        data = os.path.join(self.dir, "data")
        self.ewsctl("gen-demo", data, "--localities", str(localities), "--years", "1",
                    "--seed", str(seed), "--feed-weeks", str(feed_weeks), "--end", str(today()))
        self.ewsctl("localities", "import", os.path.join(data, "localities.csv"))
        trajectories = {}
        with open(os.path.join(data, "scenario.csv")) as f:
            next(f)
            for line in f:
                loc, traj = line.strip().split(",")
                trajectories[loc] = traj
        return data, trajectories

    def drop(self, path, name=None):
        """Puts a file into the spool the way producers should: write hidden, then rename."""
        name = name or os.path.basename(path)
        tmp = os.path.join(self.spool, "." + name + ".tmp")
        shutil.copyfile(path, tmp)
        os.rename(tmp, os.path.join(self.spool, name))

    def start(self, *extra):
        self.log = open(self.log_path, "w")
        self.daemon = subprocess.Popen([EWSD, "--config", self.config, *extra],
                                       stdout=self.log, stderr=subprocess.STDOUT)
        return self.daemon

    def log_text(self):
        with open(self.log_path) as f:
            return f.read()

    def wait_log(self, text, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.log_text():
                return True
            if self.daemon and self.daemon.poll() is not None:
                break
            time.sleep(0.1)
        return False

    def stop(self, timeout=5):
        if self.daemon and self.daemon.poll() is None:
            started = time.time()
            self.daemon.send_signal(signal.SIGTERM)
            try:
                rc = self.daemon.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                fail("ewsd did not stop within %d s of SIGTERM" % timeout)
            return rc, time.time() - started
        return self.daemon.returncode if self.daemon else None, 0.0

    def cleanup(self):
        if self.daemon and self.daemon.poll() is None:
            self.daemon.kill()
            self.daemon.wait()
        if os.environ.get("EWS_KEEP_TEST_DIRS"):
            print("kept " + self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def query(endpoint, request, timeout_ms=10000):
    import zmq
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, timeout_ms)
    s.connect(endpoint)
    s.send_string(json.dumps(request))
    try:
        return json.loads(s.recv_string())
    finally:
        s.close()


def push_batch(endpoint, name, content, timeout_ms=30000, must_reply=True):
    """Pushes one CSV batch to the ingest endpoint (a REQ socket: header frame, batch frame)
    and returns the daemon's reply as a dict. No reply within timeout_ms fails the test, or
    returns None when must_reply is False (a daemon killed on purpose)."""
    import zmq
    s = zmq.Context.instance().socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    try:
        s.send_multipart([json.dumps({"format": "csv", "name": name}).encode(), content.encode()])
        if s.poll(timeout_ms):
            return json.loads(s.recv())
        if must_reply:
            fail("no reply to batch %s within %d ms" % (name, timeout_ms))
        return None
    finally:
        s.close()


def replay_all(endpoint, since=0):
    events = []
    while True:
        r = query(endpoint, {"op": "replay", "since": since, "limit": 500})
        if "error" in r:
            fail("replay answered an error: %s" % r)
        events += r["events"]
        since = r["last_seq"]
        if not r["more"]:
            return events
