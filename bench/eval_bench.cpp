// eval_bench.cpp: the evaluation targets of DESIGN.md, measured beside their references in
// the same run:
//   - "full evaluation, 100k localities x 3 indicators, 1 year history: within 5x of one
//     plain pass over the same in-memory data; under 1 s on 2 cores";
//   - "incremental: 1k new observations: cost grows with new data, not with localities".
//
// What is compared (each figure the median of several repetitions):
//   full, ewsd:      ews::Engine::evaluate(plugins, now, only_dirty = false) with the three
//                    shipped plugins (school_dropout, community_incidents, group_presence)
//                    loaded by ews::load_plugins from the built plugin directory with their
//                    default parameters, asked for no evidence (LocalityView::
//                    wants_evidence() false) as the daemon asks, with the daemon's crash
//                    marker written before each plugin's turn; and the same followed by
//                    what the daemon adds on its main thread (Pipeline::evaluate):
//                    ews::compose and ews::advance (the alert lifecycle) for every result,
//                    then, for the localities with events, Engine::assess asking for
//                    evidence and ews::add_evidence, then releasing the results. The alert
//                    states are kept in a vector by locality index (the daemon keeps a map
//                    by id).
//   full, reference: one plain pass, on one thread, over the same data held in plain vectors
//                    (not through the LocalityView interface): the same sdk::Point values,
//                    series of one locality and kind contiguous, every series of every
//                    locality cut at `now` by one upper_bound and every visible point read
//                    once (sum of value * weight). Every generated kind is one the plugins
//                    read. A bench-side plugin doing the same walk through the engine's
//                    views checks that both hold the same data (equal sums).
//   incremental:     Engine::apply of 1k new observations (one each in 1k distinct random
//                    localities, just after the history) then Engine::evaluate(only_dirty =
//                    true), at 10k, 100k and 1M localities. Every size holds the same light
//                    history per locality (the last 61 days of the year, about 14 rows), so
//                    that only the number of localities differs; the ratio largest / smallest
//                    (1M / 10k) must stay <= 2. The sizes take turns, one evaluation each a
//                    round, after one unmeasured round (measure_incremental). The same is
//                    measured on the year of history at 100k, against the full evaluation.
//   scale study:     with --scale-study, the full evaluation and its reference are measured
//                    again on each of those sizes, before their incremental measurement: the
//                    same light history at every size (a year at 1M localities, 100M
//                    observations, would not fit the benchmark's time), so the study shows
//                    how each cost grows with the number of localities alone.
//
// The data: as memory_bench.cpp generates it (same shape, generator of its own here because
// the history length varies): localities on a grid 100 wide with up to four neighbours;
// per locality monthly school.enrolled and school.dropouts (emis), fortnightly
// presence.report (a field team), weekly incident.* counts (a monitor); 100 rows a locality
// for a year, from a fixed seed. `now` is the day after the history.
//
// Where the time goes: each plugin alone through the engine, a plugin that does nothing
// (the engine's own cost per call) and the walking plugin, each printed per call; and the
// interface's floor: the full evaluation (engine, composing, lifecycle) with three bench
// plugins that make the shipped plugins' requests of their views and read every point they
// are handed but do no indicator arithmetic (RequestsOnly), against the same reference, with
// the number of points they are handed (each neighbour's series is handed again to every
// locality that lists it); and the same with the locality's own series only (the reference's
// points, once each). Two rows without a target.
//
// Times are wall clock (the targets) and the CPU time of all the process's threads (how
// much work it was, which stays meaningful when other processes share the cores). The
// engine picks its own number of worker threads; the walking plugin counts the threads
// that call it, and that count is printed.
//
// Output: tables on stdout; progress on stderr when it is a terminal; results in
// EWS_BENCH_RESULTS_DIR/eval.json (this program's own figures, and "rows": the common rows:
// the full evaluation in s against the plain pass, ratio <= 5 and under 1 s; the incremental
// evaluation in ms at each size against the smallest, flat (<= 2) on the largest; the study
// rows). Exit status 1 when a target is missed.
#include "bench_support.hpp"

#include "alerting.hpp"
#include "allocator.hpp"
#include "engine.hpp"
#include "plugin_host.hpp"
#include "quarantine.hpp"
#include "scorer.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include <time.h>
#include <unistd.h>

#ifndef EWS_BENCH_RESULTS_DIR
#define EWS_BENCH_RESULTS_DIR "bench-results"
#endif
#ifndef EWS_BENCH_PLUGIN_DIR
#define EWS_BENCH_PLUGIN_DIR "plugins"
#endif

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using ews::sdk::TimePoint;

namespace {

using ews::bench::load_average;
using ews::bench::median;
using ews::bench::Progress;

constexpr std::size_t batch_rows = 65536;  // what Pipeline hands Engine::apply at start
constexpr double full_ratio_target = 5.0;
constexpr double full_ms_target = 1000.0;
constexpr double incremental_ratio_target = 2.0;

struct Options {
    std::size_t localities = 100'000;
    // The sizes of the incremental measurement and of the scale study, smallest first.
    std::vector<std::size_t> sizes{10'000, 100'000, 1'000'000};
    int light_days = 61;  // history of those sizes
    int reps = 5;         // of the full evaluation and its reference
    int incremental_reps = 9;
    int study_reps = 3;  // of the scale study's full evaluation and reference
    bool scale_study = false;
    std::size_t new_rows = 1000;
    fs::path plugin_dir = EWS_BENCH_PLUGIN_DIR;
};

// Returns: the comma-separated counts of `text`, e.g. "10000,100000".
std::vector<std::size_t> count_list(const std::string& text) {
    std::vector<std::size_t> out;
    std::size_t at = 0;
    while (!text.empty() && at <= text.size()) {
        const std::size_t end = std::min(text.find(',', at), text.size());
        out.push_back(std::stoul(text.substr(at, end - at)));
        at = end + 1;
    }
    return out;
}

// Kinds, in the store's key order (by name), so that rows sorted by kind index are in key order.
constexpr const char* kinds[] = {
    "incident.abduction",        "incident.armed_violence",
    "incident.child_exploitation", "incident.drug_trafficking",
    "incident.recruitment_attempt", "incident.violence_against_children",
    "presence.report",           "school.dropouts",
    "school.enrolled"};
constexpr int incident_kinds = 6;  // kinds[0..5]
constexpr std::uint8_t presence_kind = 6, dropouts_kind = 7, enrolled_kind = 8;
constexpr int source_count = 51;

// Sources: 0 = emis, 1..40 = monitor-N, 41..50 = field-a..field-j.
std::string source_name(int s) {
    if (s == 0) return "emis";
    if (s <= 40) return "monitor-" + std::to_string(s);
    return std::string("field-") + char('a' + (s - 41));
}

const std::int64_t year_start = 1735689600;  // 2025-01-01T00:00:00Z
constexpr int year_days = 365;

TimePoint day_time(int day) {
    return TimePoint(std::chrono::seconds(year_start + std::int64_t(day) * 86400));
}

std::string locality_id(std::size_t i) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "DM-%05zu", i + 1);
    return buf;
}

