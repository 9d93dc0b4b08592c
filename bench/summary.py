#!/usr/bin/python3
"""summary.py: the one table of `./run bench`, from the results every ews_bench_* program wrote.

Reads every <results>/*.json (the "rows" of each benchmark: one object per line of its table,
see bench/bench_support.hpp) and prints:
  - one table of every target row: what | ewsd | reference | ratio | target | result;
  - the scale study: the rows marked "study", by cost, with how each grows from the smallest
    number of localities and, where the row says over how many data rows it was, per row.
Writes beside the results: summary.csv (every row), summary.json (every row and the facts of
the machine: cores, CPU model, RAM, kernel, load average, date) and scale.svg (cost per row
against localities on a log scale, one line per cost; dashed: its reference).

Exit status: 0 when every target is met; 1 when a target is missed, a benchmark's JSON is
missing (one is expected for every ews_bench_* program beside the results directory, or each
name given with --expect) or a row is malformed; 2 on a usage error.

Only the Python standard library is used.
"""

import argparse
import csv
import datetime
import html
import json
import math
import os
import platform
import re
import sys

REQUIRED = ("what", "ewsd", "unit", "ratio", "target", "pass")
# The order of the table: DESIGN.md's order of the targets, then any other benchmark.
ORDER = ("ingest", "eval", "publish", "memory", "latency", "startup")
# Seconds or bytes per unit, to show a cost per data row.
TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
BYTE_UNITS = {"B": 1.0, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "MiB": 1048576.0,
              "KiB": 1024.0, "GiB": 1073741824.0}


def default_results_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(os.path.dirname(here), "build", "release", "bench", "results")


def expected_benchmarks(results_dir):
    """Names of the ews_bench_* programs in the directory above the results."""
    bench_dir = os.path.dirname(os.path.abspath(results_dir))
    names = []
    try:
        for entry in sorted(os.listdir(bench_dir)):
            path = os.path.join(bench_dir, entry)
            if entry.startswith("ews_bench_") and os.path.isfile(path) and os.access(path, os.X_OK):
                names.append(entry[len("ews_bench_"):])
    except OSError:
        pass
    return names


def order_key(name):
    return (ORDER.index(name) if name in ORDER else len(ORDER), name)


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# ---- reading ------------------------------------------------------------------------------

def read_results(results_dir, expected):
    """Returns (rows, problems): every row tagged with its benchmark; what is wrong."""
    rows, problems = [], []
    found = set()
    try:
        files = sorted(f for f in os.listdir(results_dir)
                       if f.endswith(".json") and not f.startswith("summary"))
    except OSError as e:
        return [], ["cannot read the results directory %s: %s" % (results_dir, e.strerror)]
    for name in expected:
        if name + ".json" not in files:
            problems.append("%s.json is missing (ews_bench_%s wrote no results)" % (name, name))
    for f in sorted(files, key=lambda f: order_key(f[:-5])):
        name = f[:-5]
        found.add(name)
        try:
            with open(os.path.join(results_dir, f), encoding="utf-8") as fh:
                doc = json.load(fh)
        except (OSError, ValueError) as e:
            problems.append("%s: cannot be read: %s" % (f, e))
            continue
        table = doc.get("rows") if isinstance(doc, dict) else None
        if not isinstance(table, list) or not table:
            problems.append('%s: no "rows" array' % f)
            continue
        for i, row in enumerate(table):
            missing = [k for k in REQUIRED if not isinstance(row, dict) or k not in row]
            if missing:
                problems.append("%s: row %d lacks %s" % (f, i + 1, ", ".join(missing)))
                continue
            if not isinstance(row["pass"], bool):
                problems.append('%s: row %d ("%s"): "pass" is not true or false'
                                % (f, i + 1, row["what"]))
                continue
            r = dict(row)
            r["benchmark"] = name
            rows.append(r)
    return rows, problems


