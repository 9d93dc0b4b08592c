"""The JSON Schemas in docs/schema/ against what the real ewsd sends.

Every schema file is itself a valid draft 2020-12 schema with $id, title and description, and
the JSON examples of docs/protocol.md (the normative text) validate against them.
Then two daemons run, each watched by a pyzmq subscriber of every topic (""):

(1) Generated demo data and a feed of weeks, with the shipped plugins and a plugin that throws
    on every assessment (quarantined after 2 evaluations: contributions with status `error`,
    then one `plugin_quarantined` operational event), reminders every 3 s: alert events of
    many kinds, data gaps, heartbeats and an ops event.
(2) The scripted fixture plugin on three localities, stepped week by week, for the events the
    demo does not give on demand: an acknowledged alert that de-escalates (so `acknowledged`
    is an object), a resolution, flapping started and stopped, a gap and its restoration.

Every received payload must validate against its schema, and also against a strict copy of
it that refuses fields the schema (and so docs/protocol.md) does not name, so that the daemon
cannot send an undocumented field unnoticed. Every query request kind (replay, snapshot,
status) and malformed ones are sent; each request that should be valid validates against
query-request.json and each malformed one does not; each reply validates against its reply
schema. Broken copies of real payloads must fail validation, so the schemas do constrain.
"""
import copy
import datetime
import glob
import json
import os
import re
import shutil
import tempfile
import time
from collections import Counter

import jsonschema
import zmq
from jsonschema import Draft202012Validator

from harness import FIXTURES, PLUGINS, SOURCE, Workspace, check, fail, query, today

SCHEMA_DIR = os.path.join(SOURCE, "docs", "schema")
SCHEMA_FILES = ["alert.json", "heartbeat.json", "ops.json", "query-request.json",
                "query-reply-replay.json", "query-reply-snapshot.json",
                "query-reply-status.json", "query-reply-error.json"]
# The status object's fields are informative (docs/protocol.md section 7): new ones may come
# without a protocol change, so its schema is not made strict.
NOT_STRICT = {"query-reply-status.json"}
KNOWN_EVENTS = {"raised", "escalated", "deescalated", "resolved", "reminder",
                "flapping_started", "flapping_stopped", "data_gap", "data_restored"}

# "date-time" is only an annotation unless a checker is given; this one holds the daemon to
# the protocol's one spelling, YYYY-MM-DDThh:mm:ssZ, and to real dates.
FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def rfc3339_utc_seconds(text):
    if not isinstance(text, str):
        return True
    datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    return True


