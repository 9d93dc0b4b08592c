// test_alerting_lifecycle.cpp: table-driven tests of advance(), the alert lifecycle of one
// locality (transitions, thresholds, missing data, flapping, silences, reminders and
// acknowledgement, idempotence, restarts). The level machine alone (step()) and the random
// property tests live in test_alerting.cpp.
#include "alerting.hpp"

#include <ews/sdk/testing.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

using namespace ews;
using sdk::testing::day;
namespace ev = ews::event;

namespace {

constexpr Level none = Level::none, watch = Level::watch, warning = Level::warning,
                critical = Level::critical;
constexpr auto ok = sdk::Status::ok, stale = sdk::Status::stale, no_data = sdk::Status::no_data,
               error = sdk::Status::error;
constexpr double no_evidence = std::numeric_limits<double>::quiet_NaN();
const std::string locality = "KE-030-001";

// What a table row says about one indicator. `newest` is the step (row index from the start
// of the run) whose time holds the indicator's newest data, or one of these:
constexpr int fresh = -1;    // data as new as the evaluation itself (a new reading each step)
constexpr int nothing = -2;  // no data in the look-back at all

struct Ind {
    std::string name;
    sdk::Status status = ok;
    int newest = fresh;
};

// One evaluation and what it must produce. Rows run one day apart.
struct Row {
    double score = 0;
    Level floor = none;
    // Default: one indicator, school_dropout, ok with fresh data.
    std::optional<std::vector<Ind>> indicators;
    std::int64_t silence = 0;               // id of a silence covering the locality; 0 = none
    std::vector<std::string> published;     // event types, in order
    std::vector<std::string> held;
    Level level = none;                     // true level after the evaluation
    bool ack = false;  // acknowledge the notified alert half a day before this evaluation
};

std::vector<std::string> types(const std::vector<AlertEvent>& events) {
    std::vector<std::string> out;
    for (const auto& e : events) out.push_back(e.type);
    return out;
}

AlertingParams without_flapping(int raise_after = 2, int clear_after = 3) {
    AlertingParams p;
    p.raise_after = raise_after;
    p.clear_after = clear_after;
    p.flap_high = 0;
    return p;
}

// A locality's alert state driven one evaluation a day by table rows, each row checked.
struct Lifecycle {
    explicit Lifecycle(AlertingParams params) : params(params) { state.locality = locality; }

    TimePoint time(std::size_t step) const { return start + std::chrono::days(step); }

    Reading reading(const Row& row, std::size_t step) const {
        Reading r;
        r.score = row.score;
        r.floor = row.floor;
        const std::vector<Ind> standard{{"school_dropout"}};
        for (const Ind& ind : row.indicators.value_or(standard)) {
            IndicatorReading ir;
            ir.indicator = ind.name;
            ir.status = ind.status;
            if (ind.newest == fresh) ir.newest = time(step);
            else if (ind.newest >= 0) ir.newest = time(static_cast<std::size_t>(ind.newest));
            r.indicators.push_back(ir);
        }
        return r;
    }

    // Runs `rows`, continuing from the previous call. Returns: the results, in order.
    std::vector<AdvanceResult> play(const std::vector<Row>& rows) {
        std::vector<AdvanceResult> out;
        for (const Row& row : rows) {
            const std::size_t i = steps++;
            const TimePoint now = time(i);
            INFO("step " << i << " score " << row.score);
            if (row.ack) {
                const std::string id =
                    state.notified_id.empty() ? state.alert_id : state.notified_id;
                CHECK(acknowledge(state, id, "district-office", now - std::chrono::hours(12)));
            }
            std::optional<ActiveSilence> silence;
            if (row.silence) silence = ActiveSilence{row.silence};
            AdvanceResult r = advance(state, reading(row, i), now, params, silence);
            CHECK(r.advanced);
            CHECK(types(r.published) == row.published);
            // Held events are stored, not published: their order is not part of the contract.
            std::vector<std::string> held = types(r.held), expected_held = row.held;
            std::sort(held.begin(), held.end());
            std::sort(expected_held.begin(), expected_held.end());
            CHECK(held == expected_held);
            CHECK(state.level == row.level);
            CHECK(state.evaluated_at == now);
            const std::string reason =
                row.silence ? "silence " + std::to_string(row.silence) : "flapping";
            for (const auto& e : r.published) {
                CHECK(e.held.empty());
                CHECK(e.silence_id == 0);
                CHECK(e.at == now);
            }
            for (const auto& e : r.held) {
                CHECK(e.held == reason);
                CHECK(e.silence_id == row.silence);  // 0 when held for flapping
            }
            out.push_back(r);
            results.push_back(r);
        }
        return out;
    }

    AlertingParams params;
    AlertState state;
    TimePoint start = day(2026, 1, 1);
    std::size_t steps = 0;
    std::vector<AdvanceResult> results;
};

// Returns: the one published event of type `type`.
const AlertEvent& only(const AdvanceResult& r, const std::string& type) {
    const AlertEvent* found = nullptr;
    for (const auto& e : r.published)
        if (e.type == type) {
            REQUIRE(found == nullptr);
            found = &e;
        }
    REQUIRE(found != nullptr);
    return *found;
}

}  // namespace

