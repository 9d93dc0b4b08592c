"""Fault containment of plugins with the real ewsd.

A plugin that segfaults kills the daemon (no call guard can stop that); started again, as
systemd's Restart= would, the daemon finds the crash marker, quarantines the plugin file,
keeps running and publishes the healthy plugins' alerts. A new version of the file lifts the
quarantine. A plugin that keeps throwing is quarantined after `quarantine_after` failing
evaluations, and an ops/plugin/ event reaches subscribers and the replay.
"""
import glob
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time

import zmq

from harness import EWSD, FIXTURES, PLUGINS, Workspace, check, fail, query, replay_all

# A sanitizer build's runtime catches the crash first and exits with its own status.
SANITIZED = os.environ.get("EWS_SANITIZED") == "1"


def plugin_dir_with(*fixtures):
    """A fresh plugin directory: the shipped plugins plus the named fixture files."""
    d = tempfile.mkdtemp(prefix="ewsd-it-faults-")
    for so in glob.glob(os.path.join(PLUGINS, "*.so")):
        shutil.copy(so, d)
    for name in fixtures:
        shutil.copy(os.path.join(FIXTURES, name), d)
    return d


def no_core_dumps():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def start(ws):
    """Like Workspace.start, without a core dump when the daemon crashes on purpose."""
    ws.log = open(ws.log_path, "w")
    ws.daemon = subprocess.Popen([EWSD, "--config", ws.config], stdout=ws.log,
                                 stderr=subprocess.STDOUT, preexec_fn=no_core_dumps)
    return ws.daemon


def indicators_in(events):
    names = set()
    for e in events:
        for c in e["payload"].get("contributions", []):
            names.add(c["indicator"])
    return names


def segfaulting_plugin_is_quarantined_after_restart():
    plugins = plugin_dir_with("fixture_segfaults.so")
    crashing = os.path.join(plugins, "fixture_segfaults.so")
    ws = Workspace(plugin_dir=plugins)
    try:
        data, _ = ws.gen_demo(localities=60, seed=5)
        ws.drop(os.path.join(data, "history.csv"))

        daemon = start(ws)
        try:
            rc = daemon.wait(timeout=120)
        except subprocess.TimeoutExpired:
            fail("ewsd kept running with a plugin that segfaults in assess()")
        # SIGSEGV, or under AddressSanitizer its report and exit 1 (or SIGABRT).
        check(rc in (-11, -6) or (SANITIZED and rc == 1),
              "the segfaulting plugin kills the daemon (returncode %d)" % rc)
        marker = os.path.join(ws.state, "plugin-call.marker")
        check(os.path.exists(marker), "the crash marker is left behind")
        with open(marker) as f:
            check(json.load(f)["plugin"] == "fixture_segfaults", "the marker names the plugin being called")

        # The restart systemd would do.
        start(ws)
        check(ws.wait_log("evaluation (full)", timeout=120), "the restarted daemon evaluates")
        log = ws.log_text()
        check("fixture_segfaults" in log and crashing in log and "crashed the daemon" in log,
              "the quarantine is logged, naming the plugin and its file")
        check("plugin loaded: fixture_segfaults" not in log, "the crashing plugin is not loaded")
        check(not os.path.exists(marker), "the marker is gone after a clean evaluation")
        check(ws.daemon.poll() is None, "the daemon keeps running")

        events = replay_all(ws.query)
        raised = [e for e in events if e["topic"].startswith("alert/") and e["payload"]["event"] == "raised"]
        check(len(raised) > 0, "the healthy plugins' alerts flow (%d raised)" % len(raised))
        used = indicators_in(raised)
        check("fixture_segfaults" not in used and "group_presence" in used,
              "contributions come from the healthy plugins only: %s" % sorted(used))
        ops = [e["payload"] for e in events if e["topic"] == "ops/plugin/"]
        check(len(ops) == 1 and ops[0]["event"] == "plugin_quarantined" and
              ops[0]["plugin"] == "fixture_segfaults" and ops[0]["schema"] == "ews.ops/1" and
              "crashed the daemon" in ops[0]["reason"],
              "one plugin_quarantined ops event is in the replay: %s" % ops)

        status = query(ws.query, {"op": "status"})
        held = [p for p in status["plugins"] if p.get("state") == "quarantined"]
        check(len(held) == 1 and held[0]["file"] == crashing and "crashed the daemon" in held[0]["reason"],
              "status lists the file as quarantined: %s" % held)
        rc, _ = ws.stop()
        check(rc == 0, "clean stop")

        # Still held at the next start; a new version of the file (installed by rename, as
        # packages do) lifts the quarantine.
        replacement = crashing + ".new"
        shutil.copy(os.path.join(FIXTURES, "fixture_good.so"), replacement)
        os.rename(replacement, crashing)
        start(ws)
        check(ws.wait_log("evaluation (full)", timeout=120), "the daemon starts with the new file")
        log = ws.log_text()
        check("quarantine lifted: " + crashing in log, "the lift is logged, naming the file")
        check("plugin loaded: fixture_good" in log, "the new version of the file is loaded")
        status = query(ws.query, {"op": "status"})
        check(not [p for p in status["plugins"] if p.get("state") == "quarantined"],
              "status lists nothing quarantined")
        rc, _ = ws.stop()
        check(rc == 0, "clean stop")
    finally:
        ws.cleanup()
        shutil.rmtree(plugins, ignore_errors=True)


