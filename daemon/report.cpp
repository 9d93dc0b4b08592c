// report.cpp: build() and the score exports; report_html.cpp renders the page.
#include "report.hpp"

#include "alerting.hpp"
#include "engine.hpp"
#include "messages.hpp"
#include "pipeline.hpp"
#include "plugin_host.hpp"
#include "quarantine.hpp"
#include "scorer.hpp"
#include "store.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <stdexcept>
#include <tuple>
#include <unordered_map>

namespace ews::report {
namespace {

using std::chrono::seconds;

bool scored(const sdk::Assessment& a) {
    return (a.status == sdk::Status::ok || a.status == sdk::Status::stale) &&
           std::isfinite(a.score) && std::isfinite(a.confidence) && a.confidence > 0;
}

// One published level event of a locality, as read back from the outbox.
struct Published {
    TimePoint at{};
    std::string event;
    Level level = Level::none;
    std::string alert_id;
    std::optional<TimePoint> opened_at;
};

bool level_event(const std::string& type) {
    return type == event::raised || type == event::escalated || type == event::deescalated ||
           type == event::resolved || type == event::reminder;
}

// Returns: the level events of every locality, by locality id, in the order they were
// published (each event once, however many endpoints carried it).
std::unordered_map<std::string, std::vector<Published>> published_events(Store& store) {
    std::unordered_map<std::string, std::vector<Published>> out;
    std::set<std::tuple<std::string, std::string, std::string, std::int64_t>> seen;
    for (const auto& row : store.locality_rows()) {
        const auto j = nlohmann::json::parse(row.payload, nullptr, false);
        if (!j.is_object() || !j.contains("event") || !j["event"].is_string()) continue;
        Published p;
        p.event = j["event"].get<std::string>();
        if (!level_event(p.event)) continue;
        const auto text = [&](const char* key) {
            return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
        };
        const auto at = parse_time(text("at"));
        const auto level = parse_level(text("level"));
        if (!at || !level) continue;
        p.at = *at;
        p.level = p.event == event::resolved ? Level::none : *level;
        p.alert_id = text("id");
        p.opened_at = parse_time(text("opened_at"));
        const auto key = std::make_tuple(row.locality, p.event, p.alert_id,
                                         static_cast<std::int64_t>(p.at.time_since_epoch().count()));
        if (!seen.insert(key).second) continue;
        out[row.locality].push_back(std::move(p));
    }
    for (auto& [id, events] : out)
        std::stable_sort(events.begin(), events.end(),
                         [](const Published& a, const Published& b) { return a.at < b.at; });
    return out;
}

// Returns: the last event at or before `t`, or null.
const Published* last_at(const std::vector<Published>& events, TimePoint t) {
    const Published* out = nullptr;
    for (const auto& e : events) {
        if (e.at > t) break;
        out = &e;
    }
    return out;
}

std::string format_score(double x) {
    if (!std::isfinite(x)) return "";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", x);
    return buf;
}

std::string format_unit(double x) {
    if (!std::isfinite(x)) return "";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f", x);
    return buf;
}

// A CSV field: quoted when it holds a comma, quote or line break; a leading = + - @ (a
// formula to a spreadsheet) is neutralised with a leading apostrophe.
std::string csv_field(std::string s) {
    if (!s.empty() && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@'))
        s.insert(s.begin(), '\'');
    if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
    std::string out = "\"";
    for (char c : s) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + "\"";
}

nlohmann::ordered_json number_or_null(double x, int decimals) {
    if (!std::isfinite(x)) return nullptr;
    const double scale = std::pow(10.0, decimals);
    return std::round(x * scale) / scale;
}

nlohmann::ordered_json time_or_null(const std::optional<TimePoint>& t) {
    if (!t) return nullptr;
    return format_time(*t);
}

}  // namespace

Report build(const Config& config, const Options& options) {
    if (options.periods < 1) throw std::invalid_argument("periods: at least 1");
    if (options.step_days < 1) throw std::invalid_argument("step: at least 1 day");
    if (options.compare_days < 1) throw std::invalid_argument("compare: at least 1 day");
    if (!options.region.empty() && !valid_region(options.region))
        throw std::invalid_argument("region: not a region path (codes of [A-Za-z0-9_.-] "
                                    "separated by single '/', e.g. KE/KE-03): '" +
                                    options.region + "'");
    const auto db_file = config.state_dir / "ewsd.db";
    std::error_code ec;
    if (!std::filesystem::is_regular_file(db_file, ec))
        throw std::runtime_error(db_file.string() +
                                 ": no database (import localities and ingest data first)");

    Report r;
    r.scope = options.region;
    if (r.scope.size() > 1 && r.scope.back() == '/') r.scope.pop_back();
    r.generated = wall_now();
    r.at = options.at.value_or(r.generated);
    r.step_days = options.step_days;
    r.compare_days = options.compare_days;
    r.compared_with = r.at - std::chrono::days(options.compare_days);
    r.weights = config.weights;
    r.levels = config.levels;
    r.raise_after = config.raise_after;
    r.clear_after = config.clear_after;
    r.min_cell = config.min_cell;
    r.version = EWS_VERSION;

    Store store(db_file);
    Engine engine;
    engine.set_localities(store.localities());
    {
        std::vector<Observation> batch;
        constexpr std::size_t batch_rows = 65536;
        batch.reserve(batch_rows);
        store.for_each_observation([&](const Observation& o) {
            batch.push_back(o);
            if (batch.size() == batch_rows) {
                engine.apply(batch);
                batch.clear();
            }
        });
        engine.apply(batch);
    }
    std::map<std::string, AlertState> states;
    for (auto& s : store.alert_states()) states.emplace(s.locality, std::move(s));
    const auto events = published_events(store);

    // The plugins the daemon runs: a quarantined file stays out here too.
    const Quarantine quarantine(config.state_dir);
    PluginSet plugins = load_plugins(config.plugin_dir, config.plugin_params,
                                     [&](const std::filesystem::path& file) {
                                         return quarantine.reason_for(file);
                                     });
    if (plugins.loaded.empty())
        throw std::runtime_error("no plugin loaded from " + config.plugin_dir.string());
    for (const auto& p : plugins.loaded) {
        r.indicators.push_back(p.name());
        r.plugins.emplace_back(p.name(), p.descriptor.version);
    }
    const std::size_t n_ind = r.indicators.size();

    // The localities in scope, and their rows.
    std::vector<std::size_t> in;  // engine index of each row
    for (std::size_t i = 0; i < engine.locality_count(); ++i)
        if (in_scope(engine.locality(i).region, r.scope)) in.push_back(i);
    const std::size_t periods = options.trends ? std::size_t(options.periods) : 1;
    const seconds step = std::chrono::days(options.step_days);
    for (std::size_t k = 0; k < periods; ++k)
        r.periods.push_back(r.at - seconds(step * std::int64_t(periods - 1 - k)));
    std::vector<std::size_t> row_of(engine.locality_count(), SIZE_MAX);
    r.rows.resize(in.size());
    for (std::size_t j = 0; j < in.size(); ++j) {
        const Locality& l = engine.locality(in[j]);
        LocalityRow& row = r.rows[j];
        row.id = l.id;
        row.name = l.name;
        row.region = l.region;
        row.trend.assign(periods, no_score);
        row.indicator_trend.assign(n_ind, std::vector<double>(periods, no_score));
        row_of[in[j]] = j;
    }
    r.localities = in.size();

    // Re-evaluation at each period; the last one keeps every assessment.
    std::vector<std::vector<std::uint8_t>> had_data(in.size(), std::vector<std::uint8_t>(n_ind, 0));
    std::vector<std::vector<std::optional<TimePoint>>> last_newest(
        in.size(), std::vector<std::optional<TimePoint>>(n_ind));
    EvaluationOptions evaluation;
    evaluation.budget = config.plugin_budget;
    for (std::size_t k = 0; k < periods && !in.empty(); ++k) {
        engine.clear_dirty();
        for (std::size_t i : in) engine.mark_dirty(i);
        auto results = engine.evaluate(plugins.loaded, r.periods[k], true, evaluation);
        for (const auto& st : engine.last_call_stats()) r.failed_assessments += st.errors;
        const bool last = k + 1 == periods;
        for (auto& res : results) {
            const std::size_t j = row_of[res.locality];
            if (j == SIZE_MAX) continue;
            LocalityRow& row = r.rows[j];
            for (std::size_t p = 0; p < n_ind && p < res.assessments.size(); ++p) {
                const auto& a = res.assessments[p];
                if (scored(a)) row.indicator_trend[p][k] = std::clamp(a.score, 0.0, 1.0);
                if (!last && (a.status == sdk::Status::ok || a.status == sdk::Status::stale)) {
                    had_data[j][p] = 1;
                    if (a.newest) last_newest[j][p] = a.newest;
                }
            }
            Composite c = compose(r.indicators, std::move(res.assessments), config.weights);
            row.trend[k] = c.evidence ? std::clamp(c.score, 0.0, 100.0) : no_score;
            if (!last) continue;
            row.score = row.trend[k];
            row.confidence = std::isfinite(c.confidence) ? std::clamp(c.confidence, 0.0, 1.0) : 0.0;
            row.dominant = c.dominant;
            for (const auto& ct : c.contributions) {
                const auto& a = ct.assessment;
                IndicatorNow now;
                now.indicator = ct.indicator;
                now.score = scored(a) ? std::clamp(a.score, 0.0, 1.0) : no_score;
                now.confidence = std::isfinite(a.confidence) ? std::clamp(a.confidence, 0.0, 1.0) : 0.0;
                now.status = a.status;
                now.newest = a.newest;
                now.evidence = a.evidence.text;
                now.floor = floor_level(a.floor);
                for (const auto& v : a.evidence.values)
                    now.values.push_back({v.name, evidence_value_text(v, config.min_cell), v.is_count});
                if (a.newest && (!row.newest || *a.newest > *row.newest)) row.newest = a.newest;
                row.indicators.push_back(std::move(now));
            }
            // Levels: the alert state when `at` is not before its last evaluation, else the
            // events published up to `at`; `before` always from the events.
            const auto ev = events.find(row.id);
            static const std::vector<Published> none;
            const auto& history = ev == events.end() ? none : ev->second;
            const auto st = states.find(row.id);
            if (st != states.end() && st->second.evaluated_at && r.at >= *st->second.evaluated_at) {
                const AlertState& s = st->second;
                row.level = s.notified_level;
                row.alert_id = s.notified_id;
                row.opened_at = s.notified_opened_at;
                row.flapping = s.notified_flapping;
                row.acknowledged = !s.acked_id.empty() && s.acked_id == s.notified_id;
            } else if (const Published* e = last_at(history, r.at)) {
                row.level = e->level;
                if (e->level != Level::none) {
                    row.alert_id = e->alert_id;
                    row.opened_at = e->opened_at;
                }
            }
            if (const Published* e = last_at(history, r.compared_with)) row.before = e->level;
            const TimePoint window_start = r.periods.front() - step;
            for (const auto& e : history) r.published_events += e.at <= r.at ? 1 : 0;
            for (const auto& e : history)
                if (e.at > window_start && e.at <= r.at && e.event != event::reminder)
                    row.marks.push_back({e.at, e.event, e.level});
            if (row.level != Level::none) {
                AlertEvent e;
                e.type = event::raised;
                e.level = row.level;
                row.actions = playbook(config, e, c);
            }
            // Gaps: stale data, or none now where there was some in an earlier period or the
            // daemon has seen this indicator here before.
            for (std::size_t p = 0; p < row.indicators.size(); ++p) {
                const IndicatorNow& now = row.indicators[p];
                bool gap = now.status == sdk::Status::stale;
                if (now.status == sdk::Status::no_data) {
                    gap = had_data[j][p] != 0;
                    if (!gap && st != states.end()) {
                        const auto& cov = st->second.covered;
                        gap = std::binary_search(cov.begin(), cov.end(), now.indicator);
                    }
                }
                if (!gap) continue;
                r.gaps.push_back({now.indicator, row.id, row.name, row.region, now.status,
                                  now.newest ? now.newest : last_newest[j][p]});
            }
        }
    }

    // Rank, count, group.
    std::sort(r.rows.begin(), r.rows.end(), [](const LocalityRow& a, const LocalityRow& b) {
        if (a.level != b.level) return a.level > b.level;
        const bool fa = std::isfinite(a.score), fb = std::isfinite(b.score);
        if (fa != fb) return fa;
        if (fa && a.score != b.score) return a.score > b.score;
        return a.id < b.id;
    });
    std::map<std::string, RegionSummary> regions;
    for (const auto& row : r.rows) {
        auto& g = regions[row.region];
        g.region = row.region;
        ++g.localities;
        ++g.now[std::size_t(row.level)];
        ++g.before[std::size_t(row.before)];
        ++r.total_now[std::size_t(row.level)];
        ++r.total_before[std::size_t(row.before)];
    }
    for (auto& [name, g] : regions) r.regions.push_back(std::move(g));
    std::sort(r.gaps.begin(), r.gaps.end(), [](const Gap& a, const Gap& b) {
        return std::tie(a.indicator, a.region, a.locality) < std::tie(b.indicator, b.region, b.locality);
    });
    return r;
}

std::string scores_csv(const Report& report) {
    std::string out = "id,name,region,level,score,confidence,dominant,newest";
    for (const auto& ind : report.indicators)
        out += "," + ind + "_score," + ind + "_status," + ind + "_newest";
    out += "\n";
    for (const auto& row : report.rows) {
        const std::string dominant =
            row.dominant >= 0 && std::size_t(row.dominant) < row.indicators.size()
                ? row.indicators[std::size_t(row.dominant)].indicator
                : "";
        out += csv_field(row.id) + "," + csv_field(row.name) + "," + csv_field(row.region) + "," +
               std::string(to_string(row.level)) + "," + format_score(row.score) + "," +
               format_unit(row.confidence) + "," + dominant + "," +
               (row.newest ? format_time(*row.newest) : "");
        for (const auto& ind : report.indicators) {
            const auto it = std::find_if(row.indicators.begin(), row.indicators.end(),
                                         [&](const IndicatorNow& x) { return x.indicator == ind; });
            if (it == row.indicators.end()) {
                out += ",,,";
                continue;
            }
            out += "," + format_unit(it->score) + "," + std::string(to_string(it->status)) + "," +
                   (it->newest ? format_time(*it->newest) : "");
        }
        out += "\n";
    }
    return out;
}

std::string scores_json(const Report& report) {
    using Json = nlohmann::ordered_json;
    Json localities = Json::array();
    for (const auto& row : report.rows) {
        Json indicators = Json::array();
        for (const auto& ind : row.indicators) {
            Json values = Json::object();
            for (const auto& v : ind.values) {
                if (v.text.starts_with("<") || v.text == "-") {
                    values[v.name] = v.text == "-" ? Json(nullptr) : Json(v.text);
                    continue;
                }
                char* end = nullptr;
                const double x = std::strtod(v.text.c_str(), &end);
                if (end && *end == '\0' && std::isfinite(x)) {
                    if (v.is_count && x == std::floor(x) && std::fabs(x) < 9e15)
                        values[v.name] = static_cast<std::int64_t>(x);
                    else
                        values[v.name] = x;
                } else {
                    values[v.name] = v.text;
                }
            }
            indicators.push_back(Json{{"indicator", ind.indicator},
                                      {"score", number_or_null(ind.score, 3)},
                                      {"confidence", number_or_null(ind.confidence, 3)},
                                      {"status", std::string(to_string(ind.status))},
                                      {"newest", time_or_null(ind.newest)},
                                      {"floor", ind.floor == Level::none
                                                    ? Json(nullptr)
                                                    : Json(std::string(to_string(ind.floor)))},
                                      {"evidence", Json{{"text", ind.evidence}, {"values", values}}}});
        }
        const Json dominant =
            row.dominant >= 0 && std::size_t(row.dominant) < row.indicators.size()
                ? Json(row.indicators[std::size_t(row.dominant)].indicator)
                : Json(nullptr);
        localities.push_back(Json{{"id", row.id},
                                  {"name", row.name},
                                  {"region", row.region},
                                  {"level", std::string(to_string(row.level))},
                                  {"alert_id", row.alert_id.empty() ? Json(nullptr) : Json(row.alert_id)},
                                  {"opened_at", time_or_null(row.opened_at)},
                                  {"score", number_or_null(row.score, 1)},
                                  {"confidence", number_or_null(row.confidence, 3)},
                                  {"dominant", dominant},
                                  {"newest", time_or_null(row.newest)},
                                  {"indicators", std::move(indicators)}});
    }
    const Json j{{"schema", "ews.scores/1"},
                 {"scope", report.scope},
                 {"at", format_time(report.at)},
                 {"generated", format_time(report.generated)},
                 {"min_cell", report.min_cell},
                 {"indicators", report.indicators},
                 {"localities", std::move(localities)}};
    return j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

}  // namespace ews::report
