// report.hpp: the prevention report of a region: which localities need attention, why, and
// what to do, as one self-contained HTML page (`ewsctl report --html`) and as CSV/JSON
// exports of scores (`ewsctl scores`).
//
// Two parts. build() reads the store and re-evaluates the localities in scope with the
// configured plugins at `periods` evaluation times ending at `at` (the engine, plugins and
// scorer of the daemon, as `ewsctl backtest` does), and takes each locality's alert level
// from what ewsd published: the alert state for the newest evaluation, the outbox events
// before it. render_html() turns the result into the page. Neither writes to the store.
//
// Privacy: a Report holds only localities within its scope (neighbours outside it are read
// by plugins, never shown); counts are already suppressed below min_cell (ValueText), as in
// the published alerts. There is no field for a person.
#pragma once

#include "config.hpp"
#include "model.hpp"

#include <array>
#include <cstddef>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ews::report {

inline constexpr double no_score = std::numeric_limits<double>::quiet_NaN();

// One evidence value as it is published: a count below min_cell is "<5", other counts
// are integers, other values plain numbers.
struct ValueText {
    std::string name;
    std::string text;
    bool is_count = false;
};

// One indicator of a locality at the report time.
struct IndicatorNow {
    std::string indicator;
    double score = no_score;  // 0..1; NaN when not scored (no_data, error)
    double confidence = 0;    // 0..1
    sdk::Status status = sdk::Status::no_data;
    std::optional<TimePoint> newest;  // newest data it used
    std::string evidence;             // the plugin's evidence text (no ingested free text)
    std::vector<ValueText> values;    // its evidence values, counts suppressed
    Level floor = Level::none;        // the level it keeps the locality at, at least (sentinel)
};

// A published alert event of a locality within the report's periods.
struct Mark {
    TimePoint at{};
    std::string event;  // raised, escalated, deescalated, resolved
    Level level = Level::none;  // the level after the event (none for resolved)
};

struct LocalityRow {
    std::string id, name, region;
    Level level = Level::none;     // published (notified) level at `at`
    Level before = Level::none;    // published level at Report::compared_with
    std::string alert_id;          // the open alert, empty when level is none
    std::optional<TimePoint> opened_at;
    bool acknowledged = false;
    bool flapping = false;
    double score = no_score;       // composite at `at`, 0..100; NaN when no indicator had evidence
    double confidence = 0;         // 0..1
    std::vector<double> trend;     // composite per period (Report::periods), NaN: no evidence
    // Each indicator's sub-score (0..1, NaN: not scored) per period, in Report::indicators order.
    std::vector<std::vector<double>> indicator_trend;
    std::vector<IndicatorNow> indicators;  // at `at`, in Report::indicators order
    int dominant = -1;                     // index into indicators of the top contributor; -1 none
    std::optional<TimePoint> newest;       // newest data of any indicator
    std::vector<std::string> actions;      // playbook for its level and top indicator
    std::vector<Mark> marks;               // published level events in (periods.front() - step, at]
};

struct RegionSummary {
    std::string region;               // a locality's region path
    std::size_t localities = 0;       // in this region (and in scope)
    std::array<std::size_t, 4> now{};     // localities by level (index = Level) at `at`
    std::array<std::size_t, 4> before{};  // the same at compared_with
};

// A source of data that stopped: an indicator that had data at a locality in the report's
// periods (or still has stale data) and is stale or has none at `at`.
struct Gap {
    std::string indicator;
    std::string locality, name, region;
    sdk::Status status = sdk::Status::stale;  // stale or no_data
    std::optional<TimePoint> newest;           // newest data it still had, if any
};

struct Report {
    std::string scope;               // region prefix; empty = every region
    TimePoint at{};                  // data and levels as of
    TimePoint generated{};           // wall clock when built
    TimePoint compared_with{};       // at - compare_days: "change since"
    int compare_days = 28;
    int step_days = 7;
    std::vector<TimePoint> periods;  // evaluation times, oldest first; back() == at
    std::vector<std::string> indicators;  // loaded plugins, in order
    std::vector<std::pair<std::string, std::string>> plugins;  // name, version
    std::map<std::string, double> weights;
    std::array<LevelThresholds, 3> levels{};  // watch, warning, critical: raise and clear
    int raise_after = 2;
    int clear_after = 3;
    int min_cell = 5;
    std::string version;             // of ewsd
    std::size_t localities = 0;      // in scope
    std::size_t failed_assessments = 0;
    std::size_t published_events = 0;  // alert events read from the outbox up to `at`
    std::array<std::size_t, 4> total_now{}, total_before{};  // by level, whole scope
    std::vector<RegionSummary> regions;  // by region path
    // Every locality in scope, ranked: level (descending), then score (descending, NaN
    // last), then id. The HTML shows those at watch or above.
    std::vector<LocalityRow> rows;
    std::vector<Gap> gaps;  // by indicator, region, locality
};

struct Options {
    std::string region;        // scope prefix ("" = all)
    std::optional<TimePoint> at;  // default: now
    int periods = 12;          // evaluation times, `step_days` apart, ending at `at`
    int step_days = 7;
    int compare_days = 28;
    bool trends = true;        // false: evaluate at `at` only (periods = 1), e.g. for exports
};

// Builds the report from config.state_dir's database and config.plugin_dir's plugins.
// Throws: std::invalid_argument for bad options (a malformed region, periods < 1),
// StoreError, std::runtime_error (no plugin loaded).
Report build(const Config& config, const Options& options);

// Returns: one self-contained HTML document (inline CSS and SVG, no script, no external
// resource), readable on a phone and printable (a page per region).
std::string render_html(const Report& report);

// Exports of Report::rows: one line per locality (CSV with a header: id, name, region,
// level, score, confidence, dominant, newest, then score, status and newest of each
// indicator), or a JSON object {"schema":"ews.scores/1", scope, at, generated, localities:[...]}
// with each indicator's evidence (counts suppressed).
std::string scores_csv(const Report& report);
std::string scores_json(const Report& report);

}  // namespace ews::report
