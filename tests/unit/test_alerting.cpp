// test_alerting.cpp: the level machine (target_level(), step()) by tables and random walks,
// and property tests of advance() over long random input sequences. The table-driven tests
// of advance() are in test_alerting_lifecycle.cpp.
#include "alerting.hpp"

#include <ews/sdk/testing.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>

using namespace ews;
using sdk::testing::day;

namespace {

struct Step {
    double score;
    Level floor;
    const char* event;  // "" when no event is expected
    Level level_after;
};

// Runs `steps` one day apart from `state`, checking each event and the level after it.
// Returns: the events, in order.
std::vector<AlertEvent> run(AlertState& state, const std::vector<Step>& steps,
                            const AlertingParams& params = {},
                            sdk::TimePoint start = day(2026, 1, 1)) {
    std::vector<AlertEvent> events;
    for (std::size_t i = 0; i < steps.size(); ++i) {
        const Step& s = steps[i];
        INFO("step " << i << " score " << s.score);
        const sdk::TimePoint now = start + std::chrono::days(i);
        auto e = step(state, s.score, s.floor, now, params);
        CHECK((e ? e->type : std::string()) == s.event);
        CHECK(state.level == s.level_after);
        if (e) {
            CHECK(e->at == now);
            CHECK(e->level == state.level);
            events.push_back(*e);
        }
    }
    return events;
}

constexpr Level none = Level::none, watch = Level::watch, warning = Level::warning,
                critical = Level::critical;

AlertState fresh() {
    AlertState s;
    s.locality = "KE-030-001";
    return s;
}

}  // namespace

TEST_CASE("target level follows raise thresholds, hysteresis and floor", "[alerting]") {
    const AlertingParams p;  // watch 40/30, warning 60/50, critical 80/70
    CHECK(target_level(39.999, none, none, p) == none);
    CHECK(target_level(40, none, none, p) == watch);
    CHECK(target_level(60, none, none, p) == warning);
    CHECK(target_level(100, none, none, p) == critical);
    CHECK(target_level(30, watch, none, p) == watch);        // exactly at clear: stays
    CHECK(target_level(29.999, watch, none, p) == none);
    CHECK(target_level(55, warning, none, p) == warning);    // between clear and raise
    CHECK(target_level(45, warning, none, p) == watch);      // below warning's clear
    CHECK(target_level(35, warning, none, p) == watch);      // watch's band still holds
    CHECK(target_level(10, critical, none, p) == none);
    CHECK(target_level(10, none, watch, p) == watch);        // floor
    CHECK(target_level(45, none, warning, p) == warning);    // floor wins when moving up
    CHECK(target_level(90, none, watch, p) == critical);
    CHECK(target_level(std::nan(""), warning, none, p) == warning);  // no evidence: hold
}

TEST_CASE("every transition, after raise_after and clear_after", "[alerting]") {
    AlertState s = fresh();
    auto events = run(s, {
                             {45, none, "", none},
                             {45, none, "raised", watch},
                             {65, none, "", watch},
                             {65, none, "escalated", warning},
                             {45, none, "", warning},
                             {45, none, "", warning},
                             {45, none, "deescalated", watch},
                             {10, none, "", watch},
                             {10, none, "", watch},
                             {10, none, "resolved", none},
                             {10, none, "", none},
                         });
    REQUIRE(events.size() == 4);
    CHECK(events[0].previous == none);
    CHECK(events[1].previous == watch);
    CHECK(events[2].previous == warning);
    CHECK(events[2].level == watch);
    CHECK(events[3].previous == watch);
    CHECK(s.pending == none);
    CHECK(s.pending_count == 0);
    CHECK(s.score == 10);
}

TEST_CASE("jumps straight between distant levels", "[alerting]") {
    AlertState s = fresh();
    auto events = run(s, {
                             {95, none, "", none},
                             {95, none, "raised", critical},
                             {0, none, "", critical},
                             {0, none, "", critical},
                             {0, none, "resolved", none},
                         });
    REQUIRE(events.size() == 2);
    CHECK(events[1].previous == critical);
}

