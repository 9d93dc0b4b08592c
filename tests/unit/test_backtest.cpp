#include "backtest.hpp"

#include "alerting.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

using namespace ews;
using namespace ews::backtest;

namespace {

using Labels = std::vector<std::uint8_t>;
using Scores = std::vector<double>;

const TimePoint t0 = *parse_time("2025-01-06");
constexpr std::chrono::seconds day = std::chrono::days{1};
constexpr std::chrono::seconds week = std::chrono::days{7};

TimePoint week_at(double w) {
    return t0 + std::chrono::seconds(static_cast<long long>(std::llround(w * 7 * 86400)));
}

}  // namespace

TEST_CASE("AUROC: perfect, reversed and all-equal rankings", "[backtest]") {
    const Scores s{0.9, 0.8, 0.3, 0.1};
    CHECK(auroc(s, Labels{1, 1, 0, 0}).value() == Approx(1.0));
    CHECK(auroc(s, Labels{0, 0, 1, 1}).value() == Approx(0.0));
    // Every pair is a tie: each counts 1/2.
    CHECK(auroc(Scores{0.5, 0.5, 0.5, 0.5}, Labels{1, 0, 1, 0}).value() == Approx(0.5));
}

TEST_CASE("AUROC counts a tie between a positive and a negative as 1/2", "[backtest]") {
    // positives 0.8, 0.5; negatives 0.8, 0.2. Pairs (2 x 2 = 4):
    // 0.8+ vs 0.8- = 1/2, 0.8+ vs 0.2- = 1, 0.5+ vs 0.8- = 0, 0.5+ vs 0.2- = 1 -> 2.5 / 4.
    CHECK(auroc(Scores{0.8, 0.8, 0.5, 0.2}, Labels{1, 0, 1, 0}).value() == Approx(0.625));
    // positives 3, 2, 1; negatives 2, 1 (3 x 2 = 6 pairs):
    // 3 beats both (2); 2+ ties 2- (1/2), beats 1- (1); 1+ loses to 2- (0), ties 1- (1/2)
    // -> 4 / 6. The order of the input does not matter.
    CHECK(auroc(Scores{1, 2, 3, 1, 2}, Labels{1, 1, 1, 0, 0}).value() == Approx(4.0 / 6.0));
}

TEST_CASE("AUROC is undefined without positives or without negatives", "[backtest]") {
    CHECK_FALSE(auroc(Scores{0.1, 0.9}, Labels{0, 0}));
    CHECK_FALSE(auroc(Scores{0.1, 0.9}, Labels{1, 1}));
    CHECK_FALSE(auroc(Scores{}, Labels{}));
    CHECK_THROWS_AS(auroc(Scores{0.1, 0.9}, Labels{1}), std::invalid_argument);
}

TEST_CASE("average precision, worked examples", "[backtest]") {
    // + - + - : recall steps 1/2 at precision 1/1 and 1/2 at precision 2/3
    // -> 0.5 + 1/3 = 0.8333.
    CHECK(average_precision(Scores{0.9, 0.8, 0.7, 0.6}, Labels{1, 0, 1, 0}).value() ==
          Approx(0.5 + 1.0 / 3.0));
    // Tie groups {0.9: +}, {0.7: +, -, -}, {0.2: +}, 3 positives:
    // 1/3 * 1/1 + 1/3 * 2/4 + 1/3 * 3/5 = 10/30 + 5/30 + 6/30 = 0.7.
    CHECK(average_precision(Scores{0.7, 0.9, 0.7, 0.2, 0.7}, Labels{0, 1, 1, 1, 0}).value() ==
          Approx(0.7));
    // All equal: one group, AP = the share of positives.
    CHECK(average_precision(Scores{3, 3, 3, 3}, Labels{0, 1, 0, 0}).value() == Approx(0.25));
    CHECK(average_precision(Scores{0.9, 0.1}, Labels{1, 0}).value() == Approx(1.0));
    CHECK_FALSE(average_precision(Scores{0.9, 0.1}, Labels{0, 0}));
}

