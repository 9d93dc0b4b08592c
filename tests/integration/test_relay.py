"""`ewsctl relay`, end to end: the real ewsd on generated demo data, relays between it and
pyzmq subscribers over tcp.

One daemon publishes on two endpoints: "main" (plain; the query endpoint serves its outbox)
and "secure" (CURVE, admitting only the relay's key). Four relays run beside it, each started before the daemon:
(a) plain -> plain: two subscribers through it receive exactly the alerts, with the same
    seqs and payloads, that a subscriber directly on the daemon receives, and that the
    outbox holds;
(b) --scope DM/DM-1: a subscriber to "" receives that province's alerts and no other (and
    heartbeats); a subscription to another province is refused and receives nothing;
(c) CURVE upstream (the relay is an authorized client of "secure") and CURVE downstream
    (its ZAP handler admits the keys of a directory): an authorized subscriber receives the
    same alerts as the direct one; a subscriber with an unknown key receives nothing;
(d) a relay whose own key the daemon does not know logs the refusal once, and its
    subscriber receives nothing;
(e) SIGTERM stops each relay with exit status 0.
Every key comes from `ewsctl keygen`.
The subscribers connect before the data arrives and each must have received a heartbeat
through its relay (proof that its subscription reached the daemon) before the history is
dropped into the spool; only events published after that are compared.
"""
import glob
import json
import os
import signal
import subprocess
import time

import zmq
import zmq.auth

from harness import EWSCTL, Workspace, check, fail, free_port, replay_all

SCOPE = "DM/DM-1"