def strict_copy(schema):
    """The schema with additionalProperties false on every object that lists properties."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def make_validators(schemas):
    """Returns: {file name: validator}, resolving $ref between the files by their $id."""
    try:  # jsonschema >= 4.18
        from referencing import Registry, Resource
        registry = Registry().with_resources(
            [(s["$id"], Resource.from_contents(s)) for s in schemas.values()])
        return {name: Draft202012Validator(s, registry=registry, format_checker=FORMATS)
                for name, s in schemas.items()}
    except ImportError:  # Debian 12's 4.10
        store = {s["$id"]: s for s in schemas.values()}
        return {name: Draft202012Validator(s, resolver=jsonschema.RefResolver(s["$id"], s, store=store),
                                           format_checker=FORMATS)
                for name, s in schemas.items()}


class Schemas:
    def __init__(self):
        self.raw = {}
        for name in SCHEMA_FILES:
            path = os.path.join(SCHEMA_DIR, name)
            with open(path) as f:
                schema = json.load(f)
            Draft202012Validator.check_schema(schema)
            for key in ("$schema", "$id", "title", "description"):
                if not isinstance(schema.get(key), str) or not schema[key]:
                    fail("%s has no %s" % (name, key))
            if schema["$schema"] != "https://json-schema.org/draft/2020-12/schema":
                fail("%s is not a draft 2020-12 schema: %s" % (name, schema["$schema"]))
            if not schema["$id"].endswith("/" + name):
                fail("%s: $id %s does not end with its file name" % (name, schema["$id"]))
            self.raw[name] = schema
        found = sorted(os.path.basename(p) for p in glob.glob(os.path.join(SCHEMA_DIR, "*.json")))
        check(found == sorted(SCHEMA_FILES), "docs/schema holds the %d schema files, each a valid "
              "draft 2020-12 schema with $id, title and description" % len(found))
        self.published = make_validators(self.raw)
        self.strict = make_validators({n: (s if n in NOT_STRICT else strict_copy(s))
                                       for n, s in self.raw.items()})
        self.count = Counter()

    def errors(self, name, instance, strict=True):
        validators = self.strict if strict else self.published
        return ["%s at %s" % (e.message[:300], "/".join(str(p) for p in e.absolute_path) or "(root)")
                for e in validators[name].iter_errors(instance)]

    def validate(self, name, instance, where, strict=True):
        """Fails unless `instance` is valid against the schema and (strict) its strict copy."""
        loose = self.errors(name, instance, strict=False)
        if loose:
            fail("%s: not valid against %s:\n  %s\n%s" % (where, name, "\n  ".join(loose[:5]),
                                                           json.dumps(instance)[:1500]))
        extra = self.errors(name, instance, strict=True) if strict else []
        if extra:
            fail("%s: a field %s does not name (undocumented):\n  %s\n%s"
                 % (where, name, "\n  ".join(extra[:5]), json.dumps(instance)[:1500]))
        self.count[name] += 1

    def must_fail(self, name, instance, why):
        if not self.errors(name, instance, strict=False):
            fail("%s accepts a payload it must refuse (%s): %s" % (name, why, json.dumps(instance)[:600]))


class Listener:
    """A SUB socket subscribed to everything; validates each message as it arrives."""

    def __init__(self, endpoint, schemas, tally):
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt_string(zmq.SUBSCRIBE, "")
        self.sock.connect(endpoint)
        self.schemas = schemas
        self.tally = tally
        self.alerts = []
        self.ops = []
        self.heartbeats = []

    def receive(self, seconds):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.sock.poll(100):
                self.handle(self.sock.recv_multipart())

    def wait_for(self, predicate, seconds):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if any(predicate(a) for a in self.alerts):
                return True
            self.receive(0.2)
        return any(predicate(a) for a in self.alerts)

    def handle(self, frames):
        if len(frames) != 2:
            fail("a message of %d frames" % len(frames))
        topic = frames[0].decode()
        payload = json.loads(frames[1])
        where = "live %s seq %s" % (topic, payload.get("seq"))
        if topic == "hb/":
            self.schemas.validate("heartbeat.json", payload, where)
            self.heartbeats.append(payload)
            self.tally["heartbeat"] += 1
        elif topic.startswith("alert/"):
            check_alert(self.schemas, topic, payload, where)
            self.alerts.append(payload)
            self.tally["alert " + payload["event"]] += 1
        elif topic.startswith("ops/"):
            check_ops(self.schemas, topic, payload, where)
            self.ops.append(payload)
            self.tally["ops " + payload["event"]] += 1
        else:
            fail("%s: a topic docs/protocol.md does not name" % where)

    def close(self):
        self.sock.close()


def check_alert(schemas, topic, payload, where):
    schemas.validate("alert.json", payload, where)
    loc = payload["locality"]
    if topic != "alert/%s/%s/" % (loc["region"], loc["id"]):
        fail("%s: the topic is not alert/<region>/<locality>/ of %s" % (where, loc))
    if payload["event"] not in KNOWN_EVENTS:
        fail("%s: event %r is not one docs/protocol.md names" % (where, payload["event"]))


def check_ops(schemas, topic, payload, where):
    schemas.validate("ops.json", payload, where)
    if payload["event"] != "plugin_quarantined" or topic != "ops/plugin/":
        fail("%s: an operational event docs/protocol.md does not name: %s" % (where, payload))


def ask(endpoint, frames, timeout_ms=10000):
    """Sends raw frames to the query endpoint; returns the parsed one-frame reply."""
    s = zmq.Context.instance().socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, timeout_ms)
    s.connect(endpoint)
    try:
        s.send_multipart(frames)
        reply = s.recv_multipart()
    finally:
        s.close()
    if len(reply) != 1:
        fail("a query reply of %d frames" % len(reply))
    return json.loads(reply[0])


def exercise_queries(schemas, tally, endpoint, region_prefix, page):
    """Sends every request kind, valid and malformed; validates requests and replies.
    Returns: the events of a full replay."""
    def good(request, reply_schema):
        # Requests may carry fields the daemon does not use: only the published schema.
        schemas.validate("query-request.json", request, "request %s" % json.dumps(request), strict=False)
        tally["request " + request["op"]] += 1
        reply = query(endpoint, request)
        if "error" in reply:
            fail("%s was answered with an error: %s" % (json.dumps(request), reply))
        schemas.validate(reply_schema, reply, "reply to %s" % json.dumps(request))
        tally["reply " + request["op"]] += 1
        return reply

    # replay, page by page: `page` events a page makes several pages, the last one shorter.
    events, since, pages = [], 0, 0
    while True:
        r = good({"op": "replay", "since": since, "limit": page}, "query-reply-replay.json")
        events += r["events"]
        pages += 1
        if r["events"] and r["events"][-1]["payload"]["seq"] != r["last_seq"]:
            fail("an unfiltered page ends at last_seq: %s vs %s" % (r["events"][-1]["payload"]["seq"], r["last_seq"]))
        since = r["last_seq"]
        if not r["more"]:
            break
    seqs = [e["payload"]["seq"] for e in events]
    check(seqs == list(range(1, len(seqs) + 1)) and pages >= 2,
          "a paged replay (%d pages) returns seq 1..%d, every page valid" % (pages, len(seqs)))
    # Reminders may come at any time; past every seq, a replay is empty and says so.
    far = since + 10 ** 12
    r = good({"op": "replay", "since": far}, "query-reply-replay.json")
    check(r == {"events": [], "last_seq": far, "more": False},
          "a replay from beyond the last seq is empty and says so: %s" % r)
    region = good({"op": "replay", "since": 0, "limit": 10000, "prefix": region_prefix},
                  "query-reply-replay.json")
    check(region["events"] and all(e["topic"].startswith(region_prefix) for e in region["events"]),
          "a replay with prefix %s returns only that region (%d events)" % (region_prefix, len(region["events"])))
    ops = good({"op": "replay", "since": 0, "prefix": "ops/"}, "query-reply-replay.json")
    good({"op": "snapshot"}, "query-reply-snapshot.json")
    snap = good({"op": "snapshot", "prefix": region_prefix}, "query-reply-snapshot.json")
    # Reminders may have been published since the replay: at least as new as it.
    check(snap["seq"] >= seqs[-1], "the snapshot is current (seq %d >= %d)" % (snap["seq"], seqs[-1]))
    empty = good({"op": "snapshot", "prefix": "alert/NOWHERE/"}, "query-reply-snapshot.json")
    check(empty["alerts"] == [], "a snapshot of an unknown region is empty")
    status = good({"op": "status"}, "query-reply-status.json")
    for field in ("version", "localities", "plugins", "last_evaluation", "open_alerts", "last_seq"):
        if field not in status:
            fail("status lacks %r, which query-reply-status.json describes: %s" % (field, status))
    check(status["last_seq"].get("main", -1) >= snap["seq"], "status names the endpoint's last seq")
    # An unused field is ignored by the daemon and allowed by the request schema.
    good({"op": "status", "client": "monitor"}, "query-reply-status.json")

    # Malformed requests: each refused by the request schema (where it is JSON) and answered
    # with an error reply.
    malformed = [
        (b"{not json", "not JSON"),
        (b"[1,2]", "not an object"),
        (b"{}", "no op"),
        (b'{"op":5}', "op not a string"),
        (b'{"op":"nope"}', "unknown op"),
        (b'{"op":"replay"}', "replay without since"),
        (b'{"op":"replay","since":-1}', "negative since"),
        (b'{"op":"replay","since":"3"}', "since as a string"),
        (b'{"op":"replay","since":0,"limit":0}', "limit 0"),
        (b'{"op":"replay","since":0,"prefix":7}', "prefix not a string"),
        (b'{"op":"snapshot","prefix":"ops/"}', "snapshot outside alert/"),
        (b'{"op":"snapshot","prefix":null}', "snapshot prefix null"),
    ]
    for raw, why in malformed:
        try:
            request = json.loads(raw)
        except ValueError:
            request = None
        if request is not None:
            schemas.must_fail("query-request.json", request, why)
        reply = ask(endpoint, [raw])
        schemas.validate("query-reply-error.json", reply, "reply to %s (%s)" % (raw.decode(), why))
        tally["reply error"] += 1
    reply = ask(endpoint, [b'{"op":"status"}', b"second frame"])
    schemas.validate("query-reply-error.json", reply, "reply to a two-frame request")
    tally["reply error"] += 1
    # JSON Schema cannot tell 3.0 from 3; the protocol asks for integers written as such.
    reply = ask(endpoint, [b'{"op":"replay","since":3.0}'])
    check("error" in reply and "since" in reply["error"],
          "since written 3.0 is refused, as docs/protocol.md says: %s" % reply)
    schemas.validate("query-reply-error.json", reply, "reply to since 3.0")
    tally["reply error"] += 1
    check(True, "%d malformed requests were refused by the schema and answered with a valid error"
          % len(malformed))
    return events, ops["events"]


def broken_payloads_fail(schemas, alert, data_event, heartbeat, ops):
    """Copies of real payloads, each broken in one documented way, must not validate."""
    def broken(base, why, change):
        b = copy.deepcopy(base)
        change(b)
        return b, why

    cases = [
        broken(alert, "seq missing", lambda a: a.pop("seq")),
        broken(alert, "seq 0", lambda a: a.update(seq=0)),
        broken(alert, "seq negative", lambda a: a.update(seq=-4)),
        broken(alert, "seq a string", lambda a: a.update(seq="12")),
        broken(alert, "schema ews.alert/2", lambda a: a.update(schema="ews.alert/2")),
        broken(alert, "score above 100", lambda a: a.update(score=100.5)),
        broken(alert, "confidence above 1", lambda a: a.update(confidence=1.2)),
        broken(alert, "an unknown level", lambda a: a.update(level="severe")),
        broken(alert, "at without Z", lambda a: a.update(at=a["at"].rstrip("Z"))),
        broken(alert, "at with a space", lambda a: a.update(at=a["at"].replace("T", " "))),
        broken(alert, "at on 30 February", lambda a: a.update(at="2026-02-30T10:00:00Z")),
        broken(alert, "opened_at null", lambda a: a.update(opened_at=None)),
        broken(alert, "locality without region", lambda a: a["locality"].pop("region")),
        broken(alert, "a locality id with a space", lambda a: a["locality"].update(id="KE 1")),
        broken(alert, "actions not strings", lambda a: a.update(actions=[1])),
        broken(alert, "flapping as a string", lambda a: a.update(flapping="no")),
        broken(alert, "acknowledged without by", lambda a: a.update(acknowledged={"at": a["at"]})),
        broken(alert, "dominant missing", lambda a: a.pop("dominant")),
        broken(alert, "a gap on an alert event", lambda a: a.update(gap=copy.deepcopy(data_event["gap"]))),
        broken(alert, "a raise from warning", lambda a: a.update(event="raised", previous_level="warning")),
        broken(alert, "a raise to none", lambda a: a.update(event="raised", level="none", previous_level="none")),
        broken(alert, "an escalation downwards",
               lambda a: a.update(event="escalated", level="watch", previous_level="critical")),
        broken(alert, "a resolution to watch",
               lambda a: a.update(event="resolved", level="watch", previous_level="warning")),
        broken(alert, "a reminder that changes the level",
               lambda a: a.update(event="reminder", level="critical", previous_level="watch")),
        broken(alert, "a contribution status 'fine'", lambda a: a["contributions"][0].update(status="fine")),
        broken(alert, "a contribution score above 1", lambda a: a["contributions"][0].update(score=3)),
        broken(alert, "an indicator name in capitals",
               lambda a: a["contributions"][0].update(indicator="School_Dropout")),
        broken(alert, "a contribution without evidence", lambda a: a["contributions"][0].pop("evidence")),
        broken(alert, "an evidence value 'five'",
               lambda a: a["contributions"][0]["evidence"]["values"].update(dropouts="five")),
        broken(alert, "an evidence value '<0'",
               lambda a: a["contributions"][0]["evidence"]["values"].update(dropouts="<0")),
        broken(alert, "an evidence value as a list",
               lambda a: a["contributions"][0]["evidence"]["values"].update(dropouts=[3])),
        broken(alert, "a data gap with status ok",
               lambda a: a.update(data_gaps=[{"indicator": "x", "status": "ok", "newest": None}])),
        broken(data_event, "a data event without gap", lambda a: a.pop("gap")),
        broken(data_event, "a data event without alert_id", lambda a: a.pop("alert_id")),
        broken(data_event, "a data event with a level change",
               lambda a: a.update(level="critical", previous_level="none")),
        broken(data_event, "a data event acknowledged",
               lambda a: a.update(acknowledged={"by": "desk", "at": a["at"]})),
        broken(data_event, "gap.age_s negative", lambda a: a["gap"].update(age_s=-1)),
        broken(data_event, "gap.since null", lambda a: a["gap"].update(since=None)),
        broken(data_event, "data_restored with a stale gap",
               lambda a: (a.update(event="data_restored"), a["gap"].update(status="stale"))),
        broken(data_event, "data_gap with gap status ok",
               lambda a: (a.update(event="data_gap"), a["gap"].update(status="ok"))),
    ]
    for instance, why in cases:
        schemas.must_fail("alert.json", instance, why)
    hb_cases = [broken(heartbeat, "seq negative", lambda h: h.update(seq=-1)),
                broken(heartbeat, "at missing", lambda h: h.pop("at")),
                broken(heartbeat, "the alert schema", lambda h: h.update(schema="ews.alert/1"))]
    for instance, why in hb_cases:
        schemas.must_fail("heartbeat.json", instance, why)
    ops_cases = [broken(ops, "plugin missing", lambda o: o.pop("plugin")),
                 broken(ops, "reason empty", lambda o: o.update(reason="")),
                 broken(ops, "seq 0", lambda o: o.update(seq=0))]
    for instance, why in ops_cases:
        schemas.must_fail("ops.json", instance, why)
    replay = {"events": [{"topic": "alert/%s/%s/" % (alert["locality"]["region"], alert["locality"]["id"]),
                          "payload": copy.deepcopy(alert)}], "last_seq": alert["seq"], "more": False}
    reply_cases = [
        ("query-reply-replay.json", broken(replay, "more missing", lambda r: r.pop("more"))),
        ("query-reply-replay.json", broken(replay, "a broken payload inside",
                                           lambda r: r["events"][0]["payload"].update(level="severe"))),
        ("query-reply-replay.json", broken(replay, "an alert topic without its trailing /",
                                           lambda r: r["events"][0].update(topic=r["events"][0]["topic"][:-1]))),
        ("query-reply-snapshot.json", broken({"alerts": [copy.deepcopy(alert)], "seq": 1},
                                             "a resolved alert in a snapshot",
                                             lambda r: r["alerts"][0].update(event="resolved", level="none",
                                                                             previous_level="warning"))),
        ("query-reply-error.json", ({"error": ""}, "an empty error")),
        ("query-reply-status.json", ({"schema": "ews.status/2"}, "another status schema")),
    ]
    for name, (instance, why) in reply_cases:
        schemas.must_fail(name, instance, why)
    total = len(cases) + len(hb_cases) + len(ops_cases) + len(reply_cases)
    check(True, "%d broken copies of real payloads and replies fail validation" % total)


def protocol_examples(schemas):
    """The JSON examples of docs/protocol.md agree with the schemas: the normative text and
    the schemas cannot drift apart unnoticed. Examples with elided fields ("...") are skipped."""
    with open(os.path.join(SOURCE, "docs", "protocol.md")) as f:
        blocks = re.findall(r"^```json\n(.*?)^```", f.read(), re.S | re.M)
    by_schema = {"ews.alert/1": "alert.json", "ews.heartbeat/1": "heartbeat.json", "ews.ops/1": "ops.json"}
    kinds = Counter()
    for block in blocks:
        example = json.loads(block)
        where = "docs/protocol.md example %s" % json.dumps(example)[:80]
        if '"..."' in json.dumps(example):
            kinds["elided"] += 1
        elif "schema" in example:
            schemas.validate(by_schema[example["schema"]], example, where)
            kinds[example["schema"]] += 1
        elif "op" in example and example.get("since") == -1:
            schemas.must_fail("query-request.json", example, "since -1, the example of an error")
            kinds["refused request"] += 1
        elif "op" in example:
            schemas.validate("query-request.json", example, where, strict=False)
            kinds["request"] += 1
        elif "error" in example:
            schemas.validate("query-reply-error.json", example, where)
            kinds["error"] += 1
        else:
            fail("%s: no schema describes it" % where)
    check(kinds == Counter({"ews.alert/1": 1, "ews.heartbeat/1": 1, "ews.ops/1": 1, "request": 3,
                            "refused request": 1, "error": 1, "elided": 2}),
          "the %d JSON examples of docs/protocol.md agree with the schemas: %s" % (len(blocks), dict(kinds)))


def wait_spooled(ws, names, listener, seconds=90):
    """Waits until the daemon has taken every named spool file (moved to done/ or failed/)
    and evaluated after the last one; `listener` receives meanwhile."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        taken = all(any(os.path.exists(os.path.join(ws.spool, d, n)) for d in ("done", "failed"))
                    for n in names)
        log = ws.log_text()
        at = log.rfind(names[-1])
        if taken and at >= 0 and log.find("evaluation (", at) >= 0:
            return
        listener.receive(0.2)
    fail("the daemon did not take and evaluate %s within %d s" % (names, seconds))