TEST_CASE("precision and recall of alerts at or above a level", "[backtest]") {
    const std::vector<std::uint8_t> levels{0, 1, 2, 3, 1, 0};
    const Labels labels{1, 1, 0, 1, 0, 0};
    // watch: alerted 1,2,3,4 -> TP {1,3}, FP {2,4}, FN {0}: P = 2/4, R = 2/3.
    auto watch = precision_recall(levels, labels, Level::watch);
    CHECK(watch.precision.value() == Approx(0.5));
    CHECK(watch.recall.value() == Approx(2.0 / 3.0));
    // warning: alerted 2,3 -> TP {3}, FP {2}, FN {0,1}: P = 1/2, R = 1/3.
    auto warning = precision_recall(levels, labels, Level::warning);
    CHECK(warning.precision.value() == Approx(0.5));
    CHECK(warning.recall.value() == Approx(1.0 / 3.0));
    // critical: alerted 3 -> TP {3}: P = 1, R = 1/3.
    auto critical = precision_recall(levels, labels, Level::critical);
    CHECK(critical.precision.value() == Approx(1.0));
    CHECK(critical.recall.value() == Approx(1.0 / 3.0));
    // Nothing alerted: precision undefined; no positive: recall undefined.
    CHECK_FALSE(precision_recall(std::vector<std::uint8_t>{0, 0}, Labels{1, 0}, Level::watch).precision);
    CHECK_FALSE(precision_recall(std::vector<std::uint8_t>{1, 0}, Labels{0, 0}, Level::watch).recall);
}

TEST_CASE("a label window runs from after t up to and including t + horizon", "[backtest]") {
    const std::vector<TimePoint> outcomes{t0 + 10 * day, t0 + 20 * day};
    CHECK(any_in(outcomes, t0 + 3 * day, t0 + 10 * day));       // the end is inside
    CHECK_FALSE(any_in(outcomes, t0 + 10 * day, t0 + 17 * day)); // the start is not
    CHECK(any_in(outcomes, t0 + 17 * day, t0 + 24 * day));
    CHECK_FALSE(any_in(outcomes, t0 + 20 * day, t0 + 99 * day));
    CHECK_FALSE(any_in({}, t0, t0 + 99 * day));
}

TEST_CASE("an onset is an outcome after a quiet spell", "[backtest]") {
    const auto quiet = onset_quiet_periods * week;  // 91 days
    // day 0: first -> onset; day 30: 30 days after day 0 -> not; again day 30: not;
    // day 200: 170 days after day 30 -> onset; day 291: exactly 91 days after day 200, which
    // is inside [T - 91 days, T) -> not.
    const std::vector<TimePoint> outcomes{t0, t0 + 30 * day, t0 + 30 * day, t0 + 200 * day,
                                          t0 + 291 * day};
    CHECK(onsets(outcomes, quiet) == std::vector<TimePoint>{t0, t0 + 200 * day});
    CHECK(onsets({}, quiet).empty());
}

TEST_CASE("episodes follow the notified alert", "[backtest]") {
    EpisodeTracker track;
    // Weeks 0..4 none; raised at 5 (watch); 6 watch; 7-8 warning; 9 watch; 10 resolved;
    // raised again at 18, open at 19; resolved at 20.
    const std::vector<Level> level{Level::none,    Level::none,    Level::none,  Level::none,
                                   Level::none,    Level::watch,   Level::watch, Level::warning,
                                   Level::warning, Level::watch,   Level::none,  Level::none,
                                   Level::none,    Level::none,    Level::none,  Level::none,
                                   Level::none,    Level::none,    Level::watch, Level::watch,
                                   Level::none};
    for (std::size_t w = 0; w < level.size(); ++w)
        track.observe(week_at(double(w)), w == 5 || w == 18, level[w]);
    REQUIRE(track.episodes == std::vector<Episode>{{week_at(5), week_at(9)},
                                                   {week_at(18), week_at(19)}});
    CHECK_FALSE(track.open);
    // A resolution and a new raise in one evaluation: a new episode.
    EpisodeTracker again;
    again.observe(week_at(0), true, Level::watch);
    again.observe(week_at(1), true, Level::warning);
    CHECK(again.episodes ==
          std::vector<Episode>{{week_at(0), week_at(0)}, {week_at(1), week_at(1)}});
}

