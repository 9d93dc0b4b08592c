"""A bad config, a non-plugin .so in the plugin directory and a CSV with bad rows each give a
clear message naming where the problem is, and the daemon keeps serving the good parts."""
import glob
import os
import shutil
import signal
import subprocess

from harness import EWSCTL, EWSD, PLUGINS, Workspace, check, fail, query, replay_all


def bad_configs():
    ws = Workspace()
    try:
        r = subprocess.run([EWSD, "--config", ws.config, "--check-config"], capture_output=True, text=True)
        check(r.returncode == 0, "--check-config accepts a good config")
        cases = {
            "syntax": ("[daemon\nstate_dir = 1\n", ":1:"),
            "unknown key": (open(ws.config).read().replace("heartbeat_s = 1", "heartbeat_s = 1\nhartbeat = 2"),
                            "hartbeat"),
            "wrong type": (open(ws.config).read().replace("raise_after = 1", 'raise_after = "two"'),
                           "raise_after"),
        }
        for name, (text, expect) in cases.items():
            bad = os.path.join(ws.dir, "bad-%s.toml" % name.replace(" ", "-"))
            with open(bad, "w") as f:
                f.write(text)
            r = subprocess.run([EWSD, "--config", bad, "--check-config"], capture_output=True, text=True)
            out = r.stdout + r.stderr
            check(r.returncode == 1, "--check-config exits 1 on a %s error" % name)
            check(os.path.basename(bad) in out and expect in out,
                  "the %s error names the file and %r: %s" % (name, expect, out.strip()))
            if name != "syntax" and ":" not in out.split(os.path.basename(bad), 1)[1][:6]:
                fail("the %s error gives no line: %s" % (name, out))
        # A plugin parameter out of its range: the plugin's own validation, located in the file.
        bad = os.path.join(ws.dir, "bad-plugin-param.toml")
        with open(bad, "w") as f:
            f.write(open(ws.config).read() + "\n[plugins.group_presence]\nhalf_life_days = -4\n")
        r = subprocess.run([EWSD, "--config", bad, "--check-config"], capture_output=True, text=True)
        out = r.stdout + r.stderr
        check(r.returncode == 1 and "half_life_days" in out and "bad-plugin-param.toml:" in out,
              "--check-config refuses a plugin parameter out of range, naming file and key: %s" % out.strip())
    finally:
        ws.cleanup()


