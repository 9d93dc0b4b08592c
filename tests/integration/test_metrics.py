"""The Prometheus endpoint of the real daemon, over real tcp.

ewsd runs on generated demo data with [metrics] bind on a free loopback port and one pyzmq
subscriber on its PUB endpoint. GET /metrics must parse with prometheus_client's parser
(and pass `promtool check metrics` when promtool is installed), carry HELP and TYPE for each
family, and agree with what the daemon says elsewhere: localities, open alerts per level
(the status), published events (the outbox), one subscriber, a full evaluation counted in the
histogram, a database of some size, no outbox lag. HEAD answers without a body, an unknown
path 404. The status reports the subscriber too.
"""
import http.client
import json
import os
import shutil
import subprocess
import time

import zmq
from prometheus_client.parser import text_string_to_metric_families

from harness import Workspace, check, fail, free_port, query, replay_all


def get(port, path, method="GET"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode()
    finally:
        c.close()


def samples(text):
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def main():
    port = free_port()
    ws = Workspace(extra_config='\n[metrics]\nbind = "127.0.0.1:%d"\n' % port)
    sub = None
    try:
        data, _ = ws.gen_demo(localities=240, seed=11, feed_weeks=2)
        sub = zmq.Context.instance().socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt_string(zmq.SUBSCRIBE, "hb/")
        sub.connect(ws.pub)
        ws.start()
        check(ws.wait_log("metrics: serving http://127.0.0.1:%d/metrics" % port, timeout=30),
              "ewsd logs the metrics address")
        check(sub.poll(10000) != 0, "the subscriber is connected (a heartbeat arrived)")
        ws.drop(os.path.join(data, "history.csv"))
        check(ws.wait_log("history.csv: ", timeout=120), "ewsd ingested the history")
        deadline = time.time() + 60
        while time.time() < deadline and "evaluation (incremental)" not in ws.log_text():
            time.sleep(0.2)

        status, headers, body = get(port, "/metrics")
        check(status == 200 and headers.get("Content-Type", "").startswith("text/plain; version=0.0.4"),
              "GET /metrics: 200, text format 0.0.4 (%s)" % headers.get("Content-Type"))
        got = samples(body)
        for family in ("ewsd_ingest_rows_total", "ewsd_evaluation_duration_seconds", "ewsd_open_alerts",
                       "ewsd_outbox_lag_events", "ewsd_database_size_bytes", "ewsd_plugin_assessment_failures_total"):
            check("# HELP %s " % family in body and "# TYPE %s " % family in body, "%s has HELP and TYPE" % family)
        promtool = shutil.which("promtool")
        if promtool:
            r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True)
            check(r.returncode == 0, "promtool check metrics passes: %s" % (r.stdout + r.stderr).strip())
        else:
            print("promtool is not installed: prometheus_client's parser is the check here")

        st = query(ws.query, {"op": "status"})
        check(got[("ewsd_localities", ())] == st["localities"] == 240, "ewsd_localities is 240, as the status says")
        for level in ("watch", "warning", "critical"):
            check(got[("ewsd_open_alerts", (("level", level),))] == st["open_alerts"][level],
                  "open %s alerts agree with the status (%d)" % (level, st["open_alerts"][level]))
        check(got[("ewsd_ingest_rows_total", (("outcome", "committed"),))] == st["ingest"]["rows"] > 0,
              "committed rows agree with the status (%d)" % st["ingest"]["rows"])
        check(got[("ewsd_ingest_batches_total", (("outcome", "committed"),))] == 1, "one committed batch")
        events = replay_all(ws.query)
        published = sum(v for (name, labels), v in got.items()
                        if name == "ewsd_alert_events_published_total" and ("endpoint", "main") in labels)
        check(published == len(events), "events published on main (%d) = the outbox (%d)" % (published, len(events)))
        check(got[("ewsd_outbox_rows", (("endpoint", "main"),))] == len(events), "outbox rows = the outbox")
        check(got[("ewsd_outbox_lag_events", (("endpoint", "main"),))] == 0, "no outbox lag")
        check(got[("ewsd_publish_subscribers", (("endpoint", "main"),))] == 1, "one subscriber on main")
        check(st.get("subscribers") == {"main": 1}, "the status counts the subscriber: %s" % st.get("subscribers"))
        evaluations = sum(v for (name, _), v in got.items() if name == "ewsd_evaluations_total")
        check(got[("ewsd_evaluations_total", (("kind", "full"),))] >= 1, "a full evaluation is counted")
        check(got[("ewsd_evaluation_duration_seconds_count", ())] == evaluations,
              "the duration histogram counts every evaluation (%d)" % evaluations)
        check(got[("ewsd_evaluation_duration_seconds_bucket", (("le", "+Inf"),))] == evaluations,
              "its +Inf bucket equals its count")
        check(got[("ewsd_database_size_bytes", ())] > 4096, "the database has a size (%d bytes)"
              % got[("ewsd_database_size_bytes", ())])
        check(got[("ewsd_plugins", (("state", "loaded"),))] == 3, "three plugins loaded")
        check(any(n == "ewsd_build_info" for n, _ in got), "build info is there")
        for name, labels in got:
            for key, value in labels:
                if key in ("locality", "name", "region", "child", "person"):
                    fail("a metric carries a %s label: %s" % (key, name))

        status, _, body = get(port, "/metrics", "HEAD")
        check(status == 200 and body == "", "HEAD /metrics: 200 without a body")
        status, _, _ = get(port, "/nowhere")
        check(status == 404, "an unknown path: 404")

        sub.close(linger=0)
        sub = None
        deadline = time.time() + 10
        while time.time() < deadline and query(ws.query, {"op": "status"}).get("subscribers") != {"main": 0}:
            time.sleep(0.2)
        check(query(ws.query, {"op": "status"}).get("subscribers") == {"main": 0},
              "the status counts 0 subscribers once it left")
        rc, _ = ws.stop()
        check(rc == 0, "ewsd stops with exit status 0")
    finally:
        if sub is not None:
            sub.close(linger=0)
        ws.cleanup()


if __name__ == "__main__":
    main()
