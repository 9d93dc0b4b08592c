"""The systemd watchdog stays fed while one long step keeps the daemon's thread busy.

The shipped unit sets WatchdogSec=30s: systemd kills a daemon that sends no WATCHDOG=1 for
that long. The main loop pings between steps, and a step that takes long (a spool file of
millions of rows: reading, digest, parse, sort, insert, commit, the engine, the evaluation)
pings where it makes progress (daemon/keepalive.hpp). Before that, a 7.6M-row file kept the
loop away for 45 s without a ping.

Here the daemon runs with NOTIFY_SOCKET and WATCHDOG_USEC set as systemd sets them, with a
watchdog of 6 s, and a spool file of about 1.1M rows that takes the test build far longer
than that to ingest and evaluate. Every WATCHDOG=1 is timed: no two consecutive ones may be
further apart than the watchdog, from READY=1 until the evaluation after the file.
"""
import os
import socket
import threading
import time

from harness import Workspace, check, fail

WATCHDOG_S = 6.0


def main():
    ws = Workspace()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        data = os.path.join(ws.dir, "data")
        ws.ewsctl("gen-demo", data, "--localities", "3000", "--years", "5", "--seed", "3",
                  "--feed-weeks", "0")
        ws.ewsctl("localities", "import", os.path.join(data, "localities.csv"))
        history = os.path.join(data, "history.csv")
        with open(history) as f:
            rows = sum(1 for _ in f) - 1
        check(rows > 1_000_000, "a spool file of %d rows" % rows)

        notify_path = os.path.join(ws.dir, "notify.sock")
        listener.bind(notify_path)
        messages = []  # (time, text)
        lock = threading.Lock()

        def listen():
            while True:
                try:
                    text = listener.recv(4096).decode()
                except OSError:
                    return
                with lock:
                    messages.append((time.time(), text))

        threading.Thread(target=listen, daemon=True).start()
        os.environ["NOTIFY_SOCKET"] = notify_path
        os.environ["WATCHDOG_USEC"] = str(int(WATCHDOG_S * 1e6))
        try:
            ws.start()
        finally:
            del os.environ["NOTIFY_SOCKET"]
            del os.environ["WATCHDOG_USEC"]

        deadline = time.time() + 60
        ready_at = None
        while time.time() < deadline and ready_at is None:
            with lock:
                ready_at = next((t for t, m in messages if "READY=1" in m), None)
            time.sleep(0.1)
        check(ready_at is not None, "ewsd tells systemd it is ready")

        dropped = time.time()
        ws.drop(history)
        check(ws.wait_log(" rows committed", timeout=240), "the file is ingested")
        check(ws.wait_log("evaluation (incremental)", timeout=120),
              "and the localities it changed are evaluated")
        took = time.time() - dropped
        check(took > WATCHDOG_S,
              "the step took %.1f s, longer than the watchdog of %.0f s" % (took, WATCHDOG_S))
        time.sleep(WATCHDOG_S)  # the loop's own pings after the step
        check(ws.daemon.poll() is None, "ewsd is still running")

        with lock:
            pings = [t for t, m in messages if "WATCHDOG=1" in m and t >= ready_at]
        check(len(pings) >= took / WATCHDOG_S, "%d pings during and after the step" % len(pings))
        times = [ready_at] + pings
        gaps = [(b - a, a - dropped) for a, b in zip(times, times[1:])]
        worst, at = max(gaps)
        if worst >= WATCHDOG_S:
            fail("no WATCHDOG=1 for %.1f s from %.1f s after the file was dropped: systemd "
                 "would have killed the daemon (watchdog %.0f s)" % (worst, at, WATCHDOG_S))
        check(True, "the longest time without WATCHDOG=1 was %.1f s (watchdog %.0f s)" %
              (worst, WATCHDOG_S))
        rc, _ = ws.stop(timeout=30)
        check(rc == 0, "ewsd stops with exit status 0")
    finally:
        listener.close()
        ws.cleanup()


if __name__ == "__main__":
    main()
