// Tests of school_dropout's seasonal baseline, its CUSUM trend term and their parameters,
// against values worked out by hand in the comments beside each check.
//
// Constants used throughout: ln 2 = 0.693147; one year back is 365.2425 days
// = 365 d 5 h 49 min 12 s, so 2026-01-01 00:00 minus 1, 2, 3 years is 2024-12-31 18:10:48,
// 2024-01-01 12:21:36 and 2023-01-01 06:32:24. With no neighbours p0 = prior_rate = 0.01 and
// prior_strength k = 200, so shrinking adds 2 dropouts and 200 children.
#include "school_dropout/school_dropout.hpp"

#include <ews/sdk/testing.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <string>

using ews::plugins::SchoolDropout;
using ews::sdk::Assessment;
using ews::sdk::ConfigError;
using ews::sdk::Params;
using ews::sdk::Status;
using ews::sdk::TimePoint;
using ews::sdk::testing::day;
using ews::sdk::testing::MemoryLocality;

namespace {

double value_of(const Assessment& a, const std::string& name) {
    const auto it = std::find_if(a.evidence.values.begin(), a.evidence.values.end(),
                                 [&](const ews::sdk::EvidenceValue& v) { return v.name == name; });
    REQUIRE(it != a.evidence.values.end());
    return it->value;
}

bool says(const Assessment& a, const std::string& words) {
    return a.evidence.text.find(words) != std::string::npos;
}

SchoolDropout configured(const Params& params = {}) {
    SchoolDropout p;
    p.configure(params);
    return p;
}

TimePoint at(int y, unsigned m, unsigned d, int hours, int minutes, int seconds) {
    return day(y, m, d) + std::chrono::hours{hours} + std::chrono::minutes{minutes} +
           std::chrono::seconds{seconds};
}

void add_month(MemoryLocality& loc, TimePoint t, double enrolled, double dropouts) {
    loc.add("school.enrolled", t, enrolled, 1, "emis");
    loc.add("school.dropouts", t, dropouts, 1, "emis");
}

// 1000 children, monthly periods from 2023-12-01 to 2025-12-01: 12 dropouts in December,
// January and February (the end of the school year), 3 in the other months; then 12 on
// 2026-01-01, the usual for the time of year.
void add_seasonal_school(MemoryLocality& loc) {
    add_month(loc, day(2023, 12, 1), 1000, 12);
    for (int y : {2024, 2025})
        for (unsigned m = 1; m <= 12; ++m)
            add_month(loc, day(y, m, 1), 1000, m == 12 || m <= 2 ? 12 : 3);
    add_month(loc, day(2026, 1, 1), 1000, 12);
}

}  // namespace

