"""The installed SDK as a plugin author meets it: install, build the template, load it.

`cmake --install` of the build into a temporary prefix must give the SDK headers, the CMake
package `ews` (find_package(ews) + ews_add_plugin()), the shipped plugins in
lib/ewsd/plugins and the template in share/ews/template. The template, copied outside the
source tree, must configure and build against that prefix alone and pass its own Catch2
test. Then the real ewsd, with the three installed plugins plus the template's, must load it
and let an observation of its kind raise an alert whose contributions name it, with small
counts suppressed as "<min_cell".
"""
import filecmp
import glob
import os
import shutil
import subprocess
import tempfile
import time

from harness import BUILD, SOURCE, Workspace, check, fail, replay_all, today

SHIPPED = ["community_incidents", "group_presence", "school_dropout"]
TEMPLATE_FILES = ["CMakeLists.txt", "README.md", "my_indicator.cpp", "test_my_indicator.cpp"]


def run(cmd, timeout, what, cwd=None):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        fail("%s took longer than %d s" % (what, timeout))
    if r.returncode != 0:
        fail("%s exited %d:\n%s%s" % (what, r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
    return r


def check_installed(prefix):
    for header in ["indicator.hpp", "testing.hpp"]:
        check(os.path.isfile(os.path.join(prefix, "include/ews/sdk", header)),
              "the SDK header ews/sdk/%s is installed" % header)
    configs = glob.glob(os.path.join(prefix, "lib*/**/cmake/ews/ewsConfig.cmake"), recursive=True)
    check(len(configs) == 1, "one ewsConfig.cmake is installed (%s)" % configs)
    cmake_dir = os.path.dirname(configs[0])
    for f in ["ewsConfigVersion.cmake", "ewsTargets.cmake", "EwsPlugin.cmake"]:
        check(os.path.isfile(os.path.join(cmake_dir, f)), "%s is installed beside it" % f)
    for name in SHIPPED:
        check(os.path.isfile(os.path.join(prefix, "lib/ewsd/plugins", name + ".so")),
              "the shipped plugin %s is installed in lib/ewsd/plugins" % name)
    template = os.path.join(prefix, "share/ews/template")
    for f in TEMPLATE_FILES:
        installed = os.path.join(template, f)
        check(os.path.isfile(installed) and
              filecmp.cmp(installed, os.path.join(SOURCE, "sdk/template", f), shallow=False),
              "the template's %s is installed as in the source tree" % f)
    return template


def build_template(template, prefix, work):
    src = os.path.join(work, "my_indicator")
    shutil.copytree(template, src)
    build = os.path.join(src, "build")
    # Only the prefix: nothing from the source or build tree may leak into the build.
    run(["cmake", "-S", src, "-B", build, "-G", "Ninja", "-DCMAKE_PREFIX_PATH=" + prefix,
         "-DCMAKE_BUILD_TYPE=Debug", "-DCMAKE_CXX_FLAGS=-Werror"],
        120, "configuring the template against the installed package")
    run(["cmake", "--build", build, "-j", "2"], 240, "building the template")
    so = os.path.join(build, "my_indicator.so")
    check(os.path.isfile(so), "the template built my_indicator.so")
    # The tree's own tests need Catch2 v2, so it is installed here: the template must use it.
    test = os.path.join(build, "test_my_indicator")
    check(os.path.isfile(test), "the template built its Catch2 test (Catch2 is installed)")
    r = run([test], 60, "the template's Catch2 test")
    check("All tests passed" in r.stdout, "the template's Catch2 test passes")
    return so


def wait_for_alert(ws, locality, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for e in replay_all(ws.query, 0):
            p = e["payload"]
            if p.get("locality", {}).get("id") == locality and p.get("level") != "none":
                return p
        if ws.daemon.poll() is not None:
            fail("ewsd exited %s:\n%s" % (ws.daemon.returncode, ws.log_text()[-3000:]))
        time.sleep(0.3)
    return None


def contribution(alert, indicator):
    for c in alert["contributions"]:
        if c["indicator"] == indicator:
            return c
    return None


def run_daemon(prefix, so, work):
    # Writable by its owner only, as a plugin directory must be whatever the umask.
    plugin_dir = os.path.join(work, "plugins")
    os.makedirs(plugin_dir)
    os.chmod(plugin_dir, 0o755)
    for name in SHIPPED:
        shutil.copyfile(os.path.join(prefix, "lib/ewsd/plugins", name + ".so"),
                        os.path.join(plugin_dir, name + ".so"))
        os.chmod(os.path.join(plugin_dir, name + ".so"), 0o644)
    # As the guide says: copy under a hidden name, then rename into place.
    shutil.copyfile(so, os.path.join(plugin_dir, ".my_indicator.so.tmp"))
    os.chmod(os.path.join(plugin_dir, ".my_indicator.so.tmp"), 0o644)
    os.rename(os.path.join(plugin_dir, ".my_indicator.so.tmp"),
              os.path.join(plugin_dir, "my_indicator.so"))

    # my_indicator alone decides: the other plugins have no data (no_data is left out of
    # the composite score), and its weight dominates the composite confidence.
    ws = Workspace(plugin_dir=plugin_dir, extra_config="""
[scoring.weights]
my_indicator = 10

[plugins.my_indicator]
scale = 2.0
""")
    try:
        r = ws.ewsctl("plugins")  # exits 1 when any plugin is refused
        check("my_indicator 0.1.0" in r.stdout, "ewsctl plugins exits 0 and lists my_indicator 0.1.0")

        localities = os.path.join(ws.dir, "localities.csv")
        with open(localities, "w") as f:
            f.write("id,name,region,population,neighbours\n"
                    "SDK-1,Riverside,DM/DM-1,1200,\n"
                    "SDK-2,Hillside,DM/DM-1,900,\n"
                    "SDK-3,Lakeside,DM/DM-1,700,\n")
        ws.ewsctl("localities", "import", localities)

        ws.start()
        check(ws.wait_log("plugin loaded: my_indicator", timeout=30),
              "ewsd logs 'plugin loaded: my_indicator'")
        check("plugin refused" not in ws.log_text(), "ewsd refused no plugin")
        check(ws.wait_log("evaluation (full)", timeout=30), "ewsd ran its first evaluation")

        # A plausible week: 12 reports in SDK-1 (score 1 - exp(-6) with scale 2), 3 in SDK-3
        # (1 - exp(-1.5) = 0.78, but a count below min_cell), nothing for SDK-2.
        observations = os.path.join(ws.dir, "example.csv")
        with open(observations, "w") as f:
            f.write("locality,time,kind,value,weight,source\n"
                    "SDK-1,%s,example.count,12,1,field-team\n"
                    "SDK-3,%s,example.count,3,1,field-team\n" % (today(), today()))
        ws.drop(observations)

        alert = wait_for_alert(ws, "SDK-1", timeout=30)
        if alert is None:
            fail("no alert for SDK-1 within 30 s; log:\n" + ws.log_text()[-3000:])
        check(alert["event"] == "raised", "SDK-1 raised an alert (%s at %s)" % (alert["event"], alert["level"]))
        c = contribution(alert, "my_indicator")
        check(c is not None, "the alert's contributions include my_indicator")
        check(c["status"] == "ok" and c["score"] > 0.99 and c["weight"] == 10,
              "my_indicator contributed status ok, score %s, weight %s" % (c["score"], c["weight"]))
        check(c["evidence"]["values"].get("count") == 12, "its evidence carries the count 12")
        check(alert["score"] > 95, "the composite score follows my_indicator (%s)" % alert["score"])
        check(sorted(g["indicator"] for g in alert["data_gaps"]) == SHIPPED,
              "the shipped plugins without data are listed as data gaps")

        small = wait_for_alert(ws, "SDK-3", timeout=10)
        if small is None:
            fail("no alert for SDK-3 within 10 s")
        c = contribution(small, "my_indicator")
        check(c is not None and c["evidence"]["values"].get("count") == "<5",
              "a count of 3 is published as \"<5\" (%s)" % (c and c["evidence"]["values"]))

        events = replay_all(ws.query, 0)
        check(not [e for e in events if e["payload"]["locality"]["id"] == "SDK-2"
                   and e["payload"]["level"] != "none"],
              "the locality without data raised no alert level")
        rc, took = ws.stop()
        check(rc == 0, "ewsd stopped cleanly (%.2f s)" % took)
    finally:
        ws.cleanup()


def main():
    work = tempfile.mkdtemp(prefix="ews-sdk-")
    try:
        prefix = os.path.join(work, "prefix")
        run(["cmake", "--install", BUILD, "--prefix", prefix], 120, "cmake --install")
        template = check_installed(prefix)
        so = build_template(template, prefix, work)
        run_daemon(prefix, so, work)
    finally:
        if os.environ.get("EWS_KEEP_TEST_DIRS"):
            print("kept " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
