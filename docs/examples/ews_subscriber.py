#!/usr/bin/env python3
"""ews_subscriber.py: a subscriber of ewsd's alert stream, written from docs/protocol.md alone.

It needs only pyzmq (Debian: python3-zmq) and the standard library. It

  * subscribes to one region's alerts (topic prefix alert/<region>/) and to heartbeats (hb/);
  * keeps `last`, the highest seq it has handled, and when the stream jumps past it (an
    alert with seq > last + 1, or a heartbeat with seq > last) asks the query endpoint for a
    `replay` of what it missed, page by page, before it handles the next live message;
  * with --replay-from N starts by replaying the events after N (a client that stored its
    `last` durably); with --snapshot starts with the open alerts (ZeroMQ's clone pattern);
  * prints every alert event exactly once and in seq order: one line per event, or with
    --json the payload as one JSON object per line;
  * asks with a REQ socket and a timeout: a request without a reply closes that socket and
    retries on a new one (the ZeroMQ guide's "lazy pirate"), each time waiting twice as long,
    so it never hangs on a lost reply nor floods a busy daemon;
  * speaks CURVE when given the server's public certificate (--server-key) and its own
    secret certificate (--key-file), both in ZeroMQ's certificate format as written by
    `ewsctl keygen` (NAME.key, NAME.key_secret); the query endpoint uses the same server key
    unless --query-server-key names its own.

Seq numbers are per publish endpoint (docs/protocol.md section 6): events of other regions
take numbers too, so a region subscriber sees jumps, and settles each with a replay for its
prefix, which may return nothing. Operational events (ops/) are not subscribed to here;
their numbers are jumps like any other.

Examples (the ports of config/demo.toml, which `./run demo` uses):

  python3 docs/examples/ews_subscriber.py                       # every region, from now on
  python3 docs/examples/ews_subscriber.py --region DM/DM-1 --snapshot
  python3 docs/examples/ews_subscriber.py --replay-from 0 --json > alerts.jsonl

Exit status: 0 after --count events, after --timeout, or on SIGINT/SIGTERM; 1 when the query
endpoint does not answer or answers an error, or on a protocol error; 2 on a usage error.
"""
import argparse
import json
import os
import signal
import sys
import time

try:
    import zmq
    import zmq.auth
except ImportError:  # pragma: no cover - depends on the machine
    sys.exit("ews_subscriber: needs pyzmq (Debian: apt-get install python3-zmq)")

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
LEVELS = ("none", "watch", "warning", "critical")


class ProtocolError(Exception):
    """The daemon sent something docs/protocol.md does not allow, or did not answer."""


def warn(text):
    print("ews_subscriber: " + text, file=sys.stderr, flush=True)


def region_prefix(region):
    """'KE/KE-03', 'KE/KE-03/' or 'alert/KE/KE-03/' -> 'alert/KE/KE-03/'; '' -> 'alert/'."""
    region = region.strip()
    if region.startswith("alert/"):
        region = region[len("alert/"):]
    region = region.strip("/")
    return "alert/" + (region + "/" if region else "")


def load_curve(server_key_file, key_file):
    """Returns: (server public key, own public key, own secret key), each Z85 bytes."""
    server_public, _ = zmq.auth.load_certificate(server_key_file)
    public, secret = zmq.auth.load_certificate(key_file)
    if not secret:
        raise ValueError("%s holds no secret key: give the NAME.key_secret file" % key_file)
    return server_public, public, secret


def make_socket(context, kind, curve):
    sock = context.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    if curve:
        server_public, public, secret = curve
        sock.curve_serverkey = server_public
        sock.curve_publickey = public
        sock.curve_secretkey = secret
    return sock


class QueryClient:
    """Requests to the query endpoint (docs/protocol.md section 7), each with a timeout.

    A REQ socket that sent a request and got no reply cannot send again; so after a timeout
    the socket is closed (linger 0 drops a request not yet sent) and a new one connected, up
    to `retries` more times. The daemon's replies depend only on its outbox, so asking again
    is harmless; but a request it already received is still answered, to nobody. So each
    attempt waits twice as long as the one before (at most MAX_WAIT_S): a daemon that is
    merely slow, rather than gone, is not buried under copies of the same request.
    """

    MAX_WAIT_S = 60


    def __init__(self, context, endpoint, curve, timeout_s, retries):
        self.context = context
        self.endpoint = endpoint
        self.curve = curve
        self.timeout_ms = int(timeout_s * 1000)
        self.retries = retries
        self.sock = None

    def _connect(self):
        self.sock = make_socket(self.context, zmq.REQ, self.curve)
        self.sock.connect(self.endpoint)

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def ask(self, request):
        """Returns: the reply object. Raises: ProtocolError on an error reply, a reply that
        is not a JSON object, or no reply after every attempt."""
        attempts = 1 + self.retries
        wait_ms = self.timeout_ms
        for attempt in range(1, attempts + 1):
            if self.sock is None:
                self._connect()
            self.sock.send_string(json.dumps(request))
            if self.sock.poll(wait_ms, zmq.POLLIN):
                try:
                    reply = json.loads(self.sock.recv())
                except ValueError as e:
                    raise ProtocolError("query endpoint sent invalid JSON: %s" % e)
                if not isinstance(reply, dict):
                    raise ProtocolError("query endpoint sent %s, not a JSON object" % type(reply).__name__)
                if "error" in reply:
                    raise ProtocolError("query endpoint answered %s: %s" % (request.get("op"), reply["error"]))
                return reply
            self.close()
            if attempt < attempts:
                warn("no reply from %s within %g s (attempt %d of %d); asking again"
                     % (self.endpoint, wait_ms / 1000, attempt, attempts))
            wait_ms = min(2 * wait_ms, max(self.timeout_ms, self.MAX_WAIT_S * 1000))
        raise ProtocolError("the query endpoint %s did not answer %d requests (the first waited %g s, "
                            "each next one twice as long)" % (self.endpoint, attempts, self.timeout_ms / 1000))