TEST_CASE("boundaries: at raise raises, at clear holds, just below clear clears",
          "[alerting]") {
    AlertState s = fresh();
    run(s, {
               {39.999, none, "", none},
               {39.999, none, "", none},
               {40, none, "", none},
               {40, none, "raised", watch},
               {30, none, "", watch},
               {30, none, "", watch},
               {30, none, "", watch},
               {30, none, "", watch},
               {29.999, none, "", watch},
               {29.999, none, "", watch},
               {29.999, none, "resolved", none},
           });
}

TEST_CASE("hysteresis: a score between clear and raise keeps the level", "[alerting]") {
    AlertState s = fresh();
    std::vector<Step> steps{{65, none, "", none}, {65, none, "raised", warning}};
    for (int i = 0; i < 20; ++i) steps.push_back({i % 2 ? 50.0 : 59.9, none, "", warning});
    run(s, steps);
    // The same score band does not raise from below.
    AlertState t = fresh();
    std::vector<Step> below;
    for (int i = 0; i < 10; ++i) below.push_back({35, none, "", none});
    run(t, below);
}

TEST_CASE("the count restarts when the score goes back", "[alerting]") {
    AlertingParams p;
    p.raise_after = 3;
    AlertState s = fresh();
    run(s,
        {
            {45, none, "", none},
            {45, none, "", none},
            {20, none, "", none},  // back to the current level: count reset
            {45, none, "", none},
            {45, none, "", none},
            {65, none, "", none},  // another target: count restarts at 1
            {65, none, "", none},
            {65, none, "raised", warning},
        },
        p);
    CHECK(s.pending == warning);
    CHECK(s.pending_count == 0);

    // Clearing too: one evaluation back above clear restarts the clear count.
    run(s, {
               {10, none, "", warning},
               {10, none, "", warning},
               {55, none, "", warning},
               {10, none, "", warning},
               {10, none, "", warning},
               {10, none, "resolved", none},
           },
        p, day(2026, 2, 1));
}

TEST_CASE("a floor raises like a score and holds the level", "[alerting]") {
    AlertState s = fresh();
    run(s, {
               {0, watch, "", none},
               {0, watch, "raised", watch},
               {0, watch, "", watch},
               {0, watch, "", watch},
               {0, watch, "", watch},
               {0, none, "", watch},
               {0, none, "", watch},
               {0, none, "resolved", none},
           });
    // A floor above what the score points to wins when raising.
    AlertState t = fresh();
    run(t, {{45, warning, "", none}, {45, warning, "raised", warning}});
}

TEST_CASE("alert id is fixed at raise, kept through changes, cleared at resolve",
          "[alerting]") {
    AlertingParams p;
    p.raise_after = 1;
    p.clear_after = 1;
    AlertState s = fresh();
    auto first = run(s,
                     {
                         {45, none, "raised", watch},
                         {85, none, "escalated", critical},
                         {45, none, "deescalated", watch},
                         {0, none, "resolved", none},
                     },
                     p, day(2026, 11, 28));
    REQUIRE(first.size() == 4);
    CHECK(first[0].alert_id == "KE-030-001@20261128T000000Z");
    for (const auto& e : first) {
        CHECK(e.alert_id == first[0].alert_id);
        CHECK(e.opened_at == day(2026, 11, 28));
    }
    CHECK(s.alert_id.empty());
    CHECK_FALSE(s.opened_at);
    CHECK(s.changed_at == day(2026, 12, 1));

    auto second = run(s, {{45, none, "raised", watch}}, p, day(2026, 12, 5));
    CHECK(second.at(0).alert_id == "KE-030-001@20261205T000000Z");
    CHECK(s.opened_at == day(2026, 12, 5));
}

TEST_CASE("alert ids name the locality and the opening second", "[alerting]") {
    CHECK(make_alert_id("KE-030-001", day(2026, 11, 28)) == "KE-030-001@20261128T000000Z");
    CHECK(make_alert_id("x", day(2026, 1, 2) + std::chrono::seconds(3723)) ==
          "x@20260102T010203Z");
}