TEST_CASE("school_dropout: the usual rate is the same time of year in earlier years",
          "[plugins]") {
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    add_seasonal_school(loc);
    const auto now = day(2026, 1, 10);

    // Seasonal windows of t = 2026-01-01 (+-45 days around t - y years):
    //   y = 1: [2024-11-16 18:10:48, 2025-02-14 18:10:48]: 2024-12-01, 2025-01-01, 2025-02-01
    //   y = 2: [2023-11-17 12:21:36, 2024-02-15 12:21:36]: 2023-12-01, 2024-01-01, 2024-02-01
    //   y = 3: [2022-11-17 06:32:24, 2023-02-15 06:32:24]: no data
    // 6 periods >= min_seasonal_periods 3: usual 72 / 6000 = 1.2%.
    // adjusted usual (72 + 2) / 6200 = 0.0119355; latest (12 + 2) / 1200 = 0.0116667;
    // ratio 0.977477: ratio term (0.977477 - 1) / 2 = -0.011261 = level.
    // CUSUM (K = 2), each period against its own seasonal usual rate:
    //   Aug, Sep, Oct 2025: e = (9 + 2) / 3200 = 0.0034375, 3 ln 2 - 3.4375 = -1.358058 -> 0
    //   Nov: y = 1 gives Oct, Nov, Dec 2024 (18), y = 2 Dec 2023 (12): e = 32 / 4200,
    //        3 ln 2 - 7.619048 -> 0
    //   Dec: 51 of 5000 in 5 periods: e = 53 / 5200, 12 ln 2 - 10.192308 = -1.874542 -> 0
    //   Jan: e = 0.0119355, 12 ln 2 - 11.935484 = -3.617718 -> 0
    // score = clamp(max(-0.011261, 0)) = 0; confidence 1 (1000 >= 100; seasonal).
    const auto a = configured().assess(loc.view(now), now);
    CHECK(a.status == Status::ok);
    CHECK(value_of(a, "seasonal") == 1);
    CHECK(value_of(a, "baseline_periods") == 6);
    CHECK(value_of(a, "usual_rate") == Approx(0.012));
    CHECK(value_of(a, "adjusted_usual_rate") == Approx(74.0 / 6200.0));
    CHECK(value_of(a, "level") == Approx(-0.011261).epsilon(1e-3));
    CHECK(value_of(a, "cusum") == 0);
    CHECK(a.score == 0);
    CHECK(a.confidence == Approx(1.0));
    CHECK(says(a, "against the usual 1.2% for this time of year (6 periods in earlier years)"));

    // season_years 1: only y = 1, 3 periods of 12 of 1000: still seasonal, usual 36 / 3000.
    const auto one = configured({{"season_years", std::int64_t{1}}}).assess(loc.view(now), now);
    CHECK(value_of(one, "seasonal") == 1);
    CHECK(value_of(one, "baseline_periods") == 3);
    CHECK(value_of(one, "usual_rate") == Approx(0.012));

    // min_seasonal_periods 7 > 6: the trailing year [2025-01-01, 2026-01-01) instead, which
    // mixes in the quiet months: 3 x 12 + 9 x 3 = 63 of 12000 = 0.525%.
    // adjusted usual (63 + 2) / 12200 = 0.00532787; ratio 0.0116667 / 0.00532787 = 2.189744
    // -> ratio term 0.594872; surprise P(X >= 12 | Binomial(1000, 0.00532787)) = 0.00855678,
    // -log10 = 2.067690 / 3 = 0.689230; level = 0.594872.
    // CUSUM: Aug-Nov 3 ln 2 - 5.327869 < 0 -> 0; Dec 12 ln 2 - 5.327869 = 2.989897;
    // Jan 2.989897 + 2.989897 = 5.979795 -> trend 5.979795 / 8 = 0.747474; score 0.747474.
    // A school whose dropouts always peak at the year's end reads as an alarm without the
    // seasonal baseline.
    const auto trailing =
        configured({{"min_seasonal_periods", std::int64_t{7}}}).assess(loc.view(now), now);
    CHECK(value_of(trailing, "seasonal") == 0);
    CHECK(value_of(trailing, "baseline_periods") == 12);
    CHECK(value_of(trailing, "usual_rate") == Approx(63.0 / 12000.0));
    CHECK(value_of(trailing, "level") == Approx(0.594872).epsilon(1e-4));
    CHECK(value_of(trailing, "cusum") == Approx(5.979795).epsilon(1e-5));
    CHECK(trailing.score == Approx(0.747474).epsilon(1e-5));
    CHECK(says(trailing, "against a usual 0.53% (12 earlier periods)"));
    CHECK(says(trailing, "rising for 2 periods: CUSUM S = 6.0"));
}

TEST_CASE("school_dropout: with one year of history the trailing baseline is used",
          "[plugins]") {
    // 2025-01-01 .. 2025-12-01 at 3 of 500, then 3 on 2026-01-01: the y = 1 window
    // [2024-11-16 18:10:48, 2025-02-14 18:10:48] holds 2025-01-01 and 2025-02-01 only,
    // 2 < 3 periods, so the trailing 12 periods are the baseline (the steady case of
    // test_plugins.cpp: ratio 1.165414, score 0).
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    for (unsigned m = 1; m <= 12; ++m) add_month(loc, day(2025, m, 1), 500, 3);
    add_month(loc, day(2026, 1, 1), 500, 3);
    const auto now = day(2026, 1, 10);
    const auto a = configured().assess(loc.view(now), now);
    CHECK(value_of(a, "seasonal") == 0);
    CHECK(value_of(a, "baseline_periods") == 12);
    CHECK(value_of(a, "ratio") == Approx(1.165414).epsilon(1e-4));
    CHECK(a.score == 0);
    CHECK(says(a, "against a usual 0.60% (12 earlier periods)"));

    // Two seasonal periods are enough with min_seasonal_periods 2: usual 6 / 1000.
    const auto two =
        configured({{"min_seasonal_periods", std::int64_t{2}}}).assess(loc.view(now), now);
    CHECK(value_of(two, "seasonal") == 1);
    CHECK(value_of(two, "baseline_periods") == 2);
    CHECK(value_of(two, "usual_rate") == Approx(0.006));
}