// Localities on a grid 100 wide; neighbours are the up to four adjacent cells.
std::vector<ews::Locality> make_localities(std::size_t count) {
    constexpr std::size_t width = 100;
    std::vector<ews::Locality> out(count);
    for (std::size_t i = 0; i < count; ++i) {
        ews::Locality& l = out[i];
        l.id = locality_id(i);
        l.name = "Locality " + std::to_string(i + 1);
        l.region = "DM/DM-" + std::to_string(1 + i % 4) + "/DM-" + std::to_string(1 + i % 4) +
                   "-" + std::to_string(1 + i % 25);
        l.population = double(500 + i % 3000);
        if (i % width > 0) l.neighbours.push_back(locality_id(i - 1));
        if (i % width + 1 < width && i + 1 < count) l.neighbours.push_back(locality_id(i + 1));
        if (i >= width) l.neighbours.push_back(locality_id(i - width));
        if (i + width < count) l.neighbours.push_back(locality_id(i + width));
    }
    return out;
}

struct Row {
    std::uint16_t day;  // 0..364 within the year
    std::uint8_t kind;  // index into kinds
    std::uint8_t source;
    float value;
    float weight;
};

// One locality's history from `first_day` to the end of the year, in key order: the rows of
// memory_bench.cpp's year (12 monthly enrolment and dropout counts, 26 fortnightly presence
// confidences, 50 weekly incident counts) that fall on or after first_day.
void generate_locality(std::size_t l, int first_day, std::mt19937_64& rng, std::vector<Row>& out) {
    out.clear();
    const float enrolled = float(200 + rng() % 1800);
    const std::uint8_t monitor = std::uint8_t(1 + l % 40);
    const std::uint8_t field = std::uint8_t(41 + l % 10);
    auto add = [&](int day, Row r) {
        if (day < first_day) return;
        r.day = std::uint16_t(day);
        out.push_back(r);
    };
    for (int m = 0; m < 12; ++m) {
        add(m * 30, {0, enrolled_kind, 0, enrolled + float(rng() % 21) - 10, 1});
        add(m * 30 + 29, {0, dropouts_kind, 0, float(rng() % 12), 1});
    }
    for (int f = 0; f < 26; ++f)
        add(f * 14, {0, presence_kind, field, float(rng() % 101) / 100.0f,
                     rng() % 4 == 0 ? 0.5f : 1.0f});
    for (int w = 0; w < 50; ++w)
        add(w * 7 + int(l % 7), {0, std::uint8_t(rng() % incident_kinds), monitor,
                                 float(rng() % 6), 1});
    std::sort(out.begin(), out.end(), [](const Row& a, const Row& b) {
        return a.kind != b.kind ? a.kind < b.kind : a.day < b.day;
    });
}

// The reference's copy of the data: every series' points contiguous in one vector, grouped
// by locality (series of locality l: [locality_series[l], locality_series[l + 1])).
struct PlainData {
    std::vector<ews::sdk::Point> points;
    std::vector<std::size_t> series_begin;     // one per series, then the end
    std::vector<std::size_t> locality_series;  // one per locality, then the end
};

struct Dataset {
    std::size_t localities = 0;
    std::size_t observations = 0;
    double load_seconds = 0;
    std::unique_ptr<ews::Engine> engine;
    PlainData plain;  // empty unless asked for
};

// Returns: the peak resident memory of this process (VmHWM), in bytes.
std::size_t peak_resident_bytes() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
    return 0;
}

[[noreturn]] void die(const std::string& what) { ews::bench::die("ews_bench_eval", what); }

double process_cpu_ms() {
    timespec t{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return double(t.tv_sec) * 1e3 + double(t.tv_nsec) / 1e6;
}

// Wall time and the CPU time of all the process's threads since construction. The CPU time
// tells how much work a step is when other processes share the cores (wall time then
// includes waiting for a core).
class Stopwatch {
public:
    double wall_ms() const {
        return std::chrono::duration<double, std::milli>(Clock::now() - wall_).count();
    }
    double cpu_ms() const { return process_cpu_ms() - cpu_; }

private:
    Clock::time_point wall_ = Clock::now();
    double cpu_ = process_cpu_ms();
};

// Wall and CPU milliseconds of the repetitions of one step.
struct Timings {
    std::vector<double> wall, cpu;
    void add(const Stopwatch& w) {
        cpu.push_back(w.cpu_ms());
        wall.push_back(w.wall_ms());
    }
};

const std::vector<std::string>& source_names() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> out;
        for (int s = 0; s < source_count; ++s) out.push_back(source_name(s));
        return out;
    }();
    return names;
}

// Builds an engine holding `localities` localities with history from `first_day` to the end
// of the year, applied in batches in key order as the daemon loads it at start; with
// `plain`, the reference's copy too.
Dataset load(std::size_t localities, int first_day, bool plain, const Progress& progress) {
    Dataset d;
    d.localities = localities;
    const std::string tag = std::to_string(localities) + " localities";
    const auto t0 = Clock::now();
    d.engine = std::make_unique<ews::Engine>();
    progress(tag + ": set_localities");
    d.engine->set_localities(make_localities(localities));

    const auto& sources = source_names();
    std::mt19937_64 rng(20250101);
    std::vector<Row> one;
    // The batch's Observations are reused, so their strings keep their buffers.
    std::vector<ews::Observation> batch(batch_rows);
    std::size_t used = 0;
    if (plain) d.plain.locality_series.reserve(localities + 1);
    for (std::size_t l = 0; l < localities; ++l) {
        generate_locality(l, first_day, rng, one);
        const std::string id = locality_id(l);
        if (plain) d.plain.locality_series.push_back(d.plain.series_begin.size());
        for (std::size_t i = 0; i < one.size(); ++i) {
            const Row& r = one[i];
            ews::Observation& o = batch[used++];
            o.locality.assign(id);
            o.time = day_time(r.day);
            o.kind.assign(kinds[r.kind]);
            o.value = r.value;
            o.weight = r.weight;
            o.source.assign(sources[r.source]);
            if (plain) {
                if (i == 0 || one[i - 1].kind != r.kind)
                    d.plain.series_begin.push_back(d.plain.points.size());
                d.plain.points.push_back({o.time, o.value, o.weight, sources[r.source]});
            }
            if (used == batch_rows) {
                d.engine->apply(batch);
                used = 0;
            }
        }
        d.observations += one.size();
        if (l % 4096 == 0)
            progress(tag + ": loaded " + std::to_string(d.observations) + " observations");
    }
    batch.resize(used);
    d.engine->apply(batch);
    if (plain) {
        d.plain.series_begin.push_back(d.plain.points.size());
        d.plain.locality_series.push_back(d.plain.series_begin.size() - 1);
    }
    d.load_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    if (d.engine->observation_count() != d.observations)
        die(tag + ": the engine holds " + std::to_string(d.engine->observation_count()) +
            " observations, expected " + std::to_string(d.observations));
    return d;
}

