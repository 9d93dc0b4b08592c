"""The service as the system meets it: `cmake --install --prefix /usr` of the build into a
scratch DESTDIR, then the installed unit, manual pages, sysusers.d file and configuration.

- `systemd-analyze verify` must have nothing to say about the installed unit: its ExecStart
  and ExecReload programs exist, its dependencies resolve, and every Documentation= man page
  it names is installed (verify runs `man`; MANPATH points it at the installed pages only).
  verify --root needs the units the unit depends on (multi-user.target, network.target and
  theirs) inside the root, so the scratch root gets a copy of this machine's own units.
- `systemd-analyze security --offline=yes` must rate the unit's overall exposure at most 2.0.
- The unit runs the installed ewsd on the installed configuration, in the state directory
  that configuration names.
- The manual pages are installed, render with no warning (`man --warnings`, groff -ww),
  and name every option and command the programs' --help lists.
- systemd-sysusers, pointed at the scratch root, creates the user and group ewsd.
- `ewsd --check-config` accepts every shipped configuration (config/*.toml). Their state and
  plugin directories are absolute paths of the installed system (/var/lib/ewsd,
  /usr/lib/ewsd/plugins) or of the source tree, so each is checked as a copy whose
  plugin_dir is the plugin directory of the scratch install (the shipped plugins, as the
  package installs them) and whose state and spool directories are scratch directories.

Needs the Debian packages systemd (systemd-analyze, systemd-sysusers), man-db, groff-base and
procps (/bin/kill, which the unit's ExecReload= runs).
"""
import concurrent.futures
import glob
import os
import re
import shutil
import subprocess
import tempfile

from harness import BUILD, SOURCE, check, fail

UNIT = "usr/lib/systemd/system/ewsd.service"
MAN_PAGES = ["man8/ewsd.8", "man1/ewsctl.1", "man1/ews-sub.1", "man5/ewsd.toml.5"]
MAX_EXPOSURE = 2.0


def run(cmd, what, timeout=60, env=None, cwd=None):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                              timeout=timeout, env=env, cwd=cwd)
    except subprocess.TimeoutExpired:
        fail("%s took longer than %d s" % (what, timeout))
    except FileNotFoundError as e:
        fail("%s: %s is not installed (Debian packages systemd, man-db, groff-base, procps)" % (what, e.filename))


