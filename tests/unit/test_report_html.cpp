// The HTML prevention report rendered from hand-built Report values: escaping, structure,
// order, privacy sentence and the empty and NaN cases. Set EWS_REPORT_SAMPLE=FILE to also
// write the realistic sample page to FILE for a look in a browser.
#include "report.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <optional>
#include <string>
#include <vector>

using namespace ews;
using namespace ews::report;

namespace {

TimePoint day(const char* date) { return *parse_time(date); }

std::size_t count_of(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto pos = text.find(what); pos != std::string::npos;
         pos = text.find(what, pos + what.size()))
        ++n;
    return n;
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return char(std::tolower(c)); });
    return s;
}

// The text between the first `open` and the next `close` after it; empty when absent.
std::string between(const std::string& html, const std::string& open, const std::string& close,
                    std::size_t from = 0) {
    auto a = html.find(open, from);
    if (a == std::string::npos) return {};
    auto b = html.find(close, a);
    return b == std::string::npos ? std::string() : html.substr(a, b - a);
}

// The text of `html` without its tags (entities stay as they are).
std::string text_of(const std::string& html) {
    std::string out;
    bool in_tag = false;
    for (char c : html) {
        if (c == '<')
            in_tag = true;
        else if (c == '>')
            in_tag = false;
        else if (!in_tag)
            out += c;
    }
    return out;
}

// The ranked-table row of locality `id`.
std::string row_html(const std::string& html, const std::string& id) {
    return between(html, "<tr data-locality=\"" + id + "\"", "</tr>");
}

IndicatorNow indicator(std::string name, double score, sdk::Status status,
                       std::optional<TimePoint> newest, std::string evidence,
                       std::vector<ValueText> values = {}) {
    IndicatorNow i;
    i.indicator = std::move(name);
    i.score = score;
    i.confidence = std::isfinite(score) ? 0.8 : 0;
    i.status = status;
    i.newest = newest;
    i.evidence = std::move(evidence);
    i.values = std::move(values);
    return i;
}

// A smooth series of `n` values from `from` to `to`.
std::vector<double> ramp(std::size_t n, double from, double to) {
    std::vector<double> v(n);
    for (std::size_t i = 0; i < n; ++i)
        v[i] = n == 1 ? to : from + (to - from) * double(i) / double(n - 1);
    return v;
}

LocalityRow locality(std::string id, std::string name, std::string region, Level level,
                     double score, const Report& r) {
    LocalityRow row;
    row.id = std::move(id);
    row.name = std::move(name);
    row.region = std::move(region);
    row.level = level;
    row.before = level;
    row.score = score;
    row.confidence = 0.75;
    const std::size_t n = r.periods.size();
    row.trend = ramp(n, std::isfinite(score) ? score * 0.5 : 0, std::isfinite(score) ? score : 0);
    for (std::size_t k = 0; k < r.indicators.size(); ++k)
        row.indicator_trend.push_back(ramp(n, 0.1 + 0.1 * double(k), 0.3 + 0.2 * double(k)));
    row.newest = r.at - std::chrono::days(3);
    row.indicators = {
        indicator("school_dropout", 0.7, sdk::Status::ok, r.at - std::chrono::days(3),
                  "Dropout 3 times the usual rate this term",
                  {{"left_school", "12", true}, {"expected", "4", true}}),
        indicator("incidents", 0.4, sdk::Status::ok, r.at - std::chrono::days(10),
                  "Two incidents near schools", {{"incidents", "<5", true}}),
        indicator("group_presence", 0.2, sdk::Status::ok, r.at - std::chrono::days(20),
                  "Presence reported by one monitor", {{"reports", "<5", true}})};
    row.dominant = 0;
    if (level != Level::none) {
        row.alert_id = "a-" + row.id;
        row.opened_at = r.at - std::chrono::days(21);
        row.actions = {"Convene the community child-protection committee",
                       "School outreach to children who left school"};
    }
    return row;
}

