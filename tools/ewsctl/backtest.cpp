#include "backtest.hpp"

#include "alerting.hpp"
#include "engine.hpp"
#include "ingest.hpp"
#include "pipeline.hpp"
#include "plugin_host.hpp"
#include "scorer.hpp"

#include <nlohmann/json.hpp>

#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <ostream>
#include <tuple>
#include <unordered_map>
#include <utility>

namespace ews::backtest {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

// Rejected rows listed per file before a count of the rest.
constexpr std::size_t max_listed_errors = 20;

// Bad input: run() prints the message and exits 2.
class InputError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Returns: the bytes of `path`. Throws: InputError naming the path and what is expected there.
std::string read_input(const fs::path& path, std::string_view what) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec))
        throw InputError(path.string() + ": no such file (expected " + std::string(what) + ")");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InputError(path.string() + ": cannot read: " + std::strerror(errno));
    return {std::istreambuf_iterator<char>(in), {}};
}

// Prints the first rejected rows of `file` and throws when there are any.
void refuse_errors(const std::vector<RowError>& errors, const std::string& file,
                   std::ostream& err) {
    if (errors.empty()) return;
    for (std::size_t i = 0; i < errors.size() && i < max_listed_errors; ++i)
        err << errors[i].format() << "\n";
    if (errors.size() > max_listed_errors)
        err << file << ": " << errors.size() - max_listed_errors << " more rejected rows not listed\n";
    throw InputError(file + ": " + std::to_string(errors.size()) +
                     (errors.size() == 1 ? " error" : " errors") +
                     "; the backtest replays only input without errors");
}

struct DataFile {
    fs::path path;
    IngestFormat format = IngestFormat::csv;
};

// Returns: true when a CSV file's header names the observation columns `kind` and `value`
// (localities, ground truth and answer keys beside the observations do not).
bool observation_csv(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::string line;
    std::getline(in, line);
    if (line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);
    bool kind = false, value = false;
    std::size_t at = 0;
    while (at <= line.size()) {
        std::size_t comma = line.find(',', at);
        if (comma == std::string::npos) comma = line.size();
        std::string name = line.substr(at, comma - at);
        std::erase_if(name, [](char c) { return c == '"' || c == ' ' || c == '\r' || c == '\t'; });
        kind |= name == "kind";
        value |= name == "value";
        at = comma + 1;
    }
    return kind && value;
}

// The observation files of a data directory in the order they are applied: every *.csv
// and *.jsonl file under it (subdirectories included), by path, except localities.csv,
// the truth file, hidden files, the spool's *.rejected.csv reports and CSV files whose
// header is not an observation header (each of those is named on `err`).
std::vector<DataFile> data_files(const fs::path& dir, const fs::path& truth, std::ostream& err) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        throw InputError(dir.string() + ": no such directory (expected a data directory with "
                                        "localities.csv and observation files)");
    const fs::path truth_file = fs::weakly_canonical(truth, ec);
    std::vector<DataFile> files;
    for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
         it.increment(ec)) {
        const fs::path& path = it->path();
        const std::string name = path.filename().string();
        if (name.starts_with(".")) {
            if (it->is_directory()) it.disable_recursion_pending();
            continue;
        }
        if (!it->is_regular_file() || name.ends_with(".rejected.csv")) continue;
        if (path.parent_path() == dir && name == "localities.csv") continue;
        std::error_code same;
        if (fs::weakly_canonical(path, same) == truth_file) continue;
        const auto format = format_of(path);
        if (!format) continue;
        if (*format == IngestFormat::csv && !observation_csv(path)) {
            err << "backtest: " << path.string() << ": skipped (its header names no kind and value)\n";
            continue;
        }
        files.push_back({path, *format});
    }
    if (ec) throw InputError(dir.string() + ": cannot list: " + ec.message());
    std::sort(files.begin(), files.end(),
              [](const DataFile& a, const DataFile& b) { return a.path < b.path; });
    if (files.empty())
        throw InputError(dir.string() + ": no observation files (*.csv with the header "
                                        "locality,time,kind,value,weight,source, or *.jsonl)");
    return files;
}