def install(destdir):
    env = dict(os.environ, DESTDIR=destdir)
    r = run(["cmake", "--install", BUILD, "--prefix", "/usr"], "cmake --install", env=env)
    if r.returncode != 0:
        fail("cmake --install exited %d:\n%s%s" % (r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
    unit = os.path.join(destdir, UNIT)
    check(os.path.isfile(unit), "the unit is installed as /" + UNIT)
    return unit


def unit_settings(unit):
    settings = {}
    with open(unit) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line and not line.startswith("["):
                key, value = line.split("=", 1)
                settings.setdefault(key, []).append(value)
    return settings


def check_unit_targets(destdir, unit, settings):
    with open(unit) as f:
        left = re.findall(r"@[A-Z_]+@", f.read())
    check(not left, "the installed unit has no @VARIABLE@ left %s" % left)
    documents = [d[len("file:"):] for d in settings["Documentation"][0].split() if d.startswith("file:")]
    check(documents and all(os.path.isfile(destdir + d) for d in documents),
          "the unit's Documentation= files are installed (%s)" % ", ".join(documents))
    exec_start = settings["ExecStart"][0].split()
    check(exec_start[0] == "/usr/bin/ewsd" and os.access(destdir + exec_start[0], os.X_OK),
          "ExecStart runs the installed ewsd (%s)" % exec_start[0])
    check(exec_start[1:] == ["--config", "/etc/ewsd/ewsd.toml"] and
          os.path.isfile(destdir + "/etc/ewsd/ewsd.toml"),
          "ExecStart names the installed configuration /etc/ewsd/ewsd.toml")
    with open(destdir + "/etc/ewsd/ewsd.toml") as f:
        installed = f.read()
    with open(os.path.join(SOURCE, "config/ewsd.toml")) as f:
        check(installed == f.read(), "the installed ewsd.toml is config/ewsd.toml")
    state_dir = re.search(r'^state_dir\s*=\s*"([^"]*)"', installed, re.M).group(1)
    plugin_dir = re.search(r'^plugin_dir\s*=\s*"([^"]*)"', installed, re.M).group(1)
    check(settings["StateDirectory"] == ["ewsd"] and state_dir == "/var/lib/ewsd",
          "the unit's StateDirectory=ewsd is the configuration's state_dir %s" % state_dir)
    shipped = sorted(os.path.basename(p) for p in glob.glob(destdir + plugin_dir + "/*.so"))
    check(shipped == ["community_incidents.so", "group_presence.so", "school_dropout.so"],
          "the configuration's plugin_dir %s holds the installed plugins %s" % (plugin_dir, shipped))
    check(settings["User"] == ["ewsd"] and settings["Type"] == ["notify"], "User=ewsd, Type=notify")


def verify(destdir, work):
    # A root holding the install plus this machine's units (a copy: --root resolves symlinks
    # inside the root) and /bin/kill, which ExecReload names.
    root = os.path.join(work, "verify-root")
    shutil.copytree(destdir, root, symlinks=True)
    units = os.path.join(root, "usr/lib/systemd/system")
    for f in os.listdir("/usr/lib/systemd/system"):
        source = os.path.join("/usr/lib/systemd/system", f)
        if not os.path.lexists(os.path.join(units, f)):
            if os.path.isdir(source) and not os.path.islink(source):
                shutil.copytree(source, os.path.join(units, f), symlinks=True)
            else:
                shutil.copy2(source, os.path.join(units, f), follow_symlinks=False)
    if not os.path.isfile("/bin/kill"):
        fail("/bin/kill is not installed (Debian package procps)")
    os.makedirs(os.path.join(root, "bin"), exist_ok=True)
    shutil.copy2(os.path.realpath("/bin/kill"), os.path.join(root, "bin/kill"))
    env = dict(os.environ, MANPATH=os.path.join(destdir, "usr/share/man"), MAN_DISABLE_SECCOMP="1")
    r = run(["systemd-analyze", "verify", "--root=" + root, "/" + UNIT], "systemd-analyze verify",
            env=env)
    lines = [l for l in (r.stdout + r.stderr).splitlines() if l.strip()]
    about_unit = [l for l in lines if "ewsd" in l]
    for l in lines:
        if l not in about_unit:
            print("note: systemd-analyze verify, about another unit: " + l)
    check(r.returncode == 0 and not about_unit,
          "systemd-analyze verify has nothing to say about ewsd.service (exit %d)%s" %
          (r.returncode, "".join("\n  " + l for l in about_unit)))


def security(unit):
    r = run(["systemd-analyze", "security", "--offline=yes", unit], "systemd-analyze security")
    m = re.search(r"Overall exposure level for ewsd\.service: ([0-9]+(?:\.[0-9]+)?)", r.stdout)
    if not m:
        fail("no overall exposure in systemd-analyze security's output:\n%s%s" % (r.stdout[-2000:], r.stderr))
    exposure = float(m.group(1))
    check(exposure <= MAX_EXPOSURE, "overall exposure %.1f <= %.1f (systemd-analyze security --offline)" %
          (exposure, MAX_EXPOSURE))


def roff_text(page):
    with open(page) as f:
        return f.read().replace("\\-", "-")


def help_texts(program, commands):
    """The --help of `program` for each command (a tuple of words), run side by side: a
    sanitized build takes a while to start."""
    def one(command):
        r = run([program, *command, "--help"], "%s %s --help" % (os.path.basename(program), " ".join(command)))
        if r.returncode != 0:
            fail("%s %s --help exited %d" % (program, " ".join(command), r.returncode))
        return r.stdout
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(commands, pool.map(one, commands)))


def subcommands(help_text):
    if "Subcommands:" not in help_text:
        return []
    return re.findall(r"^  (\S+)\s", help_text.split("Subcommands:", 1)[1], re.M)


def check_man_pages(destdir):
    mandir = os.path.join(destdir, "usr/share/man")
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8", MAN_DISABLE_SECCOMP="1")
    for page in MAN_PAGES:
        installed = os.path.join(mandir, page)
        check(os.path.isfile(installed), "the manual page %s is installed" % page)
        with open(installed) as a, open(os.path.join(SOURCE, "man", os.path.basename(page))) as b:
            check(a.read() == b.read(), "%s is man/%s as written" % (page, os.path.basename(page)))
        r = run(["groff", "-man", "-ww", "-z", installed], "groff")
        check(r.returncode == 0 and not (r.stdout + r.stderr).strip(),
              "groff -man -ww finds nothing wrong in %s%s" % (page, ("\n" + r.stderr) if r.stderr else ""))
        r = run(["man", "--warnings", "-l", installed], "man --warnings", env=env)
        check(r.returncode == 0 and not r.stderr.strip() and "NAME" in r.stdout,
              "man --warnings renders %s without a warning%s" % (page, ("\n" + r.stderr) if r.stderr else ""))

    # Every option and command of --help is in the page, so that neither drifts from the other.
    bindir = os.path.join(destdir, "usr/bin")
    options = re.compile(r"(?<![\w-])(--[a-z][a-z-]*)")
    for program, page in [("ewsd", "man8/ewsd.8"), ("ews-sub", "man1/ews-sub.1")]:
        text = roff_text(os.path.join(mandir, page))
        listed = help_texts(os.path.join(bindir, program), [()])[()]
        missing = sorted(set(options.findall(listed)) - set(options.findall(text)))
        check(not missing, "%s names every option of %s --help%s" %
              (page, program, (": missing " + ", ".join(missing)) if missing else ""))
    ewsctl = os.path.join(bindir, "ewsctl")
    text = roff_text(os.path.join(mandir, "man1/ewsctl.1"))
    helps = help_texts(ewsctl, [()])
    commands = [(c,) for c in subcommands(helps[()])]
    check(len(commands) >= 10, "ewsctl --help lists its commands (%d)" % len(commands))
    helps.update(help_texts(ewsctl, commands))
    nested = [c + (s,) for c in commands for s in subcommands(helps[c])]
    helps.update(help_texts(ewsctl, nested))
    missing = sorted(set(options.findall(helps[()])) - set(options.findall(text)))
    for command in commands + nested:
        if subcommands(helps[command]):
            continue  # a group: its commands are checked
        words = " ".join(command)
        if not re.search(r"(?<![\w-])" + re.escape(words) + r"(?![\w-])", text):
            missing.append(words)
        missing += ["%s %s" % (words, o) for o in sorted(set(options.findall(helps[command])) -
                                                         set(options.findall(text)))]
    check(not missing, "ewsctl.1 names every command and option of ewsctl --help (%d commands)%s" %
          (len(commands) + len(nested), (": missing " + ", ".join(missing)) if missing else ""))


def check_sysusers(destdir):
    os.makedirs(os.path.join(destdir, "etc"), exist_ok=True)
    r = run(["systemd-sysusers", "--root=" + destdir, "ewsd.conf"], "systemd-sysusers")
    check(r.returncode == 0, "systemd-sysusers --root applies sysusers.d/ewsd.conf%s" %
          (("\n" + r.stderr) if r.returncode else ""))
    with open(os.path.join(destdir, "etc/passwd")) as f:
        user = [l.strip().split(":") for l in f if l.startswith("ewsd:")]
    with open(os.path.join(destdir, "etc/group")) as f:
        group = [l.strip().split(":") for l in f if l.startswith("ewsd:")]
    check(len(user) == 1 and len(group) == 1 and user[0][3] == group[0][2],
          "it creates the user ewsd with the group ewsd as its primary group")
    check(user[0][5] == "/var/lib/ewsd" and user[0][6] == "/usr/sbin/nologin" and 0 < int(user[0][2]) < 1000,
          "ewsd is a system user, home /var/lib/ewsd, no login shell (%s)" % ":".join(user[0]))


def check_configs(destdir, work):
    ewsd = os.path.join(destdir, "usr/bin/ewsd")
    plugin_dir = os.path.join(destdir, "usr/lib/ewsd/plugins")
    configs = sorted(glob.glob(os.path.join(SOURCE, "config/*.toml")))
    check(len(configs) >= 2, "the shipped configurations: %s" % [os.path.basename(c) for c in configs])
    for config in configs:
        name = os.path.basename(config)
        state = os.path.join(work, "state-" + name)
        os.makedirs(state)
        with open(config) as f:
            text = f.read()
        replaced = {}
        for key, value in [("plugin_dir", plugin_dir), ("state_dir", state),
                           ("spool_dir", os.path.join(state, "spool"))]:
            text, n = re.subn(r'^%s\s*=\s*"[^"]*"' % key, '%s = "%s"' % (key, value), text, flags=re.M)
            replaced[key] = n
        check(replaced["plugin_dir"] == 1 and replaced["state_dir"] == 1,
              "%s sets plugin_dir and state_dir once each" % name)
        copy = os.path.join(work, name)
        with open(copy, "w") as f:
            f.write(text)
        r = run([ewsd, "--config", copy, "--check-config"], "ewsd --check-config", timeout=60)
        check(r.returncode == 0 and "configuration is valid" in r.stdout and
              all(p in r.stdout for p in ["community_incidents", "group_presence", "school_dropout"]),
              "ewsd --check-config accepts %s with the installed plugins%s" %
              (name, ("\n" + r.stdout + r.stderr) if r.returncode else ""))


def main():
    work = tempfile.mkdtemp(prefix="ews-unit-")
    try:
        destdir = os.path.join(work, "destdir")
        unit = install(destdir)
        settings = unit_settings(unit)
        check_unit_targets(destdir, unit, settings)
        verify(destdir, work)
        security(unit)
        check_man_pages(destdir)
        check_sysusers(destdir)
        check_configs(destdir, work)
    finally:
        if os.environ.get("EWS_KEEP_TEST_DIRS"):
            print("kept " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