def demo_daemon(schemas, tally):
    """(1): demo data, a feed of weeks, reminders and a plugin quarantined."""
    plugins = tempfile.mkdtemp(prefix="ewsd-it-schema-")
    for so in glob.glob(os.path.join(PLUGINS, "*.so")):
        shutil.copy(so, plugins)
    shutil.copy(os.path.join(FIXTURES, "fixture_throws.so"), plugins)
    ws = Workspace(plugin_dir=plugins)
    try:
        with open(ws.config) as f:
            text = f.read()
        text = text.replace("heartbeat_s = 1", "heartbeat_s = 1\nquarantine_after = 2")
        text = text.replace("evaluate_every_s = 3600", "evaluate_every_s = 2")
        text = text.replace("[scoring]\n", "[scoring]\nrepeat_every_s = 3\n", 1)
        with open(ws.config, "w") as f:
            f.write(text)
        data, _ = ws.gen_demo(localities=240, seed=11, feed_weeks=8)
        ws.drop(os.path.join(data, "history.csv"))
        listener = Listener(ws.pub, schemas, tally)  # before the daemon binds: nothing is missed
        ws.start()
        check(ws.wait_log("evaluation (full)", timeout=120), "ewsd (demo data) evaluated the history")
        listener.receive(2)
        feed = sorted(glob.glob(os.path.join(data, "feed", "*.csv")))
        for f in feed:
            ws.drop(f)
            listener.receive(1.5)
        wait_spooled(ws, [os.path.basename(f) for f in feed], listener)
        listener.receive(3)
        events = Counter(a["event"] for a in listener.alerts)
        check(len(listener.alerts) >= 200 and len(events) >= 5,
              "%d live alert events of %d kinds validated: %s"
              % (len(listener.alerts), len(events), dict(sorted(events.items()))))
        for kind in ("raised", "escalated", "reminder", "data_gap", "data_restored"):
            check(events[kind] >= 1, "%d %s events among them" % (events[kind], kind))
        statuses = Counter(c["status"] for a in listener.alerts for c in a["contributions"])
        check(statuses["error"] >= 1 and statuses["ok"] >= 1,
              "contributions of every status validated: %s" % dict(statuses))
        suppressed = sum(1 for a in listener.alerts for c in a["contributions"]
                         for v in c["evidence"]["values"].values() if isinstance(v, str))
        check(suppressed >= 1, "%d suppressed counts (\"<5\") validated" % suppressed)
        check(len(listener.ops) == 1, "one plugin_quarantined ops event validated: %s" % listener.ops)
        check(len(listener.heartbeats) >= 10, "%d heartbeats validated" % len(listener.heartbeats))

        region = listener.alerts[0]["locality"]["region"].split("/")
        replayed, ops = exercise_queries(schemas, tally, ws.query, "alert/%s/%s/" % tuple(region[:2]), 97)
        for e in replayed:
            where = "replayed seq %d" % e["payload"]["seq"]
            if e["topic"].startswith("alert/"):
                check_alert(schemas, e["topic"], e["payload"], where)
            else:
                check_ops(schemas, e["topic"], e["payload"], where)
        check(ops and ops[0]["payload"] == listener.ops[0], "the ops event replays as published")
        live = {a["seq"]: a for a in listener.alerts}
        same = sum(1 for e in replayed if live.get(e["payload"]["seq"]) == e["payload"])
        check(same == len(listener.alerts), "%d live alerts equal their replayed copies" % same)

        data_event = next(a for a in listener.alerts if a["event"] == "data_gap")
        with_values = next(a for a in listener.alerts
                           if a["event"] in ("raised", "escalated", "reminder")
                           and a["contributions"][0]["evidence"]["values"])
        broken_payloads_fail(schemas, with_values, data_event, listener.heartbeats[-1], listener.ops[0])
        rc, _ = ws.stop()
        check(rc == 0, "ewsd (demo data) stopped cleanly")
        listener.close()
    finally:
        ws.cleanup()
        shutil.rmtree(plugins, ignore_errors=True)