class Relay:
    def __init__(self, ws, name, *args):
        self.bind = "tcp://127.0.0.1:%d" % free_port()
        self.log_path = os.path.join(ws.dir, "relay-%s.log" % name)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([EWSCTL, "relay", "--bind", self.bind, *args],
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def log_text(self):
        with open(self.log_path) as f:
            return f.read()

    def wait_log(self, text, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.log_text():
                return True
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        return text in self.log_text()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                fail("the relay did not stop within 5 s of SIGTERM")
        return self.proc.returncode


class Subscriber:
    """A SUB socket that keeps every alert by seq and counts heartbeats and other messages."""

    def __init__(self, name, endpoint, topics, curve=None):
        self.name = name
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        if curve:
            server_public, client_public, client_secret = curve
            self.sock.curve_serverkey = server_public
            self.sock.curve_publickey = client_public
            self.sock.curve_secretkey = client_secret
        for t in topics:
            self.sock.setsockopt_string(zmq.SUBSCRIBE, t)
        self.sock.connect(endpoint)
        self.alerts = {}  # seq -> (topic, payload)
        self.heartbeats = 0
        self.messages = 0

    def poll_once(self):
        while self.sock.poll(0):
            topic, body = self.sock.recv_multipart()
            self.messages += 1
            topic = topic.decode()
            payload = json.loads(body)
            if topic == "hb/":
                self.heartbeats += 1
            elif topic.startswith("alert/"):
                if payload["seq"] in self.alerts:
                    fail("%s received seq %d twice" % (self.name, payload["seq"]))
                self.alerts[payload["seq"]] = (topic, payload)

    def after(self, seq):
        return {s: v for s, v in self.alerts.items() if s > seq}


def receive(subscribers, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        for s in subscribers:
            s.poll_once()
        time.sleep(0.02)


def make_keys(ws, name):
    """A CURVE key pair from `ewsctl keygen`. Returns: (public file, secret file)."""
    keys = os.path.join(ws.dir, "keys")
    r = subprocess.run([EWSCTL, "keygen", name, "--dir", keys], capture_output=True, text=True)
    if r.returncode != 0:
        fail("ewsctl keygen %s exited %d: %s%s" % (name, r.returncode, r.stdout, r.stderr))
    return os.path.join(keys, name + ".key"), os.path.join(keys, name + ".key_secret")


def authorize(directory, public_file):
    os.makedirs(directory, exist_ok=True)
    with open(public_file) as f, open(os.path.join(directory, os.path.basename(public_file)), "w") as g:
        g.write(f.read())


def main():
    ws = Workspace()
    relays = []
    try:
        data, _ = ws.gen_demo(localities=240, seed=11, feed_weeks=4)

        daemon_pub, daemon_secret = make_keys(ws, "daemon")
        relay_client_pub, relay_client_secret = make_keys(ws, "relay-client")
        relay_server_pub, relay_server_secret = make_keys(ws, "relay-server")
        subscriber_pub, subscriber_secret = make_keys(ws, "subscriber")
        _, stranger_secret = make_keys(ws, "stranger")
        daemon_authorized = os.path.join(ws.dir, "daemon-authorized")
        relay_authorized = os.path.join(ws.dir, "relay-authorized")
        authorize(daemon_authorized, relay_client_pub)
        authorize(relay_authorized, subscriber_pub)

        secure_pub = "tcp://127.0.0.1:%d" % free_port()
        with open(ws.config) as f:
            text = f.read()
        text = text.replace("[query]\n", """[[publish]]
name = "secure"
bind = "%s"
curve_secret_key_file = "%s"
authorized_keys_dir = "%s"

[query]
""" % (secure_pub, daemon_secret, daemon_authorized), 1)
        with open(ws.config, "w") as f:
            f.write(text)

        # ---- startup errors: named, exit 1 (bad keys) or 2 (usage) ---------------------
        def relay_rc(*args):
            r = subprocess.run([EWSCTL, "relay", "--upstream", ws.pub, "--bind",
                                "tcp://127.0.0.1:%d" % free_port(), *args],
                               capture_output=True, text=True, timeout=10)
            return r.returncode, r.stderr
        rc, err = relay_rc("--upstream-server-key", daemon_pub, "--key-file", relay_client_pub)
        check(rc == 1 and "--key-file %s: a public certificate" % relay_client_pub in err,
              "a public certificate given as --key-file is refused with exit 1 (%d: %s)" % (rc, err.strip()))
        rc, err = relay_rc("--upstream-server-key", os.path.join(ws.dir, "missing.key"),
                           "--key-file", relay_client_secret)
        check(rc == 1 and "--upstream-server-key" in err and "missing.key" in err,
              "a missing --upstream-server-key file is refused with exit 1 (%d: %s)" % (rc, err.strip()))
        rc, err = relay_rc("--key-file", relay_client_secret)
        check(rc == 2, "--key-file without --upstream-server-key is a usage error (%d: %s)" % (rc, err.strip()))
        rc, err = relay_rc("--authorized-keys-dir", relay_authorized)
        check(rc == 2, "--authorized-keys-dir without a server key is a usage error (%d)" % rc)
        rc, err = relay_rc("--scope", "/DM")
        check(rc == 2, "a --scope starting with '/' is a usage error (%d: %s)" % (rc, err.strip()))

        # ---- the relays, started before the daemon: they connect when it binds ----------
        plain = Relay(ws, "plain", "--upstream", ws.pub)
        scoped = Relay(ws, "scoped", "--upstream", ws.pub, "--scope", SCOPE + "/")
        secure = Relay(ws, "secure", "--upstream", secure_pub,
                       "--upstream-server-key", daemon_pub, "--key-file", relay_client_secret,
                       "--curve-secret-key-file", relay_server_secret,
                       "--authorized-keys-dir", relay_authorized)
        # A relay whose own key the daemon does not know.
        refused = Relay(ws, "refused", "--upstream", secure_pub,
                        "--upstream-server-key", daemon_pub, "--key-file", stranger_secret)
        relays += [plain, scoped, secure, refused]
        for r in relays:
            check(r.wait_log("relay started"), "relay %s started (%s)" % (r.log_path, r.log_text().strip()))
        check("scope %s (alert/%s/, hb/, ops/)" % (SCOPE, SCOPE) in scoped.log_text(),
              "the scoped relay logs its scope, the trailing '/' dropped")
        check("upstream %s (CURVE client)" % secure_pub in secure.log_text() and
              "(CURVE server, ZAP domain relay: the keys in %s)" % relay_authorized in secure.log_text(),
              "the CURVE relay logs CURVE on both sides")
        check("(plain), bind %s (plain), scope everything" % plain.bind in plain.log_text(),
              "the plain relay logs plain on both sides and no scope")

        relay_server_public, _ = zmq.auth.load_certificate(relay_server_pub)
        sub_public, sub_secret = zmq.auth.load_certificate(subscriber_secret)
        stranger_public, stranger_secret_key = zmq.auth.load_certificate(stranger_secret)

        direct = Subscriber("direct", ws.pub, ["alert/", "hb/"])
        via_a = Subscriber("relay subscriber 1", plain.bind, ["alert/", "hb/"])
        via_b = Subscriber("relay subscriber 2", plain.bind, [""])
        in_scope = Subscriber("scoped subscriber to ''", scoped.bind, [""])
        other_region = Subscriber("scoped subscriber to alert/DM/DM-2/", scoped.bind,
                                  ["alert/DM/DM-2/"])
        authorized = Subscriber("authorized CURVE subscriber", secure.bind, ["alert/", "hb/"],
                                (relay_server_public, sub_public, sub_secret))
        stranger = Subscriber("CURVE subscriber with an unknown key", secure.bind, [""],
                              (relay_server_public, stranger_public, stranger_secret_key))
        behind_refused = Subscriber("subscriber of the refused relay", refused.bind, [""])
        subscribers = [direct, via_a, via_b, in_scope, other_region, authorized, stranger,
                       behind_refused]

        ws.start()
        check(ws.wait_log("evaluation (full)", timeout=60), "ewsd started and evaluated")
        deadline = time.time() + 20
        listening = [direct, via_a, via_b, in_scope, authorized]
        while time.time() < deadline and not all(s.heartbeats > 0 for s in listening):
            receive(subscribers, 0.2)
        for s in listening:
            check(s.heartbeats > 0, "%s receives heartbeats (%d)" % (s.name, s.heartbeats))
        check(secure.wait_log("upstream connected: %s" % secure_pub),
              "the CURVE relay logs its connection to the daemon")
        check(refused.wait_log("the daemon refused the relay's key (ZAP status 400)"),
              "a relay whose key the daemon does not know logs the refusal (%s)"
              % refused.log_text().strip().splitlines()[-1])
        check(scoped.wait_log('subscription "alert/DM/DM-2/" lies outside the scope DM/DM-1'),
              "the scoped relay refuses a subscription to another province")
        check(scoped.wait_log('subscription "" narrowed to the scope DM/DM-1: '
                              '"alert/DM/DM-1/", "hb/", "ops/"'),
              "the scoped relay narrows a subscription to everything")

        # Events published from here on reach every subscriber that listens.
        baseline = replay_all(ws.query)
        since = baseline[-1]["payload"]["seq"] if baseline else 0
        ws.drop(os.path.join(data, "history.csv"))
        for f in sorted(glob.glob(os.path.join(data, "feed", "*.csv"))):
            receive(subscribers, 1.5)
            ws.drop(f)
        # Until the outbox stops growing and the direct subscriber has all of it.
        deadline = time.time() + 60
        events, stable_since = [], time.time()
        while time.time() < deadline:
            receive(subscribers, 0.5)
            now = replay_all(ws.query, since)
            if len(now) != len(events):
                events, stable_since = now, time.time()
            elif time.time() - stable_since > 3 and len(direct.after(since)) == len(events):
                break
        receive(subscribers, 1)

        expected = {e["payload"]["seq"]: (e["topic"], e["payload"]) for e in events}
        check(len(expected) >= 20, "the daemon published %d alert events after seq %d" % (len(expected), since))
        check(direct.after(since) == expected,
              "the direct subscriber received every one of them (%d)" % len(direct.after(since)))

        # (a) plain relay
        for s in (via_a, via_b):
            got = s.after(since)
            check(got == expected, "%s received the same %d alerts, seqs and payloads (%d; missing %s, extra %s)"
                  % (s.name, len(expected), len(got), sorted(set(expected) - set(got))[:5],
                     sorted(set(got) - set(expected))[:5]))

        # (b) scope
        prefix = "alert/%s/" % SCOPE
        in_region = {seq: v for seq, v in expected.items() if v[0].startswith(prefix)}
        outside = len(expected) - len(in_region)
        check(len(in_region) > 0 and outside > 0,
              "the events cover %s (%d) and other provinces (%d)" % (SCOPE, len(in_region), outside))
        scoped_got = in_scope.after(since)
        leaked = sorted({v[0] for v in in_scope.alerts.values() if not v[0].startswith(prefix)})
        check(not leaked, "the scoped subscriber to '' received no alert outside %s (%s)" % (SCOPE, leaked[:3]))
        check(scoped_got == in_region,
              "it received every alert of %s (%d of %d)" % (SCOPE, len(scoped_got), len(in_region)))
        check(other_region.messages == 0,
              "the subscriber to another province through the scoped relay received nothing (%d)"
              % other_region.messages)

        # (c) CURVE on both sides: the "secure" endpoint numbers its own seqs, so alerts are
        # compared by what they say (id, event, locality, level, time) rather than by seq.
        def identity(payload):
            return (payload["id"], payload["event"], payload["locality"]["id"], payload["level"], payload["at"])

        received = {identity(p) for _, p in authorized.alerts.values()}
        missing = [identity(p) for _, p in expected.values() if identity(p) not in received]
        check(not missing,
              "the authorized CURVE subscriber received all %d alerts through the CURVE relay "
              "(missing %d: %s)" % (len(expected), len(missing), missing[:3]))
        check(stranger.messages == 0,
              "the CURVE subscriber with an unknown key received nothing (%d)" % stranger.messages)
        check(behind_refused.messages == 0,
              "the subscriber of the relay the daemon refused received nothing (%d)"
              % behind_refused.messages)
        check(refused.log_text().count("the daemon refused the relay's key") == 1,
              "the refused relay logged the refusal once, not at every retry")
        # The ZAP handler logs an admitted key by its file's NAME, an unknown one by its Z85.
        log = secure.log_text()
        check(stranger_public.decode() in log and " subscriber " in log,
              "the relay's log names the admitted subscriber and the refused key")

        # (e) SIGTERM
        for r in relays:
            rc = r.stop()
            check(rc == 0, "relay %s: exit %s after SIGTERM" % (os.path.basename(r.log_path), rc))
        rc, _ = ws.stop()
        check(rc == 0, "ewsd: exit 0 after SIGTERM")
    finally:
        for r in relays:
            if r.proc.poll() is None:
                r.proc.kill()
                r.proc.wait()
        ws.cleanup()


if __name__ == "__main__":
    main()