// ---- ground truth -----------------------------------------------------------------------

struct Outcome {
    std::size_t locality = 0;
    TimePoint time;
};

struct TruthParse {
    std::vector<Outcome> rows;  // rows with outcomes > 0
    std::vector<RowError> errors;
};

std::string_view trim(std::string_view s) {
    const auto b = s.find_first_not_of(" \t");
    if (b == std::string_view::npos) return {};
    return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

std::string shown(std::string_view s) {
    constexpr std::size_t longest = 60;
    std::string out = "'" + std::string(s.substr(0, longest));
    return out + (s.size() > longest ? "...'" : "'");
}

// Splits one line of CSV (RFC 4180 quoting within the line) into `fields`.
// Returns: the 1-based field at which the quoting is malformed, or 0.
std::size_t split_csv_line(std::string_view line, std::vector<std::string>& fields) {
    fields.clear();
    std::size_t i = 0;
    for (;;) {
        std::string f;
        const std::size_t column = fields.size() + 1;
        if (i < line.size() && line[i] == '"') {
            ++i;
            bool closed = false;
            while (i < line.size()) {
                if (line[i] == '"') {
                    if (i + 1 < line.size() && line[i + 1] == '"') {
                        f += '"';
                        i += 2;
                        continue;
                    }
                    ++i;
                    closed = true;
                    break;
                }
                f += line[i++];
            }
            if (!closed || (i < line.size() && line[i] != ',')) return column;
        } else {
            while (i < line.size() && line[i] != ',') {
                if (line[i] == '"') return column;
                f += line[i++];
            }
        }
        fields.push_back(std::move(f));
        if (i >= line.size()) return 0;
        ++i;  // the comma
    }
}

// CSV with header `locality,time,outcomes` (columns in any order, no others). A row with
// outcomes 0 states that there were none and is not kept. Every bad row is an error.
TruthParse parse_truth_csv(std::string_view content, const std::string& file,
                           const Engine& engine) {
    static constexpr std::array<std::string_view, 3> columns{"locality", "time", "outcomes"};
    TruthParse out;
    if (content.substr(0, 3) == "\xEF\xBB\xBF") content.remove_prefix(3);
    std::array<std::size_t, 3> index{};
    bool header = false;
    std::vector<std::string> fields;
    std::size_t line_no = 0;
    while (!content.empty()) {
        const auto end = content.find('\n');
        std::string_view line = content.substr(0, end);
        content.remove_prefix(end == std::string_view::npos ? content.size() : end + 1);
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (trim(line).empty()) continue;
        if (const std::size_t bad = split_csv_line(line, fields)) {
            out.errors.push_back({file, line_no, bad, "malformed quoting"});
            if (!header) return out;
            continue;
        }
        if (!header) {
            std::array<bool, 3> seen{};
            for (std::size_t c = 0; c < fields.size(); ++c) {
                const std::string_view name = trim(fields[c]);
                const auto it = std::find(columns.begin(), columns.end(), name);
                if (it == columns.end() || seen[std::size_t(it - columns.begin())]) {
                    out.errors.push_back(
                        {file, line_no, c + 1,
                         (it == columns.end() ? "unknown column " : "duplicate column ") +
                             shown(name) + " (expected the header locality,time,outcomes)"});
                    return out;
                }
                seen[std::size_t(it - columns.begin())] = true;
                index[std::size_t(it - columns.begin())] = c;
            }
            for (std::size_t k = 0; k < columns.size(); ++k)
                if (!seen[k]) {
                    out.errors.push_back({file, line_no, 0,
                                          "missing column '" + std::string(columns[k]) +
                                              "' (expected the header locality,time,outcomes)"});
                    return out;
                }
            header = true;
            continue;
        }
        if (fields.size() != columns.size()) {
            out.errors.push_back({file, line_no, std::min(fields.size(), columns.size()) + 1,
                                  "expected 3 fields, got " + std::to_string(fields.size())});
            continue;
        }
        const std::string_view id = trim(fields[index[0]]);
        const auto locality = engine.find(id);
        if (!locality) {
            out.errors.push_back({file, line_no, index[0] + 1,
                                  "unknown locality " + shown(id) + " (not in localities.csv)"});
            continue;
        }
        const std::string_view time_text = trim(fields[index[1]]);
        const auto time = parse_time(time_text);
        if (!time) {
            out.errors.push_back({file, line_no, index[1] + 1,
                                  "time " + shown(time_text) +
                                      " is not an ISO 8601 date or UTC date-time"});
            continue;
        }
        const std::string_view count_text = trim(fields[index[2]]);
        double count = 0;
        const auto [ptr, ec] =
            std::from_chars(count_text.data(), count_text.data() + count_text.size(), count);
        if (count_text.empty() || ec != std::errc() || ptr != count_text.data() + count_text.size() ||
            !std::isfinite(count) || count < 0) {
            out.errors.push_back({file, line_no, index[2] + 1,
                                  "outcomes " + shown(count_text) + " is not a number >= 0"});
            continue;
        }
        if (count > 0) out.rows.push_back({*locality, *time});
    }
    if (!header) out.errors.push_back({file, 1, 0, "no header: expected locality,time,outcomes"});
    return out;
}

// ---- the naive baseline ----------------------------------------------------------------

// The incident.* observations of each locality, keyed as the engine keys them (a later row
// with the same locality, kind, time and source replaces an earlier one), as running sums.
class IncidentTotals {
public:
    explicit IncidentTotals(std::size_t localities) : by_locality_(localities) {}

    void add(const Engine& engine, const std::vector<Observation>& rows) {
        for (const auto& o : rows) {
            if (!o.kind.starts_with("incident.")) continue;
            const auto locality = engine.find(o.locality);
            if (!locality) continue;
            rows_.push_back({static_cast<std::uint32_t>(*locality), intern(kinds_, o.kind),
                             intern(sources_, o.source), o.time, o.value, rows_.size()});
        }
    }

    // Builds the running sums. Call once, after the last add().
    void finish() {
        std::sort(rows_.begin(), rows_.end(), [](const Row& a, const Row& b) {
            return std::tie(a.locality, a.time, a.kind, a.source, a.order) <
                   std::tie(b.locality, b.time, b.kind, b.source, b.order);
        });
        for (std::size_t i = 0; i < rows_.size(); ++i) {
            const Row& r = rows_[i];
            if (i + 1 < rows_.size()) {
                const Row& next = rows_[i + 1];
                if (next.locality == r.locality && next.time == r.time && next.kind == r.kind &&
                    next.source == r.source)
                    continue;  // replaced by a later row with the same key
            }
            auto& series = by_locality_[r.locality];
            const double before = series.empty() ? 0.0 : series.back().second;
            series.emplace_back(r.time, before + r.value);
        }
        rows_ = {};
    }

    // Returns: the total of locality `index`'s incident values dated in (after, until].
    double total(std::size_t index, TimePoint after, TimePoint until) const {
        const auto& series = by_locality_[index];
        auto sum_to = [&](TimePoint t) {
            auto it = std::upper_bound(series.begin(), series.end(), t,
                                       [](TimePoint x, const auto& p) { return x < p.first; });
            return it == series.begin() ? 0.0 : std::prev(it)->second;
        };
        return sum_to(until) - sum_to(after);
    }

private:
    struct Row {
        std::uint32_t locality;
        std::uint32_t kind;
        std::uint32_t source;
        TimePoint time;
        double value;
        std::size_t order;
    };

    static std::uint32_t intern(std::unordered_map<std::string, std::uint32_t>& ids,
                                const std::string& name) {
        return ids.try_emplace(name, static_cast<std::uint32_t>(ids.size())).first->second;
    }

    std::vector<Row> rows_;
    std::unordered_map<std::string, std::uint32_t> kinds_, sources_;
    // (time, running total up to and including it), ascending by time
    std::vector<std::vector<std::pair<TimePoint, double>>> by_locality_;
};

// ---- report -------------------------------------------------------------------------------

struct SeriesFigures {
    std::string name;
    std::string kind;  // composite | indicator | baseline
    std::optional<double> auroc;
    std::optional<double> average_precision;
    bool alerts = false;  // false for the baseline: no levels, lead or churn
    std::array<PrecisionRecall, 3> levels{};
    LeadSummary lead;
    std::optional<double> churn;
};

struct Report {
    std::string data, truth;
    TimePoint from, to;
    int step_days = 7;
    int horizon = 3;
    std::size_t localities = 0, periods = 0, samples = 0, excluded = 0, positives = 0;
    std::size_t outcomes = 0, onsets = 0, failed_assessments = 0;
    std::vector<std::pair<std::string, std::string>> plugins;  // name, version
    std::vector<SeriesFigures> series;
};

constexpr std::array<Level, 3> alert_levels{Level::watch, Level::warning, Level::critical};

nlohmann::json nullable(const std::optional<double>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

nlohmann::json to_json(const Report& r) {
    nlohmann::json j;
    j["data"] = r.data;
    j["truth"] = r.truth;
    j["from"] = format_time(r.from);
    j["to"] = format_time(r.to);
    j["step_days"] = r.step_days;
    j["horizon"] = r.horizon;
    j["localities"] = r.localities;
    j["periods"] = r.periods;
    j["samples"] = r.samples;
    j["excluded_samples"] = r.excluded;
    j["positives"] = r.positives;
    j["outcomes"] = r.outcomes;
    j["onsets"] = r.onsets;
    j["failed_assessments"] = r.failed_assessments;
    auto& plugins = j["plugins"] = nlohmann::json::array();
    for (const auto& [name, version] : r.plugins)
        plugins.push_back({{"name", name}, {"version", version}});
    auto& series = j["series"] = nlohmann::json::array();
    for (const auto& s : r.series) {
        nlohmann::json e = {{"name", s.name},
                            {"kind", s.kind},
                            {"auroc", nullable(s.auroc)},
                            {"average_precision", nullable(s.average_precision)}};
        if (s.alerts) {
            nlohmann::json levels = nlohmann::json::object();
            for (std::size_t l = 0; l < alert_levels.size(); ++l)
                levels[std::string(to_string(alert_levels[l]))] = {
                    {"precision", nullable(s.levels[l].precision)},
                    {"recall", nullable(s.levels[l].recall)}};
            e["levels"] = levels;
            e["lead"] = {{"median_periods", nullable(s.lead.median_periods)},
                         {"detected", s.lead.detected},
                         {"missed", s.lead.missed}};
            e["churn_per_locality_year"] = nullable(s.churn);
        } else {
            e["levels"] = nullptr;
            e["lead"] = nullptr;
            e["churn_per_locality_year"] = nullptr;
        }
        series.push_back(std::move(e));
    }
    return j;
}

std::string fixed(const std::optional<double>& v, int decimals) {
    if (!v) return "-";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, *v);
    return buf;
}

void write_table(std::ostream& out, const Report& r) {
    const long long step_s = seconds(std::chrono::days(r.step_days)).count();
    out << "backtest of " << r.data << " against " << r.truth << "\n";
    out << "from " << format_time(r.from) << " to " << format_time(r.to) << ", step "
        << r.step_days << " days, horizon " << r.horizon << " periods ("
        << r.horizon * step_s / 86400 << " days)\n";
    const double share = r.samples ? 100.0 * double(r.positives) / double(r.samples) : 0.0;
    out << r.localities << " localities, " << r.periods << " periods, " << r.samples
        << " samples (" << r.excluded << " excluded: label window past --to), " << r.positives
        << " positives (" << fixed(share, 1) << "%)\n";
    out << r.outcomes << " outcome rows, " << r.onsets << " onsets counted for lead time; plugins:";
    for (const auto& [name, version] : r.plugins) out << " " << name << " " << version;
    out << "\n";
    if (r.failed_assessments > 0)
        out << r.failed_assessments << " assessments failed (plugin errors or over the time "
                                       "budget); they count as errors, as in the daemon\n";
    out << "\n";

    std::vector<std::vector<std::string>> rows{{"series", "AUROC", "AP", "watch P", "watch R",
                                                "warning P", "warning R", "critical P",
                                                "critical R", "lead", "detected", "missed",
                                                "churn"}};
    for (const auto& s : r.series) {
        std::vector<std::string> row{s.name, fixed(s.auroc, 3), fixed(s.average_precision, 3)};
        for (std::size_t l = 0; l < alert_levels.size(); ++l) {
            row.push_back(s.alerts ? fixed(s.levels[l].precision, 3) : "-");
            row.push_back(s.alerts ? fixed(s.levels[l].recall, 3) : "-");
        }
        row.push_back(s.alerts ? fixed(s.lead.median_periods, 1) : "-");
        row.push_back(s.alerts ? std::to_string(s.lead.detected) : "-");
        row.push_back(s.alerts ? std::to_string(s.lead.missed) : "-");
        row.push_back(s.alerts ? fixed(s.churn, 2) : "-");
        rows.push_back(std::move(row));
    }
    std::vector<std::size_t> width(rows.front().size(), 0);
    for (const auto& row : rows)
        for (std::size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t c = 0; c < row.size(); ++c) {
            const std::string pad(width[c] - row[c].size(), ' ');
            // The name left-aligned, the figures right-aligned.
            line += c == 0 ? row[c] + pad : "  " + pad + row[c];
        }
        out << line << "\n";
    }
    out << "\nAUROC: 0.5 = chance, 1 = every positive ranked above every negative. AP: average "
           "precision (the share of positives is its chance level).\n"
           "P/R: precision and recall of alerts at or above the level. lead: median periods "
           "from raise to onset over detected onsets. churn: level changes per locality-year.\n";
}