def scripted_daemon(schemas, tally):
    """(2): fixture_scripted scores the latest script.risk value / 100, so each week's value
    is the locality's composite risk. Thresholds (raise/clear): watch 45/35, warning 60/50,
    critical 80/70; raise_after 1, clear_after 2; evaluations every second; flap window 5
    samples (4 transitions, weighted 0.75, 0.917, 1.083, 1.25 from oldest), high 60, low 30."""
    plugins = tempfile.mkdtemp(prefix="ewsd-it-schema-")
    shutil.copy(os.path.join(FIXTURES, "fixture_scripted.so"), plugins)
    ws = Workspace(plugin_dir=plugins, extra_config="""
[scoring.flapping]
window = 5
high = 60
low = 30
""")
    try:
        with open(ws.config) as f:
            text = f.read()
        with open(ws.config, "w") as f:
            f.write(text.replace("evaluate_every_s = 3600", "evaluate_every_s = 1"))
        localities = os.path.join(ws.dir, "localities.csv")
        with open(localities, "w") as f:
            f.write("id,name,region,population,neighbours\n"
                    "S-1,Steady One,SC/SC-1,500,\nF-1,Flapping One,SC/SC-2,500,\nG-1,Gap One,SC/SC-3,500,\n")
        ws.ewsctl("localities", "import", localities)
        # Step k observes day today - 12 + k (within max_age_days 14, so status ok); G-1's
        # first value is 20 days old (stale: a data_gap) and a fresh one at step 4 restores it.
        # S-1: 90 raises critical; acknowledged; 65 (below critical's clear 70) de-escalates
        #      to warning after 2 evaluations; 10 resolves after 2 more. Its samples change at
        #      steps 0, 3 and 7 only: at most two changes in a window, 0.75 + 1.25 = 2.0 of
        #      4 = 50% < 60, so it never flaps.
        # F-1: 90, 10, 90: three changes, 0.917 + 1.083 + 1.25 = 3.25 of 4 = 81% >= 60 at
        #      step 2: flapping_started. Steady 90 after: at step 4 the changes of steps 1 and
        #      2 are the oldest two, 0.75 + 0.917 = 1.67 of 4 = 42% >= 30, still flapping; at
        #      step 5 only step 2's, 0.75 of 4 = 19% < 30: flapping_stopped, then the net
        #      change.
        script = [  # (S-1, F-1, G-1 value and its age in days)
            (90, 90, (20, 20)), (90, 10, None), (90, 90, None), (65, 90, None),
            (65, 90, (25, 0)), (65, 90, None), (65, 90, None), (10, 90, None)]
        listener = Listener(ws.pub, schemas, tally)
        ws.start()
        check(ws.wait_log("evaluation (full)", timeout=60), "ewsd (scripted fixture) started")
        listener.receive(1.5)

        def on(event, locality):
            return lambda a: a["event"] == event and a["locality"]["id"] == locality

        waits = {0: [on("raised", "S-1"), on("data_gap", "G-1")], 2: [on("flapping_started", "F-1")],
                 3: [on("deescalated", "S-1")], 4: [on("data_restored", "G-1")],
                 5: [on("flapping_stopped", "F-1")], 7: [on("resolved", "S-1")]}
        for k, (s1, f1, g1) in enumerate(script):
            day = today() - datetime.timedelta(days=12 - k)
            rows = ["S-1,%s,script.risk,%s" % (day, s1), "F-1,%s,script.risk,%s" % (day, f1)]
            if g1:
                rows.append("G-1,%s,script.risk,%s" % (today() - datetime.timedelta(days=g1[1]), g1[0]))
            name = "step%02d.csv" % k
            path = os.path.join(ws.dir, name)
            with open(path, "w") as f:
                f.write("locality,time,kind,value\n" + "\n".join(rows) + "\n")
            ws.drop(path)
            wait_spooled(ws, [name], listener, 30)  # one evaluation per step: one flap sample each
            listener.receive(2.5)  # two more evaluations: what clear_after needs
            for predicate in waits.get(k, []):
                if not listener.wait_for(predicate, 10):
                    fail("step %d: an expected event did not arrive; received %s"
                         % (k, [(a["seq"], a["event"], a["locality"]["id"]) for a in listener.alerts]))
            if k == 0:
                alert = next(a for a in listener.alerts if on("raised", "S-1")(a))
                ws.ewsctl("ack", alert["id"], "--by", "duty-desk")
        listener.receive(2)
        events = Counter(a["event"] for a in listener.alerts)
        for kind in ("raised", "deescalated", "resolved", "flapping_started", "flapping_stopped",
                     "data_gap", "data_restored"):
            check(events[kind] >= 1, "scripted: %d %s events validated" % (events[kind], kind))
        acked = [a for a in listener.alerts if a["acknowledged"] is not None]
        check(any(a["event"] == "deescalated" and a["acknowledged"]["by"] == "duty-desk" for a in acked),
              "the de-escalation of the acknowledged alert carries acknowledged {by, at}")
        restored = next(a for a in listener.alerts if a["event"] == "data_restored")
        check(restored["gap"]["status"] == "ok" and restored["gap"]["age_s"] is not None,
              "data_restored carries its gap with status ok: %s" % restored["gap"])
        replayed, _ = exercise_queries(schemas, tally, ws.query, "alert/SC/SC-1/", 4)
        for e in replayed:
            check_alert(schemas, e["topic"], e["payload"], "replayed seq %d" % e["payload"]["seq"])
        live = [a for a in listener.alerts]
        check([e["payload"] for e in replayed] == live,
              "every scripted event was received live, and equals its replayed copy (%d)" % len(live))
        rc, _ = ws.stop()
        check(rc == 0, "ewsd (scripted fixture) stopped cleanly")
        listener.close()
    finally:
        ws.cleanup()
        shutil.rmtree(plugins, ignore_errors=True)


def main():
    schemas = Schemas()
    protocol_examples(schemas)
    tally = Counter()
    demo_daemon(schemas, tally)
    scripted_daemon(schemas, tally)
    alerts = sum(n for k, n in tally.items() if k.startswith("alert "))
    kinds = sorted(k[len("alert "):] for k in tally if k.startswith("alert "))
    print("validated live messages: %s" % ", ".join("%s %d" % (k, n) for k, n in sorted(tally.items())))
    print("validations per schema: %s" % ", ".join("%s %d" % (k, n) for k, n in sorted(schemas.count.items())))
    check(alerts >= 300 and len(kinds) >= 8,
          "%d live alert messages of %d event kinds validated (%s)" % (alerts, len(kinds), ", ".join(kinds)))
    check(all(schemas.count[name] >= 1 for name in SCHEMA_FILES),
          "every schema validated real traffic: %s" % dict(schemas.count))


if __name__ == "__main__":
    main()