TEST_CASE("school_dropout: the season window includes its edges and nothing beyond",
          "[plugins]") {
    // One enrolment of 1000 in force throughout. Around t - 1 year = 2024-12-31 18:10:48,
    // +-45 days is [2024-11-16 18:10:48, 2025-02-14 18:10:48]. Dropouts at each edge (inside,
    // 1 and 4) and one second beyond each (outside, 2 and 8), with distinct counts so the
    // pooled sum tells which were used.
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    loc.add("school.enrolled", day(2024, 11, 1), 1000);
    loc.add("school.dropouts", at(2024, 11, 16, 18, 10, 47), 2);
    loc.add("school.dropouts", at(2024, 11, 16, 18, 10, 48), 1);
    loc.add("school.dropouts", at(2025, 2, 14, 18, 10, 48), 4);
    loc.add("school.dropouts", at(2025, 2, 14, 18, 10, 49), 8);
    loc.add("school.dropouts", day(2026, 1, 1), 5);
    const auto now = day(2026, 1, 10);

    // min_seasonal_periods 2: seasonal = the two edges, 1 + 4 = 5 of 2000; confidence
    // 1000 / 100 -> 1 times 1 (seasonal).
    const auto a =
        configured({{"min_seasonal_periods", std::int64_t{2}}}).assess(loc.view(now), now);
    CHECK(value_of(a, "seasonal") == 1);
    CHECK(value_of(a, "baseline_periods") == 2);
    CHECK(value_of(a, "usual_rate") == Approx(5.0 / 2000.0));
    CHECK(a.confidence == Approx(1.0));

    // season_window_days 44 shrinks the window by a day on each side: no seasonal period, so
    // the trailing window [2025-01-01, 2026-01-01): 4 and 8 of 1000 each = 12 of 2000;
    // confidence 1 x min(1, 2 / 6) = 0.333333.
    const auto narrow = configured({{"min_seasonal_periods", std::int64_t{2}},
                                    {"season_window_days", std::int64_t{44}}})
                            .assess(loc.view(now), now);
    CHECK(value_of(narrow, "seasonal") == 0);
    CHECK(value_of(narrow, "baseline_periods") == 2);
    CHECK(value_of(narrow, "usual_rate") == Approx(12.0 / 2000.0));
    CHECK(narrow.confidence == Approx(2.0 / 6.0));

    // Default min_seasonal_periods 3 > 2: the same trailing fallback.
    const auto fallback = configured().assess(loc.view(now), now);
    CHECK(value_of(fallback, "seasonal") == 0);
    CHECK(value_of(fallback, "usual_rate") == Approx(12.0 / 2000.0));
}

TEST_CASE("school_dropout: neighbours are pooled over the locality's baseline periods",
          "[plugins]") {
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    add_seasonal_school(loc);
    MemoryLocality nb{"L2", "Next", "KE/KE-03"};
    add_seasonal_school(nb);
    loc.add_neighbour(nb);
    const auto now = day(2026, 1, 10);
    // Seasonal: the neighbour's 6 seasonal periods, 72 of 6000:
    // p0 = (72 + 200 x 0.01) / (6000 + 200) = 0.0119355.
    const auto a = configured().assess(loc.view(now), now);
    CHECK(value_of(a, "seasonal") == 1);
    CHECK(value_of(a, "prior_rate") == Approx(74.0 / 6200.0));
    CHECK(says(a, "toward the neighbours' 1.2%"));
    // Trailing: its trailing year, 63 of 12000: p0 = 65 / 12200 = 0.00532787.
    const auto t =
        configured({{"min_seasonal_periods", std::int64_t{7}}}).assess(loc.view(now), now);
    CHECK(value_of(t, "seasonal") == 0);
    CHECK(value_of(t, "prior_rate") == Approx(65.0 / 12200.0));
}

