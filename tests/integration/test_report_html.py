"""`ewsctl report --html` on generated demo data, checked as a file and in headless Chromium.

A store is filled the way an operator would: localities imported, a year of history
ingested, then `ewsctl evaluate` at weekly times over the last eight weeks of the data, so
the outbox holds published alert events (raise_after = 2). The report of every region and
the report of one province are written as of the last evaluation.

- Ranking: the rows (tr[data-locality]) are the open alerts of `ewsctl alerts --format
  json` within the scope, at watch or above, each once with its level. The report splits
  them into a table per region (a printed page each); every table lists its rows in rank
  order (level descending, composite score descending, then id), and the rank a row shows
  is its place in the whole scope. A chart (figure[data-chart]) for each one at warning or
  above, and for no other.
- The file stands alone: no script, no reference to any other resource, no NaN; the scope
  and the generation time in its header and its footer; in the province's report, no
  locality id, name or region outside the province anywhere.
- In Chromium over the DevTools protocol: no console error, no exception, no error log
  entry, no request but the file itself; the rows in the DOM as above, SVG present.
  Screenshots (full page, and 390 px wide as on a phone) and a PDF are written to
  <build>/report/ for people to look at, with the HTML itself; the PDF has a page per region with alerts.

Needs Chromium (Debian: chromium) and python3-websocket: `./run deps` installs them. Under
the sanitizers (EWS_SANITIZED) the browser part is skipped: the ewsctl parts still run.
"""
import csv
import datetime
import html
import json
import os
import re
import shutil
import time

from harness import BUILD, PLUGINS, Workspace, check, fail

SEED = 11
LOCALITIES = 300
END = datetime.date(2026, 3, 15)  # fixed: the scenario, hence every expectation, is the same each run
WEEKS = 8                         # evaluations at END - 8 weeks .. END, a week apart
SCOPE = "DM/DM-1"                 # a province: its districts DM-11.. start with its own code
LEVELS = ["none", "watch", "warning", "critical"]
WAIT_S = 30.0
PHONE_WIDTH = 390


def verify(condition, message, detail=""):
    """check(), with details (long lists, excerpts) printed only when it fails."""
    if not condition and detail:
        message += "\n  " + detail
    check(condition, message)


def sanitized():
    return os.environ.get("EWS_SANITIZED", "").strip().upper() in ("1", "ON", "TRUE", "YES")


def evaluation_time(date):
    return date.isoformat() + "T12:00:00Z"


def write_config(ws):
    """The demo's scoring and alerting (config/demo.toml) with this build's plugins."""
    with open(ws.config, "w") as f:
        f.write(f"""
[daemon]
state_dir = "state"
plugin_dir = "{PLUGINS}"

[scoring]
raise_after = 2
clear_after = 3
repeat_every_s = 604800

[scoring.weights]
school_dropout = 1.0
community_incidents = 1.0
group_presence = 1.0

[scoring.levels.watch]
raise = 45
clear = 35

[scoring.levels.warning]
raise = 60
clear = 50

[scoring.levels.critical]
raise = 80
clear = 70

[privacy]
min_cell = 5

[plugins.school_dropout]

[plugins.community_incidents]

[plugins.group_presence]

[actions]
watch = ["Share with the community child-protection committee for review"]
warning = ["Convene the community child-protection committee within a week"]
critical = ["Activate referral pathways for recovery and reintegration support"]
""")


def in_scope(region, scope):
    return scope == "" or region == scope or region.startswith(scope + "/")


def expected_rows(alerts, scope):
    """Returns: the alerted localities in scope, in the report's rank order."""
    rows = [a for a in alerts if LEVELS.index(a["level"]) >= 1 and in_scope(a["region"], scope)]
    rows.sort(key=lambda a: (-LEVELS.index(a["level"]), -a["score"], a["locality"]))
    return rows


def rank_key(alert):
    # The exports give scores to 0.1; the report ranks by the composite it computed. Two
    # localities at one level whose scores round alike may therefore be in either order
    # (their id decides only when the scores are truly equal): they share a key, and the
    # checks accept any order within it.
    return (-LEVELS.index(alert["level"]), -alert["score"])


def element_texts(text, tag):
    return [m.group(1) for m in re.finditer(r"<%s\b[^>]*>(.*?)</%s\s*>" % (tag, tag), text, re.S | re.I)]