// A realistic province with three districts: 2 critical, 2 warning, 3 watch, rest none.
Report sample_report() {
    Report r;
    r.scope = "KE/KE-03";
    r.at = day("2026-12-03");
    r.generated = day("2026-12-03T06:15:00Z");
    r.compare_days = 28;
    r.compared_with = r.at - std::chrono::days(28);
    r.step_days = 7;
    for (int i = 11; i >= 0; --i) r.periods.push_back(r.at - std::chrono::days(7 * i));
    r.indicators = {"school_dropout", "incidents", "group_presence"};
    r.plugins = {{"school_dropout", "1.0.0"}, {"incidents", "1.1.0"}, {"group_presence", "1.0.2"}};
    r.weights = {{"school_dropout", 2.0}, {"incidents", 1.5}};
    r.levels = {{{40, 30}, {60, 50}, {80, 70}}};
    r.min_cell = 5;
    r.version = "0.1.0";
    r.published_events = 37;

    const std::string a = "KE/KE-03/KE-030", b = "KE/KE-03/KE-031", c = "KE/KE-03/KE-032";
    auto add = [&](LocalityRow row) { r.rows.push_back(std::move(row)); };
    {
        auto row = locality("KE030-07", "Mathare North", a, Level::critical, 86.4, r);
        row.before = Level::warning;
        row.indicator_trend[0] = {0.2, 0.25, 0.3, 0.35, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.92};
        row.indicator_trend[1] = {0.1, 0.1, no_score, no_score, 0.3, 0.4,
                                  0.4, 0.5, 0.6,      0.6,      0.7, 0.7};
        row.indicator_trend[2] = {0.05, 0.05, 0.1, 0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.4, 0.4, 0.5};
        row.trend = {32, 35, 38, 41, 48, 55, 62, 66, 71, 78, 83, 86.4};
        row.marks = {{r.at - std::chrono::days(49), "raised", Level::watch},
                     {r.at - std::chrono::days(28), "escalated", Level::warning},
                     {r.at - std::chrono::days(7), "escalated", Level::critical}};
        row.actions = {"Convene the community child-protection committee within a week",
                       "School outreach to children who left school this term",
                       "Check referral pathways for recovery and reintegration"};
        add(row);
    }
    {
        auto row = locality("KE031-02", "Kibera Soweto East", b, Level::critical, 81.0, r);
        row.acknowledged = true;
        row.dominant = 1;
        row.indicators[1].evidence =
            "Incidents involving children doubled against the last 12 weeks";
        row.indicators[1].values = {{"incidents", "14", true}, {"baseline", "6.5", false}};
        row.marks = {{r.at - std::chrono::days(63), "raised", Level::warning},
                     {r.at - std::chrono::days(42), "escalated", Level::critical}};
        add(row);
    }
    {
        auto row = locality("KE030-02", "Huruma", a, Level::warning, 64.2, r);
        row.before = Level::watch;
        row.dominant = 2;
        row.indicators[2].evidence = "Group activity reported near the market by two monitors";
        row.marks = {{r.at - std::chrono::days(35), "raised", Level::watch},
                     {r.at - std::chrono::days(14), "escalated", Level::warning}};
        add(row);
    }
    {
        auto row = locality("KE032-11", "Dandora Phase 4", c, Level::warning, 58.9, r);
        row.before = Level::critical;
        row.indicators[0].status = sdk::Status::stale;
        row.indicators[0].newest = r.at - std::chrono::days(45);
        row.newest = r.at - std::chrono::days(10);
        row.dominant = 1;
        row.trend = {70, 74, 81, 84, 83, 80, 76, no_score, no_score, 62, 60, 58.9};
        row.marks = {{r.at - std::chrono::days(49), "escalated", Level::critical},
                     {r.at - std::chrono::days(21), "deescalated", Level::warning}};
        row.flapping = true;
        add(row);
    }
    {
        auto row = locality("KE030-04", "Kariobangi", a, Level::watch, 44.0, r);
        row.actions = {"Share this report with the school heads of the locality"};
        add(row);
    }
    {
        auto row = locality("KE031-09", "Lindi", b, Level::watch, no_score, r);
        row.before = Level::none;
        row.dominant = -1;
        row.trend.assign(r.periods.size(), no_score);
        for (auto& t : row.indicator_trend) t.assign(r.periods.size(), no_score);
        for (auto& i : row.indicators) {
            i.status = sdk::Status::no_data;
            i.score = no_score;
            i.newest.reset();
        }
        row.newest.reset();
        row.confidence = 0;
        add(row);
    }
    {
        auto row = locality("KE032-03", "Korogocho", c, Level::watch, 41.5, r);
        add(row);
    }
    for (int i = 0; i < 5; ++i) {
        const std::string id = "KE03" + std::to_string(i % 3) + "-2" + std::to_string(i);
        add(locality(id, "Quiet place " + std::to_string(i),
                     i % 3 == 0   ? a
                     : i % 3 == 1 ? b
                                  : c,
                     Level::none, 12.0 + i, r));
    }
    r.localities = r.rows.size();
    for (const std::string& region : {a, b, c}) {
        RegionSummary s;
        s.region = region;
        for (const auto& row : r.rows) {
            if (row.region != region) continue;
            ++s.localities;
            ++s.now[std::size_t(row.level)];
            ++s.before[std::size_t(row.before)];
        }
        r.regions.push_back(s);
    }
    for (const auto& row : r.rows) {
        ++r.total_now[std::size_t(row.level)];
        ++r.total_before[std::size_t(row.before)];
    }
    r.gaps = {{"incidents", "KE031-09", "Lindi", b, sdk::Status::no_data, std::nullopt},
              {"school_dropout", "KE032-11", "Dandora Phase 4", c, sdk::Status::stale,
               r.at - std::chrono::days(45)},
              {"school_dropout", "KE031-09", "Lindi", b, sdk::Status::no_data,
               r.at - std::chrono::days(70)}};
    return r;
}

}  // namespace