TEST_CASE("school_dropout: a neighbour's periods count from the start of the oldest window",
          "[plugins]") {
    // The locality: one period at t - 1 year (2024-12-31 18:10:48) and the latest, 2026-01-01.
    // Each neighbour's only enrolment, 1000 on 2021-01-01, is older than any window and stays
    // in force; it has a dropout period on the oldest edge its pool reaches (inside) and one
    // a second before it (outside), with counts that tell which were pooled.
    auto locality = [](MemoryLocality& loc) {
        add_month(loc, at(2024, 12, 31, 18, 10, 48), 1000, 3);
        add_month(loc, day(2026, 1, 1), 1000, 5);
    };
    const auto now = day(2026, 1, 10);

    // Seasonal (min_seasonal_periods 1): the oldest window is 3 years back, 2023-01-01
    // 06:32:24, less 45 days: 2022-11-17 06:32:24. Pooled: 1 of 1000, so
    // p0 = (1 + 2) / (1000 + 200) = 0.0025 (with the outside 2 it would be 5 / 2200).
    MemoryLocality seasonal{"L1", "Village", "KE/KE-03"};
    locality(seasonal);
    MemoryLocality far{"L2", "Next", "KE/KE-03"};
    far.add("school.enrolled", day(2021, 1, 1), 1000);
    far.add("school.dropouts", at(2022, 11, 17, 6, 32, 24), 1);
    far.add("school.dropouts", at(2022, 11, 17, 6, 32, 23), 2);
    seasonal.add_neighbour(far);
    const auto a =
        configured({{"min_seasonal_periods", std::int64_t{1}}}).assess(seasonal.view(now), now);
    CHECK(value_of(a, "seasonal") == 1);
    CHECK(value_of(a, "prior_rate") == Approx(3.0 / 1200.0));
    CHECK(says(a, "toward the neighbours'"));

    // Trailing (min_seasonal_periods 7 > 1): the window starts 365 days before the latest,
    // 2025-01-01. Pooled: 4 of 1000, p0 = (4 + 2) / 1200 = 0.005.
    MemoryLocality trailing{"L3", "Village", "KE/KE-03"};
    locality(trailing);
    MemoryLocality near{"L4", "Next", "KE/KE-03"};
    near.add("school.enrolled", day(2021, 1, 1), 1000);
    near.add("school.dropouts", day(2025, 1, 1), 4);
    near.add("school.dropouts", day(2025, 1, 1) - std::chrono::seconds{1}, 8);
    trailing.add_neighbour(near);
    const auto t =
        configured({{"min_seasonal_periods", std::int64_t{7}}}).assess(trailing.view(now), now);
    CHECK(value_of(t, "seasonal") == 0);
    CHECK(value_of(t, "prior_rate") == Approx(6.0 / 1200.0));
}

