"""`ewsctl plugins` shows every shipped plugin with its parameters, refuses a plugin file
anyone could rewrite, and shows a running daemon's own view; `ewsctl plugin-test` runs one
plugin offline on CSV files, and a rising presence series scores above a quiet one."""
import datetime
import glob
import json
import os
import shutil
import subprocess
import tempfile

from harness import EWSCTL, FIXTURES, PLUGINS, Workspace, check, fail

SHIPPED = {
    "community_incidents": ["weights", "window_days", "sentinels"],
    "group_presence": ["lookback_days", "half_life_days", "scale"],
    "school_dropout": ["baseline_days", "prior_rate", "full_ratio"],
}


def lists_shipped_plugins_and_daemon_view():
    ws = Workspace(extra_config="\n[plugins.group_presence]\nscale = 2.5\n")
    try:
        r = ws.ewsctl("plugins")
        out = r.stdout
        check("3 loaded, 0 refused" in out, "ewsctl plugins loads the three shipped plugins")
        for name, params in SHIPPED.items():
            check(name + " 1." in out and os.path.join(PLUGINS, name + ".so") in out,
                  "%s is listed with its version and file" % name)
            for p in params:
                if not any(line.split()[:1] == [p] for line in out.splitlines()):
                    fail("parameter %s of %s is not listed:\n%s" % (p, name, out))
        check("kinds: presence.report, presence.recruitment_activity" in out,
              "group_presence's kinds are listed")
        scale = [line.split() for line in out.splitlines() if line.split()[:1] == ["scale"]]
        check(scale and scale[0][1:5] == ["number", "1.5", "0.01..1000", "2.5"],
              "a parameter shows type, default, range and configured value: %s" % scale)
        check("help" in out and "exposure at which the score reaches" in out,
              "a parameter shows its help text")
        check("running daemon" not in out, "no daemon view when no daemon runs")

        ws.start()
        if not ws.wait_log("started", timeout=60):
            fail("ewsd did not start:\n" + ws.log_text())
        r = ws.ewsctl("plugins")
        daemon = r.stdout.split("running daemon", 1)
        check(len(daemon) == 2, "ewsctl plugins shows the running daemon's view")
        for name in SHIPPED:
            check(any(line.split()[:2] == ["loaded", name] for line in daemon[1].splitlines()),
                  "the daemon reports %s loaded" % name)
    finally:
        ws.cleanup()


def refuses_world_writable_plugin():
    plugins = tempfile.mkdtemp(prefix="ewsd-it-plugins-")
    ws = None
    try:
        for so in glob.glob(os.path.join(PLUGINS, "*.so")):
            shutil.copy(so, plugins)
        open_copy = os.path.join(plugins, "group_presence.so")
        os.chmod(open_copy, 0o666)
        ws = Workspace(plugin_dir=plugins)
        r = ws.ewsctl("plugins", check_rc=False)
        check(r.returncode == 1, "ewsctl plugins exits 1 when a plugin is refused")
        refused = [line for line in r.stdout.splitlines() if line.startswith("refused ")]
        check(len(refused) == 1 and open_copy in refused[0] and "world-writable" in refused[0]
              and "chmod go-w" in refused[0],
              "the world-writable copy is refused with the reason and the fix: %s" % refused)
        check("2 loaded, 1 refused" in r.stdout, "the other plugins still load")

        r = subprocess.run([EWSCTL, "plugin-test", open_copy, "--localities", "/dev/null",
                            "--data", "/dev/null"], capture_output=True, text=True)
        check(r.returncode == 1 and "world-writable" in r.stderr,
              "plugin-test refuses the world-writable copy too (exit %d)" % r.returncode)
    finally:
        if ws:
            ws.cleanup()
        shutil.rmtree(plugins, ignore_errors=True)


