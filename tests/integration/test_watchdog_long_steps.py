"""systemd is kept informed while one long step keeps the daemon's thread busy.

The shipped unit sets WatchdogSec=30s (systemd kills a daemon that sends no WATCHDOG=1 for
that long) and TimeoutStartSec=5min. The main loop pings between steps, and a step that
takes long (a spool file of millions of rows: reading, digest, parse, sort, insert, commit,
the engine, the evaluation) pings where it makes progress (daemon/keepalive.hpp). Before
that, a 7.6M-row file kept the loop away for 45 s without a ping. While starting, the same
progress asks for more time with EXTEND_TIMEOUT_USEC every 10 s.

Here the daemon runs with NOTIFY_SOCKET and WATCHDOG_USEC set as systemd sets them, with a
watchdog of 6 s:
1. it starts with a spool file of about 1.5M rows waiting, which the test build takes well
   over 10 s to ingest before READY=1: EXTEND_TIMEOUT_USEC=60000000 must arrive meanwhile;
2. once ready, another file of as many rows arrives: no two consecutive WATCHDOG=1 may be
   further apart than the watchdog, from READY=1 until the evaluation after the file.
"""
import os
import socket
import threading
import time

from harness import Workspace, check, fail

WATCHDOG_S = 6.0
EXTEND_EVERY_S = 10.0  # daemon/app.cpp, start_ping
EXTENSION = "EXTEND_TIMEOUT_USEC=60000000"


class Listener:
    """The datagram socket systemd would listen on, recording each message with its time."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.lock = threading.Lock()
        self.messages = []  # (time, text)
        threading.Thread(target=self._listen, daemon=True).start()

    def _listen(self):
        while True:
            try:
                text = self.sock.recv(4096).decode()
            except OSError:
                return
            with self.lock:
                self.messages.append((time.time(), text))

    def times(self, needle, since=0.0):
        with self.lock:
            return [t for t, m in self.messages if needle in m and t >= since]

    def wait_for(self, needle, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = self.times(needle)
            if found:
                return found[0]
            time.sleep(0.1)
        return None


def with_other_sources(src, dst):
    """The same rows under other source names: new keys, so not a duplicate of `src`."""
    with open(src) as f, open(dst, "w") as out:
        out.write(next(f))
        for line in f:
            out.write(line.rstrip("\n") + "-b\n")


def main():
    ws = Workspace()
    listener = None
    try:
        data = os.path.join(ws.dir, "data")
        ws.ewsctl("gen-demo", data, "--localities", "4000", "--years", "5", "--seed", "3",
                  "--feed-weeks", "0")
        ws.ewsctl("localities", "import", os.path.join(data, "localities.csv"))
        history = os.path.join(data, "history.csv")
        with open(history) as f:
            rows = sum(1 for _ in f) - 1
        check(rows > 1_400_000, "spool files of %d rows" % rows)
        second = os.path.join(data, "second.csv")
        with_other_sources(history, second)

        listener = Listener(os.path.join(ws.dir, "notify.sock"))
        ws.drop(history)  # waiting in the spool at start
        os.environ["NOTIFY_SOCKET"] = listener.sock.getsockname()
        os.environ["WATCHDOG_USEC"] = str(int(WATCHDOG_S * 1e6))
        try:
            started = time.time()
            ws.start()
        finally:
            del os.environ["NOTIFY_SOCKET"]
            del os.environ["WATCHDOG_USEC"]

        # 1. start-up: the file is ingested and evaluated before READY=1.
        ready_at = listener.wait_for("READY=1", timeout=240)
        check(ready_at is not None, "ewsd tells systemd it is ready")
        start_took = ready_at - started
        check(start_took > EXTEND_EVERY_S + 2,
              "the start-up with the file waiting took %.1f s, longer than the %.0f s between "
              "extensions" % (start_took, EXTEND_EVERY_S))
        extensions = [t for t in listener.times(EXTENSION) if t <= ready_at]
        check(len(extensions) >= 1, "%d x %s while starting (at %s s)" % (
            len(extensions), EXTENSION, ", ".join("%.1f" % (t - started) for t in extensions)))
        check(listener.times("EXTEND_TIMEOUT_USEC") == extensions,
              "no other extension, and none once ready")

        # 2. running: another large file; the watchdog must be fed throughout.
        dropped = time.time()
        ws.drop(second)
        check(ws.wait_log("second.csv: %d rows committed" % rows, timeout=240),
              "the second file is ingested")
        evaluated = ws.log_text().count("evaluation (incremental)")
        deadline = time.time() + 120
        while evaluated == 0 and time.time() < deadline:
            time.sleep(0.2)
            evaluated = ws.log_text().count("evaluation (incremental)")
        check(evaluated > 0, "and the localities it changed are evaluated")
        took = time.time() - dropped
        check(took > WATCHDOG_S,
              "the step took %.1f s, longer than the watchdog of %.0f s" % (took, WATCHDOG_S))
        time.sleep(WATCHDOG_S)  # the loop's own pings after the step
        check(ws.daemon.poll() is None, "ewsd is still running")

        pings = listener.times("WATCHDOG=1", since=ready_at)
        check(len(pings) >= took / WATCHDOG_S, "%d pings during and after the step" % len(pings))
        times = [ready_at] + pings
        worst, at = max((b - a, a - dropped) for a, b in zip(times, times[1:]))
        if worst >= WATCHDOG_S:
            fail("no WATCHDOG=1 for %.1f s from %.1f s after the file was dropped: systemd "
                 "would have killed the daemon (watchdog %.0f s)" % (worst, at, WATCHDOG_S))
        check(True, "the longest time without WATCHDOG=1 was %.1f s (watchdog %.0f s)" %
              (worst, WATCHDOG_S))
        rc, _ = ws.stop(timeout=30)
        check(rc == 0, "ewsd stops with exit status 0")
    finally:
        if listener:
            listener.sock.close()
        ws.cleanup()


if __name__ == "__main__":
    main()