TEST_CASE("advance publishes every level transition", "[alerting][lifecycle]") {
    Lifecycle run(without_flapping());
    auto r = run.play({
        {.score = 45, .level = none},
        {.score = 45, .published = {ev::raised}, .level = watch},
        {.score = 65, .level = watch},
        {.score = 65, .published = {ev::escalated}, .level = warning},
        {.score = 85, .level = warning},
        {.score = 85, .published = {ev::escalated}, .level = critical},
        {.score = 45, .level = critical},  // below critical's and warning's clear: to watch
        {.score = 45, .level = critical},
        {.score = 45, .published = {ev::deescalated}, .level = watch},
        {.score = 10, .level = watch},
        {.score = 10, .level = watch},
        {.score = 10, .published = {ev::resolved}, .level = none},
        {.score = 95, .level = none},
        {.score = 95, .published = {ev::raised}, .level = critical},  // none -> critical
        {.score = 0, .level = critical},
        {.score = 0, .level = critical},
        {.score = 0, .published = {ev::resolved}, .level = none},
    });
    const std::string first = make_alert_id(locality, run.time(1));
    const AlertEvent& raised = r[1].published.at(0);
    CHECK(raised.alert_id == first);
    CHECK(raised.previous == none);
    CHECK(raised.level == watch);
    CHECK(raised.opened_at == run.time(1));
    const AlertEvent& to_warning = r[3].published.at(0);
    CHECK(to_warning.alert_id == first);
    CHECK(to_warning.previous == watch);
    CHECK(to_warning.level == warning);
    CHECK(to_warning.opened_at == run.time(1));
    const AlertEvent& to_critical = r[5].published.at(0);
    CHECK(to_critical.previous == warning);
    CHECK(to_critical.level == critical);
    const AlertEvent& down = r[8].published.at(0);
    CHECK(down.alert_id == first);
    CHECK(down.previous == critical);
    CHECK(down.level == watch);
    const AlertEvent& resolved = r[11].published.at(0);
    CHECK(resolved.alert_id == first);
    CHECK(resolved.previous == watch);
    CHECK(resolved.level == none);
    CHECK(resolved.opened_at == run.time(1));

    const AlertEvent& jump = r[13].published.at(0);
    CHECK(jump.alert_id == make_alert_id(locality, run.time(13)));
    CHECK(jump.previous == none);
    CHECK(jump.level == critical);
    CHECK(r[16].published.at(0).alert_id == jump.alert_id);
    CHECK(r[16].published.at(0).previous == critical);

    // With nothing held, subscribers were told exactly the true state.
    CHECK(run.state.notified_level == none);
    CHECK(run.state.notified_id.empty());
    CHECK(run.state.alert_id.empty());
}

TEST_CASE("the notified state follows the true state when nothing is held",
          "[alerting][lifecycle]") {
    Lifecycle run(without_flapping(1, 1));
    run.play({{.score = 65, .published = {ev::raised}, .level = warning}});
    CHECK(run.state.notified_level == warning);
    CHECK(run.state.notified_id == run.state.alert_id);
    CHECK(run.state.notified_opened_at == run.time(0));
    CHECK(run.state.notified_at == run.time(0));
    run.play({{.score = 65, .level = warning}});
    CHECK(run.state.notified_at == run.time(0));  // nothing published: unchanged
    run.play({{.score = 45, .published = {ev::deescalated}, .level = watch}});
    CHECK(run.state.notified_level == watch);
    CHECK(run.state.notified_at == run.time(2));
}

TEST_CASE("boundaries of the raise and clear thresholds", "[alerting][lifecycle]") {
    SECTION("watch: at raise raises, at clear stays, just below clear clears") {
        Lifecycle run(without_flapping());
        run.play({
            {.score = 39.999, .level = none},
            {.score = 39.999, .level = none},
            {.score = 40, .level = none},
            {.score = 40, .published = {ev::raised}, .level = watch},
            {.score = 30, .level = watch},
            {.score = 30, .level = watch},
            {.score = 30, .level = watch},
            {.score = 30, .level = watch},
            {.score = 29.999, .level = watch},
            {.score = 29.999, .level = watch},
            {.score = 29.999, .published = {ev::resolved}, .level = none},
        });
    }
    SECTION("warning: at raise escalates, at clear stays, just below clear deescalates") {
        Lifecycle run(without_flapping());
        run.play({
            {.score = 59.999, .level = none},
            {.score = 59.999, .published = {ev::raised}, .level = watch},
            {.score = 60, .level = watch},
            {.score = 60, .published = {ev::escalated}, .level = warning},
            {.score = 50, .level = warning},
            {.score = 50, .level = warning},
            {.score = 50, .level = warning},
            {.score = 49.999, .level = warning},
            {.score = 49.999, .level = warning},
            {.score = 49.999, .published = {ev::deescalated}, .level = watch},
        });
    }
    SECTION("critical: 80 escalates, 70 holds, 69.999 clears") {
        Lifecycle run(without_flapping(1, 1));
        run.play({
            {.score = 79.999, .published = {ev::raised}, .level = warning},
            {.score = 80, .published = {ev::escalated}, .level = critical},
            {.score = 70, .level = critical},
            {.score = 69.999, .published = {ev::deescalated}, .level = warning},
        });
    }
    SECTION("a different target restarts the raise count, and the clear count") {
        Lifecycle run(without_flapping());
        run.play({
            {.score = 45, .level = none},                                   // watch: 1
            {.score = 65, .level = none},                                   // warning: 1
            {.score = 65, .published = {ev::raised}, .level = warning},     // warning: 2
            {.score = 45, .level = warning},                                // watch: 1
            {.score = 10, .level = warning},                                // none: 1
            {.score = 10, .level = warning},                                // none: 2
            {.score = 55, .level = warning},                                // back: reset
            {.score = 10, .level = warning},
            {.score = 10, .level = warning},
            {.score = 10, .published = {ev::resolved}, .level = none},
        });
    }
}

TEST_CASE("a stale or vanished indicator holds the level and opens a data gap",
          "[alerting][lifecycle][gaps]") {
    Lifecycle run(without_flapping());
    const std::vector<Ind> both_ok{{"birth_registration"}, {"school_dropout"}};
    const std::vector<Ind> dropout_stale{{"birth_registration"}, {"school_dropout", stale, 1}};
    const std::vector<Ind> dropout_gone{{"birth_registration"},
                                        {"school_dropout", no_data, nothing}};
    auto r = run.play({
        {.score = 45, .indicators = both_ok, .level = none},
        {.score = 45, .indicators = both_ok, .published = {ev::raised}, .level = watch},
        {.score = 10, .indicators = dropout_stale, .published = {ev::data_gap}, .level = watch},
        {.score = 10, .indicators = dropout_stale, .level = watch},
        {.score = 10, .indicators = dropout_stale, .level = watch},  // would have resolved
        {.score = 10, .indicators = dropout_gone, .level = watch},
        {.score = 10, .indicators = dropout_gone, .level = watch},
    });
    CHECK(run.state.covered == std::vector<std::string>{"birth_registration", "school_dropout"});
    REQUIRE(run.state.gaps.size() == 1);
    const DataGap& open = run.state.gaps[0];
    CHECK(open.indicator == "school_dropout");
    CHECK(open.since == run.time(2));  // the evaluation that first saw it, not updated
    CHECK(open.status == no_data);     // status and newest follow the latest reading
    CHECK_FALSE(open.newest);
    CHECK(run.state.pending_count == 0);  // the hold does not count towards clearing

    const AlertEvent& gap = only(r[2], ev::data_gap);
    REQUIRE(gap.gap);
    CHECK(gap.gap->indicator == "school_dropout");
    CHECK(gap.gap->since == run.time(2));
    CHECK(gap.gap->status == stale);
    CHECK(gap.gap->newest == run.time(1));
    CHECK(gap.alert_id == gap_id(locality, *gap.gap));
    CHECK(gap.alert_id == "KE-030-001/school_dropout@20260103T000000Z");
    CHECK(gap.level == watch);  // data events carry the notified level, unchanged
    CHECK(gap.previous == watch);

    // Data returns: the gap closes with the same id; only fresh data then clears the alert.
    auto back = run.play({
        {.score = 10, .indicators = both_ok, .published = {ev::data_restored}, .level = watch},
        {.score = 10, .indicators = both_ok, .level = watch},
        {.score = 10, .indicators = both_ok, .published = {ev::resolved}, .level = none},
    });
    const AlertEvent& restored = only(back[0], ev::data_restored);
    CHECK(restored.alert_id == gap.alert_id);
    REQUIRE(restored.gap);
    CHECK(restored.gap->indicator == "school_dropout");
    CHECK(restored.gap->since == run.time(2));
    CHECK(run.state.gaps.empty());
    CHECK(run.state.notified_gaps.empty());
}