def visible(fragment):
    """The text of an HTML fragment with tags removed and entities decoded, spaces folded."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def generation_stamps(started, finished):
    """Every way a generation time between `started` and `finished` (UTC, to the minute)
    may be written: RFC 3339 or with a space, with or without seconds."""
    stamps = set()
    t = started.replace(second=0, microsecond=0)
    while t <= finished:
        for sep in ("T", " "):
            stamps.add(t.strftime("%Y-%m-%d" + sep + "%H:%M"))
        t += datetime.timedelta(minutes=1)
    return stamps


def write_report(ws, out, *args):
    started = datetime.datetime.now(datetime.timezone.utc)
    r = ws.ewsctl("report", "--html", out, *args, check_rc=False)
    finished = datetime.datetime.now(datetime.timezone.utc)
    check(r.returncode == 0, "report --html %s exits 0 (%d): %s%s"
          % (" ".join(args), r.returncode, r.stdout.strip(), r.stderr.strip()))
    check(os.path.isfile(out) and os.path.getsize(out) > 0, "the report file %s is written" % out)
    with open(out, encoding="utf-8") as f:
        return f.read(), generation_stamps(started, finished)


def ranked_rows(fragment):
    """Returns: (locality, level) of each tr[data-locality] in document order."""
    rows = []
    for m in re.finditer(r"<tr\b([^>]*)>", fragment, re.I):
        attrs = dict((k.lower(), html.unescape(v))
                     for k, v in re.findall(r'([\w:-]+)\s*=\s*"([^"]*)"', m.group(1)))
        if "data-locality" in attrs:
            rows.append((attrs["data-locality"], attrs.get("data-level")))
    return rows


def ranked_tables(text):
    """Returns: the ranked rows of each table that has any, in document order."""
    tables = [ranked_rows(t) for t in re.findall(r"<table\b.*?</table\s*>", text, re.I | re.S)]
    return [t for t in tables if t]


def chart_ids(text):
    return [html.unescape(v) for v in re.findall(r'<figure\b[^>]*\bdata-chart\s*=\s*"([^"]*)"', text, re.I)]


def check_rank_order(name, tables, expected):
    """The report may split its ranking into tables (a page per region): each table lists
    its localities in the rank order, and together they hold each expected locality once."""
    ids = [a["locality"] for a in expected]
    keys = sorted({rank_key(a) for a in expected})
    group = {a["locality"]: keys.index(rank_key(a)) for a in expected}
    flat = [l for t in tables for l in t]
    verify(sorted(flat) == sorted(ids),
           "%s: the ranked tables hold each of the %d open alerts in scope once, and nothing else"
           % (name, len(ids)), "report:   %s\n  expected: %s" % (sorted(flat), sorted(ids)))
    unordered = [t for t in tables if [group[l] for l in t] != sorted(group[l] for l in t)]
    verify(not unordered, "%s: each of the %d tables is in rank order (level, score, id)" % (name, len(tables)),
           "\n  ".join("table:    %s\n  expected: %s" % (t, sorted(t, key=ids.index)) for t in unordered))
    return group


def check_ranking(name, text, expected):
    tables = ranked_tables(text)
    rows = ranked_rows(text)
    check([r for t in tables for r in t] == rows, "%s: every ranked row is in a table" % name)
    group = check_rank_order(name, [[r[0] for r in t] for t in tables], expected)
    level = {a["locality"]: a["level"] for a in expected}
    wrong = [r for r in rows if r[1] != level[r[0]]]
    verify(not wrong, "%s: each row's data-level is its alert's level" % name, "wrong: %s" % wrong[:5])
    # The rank shown in each row (when the report numbers them): its place in the whole scope.
    ranks = {}
    for m in re.finditer(r'<tr\b[^>]*data-locality="([^"]*)"[^>]*>(.*?)</tr\s*>', text, re.I | re.S):
        n = re.search(r'class="rank"[^>]*>\s*(\d+)\s*<', m.group(2))
        if n:
            ranks[html.unescape(m.group(1))] = int(n.group(1))
    if ranks:
        # Places first..last (1-based) of each key: a row's rank lies within its key's.
        places = {}
        for i, a in enumerate(expected):
            first, _ = places.get(group[a["locality"]], (i + 1, i + 1))
            places[group[a["locality"]]] = (first, i + 1)
        wrong = [(l, r) for l, r in ranks.items()
                 if not places[group[l]][0] <= r <= places[group[l]][1]]
        verify(sorted(ranks.values()) == list(range(1, len(expected) + 1)) and not wrong,
               "%s: the rank numbered in each row is its place in the scope's ranking" % name,
               "ranks %s; wrong: %s" % (sorted(ranks.items(), key=lambda x: x[1]), wrong[:5]))
    else:
        print("note: %s: the rows carry no rank number" % name)
    charted = sorted(a["locality"] for a in expected if LEVELS.index(a["level"]) >= 2)
    verify(sorted(chart_ids(text)) == charted,
           "%s: a chart for each of the %d localities at warning or above, and no other" % (name, len(charted)),
           "charts: %s\n  expected: %s" % (sorted(chart_ids(text)), charted))
    return tables


def check_self_contained(name, text):
    check(re.search(r"<script", text, re.I) is None, "%s: no <script" % name)
    check(re.search(r"<(link|iframe|object|embed|img|video|audio|source)\b", text, re.I) is None
          and re.search(r"@import", text, re.I) is None,
          "%s: no <link>, <img>, <iframe>, embedded object or @import" % name)
    refs = re.findall(r"""\b(?:src|href|xlink:href|srcset|action|poster|data)\s*=\s*["']?\s*([^"'\s>]*)""",
                      text, re.I)
    refs += re.findall(r"""url\(\s*["']?\s*([^"')\s]*)""", text, re.I)
    outside = [r for r in refs if not (r.startswith("#") or r.startswith("data:"))]
    verify(not outside, "%s: every src, href and url() is a fragment or data: (%d of them)" % (name, len(refs)),
           "others: %s" % outside[:5])
    # The only URLs allowed are XML namespace names (xmlns="http://www.w3.org/2000/svg"),
    # which are identifiers, never fetched.
    fetched = []
    for m in re.finditer(r"https?://[^\s\"'<>)]*", text, re.I):
        before = text[max(0, m.start() - 24):m.start()]
        if not (re.search(r"xmlns(:\w+)?\s*=\s*[\"']$", before) and "w3.org/" in m.group(0)):
            fetched.append(m.group(0))
    verify(not fetched, "%s: no http(s) URL but XML namespaces" % name, "found: %s" % fetched[:5])
    protocol_relative = [m.group(0) for m in re.finditer(r"""(?:=\s*["']?|url\(\s*["']?)//[^\s"'<>)]*""", text)]
    verify(not protocol_relative, "%s: no protocol-relative // reference" % name,
           "found: %s" % protocol_relative[:5])
    bad_numbers = [text[max(0, m.start() - 40):m.end() + 40]
                   for m in re.finditer(r"(?<![A-Za-z])(?:nan|NaN|NAN|inf|Infinity)(?![A-Za-z])", text)]
    verify(not bad_numbers, "%s: no NaN or infinity anywhere" % name, "found: %s" % bad_numbers[:3])