TEST_CASE("school_dropout: the CUSUM adds up the excess over each period's own usual rate",
          "[plugins]") {
    // 400 children; 4 dropouts a month Jan-Jun 2025 (1%), then 4, 6, 7, 8 in Jul-Oct.
    // prior_strength 0: no shrinking, so each expected rate is the raw trailing rate.
    // trend_periods 4: the CUSUM runs over Jul-Oct; K = 2, so (K - 1) = 1 and
    // increment = d ln 2 - n e.
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    for (unsigned m = 1; m <= 6; ++m) add_month(loc, day(2025, m, 1), 400, 4);
    const double ramp[] = {4, 6, 7, 8};
    for (unsigned m = 7; m <= 10; ++m) add_month(loc, day(2025, m, 1), 400, ramp[m - 7]);
    const auto now = day(2025, 10, 10);
    const Params base{{"prior_strength", 0.0}, {"trend_periods", std::int64_t{4}}};

    //   Jul: e = 24 / 2400 = 0.01,     n e = 4.0;      4 ln 2 = 2.772589: -1.227411 -> S = 0
    //   Aug: e = 28 / 2800 = 0.01,     n e = 4.0;      6 ln 2 = 4.158883: +0.158883 -> 0.158883
    //   Sep: e = 34 / 3200 = 0.010625, n e = 4.25;     7 ln 2 = 4.852030: +0.602030 -> 0.760913
    //   Oct: e = 41 / 3600 = 0.011389, n e = 4.555556; 8 ln 2 = 5.545177: +0.989622 -> 1.750535
    // trend = 1.750535 / 8 = 0.218817, S above 0 for 3 periods.
    // Level of Oct: 0.02 / 0.0113889 = 1.756098 -> ratio term 0.378049; surprise
    // P(X >= 8 | Binomial(400, 0.0113889)) = 0.0900432, -log10 = 1.045549 / 3 = 0.348516;
    // level 0.348516 > trend: score 0.348516.
    const auto a = configured(base).assess(loc.view(now), now);
    CHECK(value_of(a, "cusum") == Approx(1.750535).epsilon(1e-5));
    CHECK(value_of(a, "cusum_periods") == 3);
    CHECK(value_of(a, "trend") == Approx(0.218817).epsilon(1e-5));
    CHECK(value_of(a, "level") == Approx(0.348516).epsilon(1e-4));
    CHECK(a.score == Approx(0.348516).epsilon(1e-4));
    // With trend_h 4 the trend term, 0.437634, is the larger and the text says so.
    auto h4 = base;
    h4["trend_h"] = 4.0;
    const auto a4 = configured(h4).assess(loc.view(now), now);
    CHECK(a4.score == Approx(0.437634).epsilon(1e-5));
    CHECK(says(a4, "rising for 3 periods: CUSUM S = 1.8"));

    // trend_periods 2: only Sep and Oct, 0.602030 + 0.989622 = 1.591652.
    auto p = base;
    p["trend_periods"] = std::int64_t{2};
    CHECK(value_of(configured(p).assess(loc.view(now), now), "cusum") ==
          Approx(1.591652).epsilon(1e-5));

    // trend_ratio 3 (tuned to a tripling): increment d ln 3 - 2 n e:
    // Jul 4.394449 - 8 < 0, Aug 6.591674 - 8 < 0, Sep 7.690286 - 8.5 < 0,
    // Oct 8.788898 - 9.111111 < 0: S stays 0 and the level decides.
    p = base;
    p["trend_ratio"] = 3.0;
    const auto tripling = configured(p).assess(loc.view(now), now);
    CHECK(value_of(tripling, "cusum") == 0);
    CHECK(tripling.score == Approx(0.348516).epsilon(1e-4));
    CHECK_FALSE(says(tripling, "CUSUM"));

    // trend_h 1: trend = min(1, 1.750535 / 1) = 1.
    p = base;
    p["trend_h"] = 1.0;
    CHECK(configured(p).assess(loc.view(now), now).score == 1.0);

    // A period with zero enrolment carries no rate: Sep's enrolment 0 drops it from the
    // CUSUM and from Oct's baseline (Jan-Aug, 34 of 3200, e = 0.010625, n e = 4.25):
    // Jul -> 0, Aug 0.158883, Oct 0.158883 + (5.545177 - 4.25) = 1.454060.
    MemoryLocality gap{"L2", "Village", "KE/KE-03"};
    for (unsigned m = 1; m <= 6; ++m) add_month(gap, day(2025, m, 1), 400, 4);
    for (unsigned m = 7; m <= 10; ++m)
        add_month(gap, day(2025, m, 1), m == 9 ? 0 : 400, ramp[m - 7]);
    const auto g = configured(base).assess(gap.view(now), now);
    CHECK(value_of(g, "cusum") == Approx(1.454060).epsilon(1e-5));
    CHECK(value_of(g, "cusum_periods") == 2);
}