// The reference: every visible point of every series read once.
// Returns: the sum of value * weight, so the pass cannot be optimised away.
double plain_pass(const PlainData& data, TimePoint now) {
    double sum = 0;
    const std::size_t localities = data.locality_series.size() - 1;
    for (std::size_t l = 0; l < localities; ++l) {
        for (std::size_t s = data.locality_series[l]; s < data.locality_series[l + 1]; ++s) {
            const auto* begin = data.points.data() + data.series_begin[s];
            const auto* end = data.points.data() + data.series_begin[s + 1];
            end = std::upper_bound(begin, end, now, [](TimePoint t, const ews::sdk::Point& p) {
                return t < p.time;
            });
            for (const auto* p = begin; p != end; ++p) sum += p->value * p->weight;
        }
    }
    return sum;
}

// Counts the threads that call assess() during one evaluation: each thread records itself
// once per generation.
class ThreadCounter {
public:
    void next_generation() {
        std::lock_guard lock(mutex_);
        ++generation_;
        seen_.clear();
    }
    void record() const {
        thread_local std::uint64_t recorded = 0;
        const std::uint64_t g = generation_.load(std::memory_order_relaxed);
        if (recorded == g) return;
        recorded = g;
        std::lock_guard lock(mutex_);
        seen_.insert(std::this_thread::get_id());
    }
    std::size_t count() const {
        std::lock_guard lock(mutex_);
        return seen_.size();
    }

private:
    std::atomic<std::uint64_t> generation_{1};
    mutable std::mutex mutex_;
    mutable std::set<std::thread::id> seen_;
};

// Bench-side plugin that reads every visible point of the locality's own series once,
// through the engine's view, and returns their sum of value * weight as an evidence value.
class WalkIndicator final : public ews::sdk::Indicator {
public:
    explicit WalkIndicator(ThreadCounter& threads) : threads_(threads) {}
    ews::sdk::Descriptor describe() const override {
        return {"walk", "1.0.0", {"incident.*", "presence.report", "school.*"}, {}};
    }
    void configure(const ews::sdk::Params&) override {}
    ews::sdk::Assessment assess(const ews::sdk::LocalityView& view, TimePoint) const override {
        threads_.record();
        double sum = 0;
        for (const char* kind : kinds)
            for (const auto& p : view.series(kind)) sum += p.value * p.weight;
        ews::sdk::Assessment a;
        a.status = ews::sdk::Status::ok;
        a.evidence.values.push_back({"sum", sum, false});
        return a;
    }

private:
    ThreadCounter& threads_;
};

// Bench-side plugin that does nothing: what remains is the engine's own cost per call.
class NullIndicator final : public ews::sdk::Indicator {
public:
    ews::sdk::Descriptor describe() const override { return {"null", "1.0.0", {}, {}}; }
    void configure(const ews::sdk::Params&) override {}
    ews::sdk::Assessment assess(const ews::sdk::LocalityView&, TimePoint) const override {
        ews::sdk::Assessment a;
        a.status = ews::sdk::Status::ok;
        return a;
    }
};

// Bench-side stand-in for one shipped plugin that makes the same requests of the view (the
// same series of the locality and of each neighbour, or kinds() and then each kind's series)
// and reads every point it is handed, but does no indicator arithmetic: three of them, in
// place of the shipped plugins, give the floor of the per-locality plugin interface (the
// engine's calls and views, composing and the alert lifecycle) below which no indicators
// with these data needs can go. Without `neighbours`, only the locality's own series are
// asked for: the same points as the reference reads, once each.
class RequestsOnly final : public ews::sdk::Indicator {
public:
    enum class Pattern {
        school_dropout,       // school.dropouts, school.enrolled; the same of each neighbour
        community_incidents,  // kinds("incident."), then each of their series
        group_presence,       // presence.report, presence.recruitment_activity; and neighbours'
    };
    // With `points_read`, adds the number of points each call was handed (for a counting
    // evaluation apart from the timed ones).
    RequestsOnly(std::string name, Pattern pattern, bool neighbours,
                 std::atomic<std::size_t>* points_read = nullptr)
        : name_(std::move(name)), pattern_(pattern), neighbours_(neighbours),
          points_read_(points_read) {}
    ews::sdk::Descriptor describe() const override {
        switch (pattern_) {
            case Pattern::school_dropout:
                return {name_, "1.0.0", {"school.enrolled", "school.dropouts"}, {}};
            case Pattern::community_incidents: return {name_, "1.0.0", {"incident.*"}, {}};
            case Pattern::group_presence:
                return {name_, "1.0.0", {"presence.report", "presence.recruitment_activity"}, {}};
        }
        return {};
    }
    void configure(const ews::sdk::Params&) override {}
    ews::sdk::Assessment assess(const ews::sdk::LocalityView& view, TimePoint) const override {
        double sum = 0;
        std::size_t read_count = 0;
        auto read = [&](std::span<const ews::sdk::Point> points) {
            for (const auto& p : points) sum += p.value * p.weight;
            read_count += points.size();
        };
        auto pair = [&](const ews::sdk::LocalityView& v, std::string_view a, std::string_view b) {
            read(v.series(a));
            read(v.series(b));
        };
        switch (pattern_) {
            case Pattern::school_dropout:
            case Pattern::group_presence: {
                const bool school = pattern_ == Pattern::school_dropout;
                const std::string_view a = school ? "school.dropouts" : "presence.report";
                const std::string_view b =
                    school ? "school.enrolled" : "presence.recruitment_activity";
                pair(view, a, b);
                for (std::size_t i = 0; neighbours_ && i < view.neighbour_count(); ++i)
                    pair(view.neighbour(i), a, b);
                break;
            }
            case Pattern::community_incidents:
                for (std::string_view kind : view.kinds("incident.")) read(view.series(kind));
                break;
        }
        if (points_read_) points_read_->fetch_add(read_count, std::memory_order_relaxed);
        ews::sdk::Assessment a;
        a.status = ews::sdk::Status::ok;
        a.confidence = 1;
        a.score = sum > 0 ? 0.01 : 0;  // quiet everywhere: no alert, the lifecycle's cheapest path
        return a;
    }

private:
    std::string name_;
    Pattern pattern_;
    bool neighbours_;
    std::atomic<std::size_t>* points_read_;
};

