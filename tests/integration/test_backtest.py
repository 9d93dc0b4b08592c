"""`ewsctl backtest` replays a generated scenario through the shipped plugins, scoring and
alerting of a real configuration, writes the documented JSON figures, ranks better than the
naive incident count, writes nothing but its report, and refuses bad input with exit 2 and
file:line:column."""
import json
import os
import shutil
import subprocess
import tempfile

from harness import EWSCTL, PLUGINS, check, fail

SERIES_KEYS = {"name", "kind", "auroc", "average_precision", "levels", "lead",
               "churn_per_locality_year"}
TOP_KEYS = {"from", "to", "step_days", "horizon", "localities", "samples", "positives", "series"}
SHIPPED = {"community_incidents", "group_presence", "school_dropout"}


def write_config(work):
    """The demo's scoring and alerting (config/demo.toml), with this build's plugins."""
    config = os.path.join(work, "ewsd.toml")
    with open(config, "w") as f:
        f.write(f"""
[daemon]
state_dir = "state"
plugin_dir = "{PLUGINS}"

[scoring]
raise_after = 2
clear_after = 3
repeat_every_s = 604800

[scoring.flapping]
window = 21
high = 30
low = 15

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

[plugins.school_dropout]

[plugins.community_incidents]

[plugins.group_presence]
""")
    return config


def backtest(config, *args):
    return subprocess.run([EWSCTL, "-c", config, "backtest", *args], capture_output=True, text=True)


def in_unit(x):
    return x is None or (isinstance(x, (int, float)) and 0.0 <= x <= 1.0)


def check_report(report):
    check(TOP_KEYS <= set(report), "the JSON has every top-level key: %s" % sorted(report))
    check(report["step_days"] == 7 and report["horizon"] == 3, "default step 7 days, horizon 3")
    check(report["localities"] == 200, "200 localities")
    check(report["samples"] > 0 and 0 < report["positives"] < report["samples"],
          "samples %d with positives %d" % (report["samples"], report["positives"]))
    names = [s["name"] for s in report["series"]]
    check(names[0] == "composite" and names[-1] == "naive" and set(names[1:-1]) == SHIPPED,
          "series: the composite, each indicator, the naive baseline: %s" % names)
    for s in report["series"]:
        check(SERIES_KEYS <= set(s), "series %s has every key" % s["name"])
        check(in_unit(s["auroc"]) and in_unit(s["average_precision"]),
              "%s: AUROC %s and AP %s within [0,1]" % (s["name"], s["auroc"], s["average_precision"]))
        if s["name"] == "naive":
            check(s["levels"] is None and s["lead"] is None and s["churn_per_locality_year"] is None,
                  "the naive baseline has no levels, lead or churn")
            continue
        check(set(s["levels"]) == {"watch", "warning", "critical"},
              "%s has precision/recall at each level" % s["name"])
        for level, pr in s["levels"].items():
            check(set(pr) == {"precision", "recall"} and in_unit(pr["precision"]) and in_unit(pr["recall"]),
                  "%s %s: precision %s recall %s" % (s["name"], level, pr["precision"], pr["recall"]))
        lead = s["lead"]
        check(set(lead) == {"median_periods", "detected", "missed"}
              and lead["detected"] + lead["missed"] == report["onsets"],
              "%s: every onset is detected or missed (%d + %d = %d)"
              % (s["name"], lead["detected"], lead["missed"], report["onsets"]))
        check(lead["median_periods"] is None or lead["median_periods"] >= 0, "lead is not negative")
        check(s["churn_per_locality_year"] is not None and s["churn_per_locality_year"] >= 0,
              "%s: churn %s >= 0" % (s["name"], s["churn_per_locality_year"]))
    composite = report["series"][0]["auroc"]
    naive = report["series"][-1]["auroc"]
    check(composite is not None and naive is not None and composite > naive,
          "the composite ranks better than the naive incident count (AUROC %.3f > %.3f)"
          % (composite, naive))


def check_warns_early_and_truly(report):
    """The figures docs/backtest.md promises, on this test's own scenario (seed 11, fixed
    end date, so the run is deterministic)."""
    series = {s["name"]: s for s in report["series"]}
    c = series["composite"]
    check(c["auroc"] >= 0.85, "composite AUROC %.3f >= 0.85" % c["auroc"])
    for name in SHIPPED:
        check(series[name]["auroc"] > 0.5, "%s alone beats chance (%.3f)" % (name, series[name]["auroc"]))
        check(c["auroc"] > series[name]["auroc"],
              "the composite beats %s alone (%.3f > %.3f)" % (name, c["auroc"], series[name]["auroc"]))
    check(c["lead"]["median_periods"] is not None and c["lead"]["median_periods"] >= 2,
          "alerts lead onsets by a median of %s periods (>= 2)" % c["lead"]["median_periods"])
    check(c["churn_per_locality_year"] < 1,
          "churn %.2f level changes per locality-year (< 1)" % c["churn_per_locality_year"])


