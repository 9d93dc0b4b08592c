"""The daemon's log lines, as an operator's journal or terminal shows them.

With stderr connected to the journal (JOURNAL_STREAM names stderr's device and inode, as
systemd sets it) each line is "<N>level: message", N the syslog priority, no timestamp. With
stderr elsewhere (JOURNAL_STREAM inherited but not matching) lines carry a timestamp.
--log-level overrides the file's level; an unknown level is a usage error (exit 2). A port
that another process holds ends the start with exit 1 and a line naming the address.
"""
import os
import re
import socket
import subprocess

from harness import EWSD, Workspace, check


def run_once(ws, log_path, *extra, journal):
    with open(log_path, "w") as log:
        st = os.fstat(log.fileno())
        env = dict(os.environ)
        env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino + (0 if journal else 1))
        r = subprocess.run([EWSD, "--config", ws.config, "--once", *extra], stdout=log,
                           stderr=log, env=env, timeout=60)
    with open(log_path) as f:
        return r.returncode, f.read().splitlines()


def main():
    ws = Workspace()
    try:
        rc, lines = run_once(ws, os.path.join(ws.dir, "journal.log"), journal=True)
        check(rc == 0 and lines, "ewsd --once ran with stderr as the journal (%d lines)" % len(lines))
        bad = [l for l in lines if not re.match(r"^<[2-7]>(debug|info|warning|error|critical): ", l)]
        check(not bad, "every journal line is '<N>level: message' (first exception: %s)" % bad[:1])
        check(any(l.startswith("<6>info: ewsd ") and " started: " in l for l in lines),
              "the start line has priority 6 (info)")
        rc, quiet = run_once(ws, os.path.join(ws.dir, "quiet.log"), "--log-level", "error", journal=True)
        check(rc == 0 and not any(l.startswith(("<6>", "<7>")) for l in quiet),
              "--log-level error overrides the file's info: no info lines (%d lines)" % len(quiet))

        rc, lines = run_once(ws, os.path.join(ws.dir, "file.log"), journal=False)
        check(rc == 0 and lines and all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} \w+ ", l) for l in lines),
              "with stderr not the journal, every line starts with a timestamp and the level")
        check(any(" info " in l for l in lines), "without --log-level the file's level (info) holds")

        r = subprocess.run([EWSD, "--config", ws.config, "--log-level", "loud"], capture_output=True,
                           text=True, timeout=30)
        check(r.returncode == 2 and "--log-level 'loud'" in r.stderr, "an unknown --log-level exits 2 naming it")

        # A port another process holds: the start fails with exit 1, naming the address and
        # which endpoint wanted it.
        taken = socket.socket()
        taken.bind(("127.0.0.1", ws.pub_port))
        taken.listen(1)
        try:
            r = subprocess.run([EWSD, "--config", ws.config], capture_output=True, text=True, timeout=30)
        finally:
            taken.close()
        check(r.returncode == 1 and "cannot bind %s ([[publish]] 'main'): Address already in use" % ws.pub
              in r.stdout + r.stderr, "a port in use: exit 1 naming it (%s)" % (r.stdout + r.stderr).strip()[-200:])
    finally:
        ws.cleanup()


if __name__ == "__main__":
    main()