TEST_CASE("missing data may raise an alert but never lowers one", "[alerting][lifecycle][gaps]") {
    Lifecycle run(without_flapping());
    const std::vector<Ind> stale_since_start{{"school_dropout", stale, 0}};
    run.play({
        // Stale from the first evaluation: it has had data, so it is covered and has a gap.
        {.score = 45, .indicators = stale_since_start, .published = {ev::data_gap}, .level = none},
        {.score = 65, .indicators = stale_since_start, .level = none},
        {.score = 65, .indicators = stale_since_start, .published = {ev::raised}, .level = warning},
        {.score = 45, .indicators = stale_since_start, .level = warning},
        {.score = 45, .indicators = stale_since_start, .level = warning},
        {.score = 45, .indicators = stale_since_start, .level = warning},
        {.score = 45, .indicators = stale_since_start, .level = warning},
    });
    CHECK(run.state.covered == std::vector<std::string>{"school_dropout"});
    CHECK(run.state.level == warning);
}

TEST_CASE("an indicator never covered and without data opens no gap and holds nothing",
          "[alerting][lifecycle][gaps]") {
    Lifecycle run(without_flapping());
    const std::vector<Ind> readings{{"school_dropout"}, {"sentinel_reports", no_data, nothing}};
    run.play({
        {.score = 45, .indicators = readings, .level = none},
        {.score = 45, .indicators = readings, .published = {ev::raised}, .level = watch},
        {.score = 10, .indicators = readings, .level = watch},
        {.score = 10, .indicators = readings, .level = watch},
        {.score = 10, .indicators = readings, .published = {ev::resolved}, .level = none},
    });
    CHECK(run.state.covered == std::vector<std::string>{"school_dropout"});
    CHECK(run.state.gaps.empty());
}

TEST_CASE("a failing plugin holds the level and leaves coverage and gaps alone",
          "[alerting][lifecycle][gaps]") {
    Lifecycle run(without_flapping());
    const std::vector<Ind> both_ok{{"birth_registration"}, {"school_dropout"}};
    const std::vector<Ind> dropout_fails{{"birth_registration"},
                                         {"school_dropout", error, nothing}};
    const std::vector<Ind> newcomer_fails{{"birth_registration"},
                                          {"school_dropout"},
                                          {"sentinel_reports", error, nothing}};
    run.play({
        {.score = 45, .indicators = both_ok, .level = none},
        {.score = 45, .indicators = both_ok, .published = {ev::raised}, .level = watch},
        {.score = 10, .indicators = dropout_fails, .level = watch},
        {.score = 10, .indicators = dropout_fails, .level = watch},
        {.score = 10, .indicators = dropout_fails, .level = watch},
        {.score = 10, .indicators = newcomer_fails, .level = watch},
        {.score = 10, .indicators = newcomer_fails, .level = watch},
        {.score = 10, .indicators = newcomer_fails, .level = watch},
    });
    CHECK(run.state.gaps.empty());
    // An error never makes an indicator covered.
    CHECK(run.state.covered == std::vector<std::string>{"birth_registration", "school_dropout"});

    // An error on an indicator with an open gap neither closes nor updates the gap.
    run.play({
        {.score = 10,
         .indicators = std::vector<Ind>{{"birth_registration"}, {"school_dropout", stale, 1}},
         .published = {ev::data_gap},
         .level = watch},
        {.score = 10,
         .indicators = std::vector<Ind>{{"birth_registration"}, {"school_dropout", error, nothing}},
         .level = watch},
    });
    REQUIRE(run.state.gaps.size() == 1);
    CHECK(run.state.gaps[0].status == stale);
    CHECK(run.state.gaps[0].newest == run.time(1));
    CHECK(run.state.gaps[0].since == run.time(8));
}

TEST_CASE("an indicator absent from the reading keeps its gap open",
          "[alerting][lifecycle][gaps]") {
    Lifecycle run(without_flapping());
    const std::vector<Ind> both_ok{{"birth_registration"}, {"school_dropout"}};
    run.play({
        {.score = 45, .indicators = both_ok, .level = none},
        {.score = 45, .indicators = both_ok, .published = {ev::raised}, .level = watch},
        {.score = 10,
         .indicators = std::vector<Ind>{{"birth_registration"}, {"school_dropout", stale, 1}},
         .published = {ev::data_gap},
         .level = watch},
        // The school_dropout plugin is unloaded: its gap stays, and so does the hold.
        {.score = 10, .indicators = std::vector<Ind>{{"birth_registration"}}, .level = watch},
        {.score = 10, .indicators = std::vector<Ind>{{"birth_registration"}}, .level = watch},
        {.score = 10, .indicators = std::vector<Ind>{{"birth_registration"}}, .level = watch},
        {.score = 10, .indicators = std::vector<Ind>{{"birth_registration"}}, .level = watch},
    });
    REQUIRE(run.state.gaps.size() == 1);
    CHECK(run.state.gaps[0].indicator == "school_dropout");
    CHECK(run.state.covered == std::vector<std::string>{"birth_registration", "school_dropout"});
}

TEST_CASE("no evidence holds the level and keeps the last score", "[alerting][lifecycle]") {
    Lifecycle run(without_flapping());
    run.play({
        {.score = 45, .level = none},
        {.score = 45, .published = {ev::raised}, .level = watch},
        {.score = no_evidence, .level = watch},
        {.score = no_evidence, .level = watch},
        {.score = no_evidence, .level = watch},
        {.score = no_evidence, .level = watch},
    });
    CHECK(run.state.score == 45);
    run.play({
        {.score = 10, .level = watch},
        {.score = 10, .level = watch},
        {.score = 10, .published = {ev::resolved}, .level = none},
    });
    CHECK(run.state.score == 10);
}

