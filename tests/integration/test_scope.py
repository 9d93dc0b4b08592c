"""Region scope is enforced by the daemon over real tcp, on the live stream and through the
query endpoints: a scoped endpoint never emits an alert outside its scope, and neither its
`replay` nor its `snapshot` returns one.

One daemon on generated demo data (four provinces DM/DM-1 .. DM/DM-4) publishes on three
endpoints:
- "main": plain, no scope; the harness's [query] serves its outbox (the control group: it
  must carry alerts from every province, or the checks below would prove nothing);
- "dm1": CURVE, scope DM/DM-1, its own query endpoint, admitting only alice's key;
- "dm2": CURVE, scope DM/DM-2, its own query endpoint, admitting only bob's key.
Alice subscribes to everything ("") on dm1: the server sends her DM-1 alerts only, numbered
1..N without a gap. Her replay of dm1 (all, and with another province's prefix) and her
snapshot (of "alert/" and of another province) stay within DM-1. Her key opens neither
dm2's stream nor dm2's query endpoint, and bob's does not open dm1's.
"""
import glob
import json
import os
import shutil
import subprocess
import time

import jsonschema
import zmq
import zmq.auth

from harness import EWSCTL, EWSD, SOURCE, Workspace, check, fail, free_port, query

SILENT_S = 3


