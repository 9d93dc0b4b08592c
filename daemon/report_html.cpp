// report_html.cpp: the prevention report as one self-contained HTML page (report.hpp).
//
// The page is read on screen, on a phone and on paper, often offline and passed from hand to
// hand, so it holds everything itself: inline CSS and SVG, no script, no font, image or link
// to anything outside it. Every text that comes from data (names, ids, regions, evidence,
// actions, indicator and plugin names) goes through escape(). Numbers that are not finite are
// shown as a dash and never reach the page or an SVG coordinate. The output depends on the
// Report alone (no clock, no locale), so the same Report renders to the same bytes.
#include "report.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <string_view>
#include <system_error>
#include <utility>

namespace ews::report {

namespace {

// ---- text ------------------------------------------------------------------------------

// Returns: `text` safe as HTML text and as a quoted attribute value.
std::string escape(std::string_view text) {
    std::string out;
    out.reserve(text.size() + text.size() / 8);
    for (char c : text) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&#39;"; break;
            default: out += c;
        }
    }
    return out;
}

// Locale-independent fixed-point text of a finite number.
std::string fixed(double x, int decimals) {
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::fixed, decimals);
    if (r.ec != std::errc{}) return "0";
    std::string s(buf, r.ptr);
    if (s.starts_with('-') && s.find_first_not_of("-0.") == std::string::npos) s.erase(0, 1);
    return s;
}

constexpr std::string_view dash = "\u2013";

// A score 0..100 with one decimal, or a dash when there is none.
std::string score_text(double score) {
    return std::isfinite(score) ? fixed(score, 1) : std::string(dash);
}

// A configured number (weight, threshold) in its shortest form.
std::string number_text(double x) {
    if (!std::isfinite(x)) return std::string(dash);
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, x);
    return r.ec == std::errc{} ? std::string(buf, r.ptr) : std::string(dash);
}

std::string percent_text(double unit) {
    if (!std::isfinite(unit)) return std::string(dash);
    return fixed(std::clamp(unit, 0.0, 1.0) * 100, 0) + "%";
}

// SVG coordinate with one decimal.
std::string coord(double x) { return fixed(std::isfinite(x) ? x : 0.0, 1); }

std::string date_of(TimePoint t) { return format_time(t).substr(0, 10); }

// A date that never breaks across lines.
std::string date_span(TimePoint t) { return "<span class=\"nw\">" + date_of(t) + "</span>"; }

// A region path that breaks only after a '/', never inside a segment such as "KE-030".
std::string path_html(std::string_view path) {
    std::string out = "<span class=\"nw\">";
    for (char c : path) {
        out += escape(std::string_view(&c, 1));
        if (c == '/') out += "</span><wbr><span class=\"nw\">";
    }
    return out + "</span>";
}

// An indicator name that may break after each '_' in a narrow cell.
std::string indicator_html(std::string_view name) {
    std::string out;
    for (char c : name) {
        out += escape(std::string_view(&c, 1));
        if (c == '_') out += "<wbr>";
    }
    return out;
}

std::string level_label(Level level) {
    switch (level) {
        case Level::critical: return "Critical";
        case Level::warning: return "Warning";
        case Level::watch: return "Watch";
        case Level::none: return "None";
    }
    return "None";
}

std::string level_key(Level level) { return std::string(to_string(level)); }

std::string badge(Level level) {
    return "<span class=\"badge lv-" + level_key(level) + "\">" + level_label(level) + "</span>";
}

std::string scope_text(const Report& r) {
    return r.scope.empty() ? std::string("All regions")
                           : "Region " + escape(r.scope) + " and below";
}

// "+2 since 2026-11-05", "-1 since ...", "no change since ...".
std::string change_text(std::size_t now, std::size_t before, const std::string& since) {
    const std::string date = "<span class=\"nw\">" + since + "</span>";
    if (now == before) return "no change since " + date;
    if (now > before) return "+" + std::to_string(now - before) + " since " + date;
    return "-" + std::to_string(before - now) + " since " + date;
}

// Whole days from `t` to `at`, never negative.
long long age_days(TimePoint t, TimePoint at) {
    if (t >= at) return 0;
    return std::chrono::duration_cast<std::chrono::days>(at - t).count();
}

std::string age_text(long long days) {
    if (days == 0) return "today";
    if (days == 1) return "1 day old";
    return std::to_string(days) + " days old";
}

std::string status_text(sdk::Status s) {
    switch (s) {
        case sdk::Status::ok: return "ok";
        case sdk::Status::stale: return "stale";
        case sdk::Status::no_data: return "no data";
        case sdk::Status::error: return "failed";
    }
    return "failed";
}

const IndicatorNow* dominant_of(const LocalityRow& row) {
    if (row.dominant < 0 || std::size_t(row.dominant) >= row.indicators.size()) return nullptr;
    return &row.indicators[std::size_t(row.dominant)];
}

std::string indicator_name(const Report& r, std::size_t i) {
    return i < r.indicators.size() ? r.indicators[i] : "indicator " + std::to_string(i + 1);
}

double weight_of(const Report& r, const std::string& indicator) {
    auto it = r.weights.find(indicator);
    return it == r.weights.end() ? 1.0 : it->second;
}

// ---- style -----------------------------------------------------------------------------