TEST_CASE("report html is one self-contained document without script or links", "[report_html]") {
    const std::string html = render_html(sample_report());
    if (const char* path = std::getenv("EWS_REPORT_SAMPLE")) std::ofstream(path) << html;

    CHECK(html.starts_with("<!doctype html>"));
    CHECK(html.find("<meta charset=\"utf-8\">") != std::string::npos);
    CHECK(html.find("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">") !=
          std::string::npos);
    CHECK(count_of(html, "<style>") == 1);
    const std::string l = lower(html);
    CHECK(l.find("<script") == std::string::npos);
    CHECK(l.find("http") == std::string::npos);
    CHECK(l.find("<link") == std::string::npos);
    CHECK(l.find("<img") == std::string::npos);
    CHECK(l.find("src=") == std::string::npos);
    CHECK(l.find("href") == std::string::npos);
    CHECK(l.find("url(") == std::string::npos);
    CHECK(l.find("@import") == std::string::npos);
    CHECK(l.find("xmlns") == std::string::npos);
    CHECK(l.find("nan") == std::string::npos);
    CHECK(l.find("inf") == std::string::npos);
    // Sections in order.
    const auto glance = html.find("<h2>At a glance</h2>"), regions = html.find("<h2>Regions</h2>"),
               first_region = html.find("<section class=\"region"),
               gaps = html.find("<h2>Data gaps</h2>"), method = html.find("<h2>Method</h2>"),
               foot = html.find("<footer");
    REQUIRE(glance != std::string::npos);
    CHECK(glance < regions);
    CHECK(regions < first_region);
    CHECK(first_region < gaps);
    CHECK(gaps < method);
    CHECK(method < foot);
}

TEST_CASE("report html escapes every text from data", "[report_html]") {
    Report r = sample_report();
    const std::string hostile = "<script>alert(1)</script>";
    r.scope = "KE/\"><script>x</script>";
    r.rows[0].name = hostile;
    r.rows[0].id = "id\"onmouseover='x'";
    r.rows[0].region = "KE/KE-03/<b>r</b>";
    r.regions[0].region = r.rows[0].region;
    r.rows[0].actions = {"<img src=x onerror=alert(1)>", "Tom & Jerry \"quoted\" 'single'"};
    r.rows[0].indicators[0].indicator = "<i>ind</i>";
    r.rows[0].indicators[0].evidence = "a & b <script>alert(2)</script>";
    r.rows[0].indicators[0].values = {{"<v>", "<5", true}};
    r.rows[0].marks = {{r.at - std::chrono::days(7), "<odd>", Level::warning}};
    r.indicators[0] = "<i>ind</i>";
    r.weights = {{"<i>ind</i>", 2.0}};
    r.plugins = {{"<p>lugin", "1.0<"}};
    r.version = "0.1<x>";
    r.gaps[0].name = hostile;
    r.gaps[0].indicator = "<g>";
    const std::string html = render_html(r);

    CHECK(html.find("<script") == std::string::npos);
    CHECK(html.find("<img") == std::string::npos);
    CHECK(html.find("<i>ind") == std::string::npos);
    CHECK(html.find("<b>r") == std::string::npos);
    CHECK(html.find("<v>") == std::string::npos);
    CHECK(html.find("<g>") == std::string::npos);
    CHECK(html.find("<odd>") == std::string::npos);
    CHECK(html.find("<p>lugin") == std::string::npos);
    CHECK(html.find("0.1<x>") == std::string::npos);
    CHECK(html.find("onmouseover='") == std::string::npos);
    CHECK(html.find("&lt;script&gt;alert(1)&lt;/script&gt;") != std::string::npos);
    CHECK(html.find("Tom &amp; Jerry &quot;quoted&quot; &#39;single&#39;") != std::string::npos);
    CHECK(html.find("a &amp; b &lt;script&gt;alert(2)&lt;/script&gt;") != std::string::npos);
    CHECK(html.find("Region KE/&quot;&gt;&lt;script&gt;x&lt;/script&gt; and below") !=
          std::string::npos);
    CHECK(html.find("data-locality=\"id&quot;onmouseover=&#39;x&#39;\"") != std::string::npos);
    CHECK(html.find("&lt;v&gt;:") != std::string::npos);
    CHECK(html.find("&lt;5") != std::string::npos);
    CHECK(html.find("&lt;p&gt;lugin 1.0&lt;") != std::string::npos);
    // Text from data never ends up as an element or attribute of its own: every '<' in the
    // page opens a tag the renderer wrote.
    for (auto pos = html.find('<'); pos != std::string::npos; pos = html.find('<', pos + 1)) {
        const char next = html[pos + 1];
        INFO(html.substr(pos, 40));
        CHECK((std::isalpha(static_cast<unsigned char>(next)) || next == '/' || next == '!'));
    }
}

TEST_CASE("report html carries scope and times in header and footer", "[report_html]") {
    Report r = sample_report();
    SECTION("a region scope") {
        const std::string html = render_html(r);
        const std::string head = between(html, "<header", "</header>");
        const std::string foot = between(html, "<footer", "</footer>");
        for (const std::string& part : {head, foot}) {
            CHECK(part.find("Region KE/KE-03 and below") != std::string::npos);
            CHECK(part.find("2026-12-03T00:00:00Z") != std::string::npos);
            CHECK(part.find("2026-12-03T06:15:00Z") != std::string::npos);
        }
        CHECK(foot.find("ewsd 0.1.0") != std::string::npos);
        CHECK(foot.find("school_dropout 1.0.0, incidents 1.1.0, group_presence 1.0.2") !=
              std::string::npos);
        CHECK(foot.find("prompt for review, not a judgement about any child") != std::string::npos);
        CHECK(foot.find("Counts below 5 are shown as &lt;5") != std::string::npos);
    }
    SECTION("every region") {
        r.scope.clear();
        const std::string html = render_html(r);
        CHECK(between(html, "<header", "</header>").find("All regions") != std::string::npos);
        CHECK(between(html, "<footer", "</footer>").find("All regions") != std::string::npos);
        CHECK(html.find("Region  and below") == std::string::npos);
    }
}

TEST_CASE("report html shows the min_cell of the report", "[report_html]") {
    Report r = sample_report();
    r.min_cell = 10;
    const std::string html = render_html(r);
    CHECK(html.find("Counts below 10 are shown as &lt;10") != std::string::npos);
    CHECK(html.find("Counts below 5 ") == std::string::npos);
}

TEST_CASE("report html at a glance shows level counts and their change", "[report_html]") {
    const Report r = sample_report();
    const std::string html = render_html(r);
    const std::string glance_html = between(html, "<section id=\"glance\"", "</section>");
    const std::string glance = text_of(glance_html);
    // critical: 2 now (KE030-07 was warning, KE031-02 critical) against 2 before (KE031-02 and
    // KE032-11); warning 2 now against 2 before; watch 3 now against 2 before.
    CHECK(r.total_now[3] == 2);
    CHECK(r.total_before[3] == 2);
    CHECK(r.total_now[1] == 3);
    CHECK(r.total_before[1] == 3);
    CHECK(glance_html.find("<div class=\"card lv-critical\"><div class=\"n\">2</div>") !=
          std::string::npos);
    CHECK(glance.find("no change since 2026-11-05") != std::string::npos);
    CHECK(glance.find("+1 since 2026-11-05") != std::string::npos);  // warning: 2 against 1
    CHECK(glance.find("7 at watch or above, +1 since 2026-11-05") != std::string::npos);
    CHECK(glance_html.find("12</div><div class=\"l\">Localities in scope") != std::string::npos);

    Report more = r;
    more.total_now[3] = 4;
    more.total_before[2] = 5;
    const std::string g2 = between(render_html(more), "<section id=\"glance\"", "</section>");
    CHECK(text_of(g2).find("+2 since 2026-11-05") != std::string::npos);
    CHECK(text_of(g2).find("-3 since 2026-11-05") != std::string::npos);
    CHECK(g2.find("<strong>Method</strong>") != std::string::npos);
}

TEST_CASE("report html keeps the ranked order of rows with ranks over the whole report",
          "[report_html]") {
    Report r = sample_report();
    // The rows of region KE-030 are in an order that is neither by id nor by name.
    const std::string html = render_html(r);
    const std::string region_a = between(
        html, "<section class=\"region first\" data-region=\"KE/KE-03/KE-030\"", "</section>");
    REQUIRE(!region_a.empty());
    const auto p1 = region_a.find("data-locality=\"KE030-07\""),
               p2 = region_a.find("data-locality=\"KE030-02\""),
               p3 = region_a.find("data-locality=\"KE030-04\"");
    REQUIRE(p1 != std::string::npos);
    REQUIRE(p2 != std::string::npos);
    REQUIRE(p3 != std::string::npos);
    CHECK(p1 < p2);
    CHECK(p2 < p3);
    // Ranks are positions in Report::rows: 1, 3 and 5 for this region.
    CHECK(row_html(html, "KE030-07").find("<span class=\"rank\">1</span>") != std::string::npos);
    CHECK(row_html(html, "KE030-02").find("<span class=\"rank\">3</span>") != std::string::npos);
    CHECK(row_html(html, "KE030-04").find("<span class=\"rank\">5</span>") != std::string::npos);
    CHECK(html.find("<tr data-locality=\"KE030-07\" data-level=\"critical\">") !=
          std::string::npos);
    CHECK(html.find("<tr data-locality=\"KE030-02\" data-level=\"warning\">") != std::string::npos);

    // Swapping two rows swaps them on the page: the renderer keeps the given order.
    std::swap(r.rows[0], r.rows[2]);
    const std::string swapped = render_html(r);
    CHECK(swapped.find("data-locality=\"KE030-02\"") < swapped.find("data-locality=\"KE030-07\""));
}

TEST_CASE("report html ranks only localities at watch or above", "[report_html]") {
    const Report r = sample_report();
    const std::string html = render_html(r);
    std::size_t at_watch = 0;
    for (const auto& row : r.rows) {
        const bool shown = html.find("data-locality=\"" + row.id + "\"") != std::string::npos;
        CHECK(shown == (row.level >= Level::watch));
        at_watch += row.level >= Level::watch;
    }
    CHECK(count_of(html, "<tr data-locality=") == at_watch);
    CHECK(html.find("Quiet place") == std::string::npos);
    CHECK(html.find("data-level=\"none\"") == std::string::npos);
}

TEST_CASE("report html has one section per region with a locality at watch or above",
          "[report_html]") {
    Report r = sample_report();
    // A fourth region with no locality at watch or above gets no section.
    RegionSummary quiet;
    quiet.region = "KE/KE-03/KE-033";
    quiet.localities = 1;
    quiet.now[0] = 1;
    quiet.before[0] = 1;
    r.regions.push_back(quiet);
    r.rows.push_back(locality("KE033-01", "Calm", quiet.region, Level::none, 5, r));
    const std::string html = render_html(r);
    CHECK(count_of(html, "<section class=\"region") == 3);
    CHECK(count_of(html, "<section class=\"region first\"") == 1);
    const auto a = html.find("<section class=\"region first\" data-region=\"KE/KE-03/KE-030\"");
    const auto b = html.find("<section class=\"region\" data-region=\"KE/KE-03/KE-031\"");
    const auto c = html.find("<section class=\"region\" data-region=\"KE/KE-03/KE-032\"");
    REQUIRE(a != std::string::npos);
    CHECK(a < b);
    CHECK(b < c);
    CHECK(c != std::string::npos);
    CHECK(html.find("<section class=\"region\" data-region=\"KE/KE-03/KE-033\"") ==
          std::string::npos);
    // ...but it is in the overview table.
    CHECK(html.find("<tr data-region=\"KE/KE-03/KE-033\">") != std::string::npos);
    // Each row sits in the section of its region.
    const std::string sec_b = between(html, "data-region=\"KE/KE-03/KE-031\"><p", "</section>");
    CHECK(sec_b.find("data-locality=\"KE031-02\"") != std::string::npos);
    CHECK(sec_b.find("data-locality=\"KE031-09\"") != std::string::npos);
    CHECK(sec_b.find("data-locality=\"KE030-07\"") == std::string::npos);
    // The print stylesheet starts every region but the first on a new page.
    CHECK(html.find("section.region{break-before:page;page-break-before:always}") !=
          std::string::npos);
    CHECK(html.find("section.region.first{break-before:auto;page-break-before:auto}") !=
          std::string::npos);
}

TEST_CASE("report html draws indicator charts only at warning and above", "[report_html]") {
    const Report r = sample_report();
    const std::string html = render_html(r);
    for (const auto& row : r.rows) {
        INFO(row.id);
        CHECK((html.find("data-chart=\"" + row.id + "\"") != std::string::npos) ==
              (row.level >= Level::warning));
    }
    const std::string chart =
        between(html, "<figure class=\"chart\" data-chart=\"KE030-07\"", "</figure>");
    REQUIRE(!chart.empty());
    CHECK(chart.find("<figcaption>") != std::string::npos);
    CHECK(chart.find("viewBox=\"0 0 320 140\"") != std::string::npos);
    // Indicator 1 has a gap: two polylines for it, three lines in all plus one more.
    CHECK(count_of(chart, "<polyline") == 4);
    CHECK(count_of(chart, "stroke-dasharray=\"6 3\"") == 3);  // two segments and the legend
    // First and last period dated, each mark labelled.
    CHECK(chart.find(">2026-09-17</text>") != std::string::npos);
    CHECK(chart.find(">2026-12-03</text>") != std::string::npos);
    CHECK(chart.find("raised watch") != std::string::npos);
    CHECK(count_of(chart, "\u2191 ") == 2);
    for (const auto& name : r.indicators) CHECK(chart.find(name + "</li>") != std::string::npos);
}

TEST_CASE("report html shows score, change, evidence, freshness and actions of a row",
          "[report_html]") {
    const std::string html = render_html(sample_report());
    const std::string top = row_html(html, "KE030-07");
    CHECK(top.find("<span class=\"score\">86.4</span>") != std::string::npos);
    CHECK(top.find("was warning") != std::string::npos);
    CHECK(top.find("Dropout 3 times the usual rate this term") != std::string::npos);
    CHECK(top.find("left_school:</span> <strong>12</strong>") != std::string::npos);
    CHECK(top.find("2026-11-30") != std::string::npos);
    CHECK(top.find("3 days old") != std::string::npos);
    CHECK(top.find("<li>Check referral pathways for recovery and reintegration</li>") !=
          std::string::npos);
    CHECK(top.find("<svg class=\"spark\"") != std::string::npos);

    const std::string second = row_html(html, "KE031-02");
    CHECK(second.find("Incidents involving children doubled") != std::string::npos);
    CHECK(second.find("incidents:</span> <strong>14</strong>") != std::string::npos);
    CHECK(second.find("baseline") == std::string::npos);  // not a count: left to the exports
    CHECK(second.find("acknowledged") != std::string::npos);
    CHECK(second.find("was ") == std::string::npos);  // level unchanged: no marker

    const std::string down = row_html(html, "KE032-11");
    CHECK(down.find("was critical") != std::string::npos);
    CHECK(text_of(down).find("stale: school_dropout (newest 2026-10-19)") != std::string::npos);
    CHECK(down.find("2026-10-19") != std::string::npos);
    // The trend has a gap: two polylines in the sparkline.
    CHECK(count_of(between(down, "<svg class=\"spark\"", "</svg>"), "<polyline") == 2);

    const std::string suppressed = row_html(html, "KE030-04");
    CHECK(suppressed.find("incidents:") == std::string::npos);  // only the top indicator's values
}

TEST_CASE("report html says which indicator holds a locality at a floor level", "[report_html]") {
    Report r = sample_report();
    // Kariobangi: watch at 44.0 led by school_dropout; a sentinel incident holds it at watch.
    LocalityRow* row = nullptr;
    for (auto& x : r.rows)
        if (x.id == "KE030-04") row = &x;
    REQUIRE(row != nullptr);
    row->indicators[1].floor = Level::watch;
    row->indicators[1].evidence = "A sentinel incident was reported this week";
    const std::string html = render_html(r);
    const std::string text = text_of(row_html(html, "KE030-04"));
    CHECK(text.find("incidents keeps this locality at Watch or above, whatever the score: "
                    "A sentinel incident was reported this week") != std::string::npos);
    // No other row claims a floor.
    CHECK(count_of(html, "keeps this locality at") == 1);
}

TEST_CASE("report html renders a missing score as a dash", "[report_html]") {
    const std::string html = render_html(sample_report());
    const std::string row = row_html(html, "KE031-09");
    REQUIRE(!row.empty());
    CHECK(row.find("<span class=\"score\">\u2013</span>") != std::string::npos);
    CHECK(row.find("No indicator had evidence.") != std::string::npos);
    CHECK(row.find("\u25b2 new") != std::string::npos);  // was none, now watch
    CHECK(row.find("<polyline") == std::string::npos);
    CHECK(lower(row).find("nan") == std::string::npos);
}

TEST_CASE("report html lists data gaps by indicator", "[report_html]") {
    Report r = sample_report();
    const std::string html = render_html(r);
    const std::string gaps = between(html, "<section id=\"gaps\"", "</section>");
    CHECK(gaps.find("No data gaps") == std::string::npos);
    CHECK(count_of(gaps, "<h3 data-gap-indicator=") == 2);
    CHECK(gaps.find("<h3 data-gap-indicator=\"incidents\">") <
          gaps.find("<h3 data-gap-indicator=\"school_dropout\">"));
    CHECK(count_of(gaps, "data-gap-locality=\"KE031-09\"") == 2);
    const std::string stale = text_of(between(gaps, "data-gap-locality=\"KE032-11\"", "</tr>"));
    CHECK(stale.find("Dandora Phase 4") != std::string::npos);
    CHECK(stale.find("KE/KE-03/KE-032") != std::string::npos);
    CHECK(stale.find("stale") != std::string::npos);
    CHECK(stale.find("2026-10-19") != std::string::npos);
    CHECK(gaps.find(">no data<") != std::string::npos);

    r.gaps.clear();
    const std::string none = between(render_html(r), "<section id=\"gaps\"", "</section>");
    CHECK(none.find("No data gaps.") != std::string::npos);
    CHECK(none.find("<table") == std::string::npos);
}

TEST_CASE("report html method note states thresholds, weights and the review principle",
          "[report_html]") {
    const std::string html = render_html(sample_report());
    const std::string method = between(html, "<section id=\"method\"", "</section>");
    CHECK(method.find("confidence-weighted mean") != std::string::npos);
    CHECK(method.find("<dt>school_dropout</dt><dd>2</dd>") != std::string::npos);
    CHECK(method.find("<dt>incidents</dt><dd>1.5</dd>") != std::string::npos);
    CHECK(method.find("<dt>group_presence</dt><dd>1 <span class=\"muted\">(default)</span>") !=
          std::string::npos);
    CHECK(method.find("Critical</span></td><td class=\"num\">80</td><td class=\"num\">70</td>") !=
          std::string::npos);
    CHECK(method.find("Watch</span></td><td class=\"num\">40</td><td class=\"num\">30</td>") !=
          std::string::npos);
    CHECK(method.find("at 2 consecutive evaluations") != std::string::npos);
    CHECK(method.find("at 3 consecutive evaluations") != std::string::npos);
    CHECK(method.find("12 evaluation times shown, 7 days apart") != std::string::npos);
    CHECK(method.find("Missing data is not safety") != std::string::npos);
    CHECK(method.find("not a judgement about any child") != std::string::npos);
    CHECK(method.find("victims first") != std::string::npos);
}

TEST_CASE("report html without a locality at watch or above says so", "[report_html]") {
    Report r = sample_report();
    for (auto& row : r.rows) row.level = Level::none;
    r.total_now = {r.localities, 0, 0, 0};
    const std::string html = render_html(r);
    CHECK(html.find("No locality in this scope is at watch or above as of 2026-12-03T00:00:00Z.") !=
          std::string::npos);
    CHECK(html.find("<section class=\"region") == std::string::npos);
    CHECK(html.find("data-chart=") == std::string::npos);
    CHECK(html.find("Need attention first") == std::string::npos);
}

TEST_CASE("report html survives empty periods, NaN-only and odd-sized series", "[report_html]") {
    SECTION("an empty report") {
        const Report r;
        const std::string html = render_html(r);
        CHECK(html.find("No locality in this scope is at watch or above") != std::string::npos);
        CHECK(html.find("No data gaps.") != std::string::npos);
        CHECK(lower(html).find("nan") == std::string::npos);
    }
    SECTION("rows with no periods and NaN everywhere") {
        Report r = sample_report();
        r.periods.clear();
        r.levels[0].raise = no_score;
        r.weights["incidents"] = std::numeric_limits<double>::infinity();
        for (auto& row : r.rows) {
            row.trend.clear();
            row.indicator_trend.clear();
            row.score = no_score;
            row.confidence = no_score;
            row.dominant = 7;  // out of range: no top indicator
            row.marks = {{r.at, "resolved", Level::none}};
        }
        const std::string html = render_html(r);
        CHECK(html.find("No evaluation periods") != std::string::npos);
        CHECK(lower(html).find("nan") == std::string::npos);
        CHECK(lower(html).find("inf") == std::string::npos);
    }
    SECTION("one period and series of the wrong length") {
        Report r = sample_report();
        r.periods = {r.at};
        for (auto& row : r.rows) {
            row.trend = {no_score, 50, no_score};
            row.indicator_trend = {{0.5}, {}, {no_score, 0.3, 0.9, 0.1}};
            for (auto& i : row.indicators) i.score = no_score;
        }
        const std::string html = render_html(r);
        CHECK(lower(html).find("nan") == std::string::npos);
        CHECK(html.find("data-chart=\"KE030-07\"") != std::string::npos);
    }
}

TEST_CASE("report html is deterministic", "[report_html]") {
    const Report r = sample_report();
    CHECK(render_html(r) == render_html(r));
}