TEST_CASE("gap ids name the locality, the indicator and the first evaluation of the gap",
          "[alerting][lifecycle][gaps]") {
    DataGap gap;
    gap.indicator = "school_dropout";
    gap.since = day(2026, 11, 28);
    CHECK(gap_id("KE-030-001", gap) == "KE-030-001/school_dropout@20261128T000000Z");
    // Status and newest change while the gap is open; its id does not.
    DataGap later = gap;
    later.status = no_data;
    later.newest = day(2026, 11, 1);
    CHECK(gap_id("KE-030-001", later) == gap_id("KE-030-001", gap));
    later.since = day(2026, 11, 28) + std::chrono::seconds(3723);
    CHECK(gap_id("KE-030-001", later) == "KE-030-001/school_dropout@20261128T010203Z");
}

namespace {

// Flapping tables: raise_after = clear_after = 1 so that every change of the target is a
// level transition, window 21 (20 transitions), flapping from 30% down to below 15%.
AlertingParams flapping_params() {
    AlertingParams p;
    p.raise_after = 1;
    p.clear_after = 1;
    p.flap_window = 21;
    p.flap_high = 30;
    p.flap_low = 15;
    return p;
}

// Expected flap percentages, worked by hand from the Nagios weights: the 20 transitions of
// a 21-sample window weigh 1.25 (newest) down to 0.75 (oldest) in steps of 0.5/19, and the
// share is 100 * (sum of the weights of the changes) / 20.
//   k newest transitions changed: 5 * (1.25 k - (0.5/19) k (k-1) / 2)
//     k=1: 6.25   k=2: 12.368421   k=3: 18.355263   k=4: 24.210526   k=5: 29.934211
//     k=6: 35.526316   k=20: 100
//   all 20 changed, then m calm samples: the oldest 20-m weights remain
//     m=16: 5 * (0.75 + 0.776316 + 0.802632 + 0.828947) = 15.789474
//     m=17: 5 * (0.75 + 0.776316 + 0.802632)            = 11.644737
const double after_changes[] = {0, 6.25, 12.368421, 18.355263, 24.210526, 29.934211, 35.526316};

// A score that alternates between two levels, `calm` and `other`, one change per evaluation.
struct Alternation {
    double calm, other;
    Level calm_level, other_level;
    const char* to_other;  // the transition towards `other`, then back
    const char* to_calm;
    int starts_at = 6;     // the change at which flapping starts

    // Returns: the row of the c-th change (from 1): published until flapping starts, then held.
    Row change(int c) const {
        const bool odd = c % 2 == 1;
        Row row{.score = odd ? other : calm, .level = odd ? other_level : calm_level};
        const std::string transition = odd ? to_other : to_calm;
        if (c < starts_at) {
            row.published = {transition};
        } else if (c == starts_at) {
            row.published = {ev::flapping_started};
            row.held = {transition};
        } else {
            row.held = {transition};
        }
        return row;
    }
};

const Alternation none_watch{10, 45, none, watch, ev::raised, ev::resolved};
const Alternation watch_warning{45, 65, watch, warning, ev::escalated, ev::deescalated};

// A full window of calm samples (a new reading each evaluation), so that the shares above
// hold from the first change on.
void calm_window(Lifecycle& run, double score, Level level) {
    for (int i = 0; i < 21; ++i) run.play({{.score = score, .level = level}});
    CHECK(flap_percent(run.state, run.params) == Approx(0).margin(1e-9));
}

void alternate(Lifecycle& run, const Alternation& a, int changes) {
    for (int c = 1; c <= changes; ++c) {
        INFO("change " << c);
        run.play({a.change(c)});
        if (c <= 6 && run.params.flap_high > 0)
            CHECK(flap_percent(run.state, run.params) == Approx(after_changes[c]));
        CHECK(run.state.flapping == (c >= a.starts_at));
    }
}

// After 20 changes and more: still flapping at the 16th calm sample (15.79%), stopped at the
// 17th with `at_stop` after flapping_stopped. Returns: the result of the 17th.
AdvanceResult calm_down(Lifecycle& run, double score, Level level,
                        std::vector<std::string> at_stop) {
    CHECK(flap_percent(run.state, run.params) == Approx(100));
    for (int m = 1; m <= 16; ++m) run.play({{.score = score, .level = level}});
    CHECK(run.state.flapping);
    CHECK(flap_percent(run.state, run.params) == Approx(15.789474));
    at_stop.insert(at_stop.begin(), ev::flapping_stopped);
    auto r = run.play({{.score = score, .published = at_stop, .level = level}});
    CHECK_FALSE(run.state.flapping);
    CHECK(flap_percent(run.state, run.params) == Approx(11.644737));
    return r.at(0);
}

}  // namespace

TEST_CASE("flapping holds level transitions and ends with the net difference",
          "[alerting][lifecycle][flapping]") {
    Lifecycle run(flapping_params());
    SECTION("an alert resolved while flapping is resolved when it stops") {
        calm_window(run, 10, none);
        alternate(run, none_watch, 24);
        // The 5th change (step 25) raised the alert subscribers know of.
        const AlertEvent& flap = only(run.results.at(26), ev::flapping_started);
        const std::string notified = make_alert_id(locality, run.time(25));
        CHECK(flap.alert_id == notified);
        CHECK(flap.level == watch);
        CHECK(flap.previous == watch);
        CHECK(run.state.notified_id == notified);
        CHECK(run.state.notified_level == watch);
        CHECK(run.state.level == none);

        const AdvanceResult stop = calm_down(run, 10, none, {ev::resolved});
        CHECK(only(stop, ev::flapping_stopped).alert_id == notified);
        const AlertEvent& resolved = only(stop, ev::resolved);
        CHECK(resolved.alert_id == notified);
        CHECK(resolved.previous == watch);
        CHECK(resolved.level == none);
        CHECK(resolved.opened_at == run.time(25));
        CHECK(run.state.notified_id.empty());
        CHECK(run.state.notified_level == none);
    }
    SECTION("an alert re-raised while flapping is resolved and raised anew when it stops") {
        calm_window(run, 10, none);
        alternate(run, none_watch, 25);
        const AdvanceResult stop = calm_down(run, 45, watch, {ev::resolved, ev::raised});
        CHECK(stop.published.at(1).alert_id == make_alert_id(locality, run.time(25)));
        // The true alert was raised by the last change, at step 20 + 25.
        CHECK(stop.published.at(2).alert_id == make_alert_id(locality, run.time(45)));
        CHECK(stop.published.at(2).opened_at == run.time(45));
        CHECK(run.state.notified_id == run.state.alert_id);
    }
    SECTION("nothing but flapping_stopped when the notified alert is the true one") {
        run.play({{.score = 45, .published = {ev::raised}, .level = watch}});
        for (int i = 0; i < 20; ++i) run.play({{.score = 45, .level = watch}});
        alternate(run, watch_warning, 25);
        CHECK(run.state.notified_level == warning);  // the 5th change was published
        calm_down(run, 65, warning, {});
        CHECK(run.state.notified_level == warning);
        CHECK(run.state.notified_id == make_alert_id(locality, run.time(0)));
        CHECK(run.state.alert_id == run.state.notified_id);
    }
    SECTION("a deescalation held while flapping is published when it stops") {
        run.play({{.score = 45, .published = {ev::raised}, .level = watch}});
        for (int i = 0; i < 20; ++i) run.play({{.score = 45, .level = watch}});
        alternate(run, watch_warning, 24);
        const AdvanceResult stop = calm_down(run, 45, watch, {ev::deescalated});
        CHECK(stop.published.at(1).previous == warning);
        CHECK(stop.published.at(1).level == watch);
    }
}