ews::LoadedPlugin in_process(std::shared_ptr<ews::sdk::Indicator> indicator) {
    ews::LoadedPlugin p;
    p.descriptor = indicator->describe();
    p.file = "(in the bench)/" + p.descriptor.name;
    p.indicator = std::move(indicator);
    return p;
}

// Dies when a plugin call failed in the last evaluation: a timing of errors means nothing.
void require_no_faults(const ews::Engine& engine, const std::vector<ews::LoadedPlugin>& plugins) {
    const auto& stats = engine.last_call_stats();
    for (std::size_t i = 0; i < stats.size() && i < plugins.size(); ++i) {
        if (stats[i].errors == 0) continue;
        std::string why = stats[i].first_failures.empty() ? "" : stats[i].first_failures[0].second;
        die(plugins[i].name() + " failed " + std::to_string(stats[i].errors) + " calls: " + why);
    }
}

// What the daemon's Pipeline::evaluate does per result after the engine: the composite
// (moving the assessments in), then the alert lifecycle (advance(): data gaps, levels,
// flapping, reminders); then, for the localities with events, the plugins asked again with
// evidence (Engine::assess at `assessed_at`, the time the results were assessed at) and the
// evidence moved into their composites. Returns: how many events advance() published.
std::size_t score_results(ews::Engine& engine, const std::vector<ews::LoadedPlugin>& plugins,
                          std::vector<ews::LocalityResult>& results,
                          const std::vector<std::string>& names,
                          std::vector<ews::AlertState>& states, TimePoint assessed_at,
                          TimePoint now, const ews::AlertingParams& params) {
    static const std::map<std::string, double> weights;  // every indicator weighs 1
    std::size_t events = 0;
    ews::Reading reading;
    std::vector<std::uint32_t> eventful;
    std::vector<ews::Composite> composites;
    for (auto& r : results) {
        ews::Composite composite = ews::compose(names, std::move(r.assessments), weights);
        reading.score = composite.evidence ? composite.score : std::nan("");
        reading.floor = composite.floor;
        reading.indicators.clear();
        for (const auto& c : composite.contributions)
            reading.indicators.push_back({c.indicator, c.assessment.status, c.assessment.newest});
        const auto result = ews::advance(states[r.locality], reading, now, params, std::nullopt);
        events += result.published.size();
        if (result.published.empty() && result.held.empty()) continue;
        eventful.push_back(static_cast<std::uint32_t>(r.locality));
        composites.push_back(std::move(composite));
    }
    if (!eventful.empty()) {
        auto explained = engine.assess(plugins, assessed_at, eventful);
        for (std::size_t k = 0; k < explained.size(); ++k)
            if (!ews::add_evidence(composites[k], std::move(explained[k].assessments)).empty())
                die("a plugin assessed locality " + std::to_string(eventful[k]) +
                    " differently when asked for its evidence");
    }
    return events;
}

const char* status_name(ews::sdk::Status s) {
    switch (s) {
        case ews::sdk::Status::ok: return "ok";
        case ews::sdk::Status::stale: return "stale";
        case ews::sdk::Status::no_data: return "no_data";
        case ews::sdk::Status::error: return "error";
    }
    return "?";
}

// New observations for the incremental measurement: one in each of `count` distinct random
// localities at time `at`, alternately an incident count (the locality's monitor) and a
// presence confidence (its field team), as weekly reports arrive.
std::vector<ews::Observation> new_observations(std::size_t localities, std::size_t count,
                                               TimePoint at, std::mt19937_64& rng) {
    const auto& sources = source_names();
    std::unordered_set<std::size_t> picked;
    std::vector<ews::Observation> rows;
    rows.reserve(count);
    while (rows.size() < std::min(count, localities)) {
        const std::size_t l = rng() % localities;
        if (!picked.insert(l).second) continue;
        ews::Observation o;
        o.locality = locality_id(l);
        o.time = at;
        if (rows.size() % 2 == 0) {
            o.kind = kinds[rng() % incident_kinds];
            o.value = double(rng() % 6);
            o.source = sources[1 + l % 40];
        } else {
            o.kind = kinds[presence_kind];
            o.value = double(rng() % 101) / 100.0;
            o.source = sources[41 + l % 10];
        }
        rows.push_back(std::move(o));
    }
    return rows;
}

struct Incremental {
    Timings total;  // apply + evaluate(only_dirty), per repetition
    Timings apply;
    std::size_t assessed = 0;  // localities assessed, summed over repetitions
};

// One incremental evaluation of `d`, its figures added to `out` unless null: new rows
// `rep + 1` hours after the day following the history, then the dirty localities assessed.
// The dirty marks must be clear on entry, and are on return.
void incremental_rep(Dataset& d, const std::vector<ews::LoadedPlugin>& plugins,
                     const Options& o, int rep, std::mt19937_64& rng, Incremental* out) {
    Incremental unmeasured;
    Incremental& into = out ? *out : unmeasured;
    const TimePoint at = day_time(year_days) + std::chrono::hours(rep + 1);
    const auto rows = new_observations(d.localities, o.new_rows, at, rng);
    const Stopwatch watch;
    d.engine->apply(rows);
    into.apply.add(watch);
    const std::size_t dirty = d.engine->dirty_count();
    ews::EvaluationOptions no_evidence;  // as the daemon evaluates
    no_evidence.evidence = false;
    const auto results = d.engine->evaluate(plugins, at, true, no_evidence);
    into.total.add(watch);
    if (results.size() != dirty)
        die("incremental evaluation assessed " + std::to_string(results.size()) +
            " localities, " + std::to_string(dirty) + " were dirty");
    require_no_faults(*d.engine, plugins);
    into.assessed += results.size();
}

// Measures `o.incremental_reps` incremental evaluations of each dataset, in rounds: each
// round one evaluation of each dataset, smallest first, so that each size is measured in the
// same state of the machine (its speed drifts over minutes) and of its caches (each
// evaluation follows the other sizes' evaluations, as a daemon's follows other work,
// instead of its own repetition with its data still cached). One unmeasured round first:
// after the scale study, the allocator's first requests sort through the millions of blocks
// the study's evaluations freed (the first 1M-locality repetition took 113 ms against
// 15-25 ms for the others in one run), which is the study's cost, not the incremental
// evaluation's. Returns: each dataset's figures, in the order of `datasets`.
std::vector<Incremental> measure_incremental(std::span<Dataset> datasets,
                                             const std::vector<ews::LoadedPlugin>& plugins,
                                             const Options& o, const Progress& progress) {
    std::vector<Incremental> out(datasets.size());
    std::vector<std::mt19937_64> rng;
    for (const Dataset& d : datasets) rng.emplace_back(7 + d.localities);
    for (int rep = -1; rep < o.incremental_reps; ++rep) {
        for (std::size_t i = 0; i < datasets.size(); ++i) {
            Dataset& d = datasets[i];
            progress(std::to_string(d.localities) + " localities: incremental evaluation " +
                     (rep < 0 ? std::string("(unmeasured)")
                              : std::to_string(rep + 1) + "/" + std::to_string(o.incremental_reps)));
            incremental_rep(d, plugins, o, rep + 1, rng[i], rep < 0 ? nullptr : &out[i]);
        }
    }
    return out;
}