TEST_CASE("a non-finite score neither raises nor resolves", "[alerting]") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    AlertState s = fresh();
    run(s, {{45, none, "", none}, {45, none, "raised", watch}});
    run(s, {{nan, none, "", watch}, {nan, none, "", watch}, {nan, none, "", watch},
            {nan, none, "", watch}},
        {}, day(2026, 2, 1));
    CHECK(s.score == 45);
}

TEST_CASE("random walks keep the alert lifecycle consistent", "[alerting]") {
    AlertingParams strict;
    strict.raise_after = 3;
    strict.clear_after = 5;
    strict.levels = {{{20, 10}, {50, 35}, {75, 74}}};
    AlertingParams eager;
    eager.raise_after = 1;
    eager.clear_after = 1;
    AlertingParams no_band;  // clear == raise: no hysteresis
    no_band.levels = {{{40, 40}, {60, 60}, {80, 80}}};
    const std::vector<AlertingParams> sets{AlertingParams{}, strict, eager, no_band};

    std::map<std::string, int> seen;
    for (std::size_t set = 0; set < sets.size(); ++set) {
        const AlertingParams& p = sets[set];
        std::mt19937 rng(1234 + static_cast<unsigned>(set));
        std::normal_distribution<double> drift(0, 9);
        std::uniform_real_distribution<double> unit(0, 1);
        AlertState s = fresh();
        double score = 30;
        bool open = false;
        std::string open_id;
        for (int i = 0; i < 10000; ++i) {
            INFO("parameter set " << set << " step " << i);
            score = std::clamp(score + drift(rng), 0.0, 100.0);
            if (unit(rng) < 0.02) score = unit(rng) * 100;  // jumps
            Level floor = unit(rng) < 0.05 ? Level(1 + int(unit(rng) * 3) % 3) : Level::none;
            double input = unit(rng) < 0.01 ? std::numeric_limits<double>::quiet_NaN() : score;
            const Level before = s.level;
            auto e = step(s, input, floor, day(2026, 1, 1) + std::chrono::hours(i), p);
            if (!e) {
                REQUIRE(s.level == before);
                continue;
            }
            ++seen[e->type];
            REQUIRE(e->previous == before);
            REQUIRE(e->level == s.level);
            REQUIRE(e->level != before);
            if (e->type == "raised") {
                REQUIRE_FALSE(open);
                REQUIRE(before == Level::none);
                open = true;
                open_id = e->alert_id;
                REQUIRE(s.alert_id == open_id);
            } else {
                REQUIRE(open);
                REQUIRE(e->alert_id == open_id);
                if (e->type == "resolved") {
                    REQUIRE(e->level == Level::none);
                    open = false;
                    REQUIRE(s.alert_id.empty());
                } else if (e->type == "escalated") {
                    REQUIRE(e->level > before);
                } else {
                    REQUIRE(e->type == "deescalated");
                    REQUIRE(e->level < before);
                    REQUIRE(e->level != Level::none);
                }
            }
            REQUIRE(open == (s.level != Level::none));
            REQUIRE(s.alert_id.empty() == !open);
        }
    }
    // The walk must actually exercise every kind of event.
    for (const char* type : {"raised", "escalated", "deescalated", "resolved"}) {
        INFO(type);
        CHECK(seen[type] > 10);
    }
}