TEST_CASE("flapping thresholds: boundary values", "[alerting][lifecycle][flapping]") {
    AlertingParams p = flapping_params();
    SECTION("a share just above flap_high starts flapping; just below does not") {
        p.flap_high = 29.93;  // the 5th change reaches 29.934
        Lifecycle early(p);
        calm_window(early, 10, none);
        Alternation a = none_watch;
        a.starts_at = 5;
        alternate(early, a, 6);

        p.flap_high = 29.94;
        Lifecycle late(p);
        calm_window(late, 10, none);
        alternate(late, none_watch, 6);
    }
    SECTION("a share just below flap_low stops flapping; just above does not") {
        p.flap_low = 15.79;  // the 16th calm sample leaves 15.789
        Lifecycle early(p);
        calm_window(early, 10, none);
        alternate(early, none_watch, 24);
        for (int m = 1; m <= 15; ++m) early.play({{.score = 10, .level = none}});
        early.play({{.score = 10, .published = {ev::flapping_stopped, ev::resolved}}});

        p.flap_low = 15.78;
        Lifecycle late(p);
        calm_window(late, 10, none);
        alternate(late, none_watch, 24);
        calm_down(late, 10, none, {ev::resolved});
    }
}

TEST_CASE("data events are published while flapping", "[alerting][lifecycle][flapping]") {
    Lifecycle run(flapping_params());
    const std::vector<Ind> both_ok{{"birth_registration"}, {"school_dropout"}};
    for (int i = 0; i < 21; ++i) run.play({{.score = 10, .indicators = both_ok, .level = none}});
    for (int c = 1; c <= 10; ++c) {
        Row row = none_watch.change(c);
        row.indicators = both_ok;
        run.play({row});
    }
    REQUIRE(run.state.flapping);
    // A stale indicator opens a gap (the score still raises: missing data may raise); it
    // closes at the next evaluation, before the level step, so the resolution is not held back.
    auto r = run.play({
        {.score = 45,
         .indicators = std::vector<Ind>{{"birth_registration", stale, 30}, {"school_dropout"}},
         .published = {ev::data_gap},
         .held = {ev::raised},
         .level = watch},
        {.score = 10, .indicators = both_ok, .published = {ev::data_restored},
         .held = {ev::resolved}, .level = none},
    });
    CHECK(only(r[0], ev::data_gap).alert_id == only(r[1], ev::data_restored).alert_id);
    CHECK(run.state.flapping);
}

TEST_CASE("flapping starts and stops only on a sample", "[alerting][lifecycle][flapping]") {
    Lifecycle run(flapping_params());
    calm_window(run, 10, none);
    alternate(run, none_watch, 20);
    REQUIRE(run.state.flapping);
    CHECK(flap_percent(run.state, run.params) == Approx(100));
    // The first evaluation with the same data every time is one calm sample: the newest
    // transition (weight 1.25) no longer changed, 100 - 5 * 1.25 = 93.75%.
    const std::vector<Ind> same_data{{"school_dropout", ok, 0}};
    std::vector<Row> quiet(40, Row{.score = 10, .indicators = same_data, .level = none});
    run.play({quiet[0]});
    CHECK(flap_percent(run.state, run.params) == Approx(93.75));
    // The other 39 take no sample: nothing moves, however long it lasts.
    quiet.pop_back();
    run.play(quiet);
    CHECK(run.state.flapping);
    CHECK(flap_percent(run.state, run.params) == Approx(93.75));
    // New data each evaluation: samples again; the 17th calm sample stops the flapping.
    for (int m = 2; m <= 16; ++m) run.play({{.score = 10, .level = none}});
    CHECK(run.state.flapping);
    run.play({{.score = 10, .published = {ev::flapping_stopped, ev::resolved}, .level = none}});
}

TEST_CASE("flap_high = 0 turns flap detection off", "[alerting][lifecycle][flapping]") {
    AlertingParams p = flapping_params();
    p.flap_high = 0;
    Lifecycle run(p);
    calm_window(run, 10, none);
    Alternation never = none_watch;
    never.starts_at = 1000;
    alternate(run, never, 30);
    CHECK(run.results.size() == 51);
}