def is_seq(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class Subscriber:
    """The state of one subscription: what was handled, and how to print it."""

    def __init__(self, args, query):
        self.prefix = region_prefix(args.region)
        self.query = query
        self.as_json = args.json
        self.count = args.count
        self.printed = 0
        self.last = None       # the highest seq handled; None before the first message
        self.live_max = None   # the highest seq seen on the live stream
        self.ahead = set()     # seqs above `last` already printed (from a snapshot)

    def done(self):
        return self.count is not None and self.printed >= self.count

    def show(self, payload):
        """Prints one alert event, unless already printed or --count was reached."""
        seq = payload["seq"]
        if seq in self.ahead or self.done():
            return
        if self.last is not None and seq > self.last:
            self.ahead.add(seq)
        if self.as_json:
            print(json.dumps(payload, ensure_ascii=False, separators=(",", ":")), flush=True)
        else:
            locality = payload.get("locality") or {}
            score = payload.get("score")
            print("%d %s %s %s %s %s" % (
                seq, payload.get("event"), payload.get("level"), locality.get("id"),
                json.dumps(locality.get("name"), ensure_ascii=False),
                "-" if score is None else score), flush=True)
        self.printed += 1

    def settle(self, last):
        """Sets `last`, forgetting the printed seqs it now covers."""
        self.last = last
        self.ahead = {s for s in self.ahead if s > last}

    def catch_up(self):
        """Replays the events after `last` for our prefix, page by page, and prints them."""
        if self.query is None:
            return
        more = True
        while more and not self.done():
            reply = self.query.ask({"op": "replay", "since": self.last, "prefix": self.prefix})
            events, last_seq, more = reply.get("events"), reply.get("last_seq"), reply.get("more")
            if not isinstance(events, list) or not is_seq(last_seq) or not isinstance(more, bool):
                raise ProtocolError("malformed replay reply: %s" % json.dumps(reply)[:200])
            for event in events:
                payload = event.get("payload") if isinstance(event, dict) else None
                if not isinstance(payload, dict) or not is_seq(payload.get("seq")):
                    raise ProtocolError("malformed replayed event: %s" % json.dumps(event)[:200])
                if payload["seq"] > self.last and event.get("topic", "").startswith(self.prefix):
                    self.show(payload)
            if last_seq < self.last:
                raise ProtocolError("replay went back from %d to %d" % (self.last, last_seq))
            self.settle(last_seq)

    def start_from(self, seq):
        """--replay-from: the events after `seq` first."""
        self.settle(seq)
        self.catch_up()

    def start_with_snapshot(self):
        """--snapshot: the open alerts first; live events up to the snapshot's seq are old."""
        reply = self.query.ask({"op": "snapshot", "prefix": self.prefix})
        alerts, seq = reply.get("alerts"), reply.get("seq")
        if not isinstance(alerts, list) or not is_seq(seq):
            raise ProtocolError("malformed snapshot reply: %s" % json.dumps(reply)[:200])
        self.settle(seq)
        for payload in alerts:
            if not isinstance(payload, dict) or not is_seq(payload.get("seq")):
                raise ProtocolError("malformed snapshot alert: %s" % json.dumps(payload)[:200])
            self.show(payload)

    def went_back(self, seq):
        """A live seq below one seen before: the daemon runs on another database."""
        warn("seq went back from %d to %d: the daemon's database changed; starting again from 0"
             % (self.live_max, seq))
        self.live_max = None
        self.settle(0)
        self.ahead.clear()
        self.catch_up()

    def on_message(self, frames):
        if len(frames) != 2:
            raise ProtocolError("a message of %d frames (expected [topic, payload])" % len(frames))
        topic = frames[0].decode("utf-8", "replace")
        try:
            payload = json.loads(frames[1])
        except ValueError as e:
            raise ProtocolError("payload on %s is not JSON: %s" % (topic, e))
        if not isinstance(payload, dict) or not is_seq(payload.get("seq")):
            raise ProtocolError("payload on %s is not a JSON object with an unsigned seq" % topic)
        seq = payload["seq"]
        if topic == "hb/":
            if payload.get("schema") != "ews.heartbeat/1":
                raise ProtocolError("unknown heartbeat schema %r" % payload.get("schema"))
            if self.live_max is not None and seq < self.live_max:
                self.went_back(seq)
            self.live_max = seq if self.live_max is None else max(self.live_max, seq)
            if self.last is None:
                self.settle(seq)       # nothing before this point is wanted
            elif seq > self.last:
                self.catch_up()        # events we did not receive were published
            return
        if not topic.startswith(self.prefix):
            return                     # not asked for
        if payload.get("schema") != "ews.alert/1":
            raise ProtocolError("unknown schema %r on %s" % (payload.get("schema"), topic))
        if self.live_max is not None and seq <= self.live_max:
            self.went_back(seq)
        self.live_max = seq
        if self.last is None:
            self.show(payload)
            self.settle(seq)
            return
        if seq > self.last + 1:
            self.catch_up()            # a jump: replay it (may print this event too)
        if seq > self.last:
            self.show(payload)
            self.settle(seq)


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Print ewsd alert events of one region, each once and in seq order, "
                    "replaying gaps from the query endpoint (docs/protocol.md).")
    p.add_argument("--endpoint", default="tcp://127.0.0.1:7601", help="the alert stream (PUB)")
    p.add_argument("--query", default="tcp://127.0.0.1:7602",
                   help="the query endpoint (REP); '' for none: gaps are then only reported")
    p.add_argument("--region", default="", help="region path, e.g. KE/KE-03 (default: every region)")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--replay-from", type=int, metavar="N", help="print the events after seq N first")
    start.add_argument("--snapshot", action="store_true", help="print the open alerts first")
    p.add_argument("--json", action="store_true", help="print each payload as one JSON line")
    p.add_argument("--count", type=int, metavar="N", help="exit after printing N events")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="exit after this long")
    p.add_argument("--request-timeout", type=float, default=3.0, metavar="SECONDS",
                   help="wait this long for a query reply, twice as long at each retry (default 3)")
    p.add_argument("--retries", type=int, default=3, help="ask again this often (default 3)")
    p.add_argument("--server-key", metavar="FILE", help="the server's public certificate (CURVE)")
    p.add_argument("--key-file", metavar="FILE", help="this client's secret certificate (CURVE)")
    p.add_argument("--query-server-key", metavar="FILE",
                   help="the query endpoint's public certificate, when it differs from --server-key")
    args = p.parse_args(argv)
    if (args.server_key is None) != (args.key_file is None):
        p.error("--server-key and --key-file go together")
    if args.query_server_key is not None and args.server_key is None:
        p.error("--query-server-key needs --server-key and --key-file")
    if args.replay_from is not None and args.replay_from < 0:
        p.error("--replay-from must be 0 or more")
    if args.count is not None and args.count < 1:
        p.error("--count must be at least 1")
    if args.timeout is not None and not args.timeout > 0:
        p.error("--timeout must be above 0")
    if not args.request_timeout > 0 or args.retries < 0:
        p.error("--request-timeout must be above 0 and --retries 0 or more")
    if (args.replay_from is not None or args.snapshot) and not args.query:
        p.error("--replay-from and --snapshot need --query")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    curve = query_curve = None
    if args.server_key:
        if not zmq.has("curve"):
            warn("this libzmq was built without CURVE")
            return EXIT_USAGE
        try:
            curve = query_curve = load_curve(args.server_key, args.key_file)
            if args.query_server_key:
                query_curve = load_curve(args.query_server_key, args.key_file)
        except (OSError, ValueError) as e:
            warn("cannot use the CURVE keys: %s" % e)
            return EXIT_USAGE

    stop = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.append(True))

    context = zmq.Context()
    sub = make_socket(context, zmq.SUB, curve)
    query = QueryClient(context, args.query, query_curve, args.request_timeout, args.retries) if args.query else None
    client = Subscriber(args, query)
    # Subscribe and connect first, so that every event published from now on is queued
    # while the snapshot or replay below is being read (docs/protocol.md section 8).
    sub.setsockopt_string(zmq.SUBSCRIBE, client.prefix)
    sub.setsockopt_string(zmq.SUBSCRIBE, "hb/")
    sub.connect(args.endpoint)
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    reported_gap = False
    try:
        if args.replay_from is not None:
            client.start_from(args.replay_from)
        elif args.snapshot:
            client.start_with_snapshot()
        while not stop and not client.done():
            wait_ms = 200
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                wait_ms = min(wait_ms, max(1, int(left * 1000)))
            if not sub.poll(wait_ms, zmq.POLLIN):
                continue
            frames = sub.recv_multipart()
            if query is None and not reported_gap:
                before = client.last
                client.on_message(frames)
                if before is not None and client.last is not None and client.last > before + 1:
                    warn("seq jumped from %d to %d on %s (events of other regions, or missed ones); "
                         "give --query to replay jumps" % (before, client.last, args.endpoint))
                    reported_gap = True
            else:
                client.on_message(frames)
    except ProtocolError as e:
        warn(str(e))
        return EXIT_ERROR
    finally:
        if query is not None:
            query.close()
        sub.close()
        context.term()
    return EXIT_OK


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # the reader went away (| head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_OK)