TEST_CASE("lead time: an onset warned of 3 periods early, one missed", "[backtest]") {
    const std::vector<Episode> episodes{{week_at(5), week_at(9)}, {week_at(18), week_at(19)}};
    const int horizon = 3;
    // Onset at week 8: window [5, 8]; the first episode is open there, raised at 5 -> 3.
    CHECK(lead_periods(week_at(8), episodes, week, horizon).value() == Approx(3.0));
    // Onset at week 16: window [13, 16]; the first episode ended at 9, the second is raised
    // only at 18 -> missed.
    CHECK_FALSE(lead_periods(week_at(16), episodes, week, horizon));
    // Onset at week 12: window [9, 12]; the first episode was still open at week 9 -> 7.
    CHECK(lead_periods(week_at(12), episodes, week, horizon).value() == Approx(7.0));
    // Onset three days after week 8: (59 - 35) days / 7 = 3.43 periods.
    CHECK(lead_periods(week_at(8) + 3 * day, episodes, week, horizon).value() ==
          Approx(24.0 / 7.0));
    // Onset on the raise itself: lead 0, detected.
    CHECK(lead_periods(week_at(18), episodes, week, horizon).value() == Approx(0.0));

    CHECK(median({3.0}).value() == Approx(3.0));
    CHECK(median({1.0, 5.0, 3.0}).value() == Approx(3.0));
    CHECK(median({4.0, 1.0, 3.0, 2.0}).value() == Approx(2.5));
    CHECK_FALSE(median({}));
}

TEST_CASE("churn counts notified level changes per locality-year", "[backtest]") {
    CHECK(changes_level("raised"));
    CHECK(changes_level("escalated"));
    CHECK(changes_level("deescalated"));
    CHECK(changes_level("resolved"));
    CHECK_FALSE(changes_level("reminder"));
    CHECK_FALSE(changes_level("flapping_started"));
    CHECK_FALSE(changes_level("data_gap"));

    // The same alerting the daemon runs: scores 50 -> raised watch, 65 -> escalated to
    // warning, 45 (below warning's clear 50) -> deescalated, 20 (below watch's clear 30) ->
    // resolved, 20 -> nothing: 4 level changes.
    AlertingParams params;
    params.raise_after = 1;
    params.clear_after = 1;
    params.flap_high = 0;
    AlertState state;
    state.locality = "L1";
    std::size_t changes = 0;
    const std::vector<double> scores{50, 65, 45, 20, 20};
    for (std::size_t k = 0; k < scores.size(); ++k) {
        Reading r;
        r.score = scores[k];
        for (const auto& e : advance(state, r, week_at(double(k)), params, std::nullopt).published)
            changes += changes_level(e.type) ? 1 : 0;
    }
    CHECK(changes == 4);

    // 12 changes over 4 localities and exactly two years (2 * 365.2425 days = 63113904 s):
    // 12 / (4 * 2) = 1.5.
    const TimePoint from = t0;
    const TimePoint to = t0 + std::chrono::seconds(63113904);
    CHECK(churn_per_locality_year(12, 4, from, to).value() == Approx(1.5));
    CHECK(churn_per_locality_year(0, 4, from, to).value() == Approx(0.0));
    CHECK_FALSE(churn_per_locality_year(12, 4, from, from));
    CHECK_FALSE(churn_per_locality_year(12, 0, from, to));
}

TEST_CASE("evaluation times run from `from` by step up to `to`", "[backtest]") {
    CHECK(evaluation_times(t0, t0 + 20 * day, week) ==
          std::vector<TimePoint>{t0, t0 + week, t0 + 2 * week});
    CHECK(evaluation_times(t0, t0 + 21 * day, week).size() == 4);
    CHECK(evaluation_times(t0, t0, week) == std::vector<TimePoint>{t0});
    CHECK(evaluation_times(t0 + day, t0, week).empty());
}