TEST_CASE("stale or failing data holds an open alert instead of lowering it", "[alerting]") {
    const AlertingParams p;  // watch 40/30, warning 60/50; raise_after 2, clear_after 3
    AlertState s;
    s.locality = "L1";
    const auto t = *parse_time("2026-01-01");
    step(s, 65, Level::none, t, p);
    REQUIRE(step(s, 65, Level::none, t, p));
    REQUIRE(s.level == Level::warning);
    // The score collapses while data is stale: held at warning however long it lasts.
    for (int i = 0; i < 10; ++i) CHECK_FALSE(step(s, 0, Level::none, t, p, false));
    CHECK(s.level == Level::warning);
    CHECK(s.pending == Level::warning);
    // Higher scores still escalate while data is incomplete.
    step(s, 85, Level::none, t, p, false);
    auto up = step(s, 85, Level::none, t, p, false);
    REQUIRE(up);
    CHECK(up->type == "escalated");
    // Fresh data again: the low score resolves after clear_after evaluations.
    CHECK_FALSE(step(s, 0, Level::none, t, p, true));
    CHECK_FALSE(step(s, 0, Level::none, t, p, true));
    auto down = step(s, 0, Level::none, t, p, true);
    REQUIRE(down);
    CHECK(down->type == "resolved");
}

// ---------------------------------------------------------------------------------------
// Property tests of advance(): random inputs for one locality, and what subscribers can
// rely on in the stream of published events whatever the inputs. The table-driven tests of
// advance() are in test_alerting_lifecycle.cpp.

