#include "alerting.hpp"

#include <ews/sdk/testing.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>

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
