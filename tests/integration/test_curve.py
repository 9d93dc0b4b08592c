"""CURVE end to end: keys from `ewsctl keygen`, the real ewsd with CURVE on its [[publish]]
and [query] endpoints, pyzmq clients over TCP.

Only "alice.key" is in the authorized-keys directory. Alice's SUB receives alerts and
heartbeats and her REQ gets a status reply; Mallory (a valid key pair, not authorized) and a
plain client (no CURVE) get nothing. The daemon's log names the domain of each refusal and
the subscriber it admitted, and its status counts both per domain. After SIGHUP with another
authorized-keys directory, new connections follow it without a restart. The key files are
the format pyzmq's zmq.auth reads; --check-config refuses a secret key every user can read.
"""
import glob
import json
import os
import shutil
import signal
import subprocess
import time

import zmq
import zmq.auth

from harness import EWSCTL, EWSD, Workspace, check, fail

SILENT_S = 3


def keygen(name, directory):
    r = subprocess.run([EWSCTL, "keygen", name, "--dir", directory], capture_output=True, text=True)
    if r.returncode != 0:
        fail("ewsctl keygen %s exited %d: %s%s" % (name, r.returncode, r.stdout, r.stderr))
    return os.path.join(directory, name + ".key"), os.path.join(directory, name + ".key_secret"), r.stdout


def curve_socket(kind, secret_file, server_public):
    public, secret = zmq.auth.load_certificate(secret_file)
    s = zmq.Context.instance().socket(kind)
    s.setsockopt(zmq.LINGER, 0)
    s.curve_publickey = public
    s.curve_secretkey = secret
    s.curve_serverkey = server_public
    return s


def subscriber(endpoint, secret_file=None, server_public=None):
    if secret_file:
        s = curve_socket(zmq.SUB, secret_file, server_public)
    else:
        s = zmq.Context.instance().socket(zmq.SUB)
        s.setsockopt(zmq.LINGER, 0)
    s.setsockopt_string(zmq.SUBSCRIBE, "alert/")
    s.setsockopt_string(zmq.SUBSCRIBE, "hb/")
    s.connect(endpoint)
    return s


def ask(endpoint, request, secret_file=None, server_public=None, timeout_ms=SILENT_S * 1000):
    """Returns: the reply, or None when none came within the timeout."""
    if secret_file:
        s = curve_socket(zmq.REQ, secret_file, server_public)
    else:
        s = zmq.Context.instance().socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, timeout_ms)
    s.connect(endpoint)
    try:
        s.send_string(json.dumps(request))
        return json.loads(s.recv_string())
    except zmq.Again:
        return None
    finally:
        s.close(linger=0)