def check_header_footer(name, text, scope_texts, stamps):
    for tag in ("header", "footer"):
        parts = element_texts(text, tag)
        if not parts:
            fail("%s: the page has no <%s>" % (name, tag))
        words = " ".join(visible(p) for p in parts)
        verify(any(s in words for s in scope_texts), "%s: the %s names the scope %r" % (name, tag, scope_texts[0]),
               "its text: %r" % words[:400])
        verify(any(s in words for s in stamps),
               "%s: the %s carries the generation time (%s)" % (name, tag, min(stamps)[:10]),
               "its text: %r\n  expected a time from %s to %s" % (words[:400], min(stamps), max(stamps)))


def check_nothing_outside(name, text, localities, scope):
    """No id, name or region of a locality outside `scope` appears anywhere in the file."""
    inside = [l for l in localities if in_scope(l["region"], scope)]
    outside = [l for l in localities if not in_scope(l["region"], scope)]
    check(inside and outside, "%s: %d localities inside and %d outside the scope" % (name, len(inside), len(outside)))
    inside_tokens = [l["id"] for l in inside] + [l["region"] for l in inside] + [l["name"] for l in inside]

    # Ids: a plain substring search is only meaningful when no outside id is part of an
    # inside id, name or region (the generator pads ids to one width: DM-21-003 is never
    # part of DM-11-003 or DM-21-0031). Make sure, so the search cannot miss or misfire.
    ambiguous = [o["id"] for o in outside if any(o["id"] in t for t in inside_tokens)]
    verify(not ambiguous, "%s: no outside id is part of an inside id, name or region" % name,
           "ambiguous: %s" % ambiguous[:5])
    leaked = [o["id"] for o in outside if o["id"] in text]
    verify(not leaked, "%s: none of the %d locality ids outside %s appears in the file" % (name, len(outside), scope),
           "found: %s" % leaked[:10])

    # Regions: every outside region path, each of its ancestors that is not the scope's own
    # ancestor, and each one's last component (a district code, e.g. DM-21) as a whole token.
    scope_ancestors = {"/".join(scope.split("/")[:i]) for i in range(1, scope.count("/") + 2)}
    regions = set()
    for o in outside:
        parts = o["region"].split("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if prefix not in scope_ancestors:
                regions.add(prefix)
    leaked = []
    for region in sorted(regions):
        code = region.split("/")[-1]
        for needle in {region, code}:
            for m in re.finditer(r"(?<![\w-])%s(?![\w-])" % re.escape(needle), text):
                leaked.append("%s: ...%s..." % (needle, text[max(0, m.start() - 40):m.end() + 40]))
    verify(not leaked, "%s: none of the %d regions outside the scope appears" % (name, len(regions)),
           "found: %s" % leaked[:5])

    # Names: those of outside localities that no inside locality shares, as whole words.
    inside_names = {l["name"] for l in inside}
    leaked, checked = [], 0
    for o in outside:
        if o["name"] in inside_names or any(o["name"] in t for t in inside_names):
            continue
        checked += 1
        for form in {o["name"], html.escape(o["name"], quote=True)}:
            if re.search(r"(?<![\w])%s(?![\w])" % re.escape(form), text):
                leaked.append(o["name"])
    verify(not leaked, "%s: no name of the %d localities outside the scope (none shared with one inside) appears" % (name, checked),
           "found: %s" % leaked[:10])


# ---- the browser ------------------------------------------------------------------------
def browse(reports, shots_dir, regions_alerted):
    """Loads each report in headless Chromium and checks it; writes screenshots and a PDF
    of the first. `reports`: [(name, path, expected alerts in rank order, ids in the file)]."""
    try:
        import cdp
    except ImportError as e:
        fail("the DevTools client needs python3-websocket (%s): run `./run deps`" % e)
    chromium = cdp.find_chromium()
    if chromium is None:
        fail("Chromium is not installed (looked for %s): run `./run deps`" % ", ".join(cdp.searched()))
    started = time.monotonic()
    browser = cdp.Browser(chromium, timeout=WAIT_S)
    try:
        try:
            browser.start()
        except cdp.CdpError as e:
            fail("headless Chromium did not start: %s" % e)
        for index, (name, path, expected, in_file) in enumerate(reports):
            url = cdp.file_url(path)
            try:
                session = browser.new_page()
                browser.navigate(session, url)
                browser.drain(0.5)  # late console messages or requests
            except cdp.CdpError as e:
                fail("%s: loading %s in Chromium: %s" % (name, url, e))
            errors = [p.get("args") for m, p in browser.session_events(session, "Runtime.consoleAPICalled")
                      if p.get("type") in ("error", "assert")]
            verify(not errors, "%s: no console error in Chromium" % name, "errors: %s" % errors[:3])
            thrown = [p.get("exceptionDetails", {}).get("text")
                      for m, p in browser.session_events(session, "Runtime.exceptionThrown")]
            verify(not thrown, "%s: no exception thrown" % name, "thrown: %s" % thrown[:3])
            logged = [p["entry"].get("text") + " " + p["entry"].get("url", "")
                      for m, p in browser.session_events(session, "Log.entryAdded")
                      if p["entry"].get("level") == "error"]
            verify(not logged, "%s: no error in Chromium's log" % name, "logged: %s" % logged[:3])
            requests = [p["request"]["url"] for m, p in browser.session_events(session, "Network.requestWillBeSent")]
            verify(url in requests, "%s: Chromium requested the file itself" % name,
                   "requests: %s; the file: %s" % (requests[:5], url))
            others = [u for u in requests if u != url and not u.startswith(("data:", "about:"))]
            verify(not others, "%s: no request but the file itself (%d requests)" % (name, len(requests)),
                   "others: %s" % others[:5])
            try:
                ids = browser.evaluate(session, "Array.from(document.querySelectorAll('tr[data-locality]'),"
                                                " e => e.getAttribute('data-locality'))")
                tables = browser.evaluate(session, "Array.from(document.querySelectorAll('table'), t =>"
                                                   " Array.from(t.querySelectorAll('tr[data-locality]'),"
                                                   " e => e.getAttribute('data-locality')))"
                                                   ".filter(t => t.length > 0)")
                svgs = browser.evaluate(session, "document.querySelectorAll('svg').length")
            except cdp.CdpError as e:
                fail("%s: asking the page: %s" % (name, e))
            verify(ids == in_file, "%s: the DOM's ranked rows are the file's, in its order (%d rows)"
                   % (name, len(in_file)), "DOM: %s\n  file: %s" % (ids, in_file))
            check_rank_order(name + " (DOM)", tables, expected)
            check(svgs >= 1, "%s: the page has %d svg elements" % (name, svgs))
            if index > 0:
                continue
            os.makedirs(shots_dir, exist_ok=True)
            try:
                first = browser.screenshot(session, 1280, max_height=900)
                wide = browser.screenshot(session, 1280)
                wide_layout = browser.layout
                phone = browser.screenshot(session, PHONE_WIDTH, mobile=True)
                phone_layout = browser.layout
                pdf = browser.pdf(session)
            except cdp.CdpError as e:
                fail("%s: screenshots and PDF: %s" % (name, e))
            for file_name, data in (("report_demo_first_screen.png", first), ("report_demo.png", wide),
                                    ("report_demo_phone.png", phone)):
                out = os.path.join(shots_dir, file_name)
                with open(out, "wb") as f:
                    f.write(data)
                check(data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20000,
                      "%s is a PNG of %d bytes" % (out, len(data)))
            print("the page is %(width)s x %(height)s px in a 1280 px window" % wide_layout)
            check(phone_layout["width"] <= PHONE_WIDTH,
                  "on a phone (%d px) the page is %s px wide: no sideways scrolling (%s px tall)"
                  % (PHONE_WIDTH, phone_layout["width"], phone_layout["height"]))
            shutil.copyfile(path, os.path.join(shots_dir, "report_demo.html"))
            out = os.path.join(shots_dir, "report_demo.pdf")
            with open(out, "wb") as f:
                f.write(pdf)
            pages = cdp.pdf_pages(pdf)
            check(pdf.startswith(b"%PDF-") and len(pdf) > 10000, "%s is a PDF of %d bytes" % (out, len(pdf)))
            # A page per region with alerts (report.hpp): at least that many page objects.
            verify(pages >= regions_alerted and pages > 1,
                   "%s: the PDF has %d pages, a page or more for each of the %d regions with alerts"
                   % (out, pages, regions_alerted))
    finally:
        browser.close()
    left = browser.leftover_processes()
    verify(not left, "no Chromium process is left behind", "left: %s" % left)
    print("browser part: %.1f s" % (time.monotonic() - started))


# ---- the test ---------------------------------------------------------------------------
def main():
    started = time.monotonic()
    if not sanitized():
        # Fail early, before any work, when the browser part cannot run.
        try:
            import cdp
        except ImportError as e:
            fail("the DevTools client needs python3-websocket (%s): run `./run deps`" % e)
        if cdp.find_chromium() is None:
            fail("Chromium is not installed (looked for %s): run `./run deps`" % ", ".join(cdp.searched()))
    ws = Workspace()
    try:
        write_config(ws)
        data = os.path.join(ws.dir, "data")
        ws.ewsctl("gen-demo", data, "--localities", str(LOCALITIES), "--years", "1", "--seed", str(SEED),
                  "--feed-weeks", "0", "--end", END.isoformat())
        ws.ewsctl("localities", "import", os.path.join(data, "localities.csv"))
        r = ws.ewsctl("ingest", os.path.join(data, "history.csv"))
        check("0 rejected" in r.stdout, "the history is ingested: %s" % r.stdout.strip())
        with open(os.path.join(data, "localities.csv"), newline="") as f:
            localities = list(csv.DictReader(f))

        times = [evaluation_time(END - datetime.timedelta(weeks=WEEKS - k)) for k in range(WEEKS + 1)]
        for t in times:
            ws.ewsctl("evaluate", "--at", t)
        at = times[-1]

        r = ws.ewsctl("alerts", "--format", "json")
        try:
            alerts = json.loads(r.stdout)
        except ValueError as e:
            fail("alerts --format json printed no JSON (%s): %r" % (e, r.stdout[:300]))
        check(isinstance(alerts, list) and all({"id", "locality", "name", "region", "level", "score", "opened_at"}
                                               <= set(a) for a in alerts),
              "alerts --format json is an array of alerts with id, locality, name, region, level, "
              "score and opened_at")
        ranked = expected_rows(alerts, "")
        warned = [a for a in ranked if LEVELS.index(a["level"]) >= 2]
        regions_alerted = {a["region"] for a in ranked}
        verify(len(ranked) >= 5 and warned and len(regions_alerted) > 1,
               "the scenario has %d open alerts in %d regions, %d at warning or above"
               % (len(ranked), len(regions_alerted), len(warned)))
        scoped = expected_rows(alerts, SCOPE)
        check(scoped and any(LEVELS.index(a["level"]) >= 2 for a in scoped)
              and len(scoped) < len(ranked),
              "%s has %d of the %d open alerts, one at warning or above" % (SCOPE, len(scoped), len(ranked)))

        # The report takes scores from its own evaluation at `at`, the alerts from the
        # stored evaluation at the same time: both are the same computation. Check it (to
        # the 0.1 the exports round to), so a difference in rank is the ranking's fault and
        # not a different score.
        r = ws.ewsctl("scores", "--format", "json", "--at", at)
        try:
            scores = json.loads(r.stdout)
        except ValueError as e:
            fail("scores --format json printed no JSON (%s): %r" % (e, r.stdout[:300]))
        check(scores.get("schema") == "ews.scores/1" and scores.get("at") == at
              and len(scores.get("localities", [])) == LOCALITIES,
              "scores --format json is ews.scores/1 as of %s with the %d localities" % (at, LOCALITIES))
        by_id = {l["id"]: l for l in scores["localities"]}
        differing = [(a["locality"], a["score"], by_id.get(a["locality"], {}).get("score"))
                     for a in ranked
                     if by_id.get(a["locality"], {}).get("score") is None
                     or abs(by_id[a["locality"]]["score"] - a["score"]) > 0.05 + 1e-9]
        verify(not differing, "the scores at %s are the alerts' scores of the last evaluation" % at,
               "(locality, alert, scores): %s" % differing[:5])

        out_all = os.path.join(ws.dir, "report.html")
        out_scope = os.path.join(ws.dir, "report-dm1.html")
        text_all, stamps_all = write_report(ws, out_all, "--at", at)
        text_scope, stamps_scope = write_report(ws, out_scope, "--region", SCOPE, "--at", at)

        check_ranking("all regions", text_all, ranked)
        check_ranking(SCOPE, text_scope, scoped)
        check_self_contained("all regions", text_all)
        check_self_contained(SCOPE, text_scope)
        check_header_footer("all regions", text_all, ["All regions", "all regions"], stamps_all)
        check_header_footer(SCOPE, text_scope, [SCOPE], stamps_scope)
        check_nothing_outside(SCOPE, text_scope, localities, SCOPE)
        print("ewsctl part: %.1f s, %d alerts (%d in %s), %d regions with alerts"
              % (time.monotonic() - started, len(ranked), len(scoped), SCOPE, len(regions_alerted)))

        if sanitized():
            print("skipped: the browser part (EWS_SANITIZED: the sanitized build's run stays short)")
        else:
            browse([("all regions", out_all, ranked, [r[0] for r in ranked_rows(text_all)]),
                    (SCOPE, out_scope, scoped, [r[0] for r in ranked_rows(text_scope)])],
                   os.path.join(BUILD, "report"), len(regions_alerted))
        print("total: %.1f s" % (time.monotonic() - started))
    finally:
        ws.cleanup()


if __name__ == "__main__":
    main()
    print("all report checks passed")