def machine_facts():
    facts = {"cores": os.cpu_count(), "cpu_model": None, "ram_bytes": None,
             "kernel": platform.release(), "system": platform.system(),
             "load_average": None,
             "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    facts["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    facts["ram_bytes"] = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    try:
        facts["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return facts


# ---- text -----------------------------------------------------------------------------------

def fmt_number(v):
    if not is_number(v):
        return "-"
    a = abs(v)
    if a >= 1000:
        return "{:,.0f}".format(v)
    if a >= 100:
        return "%.0f" % v
    if a >= 10:
        return "%.1f" % v
    if a >= 1 or a == 0:
        return "%.2f" % v
    return "%.3g" % v


def fmt_value(v, unit):
    text = fmt_number(v)
    return text if text == "-" or not unit else text + " " + unit


def fmt_ratio(v):
    if not is_number(v):
        return "-"
    return "%.2f" % v if abs(v) >= 0.01 else "%.4f" % v


def has_target(row):
    return (row.get("target") not in (None, "", "-")) or bool(row.get("target_abs"))


def target_text(row):
    parts = []
    if row.get("target") not in (None, "", "-"):
        parts.append(str(row["target"]))
    if row.get("target_abs"):
        parts.append(str(row["target_abs"]))
    return "; ".join(parts) if parts else "-"


def result_text(row):
    if not row["pass"]:
        return "FAIL"
    return "pass" if has_target(row) else "-"


def short_count(n):
    if not is_number(n):
        return "-"
    n = int(n)
    if n >= 1000000 and n % 1000000 == 0:
        return "%dM" % (n // 1000000)
    if n >= 1000 and n % 1000 == 0:
        return "%dk" % (n // 1000)
    return str(n)


def print_table(headers, lines, right=()):
    widths = [len(h) for h in headers]
    for line in lines:
        for i, cell in enumerate(line):
            widths[i] = max(widths[i], len(cell))

    def fmt(cells):
        out = []
        for i, cell in enumerate(cells):
            out.append(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]))
        return "  ".join(out).rstrip()

    print(fmt(headers))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print(fmt(line))


def cost_name(row):
    """The cost a study row measures: its "cost", else its "what" without the scale."""
    if row.get("cost"):
        return str(row["cost"])
    text = re.sub(r"\b\d+(\.\d+)?\s*[kM]?\s+localities\b", "N localities", str(row["what"]))
    return re.sub(r"\s*\(scale study\)", "", text)


def per_row(value, unit, data_rows):
    """(value per data row, unit text, kind) or None: time in ns, memory in bytes."""
    if not is_number(value) or not is_number(data_rows) or data_rows <= 0:
        return None
    if unit in TIME_UNITS:
        return value * TIME_UNITS[unit] * 1e9 / data_rows, "ns/row", "time"
    if unit in BYTE_UNITS:
        return value * BYTE_UNITS[unit] / data_rows, "B/row", "memory"
    return None


def study_groups(rows):
    """{cost: [rows by scale]} of the study rows that carry a scale, in first-seen order."""
    groups = {}
    for r in rows:
        if r.get("study") is True and is_number(r.get("scale")):
            groups.setdefault(cost_name(r), []).append(r)
    for g in groups.values():
        g.sort(key=lambda r: r["scale"])
    return groups


# ---- the chart ------------------------------------------------------------------------------

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
           "#17becf")


def log_ticks(lo, hi):
    """Tick values from 10**lo to 10**hi: the powers of ten, and 2 and 5 times them when the
    span is short enough to leave room for their labels."""
    ticks = []
    steps = (1, 2, 5) if hi - lo <= 3 else (1,)
    for e in range(lo, hi + 1):
        for m in steps:
            v = m * 10.0 ** e
            if 10.0 ** lo <= v <= 10.0 ** hi:
                ticks.append(v)
    return ticks


def tick_label(v):
    """1, 20, 500, 2k, 50k, 1M: short labels of the log axis' ticks."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= size:
            return "%g%s" % (v / size, suffix)
    return "%g" % v


def chart_series(groups):
    """Lines of the chart: dicts of label, kind, unit, points [(scale, y)], dashed, colour."""
    series = []
    for i, (cost, g) in enumerate(groups.items()):
        colour = COLOURS[i % len(COLOURS)]
        pts, ref_pts, kind, unit = [], [], None, None
        normalised = all(per_row(r["ewsd"], r["unit"], r.get("data_rows")) for r in g)
        base = g[0]["ewsd"] if is_number(g[0]["ewsd"]) and g[0]["ewsd"] > 0 else None
        base_ref = g[0].get("reference")
        base_ref = base_ref if is_number(base_ref) and base_ref > 0 else None
        for r in g:
            if normalised:
                y, unit, kind = per_row(r["ewsd"], r["unit"], r.get("data_rows"))
                pr = per_row(r.get("reference"), r["unit"], r.get("data_rows"))
                if pr:
                    ref_pts.append((r["scale"], pr[0]))
            elif base:
                # Without the data rows, relative to the smallest scale.
                y, unit, kind = r["ewsd"] / base, "x smallest", "relative"
                if base_ref and is_number(r.get("reference")):
                    ref_pts.append((r["scale"], r["reference"] / base_ref))
            else:
                continue
            pts.append((r["scale"], y))
        if not pts:
            continue
        series.append({"label": "%s (%s)" % (cost, unit), "kind": kind, "unit": unit,
                       "points": pts, "dashed": False, "colour": colour})
        refs = [r.get("reference") for r in g]
        # A reference that is the same figure at every scale says nothing about growth.
        if len(ref_pts) == len(pts) and len(set(refs)) > 1:
            name = g[0].get("reference_name") or "reference"
            series.append({"label": "%s: %s (%s)" % (cost, name, unit), "kind": kind,
                           "unit": unit, "points": ref_pts, "dashed": True, "colour": colour})
    return series


def svg_chart(groups):
    """Returns: the SVG text of cost per row against localities, one panel per kind of cost."""
    series = chart_series(groups)
    kinds = []
    for s in series:
        if s["kind"] not in kinds:
            kinds.append(s["kind"])
    titles = {"time": "time per data row (ns, log scale)",
              "memory": "resident memory per data row (bytes, log scale)",
              "relative": "cost relative to the smallest size (log scale)"}
    scales = sorted({p[0] for s in series for p in s["points"]}) or [10000, 100000, 1000000]
    lo, hi = math.log10(min(scales)), math.log10(max(scales))
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.15 * (hi - lo)
    lo, hi = lo - pad, hi + pad

    panel_w, panel_h, left, top, gap = 420, 280, 70, 50, 90
    panels = max(len(kinds), 1)
    legend_line = 18
    width = left + panels * panel_w + (panels - 1) * gap + 30
    legend_top = top + panel_h + 60
    height = legend_top + legend_line * max(len(series), 1) + 20
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
           'font-family="sans-serif" font-size="12">' % (width, height, width, height),
           '<rect width="100%" height="100%" fill="#ffffff"/>',
           '<text x="%d" y="22" font-size="15" font-weight="bold">ewsd scale study: cost per '
           'data row against localities (flat: it does not grow with the localities)</text>'
           % left]
    esc = html.escape
    if not series:
        out.append('<text x="%d" y="%d">no scale study rows in the results</text>'
                   % (left, top + 40))
    for k, kind in enumerate(kinds):
        x0 = left + k * (panel_w + gap)
        lines = [s for s in series if s["kind"] == kind]
        values = [p[1] for s in lines for p in s["points"] if p[1] > 0]
        ylo = math.floor(math.log10(min(values))) if values else 0
        yhi = math.ceil(math.log10(max(values))) if values else 1
        if yhi <= ylo:
            yhi = ylo + 1

        def px(scale, x0=x0):
            return x0 + (math.log10(scale) - lo) / (hi - lo) * panel_w

        def py(y, ylo=ylo, yhi=yhi):
            y = max(y, 10.0 ** ylo)
            return top + panel_h - (math.log10(y) - ylo) / (yhi - ylo) * panel_h

        out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>'
                   % (x0, top, panel_w, panel_h))
        for y in log_ticks(ylo, yhi):
            yy = py(y)
            out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>'
                       % (x0, yy, x0 + panel_w, yy))
            out.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>'
                       % (x0 - 6, yy + 4, esc(tick_label(y))))
        for sc in scales:
            xx = px(sc)
            out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>'
                       % (xx, top, xx, top + panel_h))
            out.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>'
                       % (xx, top + panel_h + 16, esc(short_count(sc))))
        out.append('<text x="%.1f" y="%d" text-anchor="middle">localities (log scale)</text>'
                   % (x0 + panel_w / 2, top + panel_h + 36))
        out.append('<text x="%.1f" y="%.1f" text-anchor="middle" transform="rotate(-90 %.1f %.1f)">'
                   '%s</text>' % (x0 - 50, top + panel_h / 2, x0 - 50, top + panel_h / 2,
                                  esc(titles.get(kind, kind))))
        for s in lines:
            pts = " ".join("%.1f,%.1f" % (px(x), py(y)) for x, y in s["points"])
            dash = ' stroke-dasharray="6 4"' if s["dashed"] else ""
            out.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>'
                       % (pts, s["colour"], dash))
            for x, y in s["points"]:
                fill = "#ffffff" if s["dashed"] else s["colour"]
                out.append('<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s" stroke="%s"/>'
                           % (px(x), py(y), fill, s["colour"]))
    for i, s in enumerate(series):
        y = legend_top + i * legend_line
        dash = ' stroke-dasharray="6 4"' if s["dashed"] else ""
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>'
                   % (left, y - 4, left + 30, y - 4, s["colour"], dash))
        out.append('<text x="%d" y="%d">%s</text>' % (left + 38, y, esc(s["label"])))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def csv_cell(v, key):
    if isinstance(v, bool) or key == "study":
        return "true" if v else "false"
    return "" if v is None else v


# ---- main -----------------------------------------------------------------------------------

def main(argv):
    parser = argparse.ArgumentParser(
        description="Summarise the results of the ews_bench_* programs in one table.")
    parser.add_argument("--results", default=default_results_dir(),
                        help="the results directory (default: build/release/bench/results)")
    parser.add_argument("--expect", default=None,
                        help="comma-separated benchmark names whose JSON must be there "
                             "(default: every ews_bench_* program beside the results directory)")
    args = parser.parse_args(argv)

    expected = ([n for n in args.expect.split(",") if n] if args.expect is not None
                else expected_benchmarks(args.results))
    rows, problems = read_results(args.results, expected)
    facts = machine_facts()

    ram = facts["ram_bytes"]
    print("machine: %s cores, %s, %s RAM, Linux %s, load average %s, %s" % (
        facts["cores"], facts["cpu_model"] or "CPU model unknown",
        "%.1f GB" % (ram / 1e9) if ram else "unknown",
        facts["kernel"], " ".join(str(x) for x in facts["load_average"] or []) or "unknown",
        facts["date"]))
    print()

    main_rows = [r for r in rows if r.get("study") is not True or has_target(r)]
    print_table(["what", "ewsd", "reference", "ratio", "target", "result"],
                [[str(r["what"]), fmt_value(r["ewsd"], r["unit"]),
                  fmt_value(r.get("reference"), r["unit"]), fmt_ratio(r["ratio"]),
                  target_text(r), result_text(r)] for r in main_rows],
                right={1, 2, 3})
    if any(r.get("ratio_name") for r in main_rows):
        names = []
        for r in main_rows:
            if r.get("ratio_name") and r["ratio_name"] not in names:
                names.append(r["ratio_name"])
        print("ratio: " + "; ".join(names))

    groups = study_groups(rows)
    if groups:
        print()
        print("scale study: how each cost grows with the number of localities "
              "(growth: ewsd / ewsd at the smallest size)")
        lines = []
        for cost, g in groups.items():
            base = g[0]["ewsd"]
            for r in g:
                pr = per_row(r["ewsd"], r["unit"], r.get("data_rows"))
                growth = (r["ewsd"] / base if is_number(base) and base > 0
                          and is_number(r["ewsd"]) else None)
                lines.append([cost, short_count(r["scale"]), fmt_value(r["ewsd"], r["unit"]),
                              fmt_value(r.get("reference"), r["unit"]), fmt_ratio(r["ratio"]),
                              fmt_value(pr[0], pr[1]) if pr else "-",
                              fmt_ratio(growth), target_text(r), result_text(r)])
        print_table(["cost", "localities", "ewsd", "reference", "ratio", "per row", "growth",
                     "target", "result"], lines, right={1, 2, 3, 4, 5, 6})

    failed = [r for r in rows if not r["pass"]]
    print()
    for p in problems:
        print("problem: " + p)
    for r in failed:
        print("target missed: %s (%s): %s" % (r["what"], r["benchmark"], target_text(r)))
    ok = not failed and not problems
    print("summary: %d rows, %d targets, %d missed, %d problems: %s" % (
        len(rows), sum(1 for r in rows if has_target(r)), len(failed), len(problems),
        "pass" if ok else "FAIL"))

    if not os.path.isdir(args.results):
        return 1
    try:
        fields = ["benchmark", "what", "scale", "study", "ewsd", "reference", "unit", "ratio",
                  "ratio_name", "target", "target_abs", "pass", "runs", "reference_name",
                  "cost", "data_rows"]
        with open(os.path.join(args.results, "summary.csv"), "w", newline="",
                  encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: csv_cell(r.get(k), k) for k in fields})
        with open(os.path.join(args.results, "summary.json"), "w", encoding="utf-8") as fh:
            json.dump({"machine": facts, "rows": rows, "problems": problems,
                       "failed": [r["what"] for r in failed], "pass": ok},
                      fh, indent=2, ensure_ascii=False)
            fh.write("\n")
        with open(os.path.join(args.results, "scale.svg"), "w", encoding="utf-8") as fh:
            fh.write(svg_chart(groups))
    except OSError as e:
        print("summary.py: cannot write the summary files: %s" % e, file=sys.stderr)
        return 1
    print("written: %s/summary.csv, summary.json, scale.svg" % args.results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