TEST_CASE("school_dropout: the trend term catches a slow ramp the level term misses",
          "[plugins]") {
    // 1000 children; 5 dropouts a month Jan-Jun 2025, then one more each month: 6 .. 11 in
    // Jul-Dec and 12 on 2026-01-01. Each month's rise is small against a trailing usual rate
    // that the ramp itself keeps raising.
    MemoryLocality ramp{"L1", "Town", "KE/KE-03"};
    for (unsigned m = 1; m <= 12; ++m) add_month(ramp, day(2025, m, 1), 1000, m <= 6 ? 5 : m - 1);
    add_month(ramp, day(2026, 1, 1), 1000, 12);
    const auto now = day(2026, 1, 10);
    const auto a = configured().assess(ramp.view(now), now);
    // Level: usual (30 + 51 + 2) / (12000 + 200) = 83 / 12200 = 0.0068033; latest
    // (12 + 2) / 1200 = 0.0116667; ratio 1.714859 -> ratio term 0.357430; surprise
    // P(X >= 12 | Binomial(1000, 0.0068033)) = 0.0443821, -log10 = 1.352792 / 3 = 0.450931;
    // level 0.357430.
    // CUSUM over the last 6 periods, e = (D + 2) / (N + 200) over each one's trailing year:
    //   Aug: 38 / 7200  -> n e = 5.277778;  7 ln 2 = 4.852030: -0.425748 -> 0
    //   Sep: 45 / 8200  -> n e = 5.487805;  8 ln 2 = 5.545177: +0.057373 -> 0.057373
    //   Oct: 53 / 9200  -> n e = 5.760870;  9 ln 2 = 6.238325: +0.477455 -> 0.534828
    //   Nov: 62 / 10200 -> n e = 6.078431; 10 ln 2 = 6.931472: +0.853040 -> 1.387868
    //   Dec: 72 / 11200 -> n e = 6.428571; 11 ln 2 = 7.624619: +1.196048 -> 2.583916
    //   Jan: 83 / 12200 -> n e = 6.803279; 12 ln 2 = 8.317766: +1.514487 -> 4.098403
    // trend = 4.098403 / 8 = 0.512300: score 0.512300, above the level.
    CHECK(value_of(a, "level") == Approx(0.357430).epsilon(1e-4));
    CHECK(value_of(a, "cusum") == Approx(4.098403).epsilon(1e-5));
    CHECK(value_of(a, "cusum_periods") == 5);
    CHECK(value_of(a, "trend") == Approx(0.512300).epsilon(1e-5));
    CHECK(a.score == Approx(0.512300).epsilon(1e-5));
    CHECK(says(a, "rising for 5 periods: CUSUM S = 4.1"));

    // The same 12 after a flat year of 5: usual 62 / 12200 = 0.0050820, ratio 2.295699 ->
    // ratio term 0.647849, surprise larger: level 0.647849. The ramp's own level is about
    // half of that, which is what the trend term makes up for.
    MemoryLocality sudden{"L2", "Town", "KE/KE-03"};
    for (unsigned m = 1; m <= 12; ++m) add_month(sudden, day(2025, m, 1), 1000, 5);
    add_month(sudden, day(2026, 1, 1), 1000, 12);
    const auto b = configured().assess(sudden.view(now), now);
    CHECK(value_of(b, "level") == Approx(0.647849).epsilon(1e-4));
    CHECK(value_of(a, "level") < 0.6 * value_of(b, "level"));
}

TEST_CASE("school_dropout: a small school's single dropout stays damped by shrinkage",
          "[plugins]") {
    // 20 children, no dropout in 25 months (2023-12 .. 2025-12), then 1 (5%) on 2026-01-01.
    MemoryLocality loc{"S", "Hamlet", "KE/KE-03"};
    add_month(loc, day(2023, 12, 1), 20, 0);
    for (int y : {2024, 2025})
        for (unsigned m = 1; m <= 12; ++m) add_month(loc, day(y, m, 1), 20, 0);
    add_month(loc, day(2026, 1, 1), 20, 1);
    const auto now = day(2026, 1, 10);

    // Seasonal: 6 periods, 0 of 120. Shrunk usual (0 + 2) / (120 + 200) = 0.00625; latest
    // (1 + 2) / 220 = 0.0136364; ratio 2.181818 -> ratio term 0.590909; surprise
    // P(X >= 1 | Binomial(20, 0.00625)) = 1 - 0.99375^20 = 0.117849, -log10 = 0.928673 / 3
    // = 0.309558; level 0.309558.
    // CUSUM: the earlier periods have d = 0 (S stays 0); the latest 1 x ln 2 - 20 x 0.00625
    // = 0.693147 - 0.125 = 0.568147; trend 0.568147 / 8 = 0.071018.
    // score = max(0.309558, 0.142037) = 0.309558; confidence 20 / 100 x 1 = 0.2.
    const auto a = configured().assess(loc.view(now), now);
    CHECK(value_of(a, "seasonal") == 1);
    CHECK(value_of(a, "level") == Approx(0.309558).epsilon(1e-4));
    CHECK(value_of(a, "trend") == Approx(0.071018).epsilon(1e-4));
    CHECK(a.score == Approx(0.309558).epsilon(1e-4));
    CHECK(a.confidence == Approx(0.2));

    // Without shrinking (prior_strength 0) the usual rate is 0: ratio 0.05 / min_rate 0.001
    // = 50 and a surprise of 1 (chance never gives a dropout at rate 0): score 1.
    const auto raw = configured({{"prior_strength", 0.0}}).assess(loc.view(now), now);
    CHECK(raw.score == 1.0);
}