def plugin_test_scores_rising_above_quiet():
    work = tempfile.mkdtemp(prefix="ewsd-it-plugin-test-")
    try:
        localities = os.path.join(work, "localities.csv")
        with open(localities, "w") as f:
            f.write("id,name,region,population,neighbours\n"
                    "RISE,Rising,DM/DM-1,1200,\n"
                    "QUIET,Quiet,DM/DM-2,900,\n"
                    "SILENT,Silent,DM/DM-3,,\n")
        end = datetime.date(2026, 3, 2)  # a Monday
        rows = ["locality,time,kind,value,weight,source"]
        for week in range(26):
            day = end - datetime.timedelta(weeks=25 - week)
            rows.append("QUIET,%s,presence.report,0,1,monitor_a" % day)
            if week < 18:
                rows.append("RISE,%s,presence.report,0,1,monitor_a" % day)
            else:
                value = min(1.0, 0.3 + 0.1 * (week - 18))
                for source in ("monitor_a", "monitor_b"):
                    rows.append("RISE,%s,presence.report,%.1f,1,%s" % (day, value, source))
        data = os.path.join(work, "data.csv")
        with open(data, "w") as f:
            f.write("\n".join(rows) + "\n")
        plugin = os.path.join(PLUGINS, "group_presence.so")

        r = subprocess.run([EWSCTL, "plugin-test", plugin, "--localities", localities, "--data", data],
                           capture_output=True, text=True)
        check(r.returncode == 0, "plugin-test runs without --config (exit %d: %s)" % (r.returncode, r.stderr))
        lines = r.stdout.splitlines()
        check("group_presence" in lines[0] and "2026-03-02T00:00:00Z" in lines[0],
              "plugin-test evaluates at the newest observation: %s" % lines[0])
        table = {line.split()[0]: line.split() for line in lines[2:] if not line.startswith(" ")}
        check(set(table) == {"RISE", "QUIET", "SILENT"}, "every locality is assessed: %s" % sorted(table))
        check(table["SILENT"][1] == "no_data", "a locality without data has status no_data")
        check(float(table["RISE"][2]) > float(table["QUIET"][2]) + 0.5,
              "the rising series scores above the quiet one (%s vs %s)" % (table["RISE"][2], table["QUIET"][2]))
        check("presence exposure" in r.stdout and "values: exposure=" in r.stdout,
              "evidence text and values are printed")

        r = subprocess.run([EWSCTL, "plugin-test", plugin, "--localities", localities, "--data", data,
                            "--format", "json", "--param", "scale=50", "--at", "2026-03-02"],
                           capture_output=True, text=True)
        check(r.returncode == 0, "plugin-test --format json --param runs (%s)" % r.stderr)
        out = json.loads(r.stdout)
        scores = {a["locality"]: a["score"] for a in out["assessments"]}
        check(out["plugin"] == "group_presence" and 0 < scores["RISE"] < 0.3,
              "--param scale=50 changes the plugin's settings: %s" % scores)
        rise = next(a for a in out["assessments"] if a["locality"] == "RISE")
        check(rise["status"] == "ok" and rise["newest"] == "2026-03-02T00:00:00Z"
              and any(v["name"] == "exposure" for v in rise["evidence"]["values"]),
              "json gives status, newest and evidence values")

        r = subprocess.run([EWSCTL, "plugin-test", plugin, "--localities", localities, "--data", data,
                            "--param", "scale=-1"], capture_output=True, text=True)
        check(r.returncode == 1 and "--param scale: must be between" in r.stderr,
              "an out-of-range --param is refused naming the key: %s" % r.stderr.strip())

        with open(data, "a") as f:
            f.write("NOWHERE,2026-03-02,presence.report,0.5,1,monitor_a\n")
        r = subprocess.run([EWSCTL, "plugin-test", plugin, "--localities", localities, "--data", data],
                           capture_output=True, text=True)
        check(r.returncode == 1 and "data.csv:%d:1: unknown locality 'NOWHERE'" % (len(rows) + 1) in r.stderr
              and "RISE" in r.stdout,
              "a rejected row is reported as file:line:column, exit 1, the rest still assessed")

        r = subprocess.run([EWSCTL, "plugin-test", "group_presence", "--localities", localities,
                            "--data", data], capture_output=True, text=True)
        check(r.returncode == 2, "a plugin name without --config is a usage error")

        # A plugin whose score depends on being asked for evidence breaks what the daemon
        # relies on (it assesses without evidence and asks again only for events).
        with open(data, "w") as f:
            f.write("locality,time,kind,value\nRISE,2026-03-02,test.signal,5\n")
        r = subprocess.run([EWSCTL, "plugin-test", os.path.join(FIXTURES, "fixture_evidence_dependent.so"),
                            "--localities", localities, "--data", data], capture_output=True, text=True)
        check(r.returncode == 1 and "assesses locality RISE differently when not asked for its evidence"
              in r.stderr and "QUIET" not in r.stderr and "RISE" in r.stdout,
              "plugin-test names the locality a plugin assesses differently without evidence, exit 1: %s"
              % r.stderr.strip())
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    lists_shipped_plugins_and_daemon_view()
    refuses_world_writable_plugin()
    plugin_test_scores_rising_above_quiet()
    print("all ewsctl plugin checks passed")
