"""A small Chrome DevTools Protocol client for the integration tests: starts headless
Chromium with a throw-away profile, opens one page target over the browser's WebSocket
(flattened session), records every event it sees, and stops the browser and everything it
started, whatever happens.

Every wait has a deadline and fails with a message saying what it waited for. Needs the
`websocket` module (Debian: python3-websocket) and Chromium (Debian: chromium).
"""
import base64
import json
import os
import pathlib
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import websocket

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


class CdpError(Exception):
    """A DevTools failure: a time-out, an error reply, or a browser that did not start."""


def searched():
    """Returns: where find_chromium() looks, for messages."""
    override = os.environ.get("EWS_CHROMIUM")
    return ["EWS_CHROMIUM=" + override] if override else list(CHROMIUM_CANDIDATES) + ["chromium on PATH"]


def find_chromium():
    """Returns: the path of an installed Chromium (EWS_CHROMIUM overrides), or None."""
    override = os.environ.get("EWS_CHROMIUM")
    if override:
        return override if os.access(override, os.X_OK) else None
    for path in CHROMIUM_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("chromium")


class Browser:
    """Headless Chromium listening for DevTools on a free port. Use as a context manager
    (or call close()): leaving the block closes the browser and kills every process it
    started."""

    def __init__(self, executable, timeout=30.0):
        self.executable = executable
        self.timeout = timeout
        # The profile, and a home for what Chromium keeps outside it (its crash handler's
        # database under ~/.config): nothing is written outside this directory.
        self.root = tempfile.mkdtemp(prefix="ews-chromium-")
        self.profile = os.path.join(self.root, "profile")
        self.home = os.path.join(self.root, "home")
        self.proc = None
        self.pgid = None
        self.ws = None
        self.stderr_lines = []
        self._lines = queue.Queue()
        self._next_id = 0
        self.layout = None  # the document's size at the last screenshot
        self.events = []  # every event received: (sessionId or None, method, params)

    # ---- start and stop ---------------------------------------------------------------
    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def start(self):
        args = [self.executable, "--headless=new", "--no-sandbox", "--disable-gpu",
                "--remote-debugging-port=0", "--user-data-dir=" + self.profile,
                "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-default-apps",
                "--disable-extensions", "--disable-dev-shm-usage", "--hide-scrollbars",
                "--mute-audio", "--force-color-profile=srgb", "about:blank"]
        os.makedirs(self.home)
        env = dict(os.environ, HOME=self.home, XDG_CONFIG_HOME=os.path.join(self.home, ".config"),
                   XDG_CACHE_HOME=os.path.join(self.home, ".cache"))
        # A session of its own: the browser, its zygotes and renderers share its process
        # group, which close() kills as one. Its crash handlers start sessions of their own;
        # close() finds them by their database path, which lies in self.root.
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True, env=env)
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        url = self._wait_devtools_url()
        self.ws = websocket.create_connection(url, timeout=self.timeout, suppress_origin=True)

    def _drain_stderr(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.stderr_lines.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def _wait_devtools_url(self):
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CdpError("Chromium printed no 'DevTools listening on ws://...' line within "
                               "%.0f s; its stderr:\n%s" % (self.timeout, self.stderr_text()))
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise CdpError("Chromium exited (status %s) before listening for DevTools; its "
                               "stderr:\n%s" % (self.proc.wait(), self.stderr_text()))
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m:
                return m.group(1)

    def stderr_text(self):
        return "\n".join(self.stderr_lines[-40:])

    def close(self):
        """Asks the browser to close, kills what is left of it (its process group and its
        crash handlers), waits up to 5 s for them to be gone, and removes its directory."""
        if self.ws is not None:
            try:
                self.ws.settimeout(5)
                self._send("Browser.close", {}, None)
            except Exception:
                pass
            try:
                self.ws.close()
            except Exception:
                pass
            self.ws = None
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            # The group is the browser's own (start_new_session): its id is the browser's pid.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            self.pgid = self.proc.pid
            self.proc = None
        deadline = time.monotonic() + 5
        while True:
            left = self.leftover_processes()
            if not left or time.monotonic() > deadline:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.05)
        shutil.rmtree(self.root, ignore_errors=True)

    def leftover_processes(self):
        """Returns: the pids of live (not zombie) processes this browser started: in its
        process group, or naming its directory on their command line (read from /proc)."""
        left = []
        marker = self.root.encode()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % entry) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            # fields[0] is the state, [2] the process group; a zombie has already exited.
            if fields[0] != "Z" and ((self.pgid is not None and int(fields[2]) == self.pgid)
                                     or marker in cmdline):
                left.append(int(entry))
        return left

    # ---- the protocol -----------------------------------------------------------------
    def _send(self, method, params, session):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        return self._next_id

    def _receive(self, deadline, waiting_for):
        left = deadline - time.monotonic()
        if left <= 0:
            raise CdpError("no %s" % waiting_for)
        self.ws.settimeout(left)
        try:
            raw = self.ws.recv()
        except websocket.WebSocketTimeoutException:
            raise CdpError("no %s" % waiting_for) from None
        except websocket.WebSocketConnectionClosedException:
            raise CdpError("the DevTools connection closed while waiting for %s; Chromium's "
                           "stderr:\n%s" % (waiting_for, self.stderr_text())) from None
        message = json.loads(raw)
        if "method" in message:
            self.events.append((message.get("sessionId"), message["method"], message.get("params", {})))
        return message

    def call(self, method, params=None, session=None, timeout=None):
        """Sends a command and returns its result; raises CdpError on an error reply or when
        no reply comes in time. Events that arrive meanwhile are recorded."""
        ident = self._send(method, params, session)
        seconds = timeout or self.timeout
        deadline = time.monotonic() + seconds
        while True:
            message = self._receive(deadline, "reply to %s within %.0f s" % (method, seconds))
            if message.get("id") == ident:
                if "error" in message:
                    raise CdpError("%s failed: %s" % (method, message["error"]))
                return message.get("result", {})

    def wait_event(self, method, session=None, timeout=None, since=0):
        """Returns: the params of the first event `method` of `session` recorded at index
        `since` or later, waiting for it when none was recorded yet."""
        seconds = timeout or self.timeout
        deadline = time.monotonic() + seconds
        checked = since
        while True:
            for i in range(checked, len(self.events)):
                s, m, params = self.events[i]
                if m == method and (session is None or s == session):
                    return params
            checked = len(self.events)
            self._receive(deadline, "event %s within %.1f s" % (method, seconds))

    def _index_after(self, params):
        """Returns: the index after the recorded event whose params are `params`."""
        for i in range(len(self.events) - 1, -1, -1):
            if self.events[i][2] is params:
                return i + 1
        return len(self.events)

    def drain(self, seconds):
        """Records the events that arrive within `seconds` (e.g. late console messages)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                message = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                return
            if "method" in message:
                self.events.append((message.get("sessionId"), message["method"], message.get("params", {})))

    # ---- a page -----------------------------------------------------------------------
    def new_page(self):
        """Opens a blank page target and attaches to it; returns its session id."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(domain + ".enable", {}, session)
        return session

    def navigate(self, session, url):
        """Loads `url` and waits for its load event; raises CdpError on a navigation error."""
        since = len(self.events)
        result = self.call("Page.navigate", {"url": url}, session)
        if result.get("errorText"):
            raise CdpError("navigating to %s failed: %s" % (url, result["errorText"]))
        # The load event of this document, not a late one of the blank page it replaces:
        # the main frame's navigation to `url` comes first.
        deadline = time.monotonic() + self.timeout
        seen = []
        while True:
            try:
                params = self.wait_event("Page.frameNavigated", session, since=since,
                                         timeout=max(0.01, deadline - time.monotonic()))
            except CdpError:
                raise CdpError("the page did not navigate to %s within %.0f s (it navigated to %s)"
                               % (url, self.timeout, seen or "nothing")) from None
            since = self._index_after(params)
            frame = params["frame"]
            if not frame.get("parentId") and frame.get("url") == url:
                break
            seen.append(frame.get("url"))
        try:
            self.wait_event("Page.loadEventFired", session, since=since,
                            timeout=max(0.01, deadline - time.monotonic()))
        except CdpError:
            raise CdpError("%s did not fire its load event within %.0f s" % (url, self.timeout)) from None

    def evaluate(self, session, expression):
        """Returns: the value of a JavaScript expression in the page (by value)."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                           session)
        if "exceptionDetails" in result:
            raise CdpError("evaluating %r threw: %s" % (expression, result["exceptionDetails"]))
        return result["result"].get("value")

    def session_events(self, session, method=None):
        return [(m, p) for s, m, p in self.events if s == session and (method is None or m == method)]

    def screenshot(self, session, width, mobile=False, max_height=100000):
        """Returns: PNG bytes of the whole page laid out `width` CSS pixels wide (the viewport
        is made as tall as the document, up to max_height). Sets self.layout to the
        document's {"width", "height"} (its scroll size) at that width."""
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": mobile}, session)
        size = self.evaluate(session, "({width: document.documentElement.scrollWidth,"
                                      " height: Math.max(document.documentElement.scrollHeight,"
                                      " document.body ? document.body.scrollHeight : 0)})")
        self.layout = size
        height = max(1, min(int(size["height"]), max_height))
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}, session)
        shot = self.call("Page.captureScreenshot",
                         {"format": "png", "captureBeyondViewport": True,
                          "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}},
                         session, timeout=max(self.timeout, 60))
        self.call("Emulation.clearDeviceMetricsOverride", {}, session)
        return base64.b64decode(shot["data"])

    def pdf(self, session):
        """Returns: the page printed to PDF (A4, backgrounds, the page's own @page size)."""
        result = self.call("Page.printToPDF",
                           {"printBackground": True, "preferCSSPageSize": True,
                            "paperWidth": 8.27, "paperHeight": 11.69},
                           session, timeout=max(self.timeout, 60))
        return base64.b64decode(result["data"])


def file_url(path):
    return pathlib.Path(os.path.abspath(path)).as_uri()


def pdf_pages(data):
    """Returns: the number of page objects (/Type /Page, not /Pages) in an uncompressed-xref
    PDF such as Chromium's."""
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data))