TEST_CASE("a change of flapping during a silence is published after it",
          "[alerting][lifecycle][flapping][silence]") {
    // Flapping is part of what subscribers are told: a hold must not leave them with a
    // flapping_stopped they cannot place, nor without one for a flapping_started they had.
    Lifecycle run(flapping_params());
    calm_window(run, 10, none);
    SECTION("started during the silence and still flapping after it") {
        alternate(run, none_watch, 5);
        run.play({{.score = 10, .silence = 3, .held = {ev::flapping_started, ev::resolved}}});
        CHECK(run.state.flapping);
        run.play({{.score = 45, .published = {ev::flapping_started}, .held = {ev::raised},
                   .level = watch}});
    }
    SECTION("stopped during the silence") {
        alternate(run, none_watch, 24);
        std::vector<Row> calm(16, Row{.score = 10, .silence = 3});
        calm.push_back(Row{.score = 10, .silence = 3, .held = {ev::flapping_stopped}});
        run.play(calm);
        CHECK_FALSE(run.state.flapping);
        run.play({{.score = 10, .published = {ev::flapping_stopped, ev::resolved}}});
    }
    SECTION("started and stopped within the silence: nothing") {
        alternate(run, none_watch, 5);
        std::vector<Row> rows{Row{.score = 10, .silence = 3,
                                  .held = {ev::flapping_started, ev::resolved}}};
        for (int c = 7; c <= 24; ++c) {
            Row row = none_watch.change(c);
            row.silence = 3;
            rows.push_back(row);
        }
        for (int m = 1; m <= 16; ++m) rows.push_back(Row{.score = 10, .silence = 3});
        rows.push_back(Row{.score = 10, .silence = 3, .held = {ev::flapping_stopped}});
        run.play(rows);
        CHECK_FALSE(run.state.flapping);
        // The notified alert (the 5th change) resolved during the silence.
        run.play({{.score = 10, .published = {ev::resolved}}});
    }
}

TEST_CASE("a silence holds every transition and then publishes the net difference",
          "[alerting][lifecycle][silence]") {
    Lifecycle run(without_flapping(1, 1));
    SECTION("raised during the silence and still open: raised") {
        auto r = run.play({
            {.score = 10, .level = none},
            {.score = 45, .silence = 7, .held = {ev::raised}, .level = watch},
            {.score = 45, .silence = 7, .level = watch},
        });
        CHECK(run.state.notified_level == none);
        CHECK(run.state.notified_id.empty());
        CHECK_FALSE(run.state.notified_at);
        auto after = run.play({{.score = 45, .published = {ev::raised}, .level = watch}});
        const AlertEvent& raised = after[0].published.at(0);
        CHECK(raised.alert_id == make_alert_id(locality, run.time(1)));
        CHECK(raised.alert_id == r[1].held.at(0).alert_id);
        CHECK(raised.opened_at == run.time(1));
        CHECK(raised.previous == none);
        CHECK(raised.level == watch);
        CHECK(run.state.notified_at == run.time(3));
    }
    SECTION("raised and resolved within the silence: nothing") {
        run.play({
            {.score = 10, .level = none},
            {.score = 45, .silence = 7, .held = {ev::raised}, .level = watch},
            {.score = 10, .silence = 7, .held = {ev::resolved}, .level = none},
            {.score = 10, .level = none},
        });
    }
    SECTION("a notified alert resolved during the silence: resolved") {
        run.play({
            {.score = 45, .published = {ev::raised}, .level = watch},
            {.score = 10, .silence = 7, .held = {ev::resolved}, .level = none},
        });
        CHECK(run.state.notified_id == make_alert_id(locality, run.time(0)));
        CHECK(run.state.notified_level == watch);
        auto after = run.play({{.score = 10, .published = {ev::resolved}, .level = none}});
        const AlertEvent& resolved = after[0].published.at(0);
        CHECK(resolved.alert_id == make_alert_id(locality, run.time(0)));
        CHECK(resolved.previous == watch);
        CHECK(resolved.opened_at == run.time(0));
        CHECK(run.state.notified_id.empty());
    }
    SECTION("resolved and raised again during the silence: resolved, then the new raised") {
        run.play({
            {.score = 45, .published = {ev::raised}, .level = watch},
            {.score = 10, .silence = 7, .held = {ev::resolved}, .level = none},
            {.score = 65, .silence = 7, .held = {ev::raised}, .level = warning},
        });
        auto after = run.play({{.score = 65, .published = {ev::resolved, ev::raised},
                                .level = warning}});
        CHECK(after[0].published[0].alert_id == make_alert_id(locality, run.time(0)));
        CHECK(after[0].published[0].previous == watch);
        CHECK(after[0].published[1].alert_id == make_alert_id(locality, run.time(2)));
        CHECK(after[0].published[1].previous == none);
        CHECK(after[0].published[1].level == warning);
        CHECK(run.state.notified_id == run.state.alert_id);
    }
    SECTION("escalated during the silence: escalated; up and down again: nothing") {
        run.play({
            {.score = 45, .published = {ev::raised}, .level = watch},
            {.score = 65, .silence = 3, .held = {ev::escalated}, .level = warning},
            {.score = 65, .published = {ev::escalated}, .level = warning},
            {.score = 85, .silence = 3, .held = {ev::escalated}, .level = critical},
            {.score = 65, .silence = 3, .held = {ev::deescalated}, .level = warning},
            {.score = 65, .level = warning},
            {.score = 45, .silence = 3, .held = {ev::deescalated}, .level = watch},
            {.score = 45, .published = {ev::deescalated}, .level = watch},
        });
        CHECK(run.results[2].published[0].previous == watch);
        CHECK(run.results[7].published[0].previous == warning);
    }
    SECTION("data gaps during the silence: the net difference too") {
        const std::vector<Ind> ok_data{{"school_dropout"}};
        const std::vector<Ind> stale_data{{"school_dropout", stale, 0}};
        run.play({
            {.score = 10, .indicators = ok_data, .level = none},
            // Opened and closed within the silence: nothing afterwards.
            {.score = 10, .indicators = stale_data, .silence = 9, .held = {ev::data_gap}},
            {.score = 10, .indicators = ok_data, .silence = 9, .held = {ev::data_restored}},
            {.score = 10, .indicators = ok_data},
            // Opened during the silence and still open: data_gap afterwards.
            {.score = 10, .indicators = stale_data, .silence = 9, .held = {ev::data_gap}},
            {.score = 10, .indicators = stale_data, .published = {ev::data_gap}},
            // A notified gap closed during the silence: data_restored afterwards.
            {.score = 10, .indicators = ok_data, .silence = 9, .held = {ev::data_restored}},
            {.score = 10, .indicators = ok_data, .published = {ev::data_restored}},
        });
        const AlertEvent& gap = run.results[5].published.at(0);
        REQUIRE(gap.gap);
        CHECK(gap.gap->since == run.time(4));
        CHECK(run.results[7].published.at(0).alert_id == gap.alert_id);
        CHECK(run.state.notified_gaps.empty());
    }
}