namespace {

// One violated property stops the test case with the seed and step that broke it. A plain
// `if` rather than one Catch assertion per check: the walks make millions of checks.
#define PROPERTY(cond)                                                           \
    do {                                                                         \
        if (!(cond)) FAIL("seed " << seed << " step " << i << ": " << #cond);   \
    } while (false)

// How one indicator's data behaves at the moment.
enum class Feed { ok, stale, no_data, error, absent };

struct Source {
    std::string name;
    Feed feed = Feed::ok;
    std::optional<sdk::TimePoint> newest;
};

// What subscribers know, built from the published events alone.
struct Subscriber {
    std::string open_id;
    Level level = Level::none;
    std::optional<sdk::TimePoint> opened_at;
    std::set<std::string> ended;  // alerts resolved: never to be heard of again
    std::set<std::string> gaps;   // announced by data_gap, not yet restored
    bool flapping = false;        // told flapping_started, not yet flapping_stopped
};

// Order of the published events of one evaluation: flapping, then the alert's difference
// (a resolution before a new raise), then a reminder, then data events.
int rank(const std::string& type) {
    if (type == event::flapping_started || type == event::flapping_stopped) return 0;
    if (type == event::resolved) return 1;
    if (type == event::raised || type == event::escalated || type == event::deescalated)
        return 2;
    if (type == event::reminder) return 3;
    return 4;
}

bool is_alert_event(const std::string& type) {
    return type == event::raised || type == event::escalated || type == event::deescalated ||
           type == event::resolved || type == event::reminder;
}

std::set<std::string> gap_ids(const std::string& locality, const std::vector<DataGap>& gaps) {
    std::set<std::string> ids;
    for (const auto& g : gaps) ids.insert(gap_id(locality, g));
    return ids;
}

AlertingParams random_params(std::mt19937& rng) {
    std::uniform_int_distribution<int> count(1, 4);
    std::uniform_real_distribution<double> unit(0, 1);
    AlertingParams p;
    if (unit(rng) < 0.3) p.levels = {{{20, 10}, {50, 35}, {75, 74}}};
    p.raise_after = count(rng);
    p.clear_after = count(rng);
    const std::chrono::seconds repeats[] = {std::chrono::seconds(0), std::chrono::seconds(0),
                                            std::chrono::hours(12), std::chrono::days(1),
                                            std::chrono::days(3)};
    p.repeat_every = repeats[std::uniform_int_distribution<int>(0, 4)(rng)];
    p.flap_window = std::uniform_int_distribution<int>(3, 32)(rng);
    p.flap_high = unit(rng) < 0.25 ? 0 : 20 + 40 * unit(rng);
    p.flap_low = p.flap_high > 0 ? 5 + (p.flap_high - 5) * unit(rng) : 15;
    return p;
}

}  // namespace

TEST_CASE("no input sequence breaks what subscribers are told", "[alerting][property]") {
    const std::string locality = "KE-030-001";
    std::map<std::string, int> seen;  // published event types, over all walks
    int flapping_steps = 0, silenced_steps = 0, replays = 0, acks = 0;

    for (unsigned seed = 1; seed <= 40; ++seed) {
        std::mt19937 rng(seed);
        std::uniform_real_distribution<double> unit(0, 1);
        std::normal_distribution<double> drift(0, 7);
        const AlertingParams p = random_params(rng);

        AlertState s;
        s.locality = locality;
        Subscriber sub;
        std::map<std::string, sdk::TimePoint> opened;  // every alert id seen, held or not
        std::vector<Source> sources{{"school_dropout"}, {"birth_registration"},
                                    {"sentinel_reports", Feed::no_data, std::nullopt}};
        sdk::TimePoint clock = day(2026, 1, 1);
        double score = 60 * unit(rng);
        int alternating = 0;
        double other = 0;
        int silence_left = 0;
        std::int64_t silence_id = 0;

        for (int i = 0; i < 3000; ++i) {
            // The inputs of this evaluation.
            if (alternating > 0) {
                --alternating;
                std::swap(score, other);
            } else if (unit(rng) < 0.01) {
                alternating = 10 + static_cast<int>(30 * unit(rng));
                other = 100 * unit(rng);
            } else {
                score = std::clamp(score + drift(rng), 0.0, 100.0);
                if (unit(rng) < 0.02) score = 100 * unit(rng);
            }
            Reading reading;
            reading.score = unit(rng) < 0.02 ? std::numeric_limits<double>::quiet_NaN() : score;
            if (unit(rng) < 0.03) reading.floor = Level(1 + static_cast<int>(unit(rng) * 3) % 3);
            for (auto& src : sources) {
                if (unit(rng) < 0.04) {
                    const double u = unit(rng);
                    src.feed = u < 0.5    ? Feed::ok
                               : u < 0.65 ? Feed::stale
                               : u < 0.8  ? Feed::no_data
                               : u < 0.9  ? Feed::error
                                          : Feed::absent;
                }
                if (src.feed == Feed::ok && (!src.newest || unit(rng) < 0.8)) src.newest = clock;
                if (src.feed == Feed::absent) continue;
                IndicatorReading ir;
                ir.indicator = src.name;
                ir.status = src.feed == Feed::ok      ? sdk::Status::ok
                            : src.feed == Feed::stale ? sdk::Status::stale
                            : src.feed == Feed::error ? sdk::Status::error
                                                      : sdk::Status::no_data;
                if (src.feed == Feed::ok || src.feed == Feed::stale) ir.newest = src.newest;
                reading.indicators.push_back(ir);
            }
            std::shuffle(reading.indicators.begin(), reading.indicators.end(), rng);

            // An acknowledgement now and then, of the open alert or of something else.
            if (unit(rng) < 0.03) {
                const double u = unit(rng);
                const std::string id = u < 0.4   ? s.alert_id
                                       : u < 0.8 ? s.notified_id
                                                 : locality + "@20250101T000000Z";
                const AlertState before = s;
                const bool open = !id.empty() && (id == s.alert_id || id == s.notified_id);
                const bool accepted = acknowledge(s, id, "district-office", clock);
                PROPERTY(accepted == open);
                if (!accepted) PROPERTY(s == before);
                acks += accepted;
            }

            // A replay of an evaluation already made changes nothing.
            if (s.evaluated_at && unit(rng) < 0.03) {
                const AlertState before = s;
                const int back = std::uniform_int_distribution<int>(0, 48)(rng);
                const auto at = *s.evaluated_at - std::chrono::hours(back);
                std::optional<ActiveSilence> any;
                if (unit(rng) < 0.5) any = ActiveSilence{99};
                const AdvanceResult again = advance(s, reading, at, p, any);
                PROPERTY(!again.advanced);
                PROPERTY(again.published.empty());
                PROPERTY(again.held.empty());
                PROPERTY(s == before);
                ++replays;
                continue;
            }

            if (silence_left > 0) {
                --silence_left;
            } else if (unit(rng) < 0.03) {
                silence_left = 1 + static_cast<int>(15 * unit(rng));
                silence_id = 1 + static_cast<int>(1000 * unit(rng));
            }
            const bool silenced = silence_left > 0;
            std::optional<ActiveSilence> silence;
            if (silenced) silence = ActiveSilence{silence_id};
            const double hop = unit(rng);
            clock += hop < 0.7   ? std::chrono::seconds(std::chrono::hours(6))
                     : hop < 0.9 ? std::chrono::seconds(std::chrono::days(1))
                                 : std::chrono::seconds(1);

            const AlertState before = s;
            const AdvanceResult r = advance(s, reading, clock, p, silence);
            PROPERTY(r.advanced);
            PROPERTY(s.evaluated_at == clock);
            flapping_steps += s.flapping;
            silenced_steps += silenced;

            // Held events say why; a silence holds everything and keeps the notified state.
            const std::string reason =
                silenced ? "silence " + std::to_string(silence_id) : "flapping";
            for (const auto& e : r.held) PROPERTY(e.held == reason);
            if (silenced) {
                PROPERTY(r.published.empty());
                PROPERTY(s.notified_level == before.notified_level);
                PROPERTY(s.notified_id == before.notified_id);
                PROPERTY(s.notified_opened_at == before.notified_opened_at);
                PROPERTY(s.notified_at == before.notified_at);
                PROPERTY(s.notified_gaps == before.notified_gaps);
            }

            // The published stream, as a subscriber sees it.
            int last_rank = 0;
            for (const auto& e : r.published) {
                ++seen[e.type];
                PROPERTY(e.held.empty());
                PROPERTY(e.at == clock);
                PROPERTY(rank(e.type) >= last_rank);
                last_rank = rank(e.type);
                if (e.type == event::raised) {
                    PROPERTY(sub.open_id.empty());  // never two open alerts
                    PROPERTY(!e.alert_id.empty());
                    PROPERTY(!sub.ended.contains(e.alert_id));
                    PROPERTY(e.previous == Level::none);
                    PROPERTY(e.level > Level::none);
                    PROPERTY(e.opened_at.has_value());
                    sub.open_id = e.alert_id;
                    sub.level = e.level;
                    sub.opened_at = e.opened_at;
                } else if (e.type == event::resolved) {
                    PROPERTY(!sub.open_id.empty());  // never a resolved without its raised
                    PROPERTY(e.alert_id == sub.open_id);
                    PROPERTY(e.previous == sub.level);
                    PROPERTY(e.level == Level::none);
                    PROPERTY(e.opened_at == sub.opened_at);
                    sub.ended.insert(e.alert_id);
                    sub.open_id.clear();
                    sub.level = Level::none;
                    sub.opened_at.reset();
                } else if (e.type == event::escalated || e.type == event::deescalated) {
                    PROPERTY(!sub.open_id.empty());
                    PROPERTY(e.alert_id == sub.open_id);
                    PROPERTY(e.previous == sub.level);
                    PROPERTY(e.opened_at == sub.opened_at);
                    if (e.type == event::escalated) PROPERTY(e.level > e.previous);
                    else PROPERTY(e.level < e.previous && e.level != Level::none);
                    sub.level = e.level;
                } else if (e.type == event::reminder) {
                    PROPERTY(!sub.open_id.empty());
                    PROPERTY(e.alert_id == sub.open_id);
                    PROPERTY(e.level == sub.level);
                    PROPERTY(e.opened_at == sub.opened_at);
                    PROPERTY(p.repeat_every.count() > 0);
                    PROPERTY(before.notified_at.has_value());
                    PROPERTY(clock - *before.notified_at >= p.repeat_every);
                    PROPERTY(s.acked_id != e.alert_id || s.acked_level < e.level);
                    PROPERTY(std::none_of(r.published.begin(), r.published.end(),
                                          [](const AlertEvent& o) {
                                              return rank(o.type) == 1 || rank(o.type) == 2;
                                          }));
                } else if (e.type == event::data_gap) {
                    PROPERTY(e.gap.has_value());
                    PROPERTY(e.alert_id == gap_id(locality, *e.gap));
                    PROPERTY(!sub.gaps.contains(e.alert_id));
                    sub.gaps.insert(e.alert_id);
                } else if (e.type == event::data_restored) {
                    PROPERTY(e.gap.has_value());
                    PROPERTY(sub.gaps.contains(e.alert_id));  // only a gap announced and open
                    sub.gaps.erase(e.alert_id);
                } else {
                    PROPERTY(e.type == event::flapping_started ||
                             e.type == event::flapping_stopped);
                    PROPERTY(e.type == event::flapping_started ? s.flapping : !s.flapping);
                    PROPERTY(e.level == e.previous);
                    // Started and stopped alternate: never a stop subscribers cannot place.
                    PROPERTY(sub.flapping == (e.type == event::flapping_stopped));
                    sub.flapping = e.type == event::flapping_started;
                }
                // Data and flapping events carry the notified level as it stands.
                if (!is_alert_event(e.type)) PROPERTY(e.level == sub.level);
            }
            // While flapping, level changes and reminders wait.
            if (s.flapping)
                for (const auto& e : r.published) PROPERTY(!is_alert_event(e.type));

            // The stream adds up to the notified state ...
            PROPERTY(sub.open_id == s.notified_id);
            PROPERTY(sub.level == s.notified_level);
            if (!sub.open_id.empty()) PROPERTY(sub.opened_at == s.notified_opened_at);
            PROPERTY(sub.gaps == gap_ids(locality, s.notified_gaps));
            // ... which is the true state once nothing holds it back.
            if (!silenced) PROPERTY(gap_ids(locality, s.gaps) == sub.gaps);
            if (!silenced && !s.flapping) {
                PROPERTY(s.notified_level == s.level);
                PROPERTY(s.notified_id == s.alert_id);
            }

            // Alert identity is stable across the lifecycle, held events included.
            for (const auto* events : {&r.published, &r.held})
                for (const auto& e : *events) {
                    if (!is_alert_event(e.type)) continue;
                    PROPERTY(e.opened_at.has_value());
                    PROPERTY(e.alert_id == make_alert_id(locality, *e.opened_at));
                    auto [it, inserted] = opened.emplace(e.alert_id, *e.opened_at);
                    PROPERTY(it->second == *e.opened_at);
                }
            PROPERTY((s.level == Level::none) == s.alert_id.empty());
            if (before.level != Level::none && s.level != Level::none)
                PROPERTY(s.alert_id == before.alert_id);

            // Missing data never lowers or resolves an alert; no evidence keeps the score.
            const bool failing = std::any_of(
                reading.indicators.begin(), reading.indicators.end(),
                [](const IndicatorReading& ir) { return ir.status == sdk::Status::error; });
            if (!s.gaps.empty() || failing) PROPERTY(s.level >= before.level);
            if (std::isfinite(reading.score)) PROPERTY(s.score == reading.score);
            else PROPERTY(s.score == before.score);
            PROPERTY(std::is_sorted(s.covered.begin(), s.covered.end()));
            PROPERTY(std::adjacent_find(s.covered.begin(), s.covered.end()) == s.covered.end());
            const double share = flap_percent(s, p);
            PROPERTY(share >= 0 && share <= 100 + 1e-9);
            if (p.flap_high == 0) PROPERTY(!s.flapping);
        }
    }
    // The walks must reach every event, and the holds and replays they are about.
    INFO("flapping " << flapping_steps << " silenced " << silenced_steps << " replays "
                     << replays << " acks " << acks);
    for (const char* type : {event::raised, event::escalated, event::deescalated,
                             event::resolved, event::reminder, event::flapping_started,
                             event::flapping_stopped, event::data_gap, event::data_restored}) {
        INFO(type);
        CHECK(seen[type] > 20);
    }
    CHECK(flapping_steps > 1000);
    CHECK(silenced_steps > 1000);
    CHECK(replays > 1000);
    CHECK(acks > 100);
}

#undef PROPERTY