def main():
    ws = Workspace()
    subs = []
    try:
        keys = os.path.join(ws.dir, "keys")
        clients = os.path.join(ws.dir, "clients")
        authorized = os.path.join(ws.dir, "authorized")
        _, server_secret, out = keygen("server", keys)
        check("public key: " in out and server_secret in out, "ewsctl keygen prints both paths and the public key")
        check(oct(os.stat(server_secret).st_mode & 0o777) == "0o600", "the secret key file is 0600")
        check(oct(os.stat(keys).st_mode & 0o777) == "0o700", "the key directory it created is 0700")
        alice_public, alice_secret, _ = keygen("alice", clients)
        mallory_public, mallory_secret, _ = keygen("mallory", clients)
        again = subprocess.run([EWSCTL, "keygen", "alice", "--dir", clients], capture_output=True, text=True)
        check(again.returncode == 1 and "exists" in again.stderr, "keygen refuses to overwrite (exit 1)")
        bad = subprocess.run([EWSCTL, "keygen", "../alice", "--dir", clients], capture_output=True, text=True)
        check(bad.returncode == 2, "keygen refuses a bad name (exit 2)")

        server_public, secret = zmq.auth.load_certificate(server_secret)
        check(secret is not None and len(server_public) == 40, "pyzmq's load_certificate reads keygen's files")
        mallory_key = zmq.auth.load_certificate(mallory_public)[0].decode()
        os.makedirs(authorized)
        shutil.copy(alice_public, os.path.join(authorized, "alice.key"))

        with open(ws.config) as f:
            text = f.read()
        curve_keys = 'curve_secret_key_file = "keys/server.key_secret"\nauthorized_keys_dir = "authorized"\n'
        for bind in (ws.pub, ws.query):
            line = 'bind = "%s"\n' % bind
            if line not in text:
                fail("the harness config has no line %r" % line)
            text = text.replace(line, line + curve_keys)
        with open(ws.config, "w") as f:
            f.write(text)
        r = subprocess.run([EWSD, "--config", ws.config, "--check-config"], capture_output=True, text=True)
        check(r.returncode == 0, "ewsd --check-config accepts the CURVE keys (%s)" % (r.stdout + r.stderr).strip())

        # A secret key every user can read is refused, naming the key and the file.
        os.chmod(server_secret, 0o644)
        r = subprocess.run([EWSD, "--config", ws.config, "--check-config"], capture_output=True, text=True)
        check(r.returncode == 1 and "publish[1].curve_secret_key_file" in r.stdout + r.stderr
              and "ewsd.toml:" in r.stdout + r.stderr,
              "a secret key file of mode 0644 is refused: %s" % (r.stdout + r.stderr).strip())
        os.chmod(server_secret, 0o600)

        data, _ = ws.gen_demo(localities=240, seed=11, feed_weeks=4)
        ws.drop(os.path.join(data, "history.csv"))

        # Subscribe before the daemon binds: ZeroMQ reconnects until the PUB socket exists.
        alice = subscriber(ws.pub, alice_secret, server_public)
        mallory = subscriber(ws.pub, mallory_secret, server_public)
        plain = subscriber(ws.pub)
        subs += [alice, mallory, plain]

        ws.start()
        check(ws.wait_log("evaluation (full)", timeout=120), "ewsd ingested the history and evaluated")
        got = {"alice": {"alert": 0, "hb": 0}, "mallory": {"alert": 0, "hb": 0}, "plain": {"alert": 0, "hb": 0}}

        def receive(seconds):
            deadline = time.time() + seconds
            poller = zmq.Poller()
            for s in subs:
                poller.register(s, zmq.POLLIN)
            while time.time() < deadline:
                for s, _ in poller.poll(100):
                    topic, body = s.recv_multipart()
                    who = "alice" if s is alice else "mallory" if s is mallory else "plain"
                    kind = "hb" if topic == b"hb/" else "alert"
                    if kind == "alert" and json.loads(body).get("schema") != "ews.alert/1":
                        fail("not an alert on %s: %s" % (topic, body[:200]))
                    got[who][kind] += 1

        receive(SILENT_S)
        check(got["alice"]["hb"] >= 1, "alice (authorized) receives heartbeats (%d)" % got["alice"]["hb"])
        for f in sorted(glob.glob(os.path.join(data, "feed", "*.csv"))):
            ws.drop(f)
            receive(1.5)
        receive(2)
        check(got["alice"]["alert"] > 0, "alice receives alerts over CURVE (%d)" % got["alice"]["alert"])
        check(got["mallory"] == {"alert": 0, "hb": 0},
              "mallory (unknown key) received nothing in %d s and more" % SILENT_S)
        check(got["plain"] == {"alert": 0, "hb": 0}, "a plain client (no CURVE) received nothing")

        log = ws.log_text()
        check("curve: domain main: refused key %s from 127.0.0.1" % mallory_key in log,
              "the log names the domain and mallory's key at the refusal")
        check("curve: domain main: admitted alice from 127.0.0.1" in log, "the log names alice at the admission")

        status = ask(ws.query, {"op": "status"}, alice_secret, server_public, timeout_ms=10000)
        check(status is not None and status.get("schema") == "ews.status/1",
              "alice's REQ gets a status reply from the CURVE query endpoint")
        counts = status.get("curve", {})
        check(counts.get("main", {}).get("admitted", 0) >= 1 and counts["main"].get("refused", 0) >= 1,
              "status counts admissions and refusals of domain main: %s" % counts.get("main"))
        check(counts.get("query", {}).get("admitted", 0) >= 1, "status counts alice on domain query: %s"
              % counts.get("query"))
        check(ask(ws.query, {"op": "status"}, mallory_secret, server_public) is None,
              "mallory's REQ gets no reply within %d s" % SILENT_S)
        check(ask(ws.query, {"op": "status"}) is None, "a plain REQ gets no reply within %d s" % SILENT_S)
        check(ws.wait_log("curve: domain query: refused key %s" % mallory_key, timeout=5),
              "the log names domain query at mallory's refusal there")

        # SIGHUP with another authorized-keys directory: new connections follow it, no restart.
        moved = os.path.join(ws.dir, "authorized-2")
        os.makedirs(moved)
        shutil.copy(mallory_public, os.path.join(moved, "mallory.key"))
        with open(ws.config) as f:
            text = f.read()
        with open(ws.config, "w") as f:
            f.write(text.replace('authorized_keys_dir = "authorized"', 'authorized_keys_dir = "authorized-2"'))
        ws.daemon.send_signal(signal.SIGHUP)
        check(ws.wait_log("configuration reloaded", timeout=30), "ewsd reloaded the configuration")
        check("CURVE endpoints and server keys change at the next restart" not in ws.log_text(),
              "a new authorized_keys_dir alone needs no restart")
        late = subscriber(ws.pub, mallory_secret, server_public)
        subs.append(late)
        check(late.poll(5000) != 0, "after the reload mallory's new SUB receives")
        revoked = subscriber(ws.pub, alice_secret, server_public)
        subs.append(revoked)
        check(revoked.poll(SILENT_S * 1000) == 0, "after the reload alice's new SUB receives nothing")
        # A second reload of the same file keeps the table (the running sockets' CURVE stays).
        ws.daemon.send_signal(signal.SIGHUP)
        deadline = time.time() + 30
        while ws.log_text().count("configuration reloaded") < 2 and time.time() < deadline:
            time.sleep(0.1)
        check(ws.log_text().count("configuration reloaded") == 2, "ewsd reloaded a second time")
        again = subscriber(ws.pub, mallory_secret, server_public)
        subs.append(again)
        check(again.poll(5000) != 0, "after a second reload mallory's new SUB still receives")

        rc, _ = ws.stop()
        check(rc == 0, "ewsd stops cleanly with the ZAP handler running (exit %s)" % rc)
    finally:
        for s in subs:
            s.close(linger=0)
        ws.cleanup()


if __name__ == "__main__":
    main()