def main():
    work = tempfile.mkdtemp(prefix="ewsd-it-backtest-")
    try:
        data = os.path.join(work, "data")
        r = subprocess.run([EWSCTL, "gen-demo", data, "--localities", "200", "--years", "3",
                            "--seed", "11", "--feed-weeks", "4", "--end", "2026-03-15"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            fail("gen-demo exited %d: %s%s" % (r.returncode, r.stdout, r.stderr))
        config = write_config(work)
        truth = os.path.join(data, "truth.csv")
        out = os.path.join(work, "report.json")

        r = backtest(config, "--data", data, "--truth", truth, "--json", out)
        check(r.returncode == 0, "backtest exits 0 (%d): %s" % (r.returncode, r.stderr.strip()))
        print(r.stdout)
        with open(out) as f:
            report = json.load(f)
        check_report(report)
        check_warns_early_and_truly(report)
        check(any(line.startswith("composite ") for line in r.stdout.splitlines())
              and "AUROC" in r.stdout and "naive" in r.stdout,
              "the table has a row per series")
        check(not os.path.exists(os.path.join(work, "state", "ewsd.db")),
              "the backtest writes no database")

        # --detail: one row per locality and period, labelled like the samples counted.
        detail = os.path.join(work, "detail.csv")
        r = backtest(config, "--data", data, "--truth", truth, "--detail", detail)
        check(r.returncode == 0, "--detail exits 0 (%d): %s" % (r.returncode, r.stderr.strip()))
        import csv as csv_module
        with open(detail) as f:
            rows = list(csv_module.DictReader(f))
        check(rows and list(rows[0])[:5] == ["locality", "time", "label", "composite", "composite_level"]
              and {n + "_level" for n in SHIPPED} <= set(rows[0]) and list(rows[0])[-1] == "naive",
              "the detail header: %s" % (list(rows[0]) if rows else None))
        check(len(rows) == report["localities"] * report["periods"],
              "%d detail rows for %d localities x %d periods"
              % (len(rows), report["localities"], report["periods"]))
        labelled = [r for r in rows if r["label"] != ""]
        check(len(labelled) == report["samples"]
              and sum(r["label"] == "1" for r in labelled) == report["positives"],
              "the detail's labels are the samples and positives of the report")

        r = backtest(config, "--data", data, "--truth", truth, "--format", "json")
        check(r.returncode == 0 and json.loads(r.stdout) == report,
              "--format json prints the same figures as --json writes")

        r = backtest(config, "--data", data, "--truth", truth, "--format", "json",
                     "--step", "14", "--horizon", "2")
        short = json.loads(r.stdout)
        check(r.returncode == 0 and short["step_days"] == 14 and short["horizon"] == 2
              and short["periods"] < report["periods"],
              "--step and --horizon change the periods (%d against %d)"
              % (short["periods"], report["periods"]))

        # Any history in the ingest formats: the same observations as one JSON Lines file
        # under another name, in a subdirectory, give the same figures.
        import csv
        other = os.path.join(work, "other")
        os.makedirs(os.path.join(other, "obs"))
        shutil.copy(os.path.join(data, "localities.csv"), other)
        with open(os.path.join(other, "obs", "all.jsonl"), "w") as out_file:
            sources = [os.path.join(data, "history.csv")] + sorted(
                os.path.join(data, "feed", n) for n in os.listdir(os.path.join(data, "feed")))
            for path in sources:
                with open(path) as f:
                    for row in csv.DictReader(f):
                        row["value"] = float(row["value"])
                        row["weight"] = float(row["weight"])
                        out_file.write(json.dumps(row) + "\n")
        r = backtest(config, "--data", other, "--truth", truth, "--format", "json")
        check(r.returncode == 0, "a JSON Lines history is replayed (%d): %s" % (r.returncode, r.stderr))
        same = json.loads(r.stdout)
        check(same["series"] == report["series"] and same["samples"] == report["samples"],
              "the JSON Lines history gives the same figures as the CSV files")

        # Bad truth rows: exit 2, each named by file:line:column.
        with open(truth) as f:
            lines = f.read().splitlines()
        bad = os.path.join(work, "truth-bad.csv")
        with open(bad, "w") as f:
            f.write("\n".join(lines + ["%s,not-a-date,1" % lines[1].split(",")[0],
                                       "NOWHERE,2025-01-01,1"]) + "\n")
        r = backtest(config, "--data", data, "--truth", bad)
        check(r.returncode == 2, "a bad truth row exits 2 (%d)" % r.returncode)
        check("%s:%d:2: time 'not-a-date'" % (bad, len(lines) + 1) in r.stderr
              and "%s:%d:1: unknown locality 'NOWHERE'" % (bad, len(lines) + 2) in r.stderr,
              "each bad truth row is named by file:line:column: %s" % r.stderr.strip())

        # A rejected observation row in a feed file: exit 2 with its place.
        feed = sorted(os.listdir(os.path.join(data, "feed")))
        broken = os.path.join(work, "broken")
        shutil.copytree(data, broken)
        last = os.path.join(broken, "feed", feed[-1])
        with open(last) as f:
            n = len(f.read().splitlines())
        with open(last, "a") as f:
            f.write("%s,2025-01-01,incident.abduction,-3,1,monitor\n" % lines[1].split(",")[0])
        r = backtest(config, "--data", broken, "--truth", truth)
        check(r.returncode == 2 and "%s:%d:4: negative count" % (last, n + 1) in r.stderr,
              "a rejected observation row exits 2 naming file:line:column: %s" % r.stderr.strip())

        # Missing inputs name the path.
        missing = os.path.join(work, "nowhere")
        r = backtest(config, "--data", missing, "--truth", truth)
        check(r.returncode == 2 and missing in r.stderr, "a missing data directory is named: %s"
              % r.stderr.strip())
        r = backtest(config, "--data", data, "--truth", missing + ".csv")
        check(r.returncode == 2 and missing + ".csv: no such file" in r.stderr,
              "a missing truth file is named: %s" % r.stderr.strip())
        r = backtest(config, "--data", data, "--truth", truth, "--from", "yesterday")
        check(r.returncode == 2 and "--from 'yesterday'" in r.stderr, "a bad --from exits 2")
        print("composite AUROC %.3f, naive AUROC %.3f, positives %d of %d samples"
              % (report["series"][0]["auroc"], report["series"][-1]["auroc"],
                 report["positives"], report["samples"]))
    finally:
        if os.environ.get("EWS_KEEP_TEST_DIRS"):
            print("kept " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
    print("all backtest checks passed")