constexpr std::string_view css = R"CSS(
:root{--ink:#1b1f24;--muted:#555d66;--line:#d3d8de;--paper:#fff;--soft:#f5f6f8;
--crit:#8e1b1b;--crit-bg:#fbeaea;--warn:#c2410c;--warn-bg:#fff0e5;
--watch:#eab308;--watch-ink:#3d2c00;--watch-bg:#fdf7d9;--none:#6b7280;--none-bg:#f1f3f5}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;background:var(--paper);color:var(--ink);
font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Liberation Sans",Arial,sans-serif;
font-size:15px;line-height:1.45}
main,.top,.bottom{max-width:1180px;margin:0 auto;padding:0 20px}
h1{font-size:1.6em;margin:.2em 0 .3em}
h2{font-size:1.25em;margin:1.6em 0 .5em;padding-bottom:.2em;border-bottom:2px solid var(--ink)}
h3{font-size:1.05em;margin:1.2em 0 .4em}
p{margin:.4em 0}
.top{padding-top:18px;padding-bottom:6px;border-bottom:1px solid var(--line)}
.kicker{margin:0;color:var(--muted);font-size:.85em;text-transform:uppercase;letter-spacing:.06em}
.meta{display:flex;flex-wrap:wrap;gap:4px 22px;margin:.4em 0}
.meta div{display:flex;gap:6px}
.meta dt{color:var(--muted)}
.meta dd{margin:0;font-weight:600}
.prompt{margin:.5em 0 .6em;padding:6px 10px;border-left:4px solid var(--ink);background:var(--soft)}
.id,.mono{font-family:ui-monospace,"DejaVu Sans Mono","Liberation Mono",Menlo,Consolas,monospace;
font-size:.82em}
.muted{color:var(--muted)}
.nw{white-space:nowrap}
.small{font-size:.85em}
.cards{display:grid;grid-template-columns:repeat(4,minmax(0,1fr));gap:12px;margin:.6em 0}
.card{border:1px solid var(--line);border-left:8px solid var(--none);border-radius:6px;
padding:10px 12px;background:var(--none-bg)}
.card .n{font-size:2em;font-weight:700;line-height:1.1}
.card .l{font-weight:600}
.card .d{font-size:.85em;color:var(--muted)}
.card.lv-critical{border-left-color:var(--crit);background:var(--crit-bg)}
.card.lv-warning{border-left-color:var(--warn);background:var(--warn-bg)}
.card.lv-watch{border-left-color:var(--watch);background:var(--watch-bg)}
.card.scope{border-left-color:var(--ink);background:var(--soft)}
.badge{display:inline-block;padding:1px 7px;border-radius:4px;border:1.5px solid;font-size:.8em;
font-weight:700;letter-spacing:.02em;white-space:nowrap}
.badge.lv-critical{background:var(--crit);border-color:var(--crit);color:#fff}
.badge.lv-warning{background:var(--warn);border-color:var(--warn);color:#fff}
.badge.lv-watch{background:var(--watch);border-color:#a16207;color:var(--watch-ink)}
.badge.lv-none{background:var(--none-bg);border-color:var(--none);color:#374151}
.tag{display:inline-block;white-space:nowrap;padding:0 5px;border:1px solid var(--line);
border-radius:3px;font-size:.78em;color:var(--muted);margin:2px 4px 0 0}
.tag.alert{border-color:var(--warn);color:#9a3412}
.attention{list-style:none;padding:0;margin:.5em 0}
.attention li{padding:4px 0;border-bottom:1px solid var(--soft)}
.attention .why{color:var(--muted)}
.howto{font-size:.9em;color:var(--muted)}
.notice{padding:8px 12px;border:1px solid var(--warn);border-radius:6px;background:var(--warn-bg)}
.empty{padding:10px 14px;border:1px solid var(--line);border-radius:6px;background:var(--soft);
font-weight:600}
table{border-collapse:collapse;width:100%;margin:.4em 0 .8em}
th,td{text-align:left;vertical-align:top;padding:6px 8px;border-bottom:1px solid var(--line)}
th{font-size:.82em;color:var(--muted);font-weight:600;border-bottom:2px solid var(--ink)}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.delta{display:block;font-size:.75em;color:var(--muted);white-space:nowrap}
.zero{color:#9aa1a9}
tfoot td{font-weight:700;border-top:2px solid var(--ink)}
table.ranked tbody tr{border-left:6px solid var(--none)}
table.ranked tr[data-level=critical]{border-left-color:var(--crit)}
table.ranked tr[data-level=warning]{border-left-color:var(--warn)}
table.ranked tr[data-level=watch]{border-left-color:var(--watch)}
.rank{font-weight:700;font-size:1.05em;white-space:nowrap}
.lname{font-weight:700}
.score{font-size:1.15em;font-weight:700;font-variant-numeric:tabular-nums}
.change{display:block;font-size:.78em;font-weight:600;white-space:nowrap}
.change.up{color:var(--crit)}
.change.down{color:#166534}
.ind{font-weight:600}
.vals{margin:.2em 0 0;padding:0;list-style:none;font-size:.85em}
.vals li{display:inline-block;margin-right:10px;white-space:nowrap}
.floor{margin:.3em 0 0;color:#5a3d00}
.stale{color:#9a3412;font-weight:600}
td ul.actions{margin:0;padding-left:1.1em}
td ul.actions li{margin:0 0 .2em}
.spark{display:block;width:100%;max-width:120px;height:auto}
table.ranked{table-layout:fixed}
col.c-rank{width:3.2em}col.c-loc{width:13%}col.c-level{width:8%}col.c-score{width:10%}
col.c-trend{width:11.5%}col.c-ev{width:23%}col.c-data{width:11%}col.c-act{width:20%}
table.ranked td{overflow-wrap:break-word}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:14px 18px;
margin:.5em 0 1em}
figure.chart{margin:0;padding:8px 10px;border:1px solid var(--line);border-radius:6px}
figure.chart figcaption{font-size:.9em;font-weight:600;margin-bottom:4px}
figure.chart figcaption .small{font-weight:400}
figure.chart svg.plot{display:block;width:100%;height:auto;max-width:480px}
.legend{list-style:none;margin:4px 0 0;padding:0;font-size:.8em}
.legend li{display:inline-flex;align-items:center;gap:4px;margin-right:12px}
.legend svg{width:28px;height:8px;flex:none}
.region-scope{display:none}
dl.weights{display:grid;grid-template-columns:max-content auto;gap:2px 14px;margin:.3em 0}
dl.weights dd{margin:0}
.method{max-width:860px}
.bottom{margin-top:2em;padding-top:10px;padding-bottom:24px;border-top:2px solid var(--ink);
font-size:.85em;color:var(--muted)}
.bottom p{margin:.25em 0}
.bottom strong{color:var(--ink)}
@media screen and (max-width:700px){
body{font-size:14px}
main,.top,.bottom{padding:0 12px}
.cards{grid-template-columns:repeat(2,minmax(0,1fr))}
table.stack thead{display:none}
table.stack,table.stack tbody,table.stack tr,table.stack td{display:block;width:100%}
table.stack colgroup{display:none}
table.stack tr{margin:0 0 12px;border:1px solid var(--line);border-radius:6px;padding:4px 8px}
table.ranked.stack tr{border-left-width:6px;display:grid;
grid-template-columns:auto minmax(0,1fr) auto;column-gap:0}
table.ranked.stack td{grid-column:1/-1}
table.ranked.stack td.head{grid-column:auto;display:block;padding:6px 10px 5px 0}
table.ranked.stack td.head:nth-child(3){padding-right:0}
table.ranked.stack td.head::before{content:none}
table.stack td{display:grid;grid-template-columns:6.5em minmax(0,1fr);gap:8px;
border-bottom:1px solid var(--soft);padding:5px 0}
table.stack td:last-child{border-bottom:0}
table.stack td::before{content:attr(data-label);font-size:.8em;color:var(--muted);font-weight:600}
table.stack td.num{text-align:left}
.regions th,.regions td{padding:5px 4px}
}
@media print{
@page{size:A4;margin:14mm 12mm 16mm}
body{font-size:9.5pt;line-height:1.35}
main,.top,.bottom{max-width:none;padding:0}
h2{break-after:avoid;page-break-after:avoid}
h3{break-after:avoid;page-break-after:avoid}
.card,.prompt,.notice,.empty{background:none!important}
.badge{background:none!important;color:#000!important;border:1.5px solid #000!important}
.badge.lv-critical{border-width:3px!important;border-style:double!important}
tr,figure,.card,.attention li{break-inside:avoid;page-break-inside:avoid}
thead{display:table-header-group}
section.region{break-before:page;page-break-before:always}
section.region.first{break-before:auto;page-break-before:auto}
.region-scope{display:block;font-size:8pt;color:var(--muted)}
.charts{grid-template-columns:repeat(2,minmax(0,1fr))}
th,td{padding:4px 5px}
col.c-rank{width:2.8em}col.c-loc{width:13%}col.c-level{width:10.5%}col.c-score{width:9.5%}
col.c-trend{width:12%}col.c-ev{width:21%}col.c-data{width:12%}col.c-act{width:18.5%}
a{color:inherit;text-decoration:none}
}
)CSS";

// ---- SVG -------------------------------------------------------------------------------

// Each indicator line: a colour and a dash pattern, so lines stay apart in greyscale print.
struct LineStyle {
    std::string_view colour;
    std::string_view dash;
};
constexpr LineStyle line_styles[] = {
    {"#1d4ed8", ""},    {"#c2410c", "6 3"},  {"#15803d", "2 2"},     {"#7e22ce", "8 3 2 3"},
    {"#0e7490", "1 3"}, {"#a16207", "10 4"}, {"#be185d", "4 2 1 2"}, {"#374151", "12 3 3 3"},
};

const LineStyle& line_style(std::size_t i) { return line_styles[i % std::size(line_styles)]; }

std::string stroke_attrs(const LineStyle& s) {
    std::string out = " stroke=\"" + std::string(s.colour) + "\"";
    if (!s.dash.empty()) out += " stroke-dasharray=\"" + std::string(s.dash) + "\"";
    return out;
}

// Polylines through the finite points of `ys` (x from `xs`), broken at every non-finite
// value; an isolated point is drawn as a dot. ys are in plot units already.
std::string segments(const std::vector<double>& xs, const std::vector<double>& ys,
                     const std::string& attrs, const std::string& dot_fill, double dot_r) {
    std::string out;
    std::vector<std::size_t> run;
    auto flush = [&] {
        if (run.size() == 1) {
            out += "<circle cx=\"" + coord(xs[run[0]]) + "\" cy=\"" + coord(ys[run[0]]) +
                   "\" r=\"" + coord(dot_r) + "\" fill=\"" + dot_fill + "\"/>";
        } else if (run.size() > 1) {
            out += "<polyline fill=\"none\"" + attrs + " points=\"";
            for (std::size_t k = 0; k < run.size(); ++k) {
                if (k) out += ' ';
                out += coord(xs[run[k]]) + "," + coord(ys[run[k]]);
            }
            out += "\"/>";
        }
        run.clear();
    };
    for (std::size_t i = 0; i < ys.size() && i < xs.size(); ++i) {
        if (std::isfinite(ys[i]))
            run.push_back(i);
        else
            flush();
    }
    flush();
    return out;
}

std::string level_colour(Level l) {
    switch (l) {
        case Level::critical: return "#8e1b1b";
        case Level::warning: return "#c2410c";
        case Level::watch: return "#b58100";
        case Level::none: return "#6b7280";
    }
    return "#6b7280";
}

// The composite score per period as a 120x28 sparkline, with the raise thresholds faint.
std::string sparkline(const Report& r, const LocalityRow& row) {
    constexpr double w = 120, h = 28, pad = 3;
    const auto& t = row.trend;
    auto y_of = [&](double score) {
        return h - pad - std::clamp(score, 0.0, 100.0) / 100.0 * (h - 2 * pad);
    };
    std::string out = "<svg class=\"spark\" viewBox=\"0 0 120 28\" width=\"120\" height=\"28\" "
                      "role=\"img\" aria-label=\"";
    std::size_t first = t.size(), last = t.size();
    for (std::size_t i = 0; i < t.size(); ++i)
        if (std::isfinite(t[i])) {
            if (first == t.size()) first = i;
            last = i;
        }
    if (first == t.size())
        out += "Score trend: no score in the periods shown";
    else
        out += "Score trend from " + score_text(t[first]) + " to " + score_text(t[last]);
    out += "\">";
    for (std::size_t k = 0; k < r.levels.size(); ++k) {
        if (!std::isfinite(r.levels[k].raise)) continue;
        const std::string y = coord(y_of(r.levels[k].raise));
        out += "<line x1=\"0\" x2=\"120\" y1=\"" + y + "\" y2=\"" + y + "\" stroke=\"" +
               level_colour(Level(int(k) + 1)) +
               "\" stroke-opacity=\".35\" stroke-width=\".8\" stroke-dasharray=\"3 2\"/>";
    }
    std::vector<double> xs(t.size()), ys(t.size());
    for (std::size_t i = 0; i < t.size(); ++i) {
        xs[i] = t.size() == 1 ? w / 2 : pad + double(i) * (w - 2 * pad) / double(t.size() - 1);
        ys[i] = std::isfinite(t[i]) ? y_of(t[i]) : no_score;
    }
    out += segments(xs, ys, " stroke=\"#1b1f24\" stroke-width=\"1.6\" stroke-linejoin=\"round\"",
                    "#1b1f24", 1.4);
    if (last == t.size())
        out += "<text x=\"60\" y=\"17\" text-anchor=\"middle\" font-size=\"9\" "
               "fill=\"#555d66\">no score</text>";
    else
        out += "<circle cx=\"" + coord(xs[last]) + "\" cy=\"" + coord(ys[last]) +
               "\" r=\"2.6\" fill=\"" + level_colour(row.level) +
               "\" stroke=\"#fff\" stroke-width=\".8\"/>";
    out += "</svg>";
    return out;
}

std::string mark_label(const Mark& m) {
    if (m.event == "raised") return "raised " + std::string(to_string(m.level));
    if (m.event == "escalated") return "\u2191 " + std::string(to_string(m.level));
    if (m.event == "deescalated") return "\u2193 " + std::string(to_string(m.level));
    if (m.event == "resolved") return "resolved";
    return escape(m.event);
}

// Each indicator's sub-score over the periods, with the published level events marked.
std::string indicator_chart(const Report& r, const LocalityRow& row) {
    constexpr double w = 320, h = 140, left = 30, right = 10, top = 22, bottom = 20;
    constexpr double pw = w - left - right, ph = h - top - bottom;
    const std::size_t n = r.periods.size();
    std::string out;
    out += "<figure class=\"chart\" data-chart=\"" + escape(row.id) + "\"><figcaption>" +
           escape(row.name) + " <span class=\"id\">" + escape(row.id) + "</span> " +
           badge(row.level) +
           "<br><span class=\"muted small\">Indicator sub-scores (0 to 1) per period";
    if (n > 0) out += ", " + date_span(r.periods.front()) + " to " + date_span(r.periods.back());
    out += "</span></figcaption>";
    out += "<svg class=\"plot\" viewBox=\"0 0 320 140\" role=\"img\" "
           "aria-label=\"Indicator sub-scores of " + escape(row.name) +
           "\" font-size=\"10\" fill=\"#1b1f24\">";
    // Axes and grid: y 0, 0.5, 1.
    for (double v : {0.0, 0.5, 1.0}) {
        const std::string y = coord(top + ph - v * ph);
        out += "<line x1=\"" + coord(left) + "\" x2=\"" + coord(left + pw) + "\" y1=\"" + y +
               "\" y2=\"" + y + "\" stroke=\"" + (v == 0.0 ? "#555d66" : "#d3d8de") +
               "\" stroke-width=\".8\"/>";
        out += "<text x=\"" + coord(left - 4) + "\" y=\"" + coord(top + ph - v * ph + 3) +
               "\" text-anchor=\"end\">" +
               (v == 0.0   ? "0"
                : v == 1.0 ? "1"
                           : "0.5") +
               "</text>";
    }
    out += "<line x1=\"" + coord(left) + "\" x2=\"" + coord(left) + "\" y1=\"" + coord(top) +
           "\" y2=\"" + coord(top + ph) + "\" stroke=\"#555d66\" stroke-width=\".8\"/>";
    if (n == 0) {
        out += "<text x=\"160\" y=\"" + coord(top + ph / 2) +
               "\" text-anchor=\"middle\">No evaluation periods</text></svg>";
        out += "</figure>";
        return out;
    }
    const TimePoint t0 = r.periods.front(), t1 = r.periods.back();
    auto x_of = [&](TimePoint t) {
        if (t1 <= t0) return left + pw / 2;
        const double f = double((t - t0).count()) / double((t1 - t0).count());
        return left + std::clamp(f, 0.0, 1.0) * pw;
    };
    // Period ticks, first and last dated.
    for (std::size_t i = 0; i < n; ++i) {
        const std::string x = coord(x_of(r.periods[i]));
        out += "<line x1=\"" + x + "\" x2=\"" + x + "\" y1=\"" + coord(top + ph) + "\" y2=\"" +
               coord(top + ph + 3) + "\" stroke=\"#555d66\" stroke-width=\".8\"/>";
    }
    out += "<text x=\"" + coord(x_of(t0)) + "\" y=\"" + coord(h - 4) + "\" text-anchor=\"" +
           (n == 1 ? "middle" : "start") + "\">" + date_of(t0) + "</text>";
    if (n > 1)
        out += "<text x=\"" + coord(x_of(t1)) + "\" y=\"" + coord(h - 4) +
               "\" text-anchor=\"end\">" + date_of(t1) + "</text>";
    // Level events: a vertical marker each, labels on two alternating rows.
    std::size_t shown = 0;
    for (const Mark& m : row.marks) {
        const double xm = x_of(m.at);
        const std::string x = coord(xm);
        const std::string colour = level_colour(m.event == "resolved" ? Level::none : m.level);
        out += "<line x1=\"" + x + "\" x2=\"" + x + "\" y1=\"" + coord(top - 2) + "\" y2=\"" +
               coord(top + ph) + "\" stroke=\"" + colour +
               "\" stroke-width=\"1.1\" stroke-dasharray=\"3 2\"/>";
        const char* anchor = xm > left + pw * 0.75   ? "end"
                             : xm < left + pw * 0.25 ? "start"
                                                     : "middle";
        out += "<text x=\"" + x + "\" y=\"" + coord(shown % 2 == 0 ? 9.0 : 19.0) +
               "\" text-anchor=\"" + anchor + "\" font-size=\"9\" fill=\"" + colour + "\">" +
               mark_label(m) + " " + date_of(m.at).substr(5) + "</text>";
        ++shown;
    }
    // One line per indicator.
    std::vector<double> xs(n);
    for (std::size_t i = 0; i < n; ++i) xs[i] = x_of(r.periods[i]);
    for (std::size_t k = 0; k < row.indicator_trend.size(); ++k) {
        const auto& series = row.indicator_trend[k];
        std::vector<double> ys(std::min(series.size(), n), no_score);
        for (std::size_t i = 0; i < ys.size(); ++i)
            if (std::isfinite(series[i])) ys[i] = top + ph - std::clamp(series[i], 0.0, 1.0) * ph;
        const LineStyle& s = line_style(k);
        out += segments(xs, ys, stroke_attrs(s) + " stroke-width=\"1.8\" stroke-linejoin=\"round\"",
                        std::string(s.colour), 2.0);
    }
    out += "</svg><ul class=\"legend\">";
    for (std::size_t k = 0; k < row.indicator_trend.size(); ++k) {
        const auto& series = row.indicator_trend[k];
        const bool any =
            std::any_of(series.begin(), series.end(), [](double v) { return std::isfinite(v); });
        out += "<li><svg viewBox=\"0 0 28 8\" aria-hidden=\"true\">"
               "<line x1=\"1\" x2=\"27\" y1=\"4\" y2=\"4\"" + stroke_attrs(line_style(k)) +
               " stroke-width=\"2\"/></svg>" + escape(indicator_name(r, k)) +
               (any ? "" : " <span class=\"muted\">(no data)</span>") + "</li>";
    }
    out += "</ul></figure>";
    return out;
}

// ---- sections --------------------------------------------------------------------------

std::string meta_list(const Report& r) {
    return "<dl class=\"meta\"><div><dt>Scope</dt><dd>" + scope_text(r) + "</dd></div>" +
           "<div><dt>Data as of</dt><dd><time>" + format_time(r.at) + "</time></dd></div>" +
           "<div><dt>Generated</dt><dd><time>" + format_time(r.generated) + "</time></dd></div>" +
           "<div><dt>Compared with</dt><dd><time>" + format_time(r.compared_with) +
           "</time></dd></div></dl>";
}

void header(std::string& out, const Report& r) {
    out += "<header class=\"top\"><p class=\"kicker\">ewsd prevention report</p>";
    out += "<h1>Localities that need attention</h1>";
    out += meta_list(r);
    out += "<p class=\"prompt\">A prompt for review by the child-protection committee, not a "
           "judgement about any child. Children drawn into armed or criminal groups are victims "
           "first.</p></header>";
}

void glance(std::string& out, const Report& r) {
    const std::string since = date_of(r.compared_with);
    out += "<section id=\"glance\"><h2>At a glance</h2><div class=\"cards\">";
    for (Level l : {Level::critical, Level::warning, Level::watch}) {
        const std::size_t i = std::size_t(l);
        out += "<div class=\"card lv-" + level_key(l) + "\"><div class=\"n\">" +
               std::to_string(r.total_now[i]) + "</div><div class=\"l\">" + level_label(l) +
               "</div><div class=\"d\">" + change_text(r.total_now[i], r.total_before[i], since) +
               "</div></div>";
    }
    const std::size_t attention_now = r.total_now[1] + r.total_now[2] + r.total_now[3];
    const std::size_t attention_before = r.total_before[1] + r.total_before[2] + r.total_before[3];
    out += "<div class=\"card scope\"><div class=\"n\">" + std::to_string(r.localities) +
           "</div><div class=\"l\">Localities in scope</div><div class=\"d\">" +
           std::to_string(attention_now) + " at watch or above, " +
           change_text(attention_now, attention_before, since) + "</div></div></div>";

    // The localities at warning or above, in rank order: the first thing a reader needs.
    std::string list;
    std::size_t listed = 0, more = 0;
    for (const LocalityRow& row : r.rows) {
        if (row.level < Level::warning) continue;
        if (listed == 10) {
            ++more;
            continue;
        }
        ++listed;
        list += "<li>" + badge(row.level) + " <span class=\"lname\">" + escape(row.name) +
                "</span> <span class=\"id\">" + escape(row.id) + "</span> <span class=\"muted\">" +
                path_html(row.region) + "</span>";
        if (const IndicatorNow* d = dominant_of(row))
            list += " <span class=\"why\">\u2014 mainly " + escape(d->indicator) + "</span>";
        list += "</li>";
    }
    if (listed > 0) {
        out += "<h3>Need attention first</h3><ul class=\"attention\">" + list + "</ul>";
        if (more > 0)
            out += "<p class=\"muted small\">and " + std::to_string(more) +
                   " more at warning or above in the region pages below.</p>";
    }
    if (r.failed_assessments > 0)
        out += "<p class=\"notice\">" + std::to_string(r.failed_assessments) +
               " indicator assessments failed while this report was built. They count as "
               "missing data, not as low risk.</p>";
    out += "<p class=\"howto\">How to read: scores run from 0 to 100 and levels are those ewsd "
           "published; see <strong>Method</strong> at the end of this report.</p></section>";
}

std::string count_cell(std::size_t now, std::size_t before, const std::string& label) {
    std::string out = "<td class=\"num\" data-label=\"" + label + "\"><span" +
                      std::string(now == 0 ? " class=\"zero\"" : "") + ">" + std::to_string(now) +
                      "</span>";
    if (now != before)
        out += "<span class=\"delta\">" + std::string(now > before ? "+" : "-") +
               std::to_string(now > before ? now - before : before - now) + "</span>";
    return out + "</td>";
}

void region_overview(std::string& out, const Report& r) {
    out += "<section id=\"regions\"><h2>Regions</h2>";
    if (r.regions.empty()) {
        out += "<p class=\"empty\">No locality in this scope.</p></section>";
        return;
    }
    out += "<p class=\"muted small\">Localities by published level; small figures are the "
           "change since " + date_of(r.compared_with) + ".</p>";
    out +=
        "<table class=\"regions\"><thead><tr><th>Region</th><th class=\"num\">Localities</th>"
        "<th class=\"num\">Critical</th><th class=\"num\">Warning</th><th class=\"num\">Watch</th>"
        "</tr></thead><tbody>";
    for (const RegionSummary& s : r.regions) {
        out += "<tr data-region=\"" + escape(s.region) + "\"><td>" + path_html(s.region) +
               "</td><td class=\"num\">" + std::to_string(s.localities) + "</td>";
        for (Level l : {Level::critical, Level::warning, Level::watch})
            out += count_cell(s.now[std::size_t(l)], s.before[std::size_t(l)], level_label(l));
        out += "</tr>";
    }
    out += "</tbody><tfoot><tr><td>All in scope</td><td class=\"num\">" +
           std::to_string(r.localities) + "</td>";
    for (Level l : {Level::critical, Level::warning, Level::watch})
        out +=
            count_cell(r.total_now[std::size_t(l)], r.total_before[std::size_t(l)], level_label(l));
    out += "</tr></tfoot></table></section>";
}

std::string locality_cell(const LocalityRow& row) {
    std::string out = "<td class=\"head\" data-label=\"Locality\"><div><span class=\"lname\">" +
                      escape(row.name) + "</span><br><span class=\"id\">" + escape(row.id) +
                      "</span>";
    std::string tags;
    if (row.opened_at)
        tags += "<span class=\"tag\">open since " + date_of(*row.opened_at) + "</span> ";
    if (row.acknowledged) tags += "<span class=\"tag\">acknowledged</span> ";
    if (row.flapping) tags += "<span class=\"tag alert\">level changing often</span>";
    if (!tags.empty()) out += "<br>" + tags;
    return out + "</div></td>";
}

std::string score_cell(const LocalityRow& row) {
    std::string out =
        "<td data-label=\"Score\"><div><span class=\"score\">" + score_text(row.score) + "</span>";
    if (std::isfinite(row.score))
        out += "<span class=\"muted small\"> /100</span><br>"
               "<span class=\"muted small nw\">confidence " + percent_text(row.confidence) +
               "</span>";
    if (row.level != row.before) {
        const bool up = row.level > row.before;
        out += "<span class=\"change " + std::string(up ? "up" : "down") + "\">" +
               (up ? "\u25b2 " : "\u25bc ") +
               (row.before == Level::none ? std::string("new")
                                          : "was " + std::string(to_string(row.before))) +
               "</span>";
    }
    return out + "</div></td>";
}

std::string evidence_cell(const LocalityRow& row) {
    std::string out = "<td data-label=\"Top indicator\"><div>";
    const IndicatorNow* d = dominant_of(row);
    if (!d) return out + "<span class=\"muted\">No indicator had evidence.</span></div></td>";
    out += "<span class=\"ind\">" + indicator_html(d->indicator) +
           "</span> <span class=\"muted small\">sub-score ";
    out += std::isfinite(d->score) ? fixed(std::clamp(d->score, 0.0, 1.0), 2) : std::string(dash);
    out += ", confidence " + percent_text(d->confidence) + "</span>";
    if (!d->evidence.empty()) out += "<br>" + escape(d->evidence);
    // The counts behind the evidence (already suppressed below min_cell); the other values
    // (rates, ratios, model terms) are in the exports.
    std::string counts;
    for (const ValueText& v : d->values)
        if (v.is_count)
            counts += "<li><span class=\"muted\">" + escape(v.name) + ":</span> <strong>" +
                      escape(v.text) + "</strong></li>";
    if (!counts.empty()) out += "<ul class=\"vals\">" + counts + "</ul>";
    // A sentinel floor holds the level whatever the score: say which indicator and why.
    for (const IndicatorNow& ind : row.indicators) {
        if (ind.floor == Level::none) continue;
        out += "<p class=\"floor small\">\u2691 " + indicator_html(ind.indicator) +
               " keeps this locality at <strong>" + escape(level_label(ind.floor)) +
               "</strong> or above, whatever the score";
        if (&ind != d && !ind.evidence.empty()) out += ": " + escape(ind.evidence);
        out += "</p>";
    }
    return out + "</div></td>";
}

std::string freshness_cell(const Report& r, const LocalityRow& row) {
    std::string out = "<td data-label=\"Data\"><div>";
    if (row.newest)
        out += date_span(*row.newest) + "<br><span class=\"muted small\">" +
               age_text(age_days(*row.newest, r.at)) + "</span>";
    else
        out += "<span class=\"stale\">no data</span>";
    // Indicators whose data stopped or failed, by status: missing data is not safety.
    for (sdk::Status status : {sdk::Status::stale, sdk::Status::no_data, sdk::Status::error}) {
        std::string names;
        for (const IndicatorNow& ind : row.indicators) {
            if (ind.status != status) continue;
            names += std::string(names.empty() ? "" : ", ") + indicator_html(ind.indicator);
            if (ind.newest)
                names +=
                    " <span class=\"muted small\">(newest " + date_span(*ind.newest) + ")</span>";
        }
        if (!names.empty())
            out += "<br><span class=\"stale\">\u26a0 " + status_text(status) + ":</span> " + names;
    }
    return out + "</div></td>";
}

std::string actions_cell(const LocalityRow& row) {
    std::string out = "<td data-label=\"Actions\"><div>";
    if (row.actions.empty())
        return out + "<span class=\"muted\">No playbook for this level.</span></div></td>";
    out += "<ul class=\"actions\">";
    for (const std::string& a : row.actions) out += "<li>" + escape(a) + "</li>";
    return out + "</ul></div></td>";
}

void region_sections(std::string& out, const Report& r) {
    // Regions in the order of Report::regions; a row whose region is missing there still
    // gets a section, after them, so no locality at watch or above is left out.
    std::vector<std::string> order;
    for (const RegionSummary& s : r.regions) order.push_back(s.region);
    for (const LocalityRow& row : r.rows)
        if (row.level >= Level::watch &&
            std::find(order.begin(), order.end(), row.region) == order.end())
            order.push_back(row.region);

    bool first = true;
    for (const std::string& region : order) {
        std::vector<std::size_t> idx;
        for (std::size_t i = 0; i < r.rows.size(); ++i)
            if (r.rows[i].level >= Level::watch && r.rows[i].region == region) idx.push_back(i);
        if (idx.empty()) continue;

        out += "<section class=\"region" + std::string(first ? " first" : "") +
               "\" data-region=\"" + escape(region) + "\">";
        first = false;
        out += "<p class=\"region-scope\">Prevention report, " + scope_text(r) + ", data as of " +
               format_time(r.at) + "</p>";
        out += "<h2>Region " + path_html(region) + "</h2>";
        auto s = std::find_if(r.regions.begin(), r.regions.end(),
                              [&](const RegionSummary& x) { return x.region == region; });
        if (s != r.regions.end())
            out += "<p class=\"muted\">" + std::to_string(s->now[3]) + " critical, " +
                   std::to_string(s->now[2]) + " warning, " + std::to_string(s->now[1]) +
                   " watch, of " + std::to_string(s->localities) + " localities.</p>";
        out += "<table class=\"ranked stack\"><colgroup>"
               "<col class=\"c-rank\"><col class=\"c-loc\"><col class=\"c-level\">"
               "<col class=\"c-score\"><col class=\"c-trend\"><col class=\"c-ev\">"
               "<col class=\"c-data\"><col class=\"c-act\"></colgroup>"
               "<thead><tr><th>#</th><th>Locality</th><th>Level</th><th>Score</th><th>Trend</th>"
               "<th>Top indicator and evidence</th><th>Data</th><th>What to do</th></tr></thead>"
               "<tbody>";
        for (std::size_t i : idx) {
            const LocalityRow& row = r.rows[i];
            out += "<tr data-locality=\"" + escape(row.id) + "\" data-level=\"" +
                   level_key(row.level) + "\">";
            out += "<td class=\"head\" data-label=\"Rank\"><span class=\"rank\">" +
                   std::to_string(i + 1) + "</span></td>";
            out += locality_cell(row);
            out +=
                "<td class=\"head\" data-label=\"Level\"><div>" + badge(row.level) + "</div></td>";
            out += score_cell(row);
            out += "<td data-label=\"Trend\"><div>" + sparkline(r, row) + "</div></td>";
            out += evidence_cell(row);
            out += freshness_cell(r, row);
            out += actions_cell(row);
            out += "</tr>";
        }
        out += "</tbody></table>";

        std::string charts;
        for (std::size_t i : idx)
            if (r.rows[i].level >= Level::warning) charts += indicator_chart(r, r.rows[i]);
        if (!charts.empty())
            out += "<h3>Indicator sub-scores, localities at warning or above</h3>"
                   "<div class=\"charts\">" + charts + "</div>";
        out += "</section>";
    }
    if (first)
        out += "<section id=\"localities\"><h2>Localities</h2><p class=\"empty\">No locality "
               "in this scope is at watch or above as of " + format_time(r.at) + ".</p></section>";
}

void gaps_section(std::string& out, const Report& r) {
    out += "<section id=\"gaps\"><h2>Data gaps</h2>";
    if (r.gaps.empty()) {
        out += "<p class=\"empty\">No data gaps.</p></section>";
        return;
    }
    out += "<p>Sources of data that stopped: an indicator that had data for a locality and is "
           "now stale or has none. Missing data is not safety; check with the reporting "
           "channel.</p>";
    std::vector<std::string> indicators;
    for (const Gap& g : r.gaps)
        if (std::find(indicators.begin(), indicators.end(), g.indicator) == indicators.end())
            indicators.push_back(g.indicator);
    for (const std::string& ind : indicators) {
        out += "<h3 data-gap-indicator=\"" + escape(ind) + "\">" + escape(ind) + "</h3>";
        out += "<table class=\"gaps stack\"><thead><tr><th>Locality</th><th>Region</th>"
               "<th>Status</th><th>Newest data</th></tr></thead><tbody>";
        for (const Gap& g : r.gaps) {
            if (g.indicator != ind) continue;
            out += "<tr data-gap-locality=\"" + escape(g.locality) +
                   "\"><td data-label=\"Locality\"><div><span class=\"lname\">" + escape(g.name) +
                   "</span> <span class=\"id\">" + escape(g.locality) + "</span></div></td>";
            out += "<td data-label=\"Region\">" + path_html(g.region) + "</td>";
            out += "<td data-label=\"Status\"><span class=\"stale\">" + status_text(g.status) +
                   "</span></td>";
            out += "<td data-label=\"Newest data\"><div>";
            if (g.newest)
                out += date_span(*g.newest) + " <span class=\"muted small\">(" +
                       age_text(age_days(*g.newest, r.at)) + ")</span>";
            else
                out += "<span class=\"muted\">none</span>";
            out += "</div></td></tr>";
        }
        out += "</tbody></table>";
    }
    out += "</section>";
}

void method_section(std::string& out, const Report& r) {
    out += "<section id=\"method\" class=\"method\"><h2>Method</h2>";
    out += "<h3>How to read a score</h3><p>Each locality has a score from 0 to 100: the "
           "confidence-weighted mean of its indicator sub-scores (each from 0, nothing unusual, "
           "to 1, as alarming as that indicator gets), times 100. An indicator counts with its "
           "weight times its confidence in its own data. The top indicator is the one that "
           "contributes most. Weights:</p><dl class=\"weights\">";
    for (const std::string& ind : r.indicators) {
        const bool configured = r.weights.count(ind) > 0;
        out += "<dt>" + escape(ind) + "</dt><dd>" + number_text(weight_of(r, ind)) +
               (configured ? "" : " <span class=\"muted\">(default)</span>") + "</dd>";
    }
    out += "</dl>";
    out += "<h3>Levels</h3><p>A level is raised when the score reaches its raise threshold at " +
           std::to_string(r.raise_after) +
           " consecutive evaluations, and cleared when the score falls below its clear "
           "threshold at " +
           std::to_string(r.clear_after) +
           " consecutive evaluations. The gap between the two keeps levels from flickering.</p>";
    out +=
        "<table class=\"levels\"><thead><tr><th>Level</th><th class=\"num\">Raised at score</th>"
        "<th class=\"num\">Cleared below</th></tr></thead><tbody>";
    for (Level l : {Level::critical, Level::warning, Level::watch}) {
        const LevelThresholds& t = r.levels[std::size_t(l) - 1];
        out += "<tr><td>" + badge(l) + "</td><td class=\"num\">" + number_text(t.raise) +
               "</td><td class=\"num\">" + number_text(t.clear) + "</td></tr>";
    }
    out += "</tbody></table>";
    out += "<p>The levels shown are those ewsd published: the alert state as of " +
           format_time(r.at) + ", compared with the level published at " +
           format_time(r.compared_with) + " (" + std::to_string(r.compare_days) +
           " days earlier). A level can differ from what the score alone suggests while "
           "thresholds, consecutive evaluations or a sentinel rule hold it.</p>";
    out += "<p>Scores and trends are re-computed for the " + std::to_string(r.periods.size()) +
           " evaluation times shown, " + std::to_string(r.step_days) + " days apart";
    if (!r.periods.empty())
        out += ", from " + date_of(r.periods.front()) + " to " + date_of(r.periods.back());
    out += ", with the data held now. Markers on the charts are the level events ewsd published "
           "in that time.</p>";
    out += "<h3>Missing data is not safety</h3><p>Stale or missing data lowers the confidence "
           "of a score and is listed under Data gaps. It never counts as a low score and never "
           "clears a level.</p>";
    out += "<h3>A prompt for review</h3><p>This report helps the committee decide where to look "
           "and what support to offer. It is a prompt for review by the committee, not a "
           "judgement about any child. Children drawn into armed or criminal groups are victims "
           "first: the response is prevention, protection, recovery and reintegration. Counts "
           "below " + std::to_string(r.min_cell) + " are shown as &lt;" +
           std::to_string(r.min_cell) + " so that no child can be singled out.</p></section>";
}

void footer(std::string& out, const Report& r) {
    out += "<footer class=\"bottom\">";
    out += "<p><strong>Scope:</strong> " + scope_text(r) + " \u00b7 <strong>Data as of</strong> " +
           format_time(r.at) + " \u00b7 <strong>Generated</strong> " + format_time(r.generated) +
           " \u00b7 <strong>Compared with</strong> " + format_time(r.compared_with) + "</p>";
    out += "<p>ewsd " + escape(r.version) + " \u00b7 plugins: ";
    if (r.plugins.empty()) out += "none";
    for (std::size_t i = 0; i < r.plugins.size(); ++i)
        out += (i ? ", " : "") + escape(r.plugins[i].first) + " " + escape(r.plugins[i].second);
    out += " \u00b7 " + std::to_string(r.published_events) + " published alert events read</p>";
    out += "<p>Counts below " + std::to_string(r.min_cell) + " are shown as &lt;" +
           std::to_string(r.min_cell) + ".</p>";
    out += "<p><strong>This report is a prompt for review, not a judgement about any "
           "child.</strong> Children drawn into armed or criminal groups are victims first.</p>"
           "</footer>";
}

}  // namespace

std::string render_html(const Report& report) {
    std::string out;
    out.reserve(64 * 1024 + report.rows.size() * 4096);
    out +=
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">";
    out += "<title>Prevention report \u2013 " + scope_text(report) + " \u2013 " +
           date_of(report.at) + "</title>";
    out += "<style>";
    out += css;
    out += "</style></head><body>\n";
    header(out, report);
    out += "<main>\n";
    glance(out, report);
    region_overview(out, report);
    region_sections(out, report);
    gaps_section(out, report);
    method_section(out, report);
    out += "</main>\n";
    footer(out, report);
    out += "\n</body></html>\n";
    return out;
}

}  // namespace ews::report