TEST_CASE("reminders repeat an unchanged open alert until it is acknowledged",
          "[alerting][lifecycle][reminder]") {
    AlertingParams p = without_flapping(1, 1);
    p.repeat_every = std::chrono::days(7);
    Lifecycle run(p);
    const auto hold = [&](double score, Level level, std::size_t days) {
        run.play(std::vector<Row>(days, Row{.score = score, .level = level}));
    };
    run.play({{.score = 45, .published = {ev::raised}, .level = watch}});  // step 0
    hold(45, watch, 6);
    auto first = run.play({{.score = 45, .published = {ev::reminder}, .level = watch}});  // 7
    const AlertEvent& reminder = first[0].published.at(0);
    CHECK(reminder.alert_id == make_alert_id(locality, run.time(0)));
    CHECK(reminder.level == watch);
    CHECK(reminder.opened_at == run.time(0));
    CHECK(run.state.notified_at == run.time(7));
    hold(45, watch, 6);
    run.play({{.score = 45, .published = {ev::reminder}, .level = watch}});  // 14

    // Acknowledged at watch: no more reminders at watch.
    run.play({{.score = 45, .level = watch, .ack = true}});  // 15
    CHECK(run.state.acked_by == "district-office");
    CHECK(run.state.acked_at == run.time(15) - std::chrono::hours(12));
    CHECK(run.state.acked_level == watch);
    hold(45, watch, 10);  // 16..25: the reminder due at 21 is not sent
    CHECK(run.state.notified_at == run.time(14));

    // An escalation clears the acknowledgement; reminders resume 7 days after it.
    run.play({{.score = 65, .published = {ev::escalated}, .level = warning}});  // 26
    CHECK(run.state.acked_by.empty());
    CHECK_FALSE(run.state.acked_at);
    hold(65, warning, 6);
    run.play({{.score = 65, .published = {ev::reminder}, .level = warning}});  // 33

    // Acknowledged at warning and then deescalated: the acknowledgement still covers watch.
    run.play({{.score = 65, .level = warning, .ack = true}});                    // 34
    run.play({{.score = 45, .published = {ev::deescalated}, .level = watch}});  // 35
    CHECK(run.state.acked_level == warning);
    hold(45, watch, 10);
    // A resolution clears it.
    run.play({{.score = 10, .published = {ev::resolved}, .level = none}});
    CHECK(run.state.acked_by.empty());
    CHECK(run.state.acked_level == none);
    hold(10, none, 10);  // no alert, no reminder
}

TEST_CASE("reminders are off with repeat_every = 0 and while flapping or silenced",
          "[alerting][lifecycle][reminder]") {
    SECTION("repeat_every = 0") {
        Lifecycle run(without_flapping(1, 1));
        run.play({{.score = 45, .published = {ev::raised}, .level = watch}});
        run.play(std::vector<Row>(60, Row{.score = 45, .level = watch}));
    }
    SECTION("silenced") {
        AlertingParams p = without_flapping(1, 1);
        p.repeat_every = std::chrono::days(2);
        Lifecycle run(p);
        run.play({{.score = 45, .published = {ev::raised}, .level = watch}});
        // Not through play(): whether a due reminder is kept among the held events is not
        // part of the contract, only that nothing is published.
        for (std::size_t i = 1; i <= 10; ++i) {
            AdvanceResult r = advance(run.state, run.reading(Row{.score = 45}, i), run.time(i),
                                      p, ActiveSilence{4});
            CHECK(r.advanced);
            CHECK(r.published.empty());
            for (const auto& e : r.held) CHECK(e.type == ev::reminder);
        }
        run.steps = 11;
        CHECK(run.state.notified_at == run.time(0));
        // The first evaluation after the silence is overdue: the reminder goes out.
        run.play({{.score = 45, .published = {ev::reminder}, .level = watch}});
    }
    SECTION("flapping") {
        AlertingParams p = flapping_params();
        p.repeat_every = std::chrono::days(1);
        Lifecycle run(p);
        run.play({{.score = 45, .published = {ev::raised}, .level = watch}});
        for (int i = 1; i <= 20; ++i)
            run.play({{.score = 45, .published = {ev::reminder}, .level = watch}});
        // The watch alert stays open while the score alternates between warning and watch:
        // from the 6th change on it flaps, and no reminder is due however long ago the last
        // notification was.
        alternate(run, watch_warning, 12);
        CHECK(run.state.flapping);
        CHECK(run.state.notified_at == run.time(25));
    }
}

TEST_CASE("acknowledge accepts only the locality's open alert", "[alerting][lifecycle]") {
    Lifecycle run(without_flapping(1, 1));
    CHECK_FALSE(acknowledge(run.state, "", "district-office", run.time(0)));
    CHECK_FALSE(acknowledge(run.state, "KE-030-001@20260101T000000Z", "district-office",
                            run.time(0)));
    run.play({{.score = 45, .published = {ev::raised}, .level = watch}});
    const AlertState before = run.state;
    CHECK_FALSE(acknowledge(run.state, "KE-030-001@20251231T000000Z", "district-office",
                            run.time(0)));
    CHECK_FALSE(acknowledge(run.state, "", "district-office", run.time(0)));
    CHECK(run.state == before);
    CHECK(acknowledge(run.state, run.state.alert_id, "district-office", run.time(0)));
    CHECK(run.state.acked_by == "district-office");
    CHECK(run.state.acked_at == run.time(0));
    CHECK(run.state.acked_level == watch);

    // Resolved during a silence: the notified alert is still open for subscribers.
    run.play({{.score = 10, .silence = 2, .held = {ev::resolved}, .level = none}});
    const std::string notified = run.state.notified_id;
    REQUIRE_FALSE(notified.empty());
    CHECK(acknowledge(run.state, notified, "district-office", run.time(1)));
    run.play({{.score = 10, .published = {ev::resolved}, .level = none}});
    CHECK_FALSE(acknowledge(run.state, notified, "district-office", run.time(2)));
}

TEST_CASE("an acknowledgement belongs to the alert it was given for",
          "[alerting][lifecycle][reminder]") {
    // During a silence the notified alert resolves and a new one is raised; the new one is
    // acknowledged (it is the locality's true open alert). When the silence ends, the old
    // alert's resolution is published: it clears the old alert's acknowledgement, not the
    // new one's (model.hpp: "cleared when it escalates or resolves").
    AlertingParams p = without_flapping(1, 1);
    p.repeat_every = std::chrono::days(3);
    Lifecycle run(p);
    run.play({
        {.score = 45, .published = {ev::raised}, .level = watch},
        {.score = 10, .silence = 5, .held = {ev::resolved}, .level = none},
        {.score = 45, .silence = 5, .held = {ev::raised}, .level = watch},
    });
    const std::string fresh_alert = make_alert_id(locality, run.time(2));
    REQUIRE(run.state.alert_id == fresh_alert);
    REQUIRE(acknowledge(run.state, fresh_alert, "district-office", run.time(2)));
    CHECK(run.state.acked_level == watch);
    run.play({{.score = 45, .published = {ev::resolved, ev::raised}, .level = watch}});
    CHECK(run.state.acked_by == "district-office");
    CHECK(run.state.acked_level == watch);
    // Acknowledged at watch: no reminder for it.
    run.play(std::vector<Row>(6, Row{.score = 45, .level = watch}));
}