def bad_plugin_and_rows():
    plugins = os_plugins = os.path.join(os.environ.get("TMPDIR", "/tmp"), "ewsd-it-plugins-%d" % os.getpid())
    shutil.rmtree(plugins, ignore_errors=True)
    os.makedirs(plugins)
    for so in glob.glob(os.path.join(PLUGINS, "*.so")):
        shutil.copy(so, plugins)
    with open(os.path.join(plugins, "notes.so"), "w") as f:
        f.write("this is not a shared library\n")
    ws = Workspace(plugin_dir=os_plugins)
    try:
        data, trajectories = ws.gen_demo(localities=60, seed=5)
        some = sorted(trajectories)[0]
        bad_csv = os.path.join(ws.dir, "field-report.csv")
        with open(bad_csv, "w") as f:
            f.write("locality,time,kind,value,weight,source\n")
            f.write("%s,2026-01-05,incident.armed_violence,2,1,monitor-1\n" % some)
            f.write("NOWHERE-1,2026-01-05,incident.armed_violence,2,1,monitor-1\n")
            f.write("%s,2026-01-05,incident.armed_violence,-3,1,monitor-1\n" % some)
            f.write("%s,2026-01-05,presence.report,1.5,1,field-a\n" % some)
            f.write("%s,not-a-date,incident.armed_violence,1,1,monitor-1\n" % some)
        ws.drop(os.path.join(data, "history.csv"))
        ws.start()
        check(ws.wait_log("evaluation (full)", timeout=120), "ewsd started despite a non-plugin .so")
        log = ws.log_text()
        check("notes.so" in log and "refused" in log, "the non-plugin file is refused by name")
        loaded = [line for line in log.splitlines() if "plugin loaded" in line]
        check(len(loaded) == 3, "the three real plugins still load (%d)" % len(loaded))

        ws.drop(bad_csv)
        check(ws.wait_log("field-report.csv: 1 rows committed, 4 rejected", timeout=20),
              "the bad rows are rejected and the good one committed")
        log = ws.log_text()
        for line_no, col in ((3, 1), (4, 4), (5, 4), (6, 2)):
            where = "field-report.csv:%d:%d:" % (line_no, col)
            check(where in log, "rejection located at %s" % where)
        rejected = glob.glob(os.path.join(ws.spool, "done", "field-report*.rejected.csv"))
        check(len(rejected) == 1, "rejects written beside the file in done/")

        status = query(ws.query, {"op": "status"})
        check(status.get("localities") == 60, "the daemon keeps serving queries after bad input")

        # SIGHUP with a broken config keeps the running one; with a good one, reloads it.
        good = open(ws.config).read()
        with open(ws.config, "w") as f:
            f.write(good.replace("[scoring]", "[scoring\n"))
        ws.daemon.send_signal(signal.SIGHUP)
        check(ws.wait_log("reload rejected, keeping the running configuration", timeout=10),
              "a broken config on SIGHUP is rejected and logged")
        status = query(ws.query, {"op": "status"})
        check(ws.daemon.poll() is None and status.get("localities") == 60,
              "the daemon keeps running on the old configuration")
        reload = status.get("last_reload") or {}
        check(reload.get("accepted") is False and "ewsd.toml" in (reload.get("error") or ""),
              "status says the last reload was rejected and why: %s" % reload)
        # The operator's copy of the last good file still reaches the daemon.
        good_copy = os.path.join(ws.dir, "last-good.toml")
        with open(good_copy, "w") as f:
            f.write(good)
        r = subprocess.run([EWSCTL, "--config", good_copy, "status"], capture_output=True, text=True)
        check(r.returncode == 0 and '"accepted": false' in r.stdout, "ewsctl status shows the rejected reload")
        with open(ws.config, "w") as f:
            f.write(good.replace('watch = ["Review with the child-protection committee"]',
                                 'watch = ["Reviewed playbook"]'))
        ws.daemon.send_signal(signal.SIGHUP)
        check(ws.wait_log("configuration reloaded", timeout=10), "a good config on SIGHUP is reloaded")
        check(query(ws.query, {"op": "status"})["last_reload"]["accepted"] is True,
              "status says the last reload was accepted")
        replay_all(ws.query, 0)
        bad = query(ws.query, {"op": "replay", "since": "x"})
        check("error" in bad, "a malformed query gets an error reply: %s" % bad)
        rc, _ = ws.stop()
        check(rc == 0, "clean stop")
    finally:
        ws.cleanup()
        shutil.rmtree(plugins, ignore_errors=True)


def ewsctl_ingest_reports_rows():
    ws = Workspace()
    try:
        _, trajectories = ws.gen_demo(localities=20, seed=3)
        some = sorted(trajectories)[0]
        path = os.path.join(ws.dir, "monitor.csv")
        with open(path, "w", newline="") as f:
            f.write("\ufefflocality,time,kind,value,weight,source\r\n")
            f.write("%s,2026-01-05,incident.armed_violence,2,1,monitor-1\r\n" % some)
            f.write('%s,2026-01-06,incident.armed_violence,"1",1,"monitor-1"\r\n' % some)
            f.write("%s,2026-01-07,incident.armed_violence,nan,1,monitor-1\r\n" % some)
        r = ws.ewsctl("ingest", path, check_rc=False)
        check(r.returncode == 1, "ewsctl ingest exits 1 when a row is rejected")
        check("monitor.csv:4:4:" in r.stdout, "the NaN row is reported at line 4, column 4: %s" % r.stdout.strip())
        check("2 rows committed, 1 rejected" in r.stdout, "BOM, CRLF and quotes accepted; good rows committed")
        r = ws.ewsctl("ingest", path, check_rc=False)
        check("already ingested" in r.stdout, "the same file ingested twice changes nothing")
        with open(os.path.join(ws.dir, "person.csv"), "w") as f:
            f.write("locality,time,kind,value,child_name\n%s,2026-01-05,incident.abduction,1,x\n" % some)
        r = ws.ewsctl("ingest", os.path.join(ws.dir, "person.csv"), check_rc=False)
        check(r.returncode == 1 and "person.csv:1:5:" in r.stdout and "child_name" in r.stdout,
              "a column that could hold personal data is refused: %s" % r.stdout.strip())
    finally:
        ws.cleanup()


if __name__ == "__main__":
    bad_configs()
    ewsctl_ingest_reports_rows()
    bad_plugin_and_rows()