def aborting_plugin_is_quarantined_for_the_next_run():
    """The same for abort() (a failed assertion), through `ewsd --once`."""
    plugins = plugin_dir_with("fixture_aborts.so")
    ws = Workspace(plugin_dir=plugins)
    try:
        data, _ = ws.gen_demo(localities=20, seed=3)
        ws.drop(os.path.join(data, "history.csv"))
        r = subprocess.run([EWSD, "--config", ws.config, "--once"], capture_output=True, text=True,
                           preexec_fn=no_core_dumps, timeout=120)
        check(r.returncode == -6 or (SANITIZED and r.returncode == 1),
              "the aborting plugin ends the run with SIGABRT (%d)" % r.returncode)
        r = subprocess.run([EWSD, "--config", ws.config, "--once"], capture_output=True, text=True,
                           timeout=120)
        out = r.stdout + r.stderr
        if r.returncode != 0:
            fail("the run after the crash exited %d:\n%s" % (r.returncode, out[-3000:]))
        print("ok: the next run completes")
        check("plugin fixture_aborts (%s) crashed the daemon" % os.path.join(plugins, "fixture_aborts.so") in out,
              "and logs the quarantine of the aborting plugin")
        with open(os.path.join(ws.state, "quarantine.json")) as f:
            held = [p["file"] for p in json.load(f)["plugins"]]
        check(held == [os.path.join(plugins, "fixture_aborts.so")], "quarantine.json holds the file: %s" % held)
        r = subprocess.run([EWSD, "--config", ws.config, "--once"], capture_output=True, text=True,
                           timeout=120)
        out = r.stdout + r.stderr
        check(r.returncode == 0 and "plugin quarantined, not loaded: " + held[0] in out,
              "later runs keep it out without another crash")
    finally:
        ws.cleanup()
        shutil.rmtree(plugins, ignore_errors=True)