TEST_CASE("an evaluation at the same or an earlier time changes nothing",
          "[alerting][lifecycle]") {
    Lifecycle run(without_flapping());
    run.play({{.score = 45, .level = none}, {.score = 45, .published = {ev::raised},
                                              .level = watch}});
    const std::vector<Ind> stale_data{{"school_dropout", stale, 0}};
    Row changes_everything{.score = 95, .floor = critical, .indicators = stale_data};
    const AlertState before = run.state;
    for (TimePoint at : {run.time(1), run.time(0), run.time(1) - std::chrono::seconds(1),
                         day(2020, 1, 1)}) {
        for (bool silenced : {false, true}) {
            std::optional<ActiveSilence> silence;
            if (silenced) silence = ActiveSilence{5};
            AdvanceResult r = advance(run.state, run.reading(changes_everything, 1), at,
                                      run.params, silence);
            CHECK_FALSE(r.advanced);
            CHECK(r.published.empty());
            CHECK(r.held.empty());
            CHECK(run.state == before);
        }
    }
    // One second later is a new evaluation.
    AdvanceResult r = advance(run.state, run.reading(changes_everything, 1),
                              run.time(1) + std::chrono::seconds(1), run.params, std::nullopt);
    CHECK(r.advanced);
    CHECK(types(r.published) == std::vector<std::string>{ev::data_gap});
    CHECK(run.state.evaluated_at == run.time(1) + std::chrono::seconds(1));
}

namespace {

// A long script through every phase: rising with pending raises, escalation, reminders,
// flapping, a silence, data stopping and returning, falling and resolving.
std::vector<Row> long_script() {
    const std::vector<Ind> both{{"birth_registration"}, {"school_dropout"}};
    const std::vector<Ind> stopping{{"birth_registration"}, {"school_dropout", stale, 0}};
    std::vector<Row> rows;
    const auto add = [&](double score, const std::vector<Ind>& ind, std::int64_t silence = 0,
                         Level floor = none) {
        rows.push_back(Row{.score = score, .floor = floor, .indicators = ind,
                           .silence = silence});
    };
    for (double s : {10.0, 20.0, 35.0, 42.0, 44.0, 47.0, 55.0, 63.0, 58.0, 66.0, 70.0})
        add(s, both);  // rising
    for (int i = 0; i < 9; ++i) add(66, both);  // reminders
    for (int i = 0; i < 16; ++i) add(i % 2 ? 45.0 : 85.0, both);  // flapping
    for (int i = 0; i < 4; ++i) add(85, both, 11);  // silenced while flapping
    for (int i = 0; i < 24; ++i) add(82, both);  // calming down
    for (int i = 0; i < 3; ++i) add(55, both);   // deescalating
    for (int i = 0; i < 5; ++i) add(20, stopping);  // data stopping: the level holds
    add(no_evidence, stopping);
    add(20, both, 12);  // data returning during a silence
    add(20, both, 12);
    for (double s : {20.0, 15.0, 10.0, 5.0, 5.0, 5.0}) add(s, both);  // falling
    add(0, both, 0, watch);  // a floor raises again
    add(0, both, 0, watch);
    for (int i = 0; i < 4; ++i) add(0, both);
    return rows;
}

}  // namespace

TEST_CASE("a restart at any point continues exactly as without it",
          "[alerting][lifecycle][restart]") {
    AlertingParams p;
    p.raise_after = 2;
    p.clear_after = 2;
    p.repeat_every = std::chrono::days(3);
    p.flap_window = 10;
    p.flap_high = 40;
    p.flap_low = 20;
    const std::vector<Row> script = long_script();

    // The uninterrupted run, which must go through every phase.
    Lifecycle whole(p);
    std::vector<AlertState> states;
    std::vector<AdvanceResult> results;
    for (std::size_t i = 0; i < script.size(); ++i) {
        std::optional<ActiveSilence> silence;
        if (script[i].silence) silence = ActiveSilence{script[i].silence};
        results.push_back(
            advance(whole.state, whole.reading(script[i], i), whole.time(i), p, silence));
        states.push_back(whole.state);
    }
    std::map<std::string, int> seen;
    int pending_raises = 0;
    for (std::size_t i = 0; i < results.size(); ++i) {
        for (const auto& e : results[i].published) ++seen[e.type];
        for (const auto& e : results[i].held)
            ++seen[e.held.starts_with("silence") ? "held silence" : "held flapping"];
        if (states[i].level == none && states[i].pending_count > 0) ++pending_raises;
    }
    for (const char* type : {ev::raised, ev::escalated, ev::deescalated, ev::resolved,
                             ev::reminder, ev::flapping_started, ev::flapping_stopped,
                             ev::data_gap, ev::data_restored, "held flapping", "held silence"}) {
        INFO(type);
        CHECK(seen[type] > 0);
    }
    CHECK(pending_raises > 0);

    // Restart after every step: the persisted state (a copy of every field) continues. The
    // evaluation that was running when the process stopped is repeated at the same time and
    // changes nothing.
    for (std::size_t cut = 1; cut < script.size(); ++cut) {
        INFO("restart after step " << cut - 1);
        AlertState restored = states[cut - 1];
        {
            std::optional<ActiveSilence> silence;
            if (script[cut - 1].silence) silence = ActiveSilence{script[cut - 1].silence};
            AdvanceResult again = advance(restored, whole.reading(script[cut - 1], cut - 1),
                                          whole.time(cut - 1), p, silence);
            REQUIRE_FALSE(again.advanced);
            REQUIRE(again.published.empty());
            REQUIRE(restored == states[cut - 1]);
        }
        for (std::size_t i = cut; i < script.size(); ++i) {
            std::optional<ActiveSilence> silence;
            if (script[i].silence) silence = ActiveSilence{script[i].silence};
            AdvanceResult r = advance(restored, whole.reading(script[i], i), whole.time(i), p,
                                      silence);
            INFO("step " << i);
            REQUIRE(r.published == results[i].published);
            REQUIRE(r.held == results[i].held);
            REQUIRE(restored == states[i]);
        }
    }
}