// ---- progress -----------------------------------------------------------------------------

class Progress {
public:
    Progress(bool on, std::ostream& err) : on_(on), err_(err) {}

    void update(std::size_t done, std::size_t total) {
        if (!on_ || done == 0) return;
        const double elapsed =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
        const double left = elapsed * double(total - done) / double(done);
        err_ << "\rbacktest: " << done << "/" << total << " periods, about "
             << static_cast<long long>(left + 0.5) << " s left   " << std::flush;
    }

    void finish() {
        if (on_) err_ << "\r" << std::string(60, ' ') << "\r" << std::flush;
    }

private:
    bool on_;
    std::ostream& err_;
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

Level to_level(sdk::Floor floor) {
    switch (floor) {
        case sdk::Floor::none: return Level::none;
        case sdk::Floor::watch: return Level::watch;
        case sdk::Floor::warning: return Level::warning;
        case sdk::Floor::critical: return Level::critical;
    }
    return Level::none;
}

TimePoint option_time(const std::string& text, const char* option) {
    auto t = parse_time(text);
    if (!t)
        throw InputError(std::string(option) + " '" + text +
                         "': expected an RFC 3339 date or UTC date-time");
    return *t;
}

// The replay and the figures; throws InputError for bad input.
Report replay(const Options& o, const Config& config, std::ostream& err) {
    if (o.format != "table" && o.format != "json")
        throw InputError("--format '" + o.format + "': expected table or json");
    if (o.step_days < 1) throw InputError("--step must be at least 1 day");
    if (o.horizon < 1) throw InputError("--horizon must be at least 1 period");
    std::optional<TimePoint> from_option, to_option;
    if (!o.from.empty()) from_option = option_time(o.from, "--from");
    if (!o.to.empty()) to_option = option_time(o.to, "--to");

    // Input first, so that a bad file is reported before any plugin runs.
    const std::vector<DataFile> files = data_files(o.data, o.truth, err);
    const fs::path localities_file = o.data / "localities.csv";
    const auto localities = parse_localities_csv(
        read_input(localities_file, "the localities CSV: id,name,region,population,neighbours"),
        localities_file.string());
    refuse_errors(localities.errors, localities_file.string(), err);
    if (localities.rows.empty()) throw InputError(localities_file.string() + ": no localities");
    const std::string truth_content =
        read_input(o.truth, "the ground-truth CSV: locality,time,outcomes");

    Engine engine;
    engine.set_localities(localities.rows);
    const std::size_t n = engine.locality_count();
    const ObservationRules rules{[&](std::string_view id) { return engine.find(id).has_value(); },
                                wall_now(), config.future_tolerance};
    IncidentTotals incidents(n);
    std::optional<TimePoint> earliest, newest;
    for (const auto& f : files) {
        const auto parsed =
            parse_observations(read_input(f.path, "observations"), f.path.string(), f.format, rules);
        refuse_errors(parsed.errors, f.path.string(), err);
        for (const auto& row : parsed.rows) {
            if (!earliest || row.time < *earliest) earliest = row.time;
            if (!newest || row.time > *newest) newest = row.time;
        }
        engine.apply(parsed.rows);
        incidents.add(engine, parsed.rows);
    }
    if (!newest) throw InputError(o.data.string() + ": no observations in the data files");
    incidents.finish();

    const auto truth = parse_truth_csv(truth_content, o.truth.string(), engine);
    refuse_errors(truth.errors, o.truth.string(), err);
    std::vector<std::vector<TimePoint>> outcomes(n);
    for (const auto& t : truth.rows) outcomes[t.locality].push_back(t.time);
    for (auto& v : outcomes) std::sort(v.begin(), v.end());

    const seconds step = std::chrono::days(o.step_days);
    const TimePoint to = to_option.value_or(*newest);
    // A year of warm-up so that baselines exist, or half the history when it is shorter.
    const TimePoint from = from_option.value_or(
        std::min(to, *earliest + std::min<seconds>(std::chrono::days(365), (to - *earliest) / 2)));
    if (from > to)
        throw InputError("--from " + format_time(from) + " is after --to " + format_time(to));
    const std::vector<TimePoint> times = evaluation_times(from, to, step);

    PluginSet plugins = load_plugins(config.plugin_dir, config.plugin_params);
    for (const auto& r : plugins.refused)
        err << "plugin refused: " << r.file.string() << ": " << r.reason << "\n";
    if (plugins.loaded.empty())
        throw std::runtime_error("no plugin loaded from " + config.plugin_dir.string());
    std::vector<std::string> names;
    for (const auto& p : plugins.loaded) names.push_back(p.name());

    // Flat figures, [series][period][locality]: series 0 the composite, 1..P the indicators
    // (these carry alert levels), P + 1 the naive baseline (scores only).
    const std::size_t periods = times.size();
    const std::size_t alerting_series = 1 + plugins.loaded.size();
    auto at = [&](std::size_t s, std::size_t k, std::size_t i) { return (s * periods + k) * n + i; };
    std::vector<double> scores((alerting_series + 1) * periods * n, 0.0);
    std::vector<std::uint8_t> levels(alerting_series * periods * n, 0);
    std::vector<AlertState> states(alerting_series * n);
    std::vector<EpisodeTracker> tracks(alerting_series * n);
    std::vector<std::size_t> changes(alerting_series, 0);
    for (std::size_t s = 0; s < alerting_series; ++s)
        for (std::size_t i = 0; i < n; ++i) states[s * n + i].locality = engine.locality(i).id;

    const AlertingParams params = alerting_params(config);
    EvaluationOptions evaluation;
    evaluation.budget = config.plugin_budget;
    const double unknown = std::numeric_limits<double>::quiet_NaN();
    std::size_t failed = 0;

    // One evaluation of series s at period k for locality i, as the pipeline advances a
    // locality (no silences): records the notified level, level changes and episodes.
    auto follow = [&](std::size_t s, std::size_t k, std::size_t i, const Reading& reading) {
        AlertState& state = states[s * n + i];
        const AdvanceResult result = advance(state, reading, times[k], params, std::nullopt);
        bool raised = false;
        for (const auto& e : result.published) {
            if (changes_level(e.type)) ++changes[s];
            raised |= e.type == event::raised;
        }
        levels[at(s, k, i)] = static_cast<std::uint8_t>(state.notified_level);
        tracks[s * n + i].observe(times[k], raised, state.notified_level);
    };

    Progress progress(o.progress, err);
    Reading composite_reading, single;
    single.indicators.resize(1);
    for (std::size_t k = 0; k < periods; ++k) {
        auto results = engine.evaluate(plugins.loaded, times[k], false, evaluation);
        for (const auto& st : engine.last_call_stats()) failed += st.errors;
        for (auto& r : results) {
            const std::size_t i = r.locality;
            // Each indicator alone: its score ranks; its own alert state follows it.
            for (std::size_t p = 0; p < names.size(); ++p) {
                const sdk::Assessment& a = r.assessments[p];
                const bool scored = a.status == sdk::Status::ok || a.status == sdk::Status::stale;
                const double s = scored && std::isfinite(a.score) ? std::clamp(a.score, 0.0, 1.0) : 0.0;
                scores[at(1 + p, k, i)] = s;
                single.score = scored && std::isfinite(a.confidence) && a.confidence > 0 ? 100 * s
                                                                                        : unknown;
                single.floor = to_level(a.floor);
                single.indicators[0] = {names[p], a.status, a.newest};
                follow(1 + p, k, i, single);
            }
            // The composite, with the reading the pipeline builds.
            const Composite c = compose(names, std::move(r.assessments), config.weights);
            scores[at(0, k, i)] = c.evidence ? c.score : 0.0;
            composite_reading.score = c.evidence ? c.score : unknown;
            composite_reading.floor = c.floor;
            composite_reading.indicators.clear();
            for (const auto& ct : c.contributions)
                composite_reading.indicators.push_back(
                    {ct.indicator, ct.assessment.status, ct.assessment.newest});
            follow(0, k, i, composite_reading);
        }
        for (std::size_t i = 0; i < n; ++i)
            scores[at(alerting_series, k, i)] = incidents.total(i, times[k] - step, times[k]);
        progress.update(k + 1, periods);
    }
    progress.finish();

    // Labels of the samples whose window (t, t + horizon * step] ends by `to`.
    const seconds window = o.horizon * step;
    std::size_t labelled = 0;
    while (labelled < periods && times[labelled] + window <= to) ++labelled;
    std::vector<std::uint8_t> labels(labelled * n, 0);
    std::size_t positives = 0;
    for (std::size_t k = 0; k < labelled; ++k)
        for (std::size_t i = 0; i < n; ++i) {
            const bool y = any_in(outcomes[i], times[k], times[k] + window);
            labels[k * n + i] = y ? 1 : 0;
            positives += y ? 1 : 0;
        }

    // Onsets whose whole warning window was evaluated: [T - horizon * step, T] in [from, to].
    std::vector<std::vector<double>> leads(alerting_series);
    std::vector<std::size_t> missed(alerting_series, 0);
    std::size_t onset_count = 0;
    for (std::size_t i = 0; i < n; ++i) {
        for (const TimePoint onset : onsets(outcomes[i], onset_quiet_periods * step)) {
            if (onset - window < from || onset > to) continue;
            ++onset_count;
            for (std::size_t s = 0; s < alerting_series; ++s) {
                if (auto lead = lead_periods(onset, tracks[s * n + i].episodes, step, o.horizon))
                    leads[s].push_back(*lead);
                else
                    ++missed[s];
            }
        }
    }

    if (!o.detail.empty()) {
        std::ofstream file(o.detail, std::ios::binary | std::ios::trunc);
        file << "locality,time,label,composite,composite_level";
        for (const auto& name : names) file << ',' << name << ',' << name << "_level";
        file << ",naive\n";
        for (std::size_t i = 0; i < n; ++i)
            for (std::size_t k = 0; k < periods; ++k) {
                file << engine.locality(i).id << ',' << format_time(times[k]) << ',';
                if (k < labelled) file << int(labels[k * n + i]);
                for (std::size_t s = 0; s < alerting_series; ++s)
                    file << ',' << scores[at(s, k, i)] << ','
                         << to_string(static_cast<Level>(levels[at(s, k, i)]));
                file << ',' << scores[at(alerting_series, k, i)] << '\n';
            }
        if (!file.flush())
            throw std::runtime_error(o.detail.string() + ": cannot write: " + std::strerror(errno));
    }

    Report report;
    report.data = o.data.string();
    report.truth = o.truth.string();
    report.from = from;
    report.to = to;
    report.step_days = o.step_days;
    report.horizon = o.horizon;
    report.localities = n;
    report.periods = periods;
    report.samples = labelled * n;
    report.excluded = (periods - labelled) * n;
    report.positives = positives;
    report.outcomes = truth.rows.size();
    report.onsets = onset_count;
    report.failed_assessments = failed;
    for (const auto& p : plugins.loaded) report.plugins.emplace_back(p.name(), p.descriptor.version);
    const std::span<const std::uint8_t> label_span(labels);
    for (std::size_t s = 0; s <= alerting_series; ++s) {
        SeriesFigures f;
        f.name = s == 0 ? "composite" : s < alerting_series ? names[s - 1] : "naive";
        f.kind = s == 0 ? "composite" : s < alerting_series ? "indicator" : "baseline";
        const std::span<const double> score_span(scores.data() + at(s, 0, 0), labelled * n);
        f.auroc = auroc(score_span, label_span);
        f.average_precision = average_precision(score_span, label_span);
        if (s < alerting_series) {
            f.alerts = true;
            const std::span<const std::uint8_t> level_span(levels.data() + at(s, 0, 0),
                                                           labelled * n);
            for (std::size_t l = 0; l < alert_levels.size(); ++l)
                f.levels[l] = precision_recall(level_span, label_span, alert_levels[l]);
            f.lead.detected = leads[s].size();
            f.lead.missed = missed[s];
            f.lead.median_periods = median(leads[s]);
            f.churn = churn_per_locality_year(changes[s], n, from, to);
        }
        report.series.push_back(std::move(f));
    }
    return report;
}

}  // namespace

int run(const Options& options, const Config& config, std::ostream& out, std::ostream& err) {
    const std::string me = "ewsctl backtest: ";
    Report report;
    try {
        report = replay(options, config, err);
    } catch (const InputError& e) {
        err << me << e.what() << "\n";
        return 2;
    }
    const nlohmann::json json = to_json(report);
    if (!options.json.empty()) {
        std::ofstream file(options.json, std::ios::binary | std::ios::trunc);
        file << json.dump(2) << "\n";
        if (!file.flush()) {
            err << me << options.json.string() << ": cannot write: " << std::strerror(errno) << "\n";
            return 1;
        }
    }
    if (options.format == "json")
        out << json.dump(2) << "\n";
    else
        write_table(out, report);
    return 0;
}

}  // namespace ews::backtest