// Clears the dirty marks set_localities left, without running plugin code: an evaluation
// with no plugins selects every locality and assesses none.
void clear_dirty(ews::Engine& engine) { engine.evaluate({}, day_time(year_days), false); }

// Dies unless the walking plugin, through the engine's views, and the reference read the
// same data (equal sums of value * weight).
void check_reference(Dataset& d, const ews::LoadedPlugin& walk, TimePoint now) {
    const auto r = d.engine->evaluate({walk}, now, false);
    double through_views = 0;
    for (const auto& x : r) through_views += x.assessments[0].evidence.values.at(0).value;
    const double plain = plain_pass(d.plain, now);
    if (!(std::abs(through_views - plain) <= 1e-9 * std::abs(plain)))
        die(std::to_string(d.localities) + " localities: the reference reads other data than "
            "the engine: sum " + std::to_string(plain) + " against " +
            std::to_string(through_views));
}

// The full evaluation of one dataset and its reference, `reps` times in turn.
struct Full {
    Timings reference, engine, scored;  // scored: engine + compose + advance, released
    std::map<std::string, std::map<std::string, std::size_t>> statuses;  // plugin -> status -> n
    std::size_t level_changes = 0;
    double checksum = 0;
};

Full measure_full(Dataset& d, const std::vector<ews::LoadedPlugin>& plugins,
                  const std::vector<std::string>& names, TimePoint now, int reps,
                  const Progress& progress) {
    Full f;
    std::vector<ews::AlertState> states(d.localities);
    for (std::size_t i = 0; i < states.size(); ++i) states[i].locality = d.engine->locality(i).id;
    const ews::AlertingParams alerting;
    // The daemon's crash marker, written before each plugin's turn and removed after the
    // last, in a directory of its own.
    const ews::bench::TempDir marker_dir("ews_bench_eval", "ews-bench-marker");
    ews::PluginCallMarker marker(marker_dir.path());
    ews::EvaluationOptions as_daemon;
    as_daemon.evidence = false;
    as_daemon.before_plugin = [&](const ews::LoadedPlugin& p) { marker.enter(p, now); };
    as_daemon.after_plugins = [&] { marker.leave(); };
    for (int rep = 0; rep < reps; ++rep) {
        progress(std::to_string(d.localities) + " localities: full evaluation " +
                 std::to_string(rep + 1) + "/" + std::to_string(reps));
        {
            const Stopwatch watch;
            f.checksum += plain_pass(d.plain, now);
            f.reference.add(watch);
        }
        const Stopwatch watch;
        {
            auto r = d.engine->evaluate(plugins, now, false, as_daemon);
            f.engine.add(watch);
            if (rep == 0) {  // before score_results moves the assessments out
                require_no_faults(*d.engine, plugins);
                for (const auto& x : r)
                    for (std::size_t c = 0; c < names.size(); ++c)
                        ++f.statuses[names[c]][status_name(x.assessments[c].status)];
            }
            // Each repetition a second later: the lifecycle treats a repeated time as a
            // repeat and skips it, which the daemon never does.
            f.level_changes += score_results(*d.engine, plugins, r, names, states, now,
                                             now + std::chrono::seconds(rep), alerting);
        }  // the results are released here, as the daemon releases them
        f.scored.add(watch);
    }
    return f;
}

// The interface's floor measured as the full evaluation is (see RequestsOnly).
struct Floor {
    bool neighbours = true;
    std::size_t points = 0;  // points handed to the three in one evaluation
    Full full;

    std::string what() const {
        return neighbours ? "full evaluation, interface floor (the plugins' requests, no arithmetic)"
                          : "full evaluation, interface floor, own series only";
    }
};

Floor measure_floor(Dataset& d, bool neighbours, TimePoint now, int reps,
                    const Progress& progress) {
    using Pattern = RequestsOnly::Pattern;
    const std::pair<const char*, Pattern> three[] = {
        {"school_requests", Pattern::school_dropout},
        {"incident_requests", Pattern::community_incidents},
        {"presence_requests", Pattern::group_presence}};
    Floor f;
    f.neighbours = neighbours;
    std::vector<ews::LoadedPlugin> plugins, counting;
    std::vector<std::string> names;
    std::atomic<std::size_t> points{0};
    for (const auto& [name, pattern] : three) {
        plugins.push_back(in_process(std::make_shared<RequestsOnly>(name, pattern, neighbours)));
        counting.push_back(
            in_process(std::make_shared<RequestsOnly>(name, pattern, neighbours, &points)));
        names.push_back(name);
    }
    // Counted in an evaluation of its own, apart from the timed ones.
    d.engine->evaluate(counting, now, false);
    f.points = points.load();
    f.full = measure_full(d, plugins, names, now, reps, progress);
    return f;
}

}  // namespace