def throwing_plugin_is_quarantined_after_failing_evaluations():
    plugins = plugin_dir_with("fixture_throws.so")
    ws = Workspace(plugin_dir=plugins)
    try:
        with open(ws.config) as f:
            text = f.read()
        with open(ws.config, "w") as f:
            f.write(text.replace("heartbeat_s = 1", "heartbeat_s = 1\nquarantine_after = 2"))
        data, _ = ws.gen_demo(localities=60, seed=5, feed_weeks=2)
        ws.drop(os.path.join(data, "history.csv"))

        ctx = zmq.Context.instance()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt_string(zmq.SUBSCRIBE, "ops/")
        sub.setsockopt_string(zmq.SUBSCRIBE, "hb/")
        sub.connect(ws.pub)
        poller = zmq.Poller()
        poller.register(sub, zmq.POLLIN)

        def receive(prefix, timeout):
            """The next message whose topic starts with `prefix`, or None."""
            deadline = time.time() + timeout
            while time.time() < deadline:
                if poller.poll(200):
                    topic, payload = sub.recv_multipart()
                    if topic.decode().startswith(prefix):
                        return topic.decode(), json.loads(payload)
            return None

        ws.start()
        check(ws.wait_log("evaluation (full)", timeout=120), "ewsd evaluated the history")
        log = ws.log_text()
        failures = [l for l in log.splitlines() if "plugin fixture_assess_throws failed on locality" in l]
        check(len(failures) == 5, "the first 5 failed assessments are logged with their locality (%d)" % len(failures))
        check("plugin fixture_assess_throws: 60 of 60 assessments failed" in log,
              "a summary line counts the rest")
        check("quarantined until its file changes" not in log, "one failing evaluation does not quarantine")

        # A heartbeat proves the subscription is in place before the event is due.
        check(receive("hb/", 10) is not None, "the subscriber is connected (heartbeat)")
        feed = sorted(glob.glob(os.path.join(data, "feed", "*.csv")))
        check(len(feed) >= 1, "the generator wrote feed files")
        ws.drop(feed[0])
        check(ws.wait_log("quarantined until its file changes", timeout=30),
              "the second failing evaluation quarantines the plugin")

        got = receive("ops/", 10)
        check(got is not None, "an ops message reaches a subscriber of ops/")
        topic, payload = got
        check(topic == "ops/plugin/" and payload["event"] == "plugin_quarantined" and
              payload["plugin"] == "fixture_assess_throws" and
              payload["file"] == os.path.join(plugins, "fixture_throws.so") and
              "failed 2 evaluations in a row" in payload["reason"],
              "it is plugin_quarantined for the throwing plugin: %s" % payload)

        events = replay_all(ws.query)
        replayed = [e for e in events if e["topic"] == "ops/plugin/"]
        check(len(replayed) == 1 and replayed[0]["payload"] == payload,
              "the replay holds the same event at the same seq")
        seqs = [e["payload"]["seq"] for e in events]
        check(seqs == list(range(1, len(seqs) + 1)), "alerts and ops events share one gapless seq")
        check(any(e["topic"].startswith("alert/") for e in events), "alerts still flow")

        # Without the plugin, the next data is assessed without failures. The evaluation of
        # the new data follows its ingest (within a second or two, longer under sanitizers):
        # wait for an evaluation later than the one that quarantined.
        quarantined_at = query(ws.query, {"op": "status"})["last_evaluation"]["at"]
        ws.drop(feed[1] if len(feed) > 1 else feed[0], name="again.csv")
        check(ws.wait_log("again.csv", timeout=30), "more data is ingested")
        deadline = time.time() + 30
        status = query(ws.query, {"op": "status"})
        while status["last_evaluation"]["at"] == quarantined_at and time.time() < deadline:
            time.sleep(0.2)
            status = query(ws.query, {"op": "status"})
        check(status["last_evaluation"]["at"] != quarantined_at and
              status["last_evaluation"]["failed_assessments"] == 0,
              "later evaluations have no failed assessments: %s" % status["last_evaluation"])
        states = {os.path.basename(p["file"]): p["state"] for p in status["plugins"]}
        check(states.get("fixture_throws.so") == "quarantined", "status lists it as quarantined")
        rc, _ = ws.stop()
        check(rc == 0, "clean stop")
        sub.close()
    finally:
        ws.cleanup()
        shutil.rmtree(plugins, ignore_errors=True)


def plugin_crashing_while_loading_is_quarantined():
    """A crash in describe() happens before any evaluation: the marker written around loading
    names the file, so the next start comes up without it instead of crashing again."""
    plugins = plugin_dir_with("fixture_crashes_on_load.so")
    ws = Workspace(plugin_dir=plugins)
    try:
        ws.gen_demo(localities=20, seed=3)
        r = subprocess.run([EWSD, "--config", ws.config, "--once"], capture_output=True, text=True,
                           preexec_fn=no_core_dumps, timeout=120)
        check(r.returncode == -6 or (SANITIZED and r.returncode == 1),
              "the plugin crashing in describe() ends the first run (%d)" % r.returncode)
        r = subprocess.run([EWSD, "--config", ws.config, "--once"], capture_output=True, text=True,
                           timeout=120)
        out = r.stdout + r.stderr
        check(r.returncode == 0, "the next run completes (%d): %s" % (r.returncode, out[-500:]))
        check("fixture_crashes_on_load.so" in out and "quarantined" in out,
              "the next run names the file it quarantined")
        loaded = [line for line in out.splitlines() if "plugin loaded" in line]
        check(len(loaded) == 3, "the three shipped plugins still load (%d)" % len(loaded))
        r = subprocess.run([EWSD, "--config", ws.config, "--check-config"], capture_output=True,
                           text=True, timeout=60)
        check(r.returncode == 0 and "quarantined, not loaded" in r.stderr,
              "--check-config skips the quarantined file instead of crashing on it (%d)" % r.returncode)
    finally:
        ws.cleanup()
        shutil.rmtree(plugins, ignore_errors=True)


if __name__ == "__main__":
    segfaulting_plugin_is_quarantined_after_restart()
    aborting_plugin_is_quarantined_for_the_next_run()
    throwing_plugin_is_quarantined_after_failing_evaluations()
    plugin_crashing_while_loading_is_quarantined()