TEST_CASE("school_dropout: the new parameters are described and range-checked", "[plugins]") {
    SchoolDropout plugin;
    const auto d = plugin.describe();
    CHECK(d.version == "1.1.0");

    struct Expected {
        const char* name;
        ews::sdk::ParamType type;
        double def, min, max;
    };
    using T = ews::sdk::ParamType;
    const Expected expected[] = {
        {"season_window_days", T::integer, 45, 0, 182},
        {"season_years", T::integer, 3, 1, 20},
        {"min_seasonal_periods", T::integer, 3, 1, 120},
        {"trend_periods", T::integer, 6, 1, 60},
        {"trend_ratio", T::number, 2, 1.1, 20},
        {"trend_h", T::number, 8, 0.1, 100},
    };
    for (const auto& e : expected) {
        INFO(e.name);
        const auto spec =
            std::find_if(d.params.begin(), d.params.end(),
                         [&](const ews::sdk::ParamSpec& s) { return s.name == e.name; });
        REQUIRE(spec != d.params.end());
        CHECK(spec->type == e.type);
        REQUIRE(spec->min);
        REQUIRE(spec->max);
        CHECK(*spec->min == e.min);
        CHECK(*spec->max == e.max);
        const bool integer = e.type == T::integer;
        auto value = [&](double v) -> ews::sdk::ParamValue {
            if (integer) return static_cast<std::int64_t>(v);
            return v;
        };
        if (integer)
            CHECK(std::get<std::int64_t>(spec->default_value) == static_cast<std::int64_t>(e.def));
        else
            CHECK(std::get<double>(spec->default_value) == e.def);

        CHECK_NOTHROW(plugin.configure({{e.name, value(e.min)}}));
        CHECK_NOTHROW(plugin.configure({{e.name, value(e.max)}}));
        // Just outside: one below/above for integers, 1% of the bound for numbers.
        const double below = integer ? e.min - 1 : e.min * 0.99;
        const double above = integer ? e.max + 1 : e.max * 1.01;
        for (const double bad : {below, above}) {
            INFO("value " << bad);
            try {
                plugin.configure({{e.name, value(bad)}});
                FAIL("out-of-range value accepted");
            } catch (const ConfigError& err) {
                CHECK(err.key() == e.name);
                CHECK(std::string(err.what()).find(e.name) != std::string::npos);
            }
        }
        // An integer parameter given a fraction is the wrong type.
        if (integer) {
            try {
                plugin.configure({{e.name, 2.5}});
                FAIL("fraction accepted for an integer parameter");
            } catch (const ConfigError& err) {
                CHECK(err.key() == e.name);
            }
        }
    }

    // A refused value keeps the previous settings: trend_h 1 stays in force after a bad
    // trend_ratio (the CUSUM case above: S = 1.750535 / 1 -> trend 1).
    plugin.configure(
        {{"prior_strength", 0.0}, {"trend_periods", std::int64_t{4}}, {"trend_h", 1.0}});
    CHECK_THROWS_AS(plugin.configure({{"trend_h", 4.0}, {"trend_ratio", 1.0}}), ConfigError);
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    for (unsigned m = 1; m <= 6; ++m) add_month(loc, day(2025, m, 1), 400, 4);
    const double ramp[] = {4, 6, 7, 8};
    for (unsigned m = 7; m <= 10; ++m) add_month(loc, day(2025, m, 1), 400, ramp[m - 7]);
    const auto now = day(2025, 10, 10);
    CHECK(plugin.assess(loc.view(now), now).score == 1.0);
}