int main(int argc, char** argv) {
    ews::keep_freed_memory();  // as ewsd's main() does
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto text = [&]() -> std::string {
            if (i + 1 >= argc) die(a + " needs a value");
            return argv[++i];
        };
        auto number = [&]() -> std::size_t { return std::stoul(text()); };
        if (a == "--localities") o.localities = number();
        else if (a == "--sizes") o.sizes = count_list(text());
        else if (a == "--scale-study") o.scale_study = true;
        else if (a == "--study-reps") o.study_reps = int(number());
        else if (a == "--light-days") o.light_days = int(number());
        else if (a == "--reps") o.reps = int(number());
        else if (a == "--incremental-reps") o.incremental_reps = int(number());
        else if (a == "--new-rows") o.new_rows = number();
        else if (a == "--plugin-dir") o.plugin_dir = text();
        else {
            std::cerr << "usage: ews_bench_eval [--localities N] [--sizes N,N,... (incremental "
                         "and scale study; empty: none)] [--scale-study] [--study-reps N] "
                         "[--light-days DAYS] [--reps N] [--incremental-reps N] [--new-rows N] "
                         "[--plugin-dir DIR]\n";
            return 2;
        }
    }
    if (o.localities == 0 || o.reps < 1 || o.incremental_reps < 1 || o.study_reps < 1 ||
        o.new_rows == 0 || o.light_days < 1 || o.light_days > year_days)
        die("localities, reps, incremental-reps, study-reps and new-rows must be > 0, "
            "light-days 1..365");
    for (std::size_t n : o.sizes)
        if (n == 0) die("sizes must be > 0");
    std::sort(o.sizes.begin(), o.sizes.end());

    // The three shipped plugins, as the daemon loads them.
    const char* shipped[] = {"school_dropout", "community_incidents", "group_presence"};
    ews::PluginSet set;
    try {
        set = ews::load_plugins(o.plugin_dir, {});
    } catch (const std::exception& e) {
        die(e.what());
    }
    std::vector<ews::LoadedPlugin> plugins;
    for (const char* name : shipped) {
        const ews::LoadedPlugin* p = set.find(name);
        if (!p) {
            std::string why;
            for (const auto& r : set.refused) why += "; " + r.file.string() + ": " + r.reason;
            die("plugin " + std::string(name) + " not found in " + o.plugin_dir.string() +
                " (build it, or pass --plugin-dir)" + why);
        }
        plugins.push_back(*p);
    }
    std::vector<std::string> names;
    for (const auto& p : plugins) names.push_back(p.name());

    Progress progress;
    const std::string load_before = load_average();
    const unsigned cores = std::thread::hardware_concurrency();
    bool pass = true;

    // ---- 1. full evaluation, 100k localities, a year of history ---------------------------
    Dataset year = load(o.localities, 0, true, progress);
    const TimePoint now = day_time(year_days);
    std::printf("data: %zu localities (grid 100 wide, up to 4 neighbours), %zu observations "
                "(a year: monthly school counts, fortnightly presence, weekly incidents), "
                "loaded in %.1f s; now = the day after\n",
                year.localities, year.observations, year.load_seconds);

    ThreadCounter threads;
    auto walk = in_process(std::make_shared<WalkIndicator>(threads));
    auto null = in_process(std::make_shared<NullIndicator>());

    // The walking plugin and the reference must read the same data.
    progress("checking the reference against the engine's views");
    threads.next_generation();
    check_reference(year, walk, now);
    const std::size_t engine_threads = threads.count();

    Full full = measure_full(year, plugins, names, now, o.reps, progress);
    const Timings& reference = full.reference;
    const Timings& engine = full.engine;
    const Timings& scored = full.scored;
    const auto& statuses = full.statuses;
    const std::size_t level_changes = full.level_changes;
    double checksum = full.checksum;
    const double ref = median(reference.wall), eng = median(engine.wall),
                 eng_scored = median(scored.wall);
    const double eng_ratio = eng / ref, scored_ratio = eng_scored / ref;
    const bool full_ok = scored_ratio <= full_ratio_target && eng_scored < full_ms_target;
    pass = pass && full_ok;

    std::printf("\nfull evaluation, %zu localities x 3 indicators, median of %d; engine threads: "
                "%zu of %u cores, reference: 1 thread (cpu: CPU time of all threads)\n",
                year.localities, o.reps, engine_threads, cores);
    std::printf("%-42s %9s %9s %9s %9s %7s %17s %s\n", "what", "ms", "cpu ms", "ref ms",
                "ref cpu", "ratio", "target", "result");
    std::printf("%-42s %9.1f %9.1f %9.1f %9.1f %7.2f %17s\n", "engine (Engine::evaluate)", eng,
                median(engine.cpu), ref, median(reference.cpu), eng_ratio, "");
    std::printf("%-42s %9.1f %9.1f %9.1f %9.1f %7.2f %17s %s\n",
                "engine + compose + advance, released", eng_scored, median(scored.cpu), ref,
                median(reference.cpu), scored_ratio, "<= 5x, < 1000 ms",
                full_ok ? "pass" : "FAIL");
    std::printf("  statuses:");
    for (const auto& [plugin, by] : statuses) {
        std::printf(" %s", plugin.c_str());
        for (const auto& [status, n] : by) std::printf(" %s %zu", status.c_str(), n);
        std::printf(";");
    }
    std::printf(" events published over the repetitions: %zu\n", level_changes);
    std::fflush(stdout);

    // ---- where the time goes: each plugin alone, the engine's own cost per call ----------
    struct Part {
        std::string what;
        ews::LoadedPlugin plugin;
    };
    std::vector<Part> parts;
    for (const auto& p : plugins) parts.push_back({p.name(), p});
    parts.push_back({"walk (bench: reads own points once)", walk});
    parts.push_back({"null (bench: returns at once)", null});
    nlohmann::json breakdown = nlohmann::json::array();
    std::printf("\nwhere the engine's time goes: one plugin at a time over the %zu localities, "
                "median of %d\n",
                year.localities, o.reps);
    std::printf("%-42s %9s %9s %15s\n", "plugin", "ms", "cpu ms", "cpu us per call");
    double alone_wall = 0, alone_cpu = 0;
    for (const auto& part : parts) {
        Timings t;
        for (int rep = 0; rep < o.reps; ++rep) {
            progress("one plugin at a time: " + part.what);
            const Stopwatch watch;
            ews::EvaluationOptions no_evidence;  // as the daemon evaluates
            no_evidence.evidence = false;
            { auto r = year.engine->evaluate({part.plugin}, now, false, no_evidence); }
            t.add(watch);
            require_no_faults(*year.engine, {part.plugin});
        }
        const double wall = median(t.wall), cpu = median(t.cpu);
        if (part.what == part.plugin.name()) {
            alone_wall += wall;
            alone_cpu += cpu;
        }
        const double per_call_us = cpu * 1000.0 / double(year.localities);
        std::printf("%-42s %9.1f %9.1f %15.2f\n", part.what.c_str(), wall, cpu, per_call_us);
        breakdown.push_back({{"what", part.what},
                             {"median_ms", wall},
                             {"median_cpu_ms", cpu},
                             {"cpu_us_per_call", per_call_us}});
    }
    std::printf("%-42s %9.1f %9.1f   (all three in one evaluation: %.1f ms, cpu %.1f)\n",
                "sum of the three plugins alone", alone_wall, alone_cpu, eng, median(engine.cpu));
    std::fflush(stdout);

    // The floor of the per-locality interface: the shipped plugins' requests without their
    // arithmetic, and the same without the neighbours' series.
    const Floor floor = measure_floor(year, true, now, o.reps, progress);
    const Floor own_floor = measure_floor(year, false, now, o.reps, progress);
    nlohmann::json interface_floor = nlohmann::json::array();
    for (const Floor* f : {&floor, &own_floor}) {
        const Full& m = f->full;
        const double ref_ms = median(m.reference.wall);
        std::printf("\n%s: three bench plugins making the shipped plugins' requests%s and "
                    "reading every point, no indicator arithmetic, median of %d; they are handed "
                    "%zu points an evaluation, %.2f times the %zu the reference reads\n",
                    f->what().c_str(), f->neighbours ? " (own and neighbours' series)" : "",
                    o.reps, f->points, double(f->points) / double(year.observations),
                    year.observations);
        std::printf("%-42s %9s %9s %9s %9s %7s\n", "what", "ms", "cpu ms", "ref ms", "ref cpu",
                    "ratio");
        std::printf("%-42s %9.1f %9.1f %9.1f %9.1f %7.2f\n", "engine (Engine::evaluate)",
                    median(m.engine.wall), median(m.engine.cpu), ref_ms,
                    median(m.reference.cpu), median(m.engine.wall) / ref_ms);
        std::printf("%-42s %9.1f %9.1f %9.1f %9.1f %7.2f\n",
                    "engine + compose + advance, released", median(m.scored.wall),
                    median(m.scored.cpu), ref_ms, median(m.reference.cpu),
                    median(m.scored.wall) / ref_ms);
        checksum += m.checksum;
        interface_floor.push_back({{"what", f->what()},
                                   {"neighbours", f->neighbours},
                                   {"engine_ms", median(m.engine.wall)},
                                   {"engine_cpu_ms", median(m.engine.cpu)},
                                   {"scored_ms", median(m.scored.wall)},
                                   {"scored_cpu_ms", median(m.scored.cpu)},
                                   {"reference_ms", ref_ms},
                                   {"engine_ratio", median(m.engine.wall) / ref_ms},
                                   {"scored_ratio", median(m.scored.wall) / ref_ms},
                                   {"events_published", m.level_changes},
                                   {"points_handed", f->points},
                                   {"points_in_reference", year.observations}});
    }
    std::fflush(stdout);

    // ---- 2. incremental evaluation ------------------------------------------------------
    progress("incremental evaluation, a year of history");
    const Incremental inc_year = measure_incremental({&year, 1}, plugins, o, progress).at(0);
    const std::size_t year_observations = year.observations;
    year = Dataset{};  // frees the year before the other sizes are built

    const int light_first_day = year_days - o.light_days;
    struct Size {
        std::size_t localities;
        std::size_t observations = 0;
        double load_seconds = 0;
        Incremental inc;
        std::optional<Full> full;  // the scale study's
    };
    std::vector<Size> sizes;
    for (std::size_t n : o.sizes) sizes.push_back({n});
    // Every size is held until its incremental evaluations, which take turns (see
    // measure_incremental).
    std::vector<Dataset> held(sizes.size());
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        Size& s = sizes[i];
        Dataset& d = held[i];
        d = load(s.localities, light_first_day, o.scale_study, progress);
        s.observations = d.observations;
        s.load_seconds = d.load_seconds;
        if (o.scale_study) {
            progress(std::to_string(s.localities) + " localities: checking the reference");
            check_reference(d, walk, now);
            s.full = measure_full(d, plugins, names, now, o.study_reps, progress);
            checksum += s.full->checksum;
            d.plain = PlainData{};
        }
        clear_dirty(*d.engine);
    }
    const auto measured = measure_incremental(held, plugins, o, progress);
    for (std::size_t i = 0; i < sizes.size(); ++i) sizes[i].inc = measured[i];
    held.clear();
    progress.done();

    if (o.scale_study) {
        std::printf("\nscale study: full evaluation with the same %d days of history a locality "
                    "at each size (engine + compose + advance, released), median of %d\n",
                    o.light_days, o.study_reps);
        std::printf("%-42s %9s %9s %9s %9s %7s %12s\n", "what", "ms", "cpu ms", "ref ms",
                    "ref cpu", "ratio", "observations");
        for (const auto& s : sizes)
            std::printf("%-42s %9.1f %9.1f %9.1f %9.1f %7.2f %12zu\n",
                        (std::to_string(s.localities) + " localities").c_str(),
                        median(s.full->scored.wall), median(s.full->scored.cpu),
                        median(s.full->reference.wall), median(s.full->reference.cpu),
                        median(s.full->scored.wall) / median(s.full->reference.wall),
                        s.observations);
    }

    std::printf("\nincremental evaluation: Engine::apply of %zu new observations (in as many "
                "random localities) + Engine::evaluate(only_dirty), median of %d\n",
                o.new_rows, o.incremental_reps);
    std::printf("%-42s %9s %9s %9s %9s %12s\n", "what", "ms", "cpu ms", "apply ms", "assessed",
                "observations");
    auto inc_row = [&](const std::string& what, const Incremental& inc, std::size_t observations) {
        std::printf("%-42s %9.1f %9.1f %9.2f %9zu %12zu\n", what.c_str(), median(inc.total.wall),
                    median(inc.total.cpu), median(inc.apply.wall),
                    inc.assessed / std::size_t(o.incremental_reps), observations);
    };
    inc_row(std::to_string(o.localities) + " localities, a year", inc_year, year_observations);
    for (const auto& s : sizes)
        inc_row(std::to_string(s.localities) + " localities, last " + std::to_string(o.light_days) +
                    " days",
                s.inc, s.observations);
    const double inc_vs_full = median(inc_year.total.wall) / eng;
    std::printf("incremental / full evaluation at %zu localities (a year, engine only): %.4f\n",
                o.localities, inc_vs_full);
    double inc_ratio = 0, inc_ratio_cpu = 0;
    bool inc_ok = true;
    if (sizes.size() > 1) {
        const Size &small = sizes.front(), &large = sizes.back();
        inc_ratio = median(large.inc.total.wall) / median(small.inc.total.wall);
        inc_ratio_cpu = median(large.inc.total.cpu) / median(small.inc.total.cpu);
        inc_ok = inc_ratio <= incremental_ratio_target;
        pass = pass && inc_ok;
        std::printf("incremental %zu / %zu localities (the same %d days of history each): %.2f "
                    "(cpu %.2f), target <= 2: %s\n",
                    large.localities, small.localities, o.light_days, inc_ratio,
                    inc_ratio_cpu, inc_ok ? "pass" : "FAIL");
    }

    const std::string load_after = load_average();
    const std::size_t peak = peak_resident_bytes();
    std::printf("load average before %s, after %s; %u cores; peak resident %.0f MiB; "
                "checksum %.6g\n",
                load_before.c_str(), load_after.c_str(), cores,
                double(peak) / (1024.0 * 1024.0), checksum);

    auto timing_json = [](const Timings& t) {
        return nlohmann::json{{"median_ms", median(t.wall)},
                              {"median_cpu_ms", median(t.cpu)},
                              {"runs_ms", t.wall},
                              {"runs_cpu_ms", t.cpu}};
    };
    nlohmann::json inc_json = nlohmann::json::array();
    inc_json.push_back({{"localities", o.localities},
                        {"history_days", year_days},
                        {"observations", year_observations},
                        {"apply_and_evaluate", timing_json(inc_year.total)},
                        {"apply", timing_json(inc_year.apply)}});
    nlohmann::json study_json = nlohmann::json::array();
    for (const auto& s : sizes) {
        inc_json.push_back({{"localities", s.localities},
                            {"history_days", o.light_days},
                            {"observations", s.observations},
                            {"load_seconds", s.load_seconds},
                            {"apply_and_evaluate", timing_json(s.inc.total)},
                            {"apply", timing_json(s.inc.apply)}});
        if (s.full)
            study_json.push_back({{"localities", s.localities},
                                  {"history_days", o.light_days},
                                  {"observations", s.observations},
                                  {"repetitions", o.study_reps},
                                  {"reference", timing_json(s.full->reference)},
                                  {"engine", timing_json(s.full->engine)},
                                  {"engine_and_scoring", timing_json(s.full->scored)}});
    }

    // The common rows (see bench_support.hpp).
    using ews::bench::short_count;
    std::vector<ews::bench::ResultRow> table;
    const std::string plain_name = "one plain pass over the same in-memory data";
    {
        ews::bench::ResultRow row;
        row.what = "full evaluation, " + short_count(o.localities) + " localities x 3 indicators x 1 year";
        row.scale = double(o.localities);
        row.ewsd = eng_scored / 1000.0;
        row.reference = ref / 1000.0;
        row.reference_name = plain_name;
        row.unit = "s";
        row.ratio = scored_ratio;
        row.ratio_name = "time ewsd / reference";
        row.target = "<= 5";
        row.target_abs = "< 1 s";
        row.pass = full_ok;
        row.runs = o.reps;
        row.data_rows = double(year_observations);
        table.push_back(row);
    }
    // No target: what the per-locality plugin interface costs before any indicator
    // arithmetic (RequestsOnly), against the same reference.
    for (const Floor* f : {&floor, &own_floor}) {
        ews::bench::ResultRow row;
        row.what = f->what();
        const double ref_s = median(f->full.reference.wall) / 1000.0;
        row.ewsd = median(f->full.scored.wall) / 1000.0;
        row.reference = ref_s;
        row.reference_name = plain_name;
        row.unit = "s";
        row.ratio = row.ewsd / ref_s;
        row.ratio_name = "time ewsd / reference";
        row.runs = o.reps;
        table.push_back(row);
    }
    {
        ews::bench::ResultRow row;
        row.what = "incremental, " + short_count(o.new_rows) + " new observations, " +
                   short_count(o.localities) + " localities x 1 year";
        row.ewsd = median(inc_year.total.wall);
        row.reference = eng;
        row.reference_name = "full evaluation of the same data (engine only)";
        row.unit = "ms";
        row.ratio = inc_vs_full;
        row.ratio_name = "time incremental / full";
        row.runs = o.incremental_reps;
        table.push_back(row);
    }
    const std::string history = "last " + std::to_string(o.light_days) + " days";
    if (!sizes.empty()) {
        const double smallest = median(sizes.front().inc.total.wall);
        for (const auto& s : sizes) {
            const bool largest = sizes.size() > 1 && &s == &sizes.back();
            ews::bench::ResultRow row;
            row.what = "incremental, " + short_count(o.new_rows) + " new observations, " +
                       short_count(s.localities) + " localities x " + history;
            row.scale = double(s.localities);
            row.ewsd = median(s.inc.total.wall);
            row.reference = smallest;
            row.reference_name = "the same at " + short_count(sizes.front().localities) + " localities";
            row.unit = "ms";
            row.ratio = row.ewsd / smallest;
            row.ratio_name = "time / time at " + short_count(sizes.front().localities) + " localities";
            if (largest) {
                row.target = "flat (<= 2)";
                row.pass = inc_ok;
            }
            row.runs = o.incremental_reps;
            row.study = true;
            row.cost = "incremental evaluation, " + short_count(o.new_rows) + " new observations";
            row.data_rows = double(o.new_rows);
            table.push_back(row);
        }
    }
    for (const auto& s : sizes) {
        if (!s.full) continue;
        ews::bench::ResultRow row;
        row.what = "full evaluation, " + short_count(s.localities) + " localities x 3 indicators x " +
                   history + " (scale study)";
        row.scale = double(s.localities);
        row.ewsd = median(s.full->scored.wall) / 1000.0;
        row.reference = median(s.full->reference.wall) / 1000.0;
        row.reference_name = plain_name;
        row.unit = "s";
        row.ratio = *row.reference > 0 ? row.ewsd / *row.reference : 0;
        row.ratio_name = "time ewsd / reference";
        row.runs = o.study_reps;
        row.study = true;
        row.cost = "full evaluation (" + history + ")";
        row.data_rows = double(s.observations);
        table.push_back(row);
    }

    nlohmann::json doc{
        {"benchmark", "eval"},
        {"reference",
         "one plain pass on one thread over the same points in plain vectors: every series "
         "cut at now by upper_bound, every visible point's value * weight summed once"},
        {"measured",
         "Engine::evaluate(plugins, now, false) with school_dropout, community_incidents and "
         "group_presence; then compose + advance per result and releasing the results"},
        {"plugin_dir", o.plugin_dir.string()},
        {"engine_threads", engine_threads},
        {"cores", cores},
        {"full",
         {{"localities", o.localities},
          {"observations", year_observations},
          {"repetitions", o.reps},
          {"reference", timing_json(reference)},
          {"engine", timing_json(engine)},
          {"engine_and_scoring", timing_json(scored)},
          {"engine_ratio", eng_ratio},
          {"engine_and_scoring_ratio", scored_ratio},
          {"target", "engine + scoring <= 5x reference and < 1000 ms"},
          {"pass", full_ok}}},
        {"breakdown", breakdown},
        {"interface_floor", interface_floor},
        {"incremental",
         {{"new_observations", o.new_rows},
          {"repetitions", o.incremental_reps},
          {"sizes", inc_json},
          {"incremental_over_full", inc_vs_full},
          {"large_over_small", inc_ratio},
          {"large_over_small_cpu", inc_ratio_cpu},
          {"target", "large / small <= 2"},
          {"pass", inc_ok}}},
        {"scale_study", study_json},
        {"rows", ews::bench::rows_json(table)},
        {"load_average_before", load_before},
        {"load_average_after", load_after},
        {"peak_resident_bytes", peak},
        {"pass", pass}};
    std::error_code ec;
    fs::create_directories(EWS_BENCH_RESULTS_DIR, ec);
    std::ofstream(fs::path(EWS_BENCH_RESULTS_DIR) / "eval.json") << doc.dump(2) << "\n";
    return pass ? 0 : 1;
}