def keygen(ws, name):
    r = subprocess.run([EWSCTL, "keygen", name, "--dir", os.path.join(ws.dir, "keys")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        fail("ewsctl keygen %s exited %d: %s%s" % (name, r.returncode, r.stdout, r.stderr))
    return os.path.join(ws.dir, "keys", name + ".key"), os.path.join(ws.dir, "keys", name + ".key_secret")


def curve_socket(kind, secret_file, server_public):
    public, secret = zmq.auth.load_certificate(secret_file)
    s = zmq.Context.instance().socket(kind)
    s.setsockopt(zmq.LINGER, 0)
    s.curve_publickey = public
    s.curve_secretkey = secret
    s.curve_serverkey = server_public
    return s


def ask(endpoint, request, secret_file, server_public, timeout_ms=10000):
    """Returns: the reply, or None when none came within the timeout."""
    s = curve_socket(zmq.REQ, secret_file, server_public)
    s.setsockopt(zmq.RCVTIMEO, timeout_ms)
    s.connect(endpoint)
    try:
        s.send_string(json.dumps(request))
        return json.loads(s.recv_string())
    except zmq.Again:
        return None
    finally:
        s.close(linger=0)


def replay_all(endpoint, secret_file, server_public, prefix=None):
    events, since = [], 0
    while True:
        request = {"op": "replay", "since": since, "limit": 200}
        if prefix is not None:
            request["prefix"] = prefix
        r = ask(endpoint, request, secret_file, server_public)
        if r is None or "error" in r:
            fail("replay on %s answered %s" % (endpoint, r))
        events += r["events"]
        since = r["last_seq"]
        if not r["more"]:
            return events


def region_of(payload):
    return payload["locality"]["region"]


def in_scope(region, scope):
    return region == scope or region.startswith(scope + "/")


def main():
    ws = Workspace()
    sockets = []
    try:
        server_pub, server_secret = keygen(ws, "server")
        alice_pub, alice_secret = keygen(ws, "alice")
        bob_pub, bob_secret = keygen(ws, "bob")
        server_public = zmq.auth.load_certificate(server_secret)[0]
        for name, public in (("dm1", alice_pub), ("dm2", bob_pub)):
            os.makedirs(os.path.join(ws.dir, "authorized", name))
            shutil.copy(public, os.path.join(ws.dir, "authorized", name, os.path.basename(public)))

        endpoints = {}
        sections = ""
        for name, scope in (("dm1", "DM/DM-1"), ("dm2", "DM/DM-2")):
            endpoints[name] = {"scope": scope,
                               "bind": "tcp://127.0.0.1:%d" % free_port(),
                               "query": "tcp://127.0.0.1:%d" % free_port()}
            sections += """[[publish]]
name = "%s"
bind = "%s"
scope = "%s"
query = "%s"
curve_secret_key_file = "keys/server.key_secret"
authorized_keys_dir = "authorized/%s"

""" % (name, endpoints[name]["bind"], scope, endpoints[name]["query"], name)
        with open(ws.config) as f:
            text = f.read()
        if "[query]\n" not in text:
            fail("the harness config has no [query] section")
        with open(ws.config, "w") as f:
            f.write(text.replace("[query]\n", sections + "[query]\n", 1))
        r = subprocess.run([EWSD, "--config", ws.config, "--check-config"], capture_output=True, text=True)
        check(r.returncode == 0, "ewsd --check-config accepts scoped endpoints with their own query "
              "endpoints (%s)" % (r.stdout + r.stderr).strip())

        data, _ = ws.gen_demo(localities=240, seed=11, feed_weeks=4)

        def subscribe(endpoint, secret_file):
            s = curve_socket(zmq.SUB, secret_file, server_public)
            s.setsockopt_string(zmq.SUBSCRIBE, "")  # everything: the scope is the server's job
            s.connect(endpoint)
            sockets.append(s)
            return s

        alice = subscribe(endpoints["dm1"]["bind"], alice_secret)
        bob = subscribe(endpoints["dm2"]["bind"], bob_secret)
        alice_on_dm2 = subscribe(endpoints["dm2"]["bind"], alice_secret)
        received = {alice: [], bob: [], alice_on_dm2: []}
        poller = zmq.Poller()
        for s in received:
            poller.register(s, zmq.POLLIN)

        def receive(seconds):
            deadline = time.time() + seconds
            while time.time() < deadline:
                for s, _ in poller.poll(100):
                    topic, body = s.recv_multipart()
                    received[s].append((topic.decode(), json.loads(body)))

        ws.start()
        # Both subscriptions reach the daemon (a heartbeat arrives) before any data does.
        deadline = time.time() + 20
        while time.time() < deadline and not all(
                any(t == "hb/" for t, _ in received[s]) for s in (alice, bob)):
            receive(0.2)
        check(all(any(t == "hb/" for t, _ in received[s]) for s in (alice, bob)),
              "alice on dm1 and bob on dm2 receive heartbeats before the data arrives")
        ws.drop(os.path.join(data, "history.csv"))
        check(ws.wait_log("history.csv: ", timeout=120) and "rows committed" in ws.log_text(),
              "ewsd ingested the history")
        for f in sorted(glob.glob(os.path.join(data, "feed", "*.csv"))):
            ws.drop(f)
            receive(1.5)
        receive(3)

        # ---- the control group: "main" carries every province ---------------------------
        main_events = []
        since = 0
        while True:
            r = query(ws.query, {"op": "replay", "since": since, "limit": 500})
            main_events += r["events"]
            since = r["last_seq"]
            if not r["more"]:
                break
        provinces = {"/".join(region_of(e["payload"]).split("/")[:2])
                     for e in main_events if e["topic"].startswith("alert/")}
        check({"DM/DM-1", "DM/DM-2"} <= provinces and len(provinces) >= 3,
              "the unscoped endpoint published alerts in provinces %s" % sorted(provinces))

        # ---- the live stream -----------------------------------------------------------
        for who, s, name in (("alice", alice, "dm1"), ("bob", bob, "dm2")):
            scope = endpoints[name]["scope"]
            alerts = [(t, p) for t, p in received[s] if t.startswith("alert/")]
            check(len(alerts) > 0, "%s received %d alerts on %s" % (who, len(alerts), name))
            outside = [t for t, p in alerts
                       if not t.startswith("alert/%s/" % scope) or not in_scope(region_of(p), scope)]
            check(not outside, "every alert %s received lies in %s (outside: %s)" % (who, scope, outside[:3]))
            seqs = [p["seq"] for t, p in received[s] if t != "hb/"]
            check(seqs == list(range(1, len(seqs) + 1)),
                  "%s's events on %s are numbered 1..%d without a gap" % (who, name, len(seqs)))
        check(received[alice_on_dm2] == [], "alice's key receives nothing on dm2")

        # ---- replay and snapshot through the scoped query endpoints --------------------
        q1, q2 = endpoints["dm1"]["query"], endpoints["dm2"]["query"]
        replayed = replay_all(q1, alice_secret, server_public)
        live = [(t, p) for t, p in received[alice] if t != "hb/"]
        check([(e["topic"], e["payload"]) for e in replayed] == live,
              "dm1's replay from 0 returns exactly what alice received live (%d events)" % len(live))
        outside = [e["topic"] for e in replayed if e["topic"].startswith("alert/")
                   and not in_scope(region_of(e["payload"]), "DM/DM-1")]
        check(not outside, "dm1's replay holds no alert outside DM/DM-1")
        check(replay_all(q1, alice_secret, server_public, prefix="alert/DM/DM-2/") == [],
              "dm1's replay with another province's prefix returns nothing")

        snap = ask(q1, {"op": "snapshot", "prefix": "alert/"}, alice_secret, server_public)
        check(snap is not None and "alerts" in snap, "dm1 answers alice's snapshot")
        check(len(snap["alerts"]) > 0 and all(in_scope(region_of(a), "DM/DM-1") for a in snap["alerts"]),
              "dm1's snapshot of alert/ holds %d open alerts, all in DM/DM-1" % len(snap["alerts"]))
        check(snap["seq"] == live[-1][1]["seq"], "dm1's snapshot is current to dm1's own last seq (%d)"
              % snap["seq"])
        main_snap = query(ws.query, {"op": "snapshot", "prefix": "alert/DM/DM-2/"})
        check(len(main_snap["alerts"]) > 0, "DM-2 has open alerts (%d on main)" % len(main_snap["alerts"]))
        other = ask(q1, {"op": "snapshot", "prefix": "alert/DM/DM-2/"}, alice_secret, server_public)
        check(other is not None and other["alerts"] == [],
              "dm1's snapshot of another province returns no alert")
        bob_snap = ask(q2, {"op": "snapshot", "prefix": "alert/"}, bob_secret, server_public)
        check(bob_snap is not None and len(bob_snap["alerts"]) > 0
              and all(in_scope(region_of(a), "DM/DM-2") for a in bob_snap["alerts"]),
              "dm2's snapshot holds only DM/DM-2 alerts (%d)" % len(bob_snap["alerts"]))

        # ---- keys do not cross endpoints -----------------------------------------------
        check(ask(q2, {"op": "status"}, alice_secret, server_public, SILENT_S * 1000) is None,
              "alice's key gets no reply from dm2's query endpoint")
        check(ask(q1, {"op": "replay", "since": 0}, bob_secret, server_public, SILENT_S * 1000) is None,
              "bob's key gets no replay from dm1's query endpoint")
        check(ws.wait_log("curve: domain dm2: refused key", timeout=5)
              and ws.wait_log("curve: domain dm1: refused key", timeout=5),
              "the refusals are logged under each endpoint's domain")
        status = ask(q1, {"op": "status"}, alice_secret, server_public)
        check(status is not None and status.get("schema") == "ews.status/1",
              "dm1's query endpoint answers status")
        with open(os.path.join(SOURCE, "docs", "schema", "query-reply-status.json")) as f:
            jsonschema.Draft202012Validator(json.load(f)).validate(status)
        check(status.get("endpoint") == "dm1" and status.get("scope") == "DM/DM-1"
              and status.get("last_seq") == {"dm1": snap["seq"]},
              "dm1's status names its endpoint, scope and last seq only: %s" % status)
        check(not {"localities", "observations", "plugins", "config", "curve"} & set(status),
              "dm1's status tells nothing about the rest of the country")
        check(sum(status["open_alerts"].values()) == len(snap["alerts"]),
              "dm1's status counts the alerts open in its scope (%s)" % status["open_alerts"])
        rc, _ = ws.stop()
        check(rc == 0, "ewsd stops with exit status 0")
    finally:
        for s in sockets:
            s.close(linger=0)
        ws.cleanup()


if __name__ == "__main__":
    main()
