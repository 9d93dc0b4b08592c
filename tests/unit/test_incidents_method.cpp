// Tests of community_incidents' usual level (C2-style bins behind a guard band, the seasonal
// baseline once the history spans two years), its dispersion and its Poisson exceedance,
// against values worked out by hand in the comments beside each check.
#include "community_incidents/community_incidents.hpp"

#include <ews/sdk/testing.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <tuple>
#include <variant>

using ews::plugins::CommunityIncidents;
using ews::sdk::Assessment;
using ews::sdk::ConfigError;
using ews::sdk::Floor;
using ews::sdk::Params;
using ews::sdk::TimePoint;
using ews::sdk::testing::day;
using ews::sdk::testing::MemoryLocality;

namespace {

TimePoint days_before(TimePoint t, int n) { return t - std::chrono::days{n}; }

double value_of(const Assessment& a, const std::string& name) {
    const auto v = std::find_if(a.evidence.values.begin(), a.evidence.values.end(),
                                [&](const ews::sdk::EvidenceValue& x) { return x.name == name; });
    REQUIRE(v != a.evidence.values.end());
    return v->value;
}

bool says(const Assessment& a, const std::string& words) {
    return a.evidence.text.find(words) != std::string::npos;
}

CommunityIncidents configured(const Params& params = {}) {
    CommunityIncidents p;
    p.configure(params);
    return p;
}

// drug_trafficking has weight 1, so weighted and raw counts agree.
constexpr const char* trafficking = "incident.drug_trafficking";

// A week-long window, 28 baseline days and a 7-day guard band: 28 / 7 = 4 bins of 7 days
// ending at now - 7 - 7 = now - 14: (now - 21, now - 14], (now - 28, now - 21],
// (now - 35, now - 28], (now - 42, now - 35].
const Params weekly{{"window_days", std::int64_t{7}},
                    {"baseline_days", std::int64_t{28}},
                    {"guard_days", std::int64_t{7}}};

// One row in the window (9), one in the guard band (now - 7, `guard`) and one in each bin:
// 2, 4, 1, 5. The oldest row, now - 35, ends the oldest bin, so all four bins are used.
MemoryLocality short_history(TimePoint now, double guard) {
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    loc.add(trafficking, now, 9);
    loc.add(trafficking, days_before(now, 7), guard);
    loc.add(trafficking, days_before(now, 14), 2);
    loc.add(trafficking, days_before(now, 21), 4);
    loc.add(trafficking, days_before(now, 28), 1);
    loc.add(trafficking, days_before(now, 35), 5);
    return loc;
}

// Seasonal fixture: in each earlier year k (c = now - 364k) one row in each of the three
// bins, at c + 10 days (the bin after, (c, c + 28]), c - 10 (the bin ending at c) and c - 40
// (the bin before, (c - 56, c - 28]); counts per year (after, at, before) below. Also a row
// at now - 100 that lies in no seasonal bin, and 12 in the window.
MemoryLocality three_years(TimePoint now) {
    MemoryLocality loc{"L1", "Village", "KE/KE-03", 3000.0};
    const double counts[3][3] = {{5, 3, 1}, {4, 2, 3}, {9, 5, 4}};
    for (int k = 1; k <= 3; ++k) {
        loc.add(trafficking, days_before(now, 364 * k - 10), counts[k - 1][0]);
        loc.add(trafficking, days_before(now, 364 * k + 10), counts[k - 1][1]);
        loc.add(trafficking, days_before(now, 364 * k + 40), counts[k - 1][2]);
    }
    loc.add(trafficking, days_before(now, 100), 7);
    loc.add(trafficking, days_before(now, 3), 12);
    return loc;
}

}  // namespace

TEST_CASE("community_incidents method: C2-style bins behind the guard band", "[plugins]") {
    const auto plugin = configured(weekly);
    const auto now = day(2026, 6, 1);
    const auto loc = short_history(now, 20);
    const auto a = plugin.assess(loc.view(now), now);
    // Bins 2, 4, 1, 5: mean 12 / 4 = 3, E = 3 + 0.5 = 3.5. The 20 in the guard band counts
    // in neither the window nor a bin. Sample variance ((2-3)^2 + (4-3)^2 + (1-3)^2 + (5-3)^2)
    // / (4 - 1) = 10/3; over the mean: 10/9 = 1.111111. Severity dispersion with weight 1:
    // (9 + 12) / (9 + 12) = 1. phi = max(1, 1, 1.111111) = 1.111111.
    // O / phi = 8.1 -> k = 8; E / phi = 3.15.
    // P(X >= 8 | 3.15) = 1 - e^-3.15 (1 + 3.15 + 3.15^2/2! + ... + 3.15^7/7!)
    //   = 1 - (0.042852 + 0.134984 + 0.212600 + 0.223230 + 0.175794 + 0.110750 + 0.058144
    //          + 0.026165) = 1 - 0.984519 = 0.0154812
    // score = -log10(0.0154812) / 3 = 1.810195 / 3 = 0.603398
    CHECK(value_of(a, "weighted_observed") == 9);
    CHECK(value_of(a, "weighted_expected") == Approx(3.5));
    CHECK(value_of(a, "baseline_bins") == 4);
    CHECK(value_of(a, "seasonal") == 0);
    CHECK(value_of(a, "dispersion") == Approx(10.0 / 9.0));
    CHECK(value_of(a, "exceedance") == Approx(0.603398).epsilon(1e-5));
    CHECK(a.score == Approx(0.603398).epsilon(1e-5));
    CHECK(says(a, "at 2.6x the usual level of the preceding 4 weeks"));  // 9 / 3.5 = 2.57

    // Whatever the guard band holds, nothing changes.
    const auto quiet = short_history(now, 0);
    const auto b = plugin.assess(quiet.view(now), now);
    CHECK(b.score == Approx(a.score));
    CHECK(value_of(b, "weighted_expected") == Approx(3.5));

    // Without a guard band the bins end at now - 7 and take the 20 in: bins 20, 2, 4, 1 (the
    // row at now - 35 now lies before the oldest bin), E = 27 / 4 + 0.5 = 7.25.
    auto unguarded_params = weekly;
    unguarded_params["guard_days"] = std::int64_t{0};
    const auto unguarded = configured(unguarded_params);
    CHECK(value_of(unguarded.assess(loc.view(now), now), "weighted_expected") == Approx(7.25));
}

TEST_CASE("community_incidents method: bins before the history are left out", "[plugins]") {
    const auto plugin = configured();
    const auto now = day(2026, 6, 1);
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    for (int k = 0; k < 10; ++k) loc.add(trafficking, days_before(now, 7 * k), 1);
    const auto a = plugin.assess(loc.view(now), now);
    // Defaults: window (now - 28, now] holds k = 0..3, O = 4; k = 4, 5 are in the guard band
    // (now - 42, now - 28]; the newest bin (now - 70, now - 42] holds k = 6..9 = 4. The next
    // bin ends at now - 70, before the oldest row (now - 63): it and the 11 older bins are
    // outside the history and left out, so E = 4 / 1 + 0.5 = 4.5 (not 4 / 13 + 0.5), and
    // O = 4 <= E scores 0.
    CHECK(value_of(a, "baseline_bins") == 1);
    CHECK(value_of(a, "weighted_expected") == Approx(4.5));
    CHECK(a.score == 0);
    CHECK(says(a, "the usual level of the preceding 4 weeks"));

    // With no row before the window at all, E is the floor alone.
    MemoryLocality fresh{"L2", "Village", "KE/KE-03"};
    fresh.add(trafficking, days_before(now, 3), 1);
    const auto b = plugin.assess(fresh.view(now), now);
    CHECK(value_of(b, "baseline_bins") == 0);
    CHECK(value_of(b, "weighted_expected") == Approx(0.5));
    CHECK(says(b, "no earlier history yet"));
}

TEST_CASE("community_incidents method: the baseline turns seasonal at two years of history",
          "[plugins]") {
    const auto plugin = configured();
    const auto now = day(2026, 6, 1);
    // One row 727 days back: C2-style, 13 bins (now - 406, now - 42], all after that row and
    // all empty: E = 0 + 0.5 = 0.5. O = 1: P(X >= 1 | 0.5) = 1 - e^-0.5 = 0.393469,
    // -log10 / 3 = 0.135030; O < min_count 3 -> halved 0.067515.
    MemoryLocality young{"L1", "Village", "KE/KE-03"};
    young.add(trafficking, days_before(now, 727), 1);
    young.add(trafficking, days_before(now, 3), 1);
    const auto a = plugin.assess(young.view(now), now);
    CHECK(value_of(a, "seasonal") == 0);
    CHECK(value_of(a, "baseline_bins") == 13);
    CHECK(value_of(a, "weighted_expected") == Approx(0.5));
    CHECK(a.score == Approx(0.067515).epsilon(1e-4));
    CHECK(says(a, "preceding 52 weeks"));

    // One day more, 728 days: seasonal over min(3, 728 / 364 = 2) years. Bins (c, c + 28],
    // (c - 28, c], (c - 56, c - 28] for c = now - 364 and now - 728; the last,
    // (now - 784, now - 756], ends before the oldest row and is left out. The row at now - 728
    // is in (now - 756, now - 728]: bins 0, 0, 0, 0, 1, E = 1/5 + 0.5 = 0.7; variance
    // (4 * 0.2^2 + 0.8^2) / 4 = 0.2, over the mean 0.2 -> 1, so phi = 1 (in floating point
    // 0.2 / 0.2 may come out just above 1: O / phi must still count one whole event).
    // P(X >= 1 | 0.7) = 1 - e^-0.7 = 0.503415, -log10 / 3 = 0.099358; halved 0.049679.
    MemoryLocality old{"L2", "Village", "KE/KE-03"};
    old.add(trafficking, days_before(now, 728), 1);
    old.add(trafficking, days_before(now, 3), 1);
    const auto b = plugin.assess(old.view(now), now);
    CHECK(value_of(b, "seasonal") == 1);
    CHECK(value_of(b, "baseline_bins") == 5);
    CHECK(value_of(b, "weighted_expected") == Approx(0.7));
    CHECK(value_of(b, "dispersion") == Approx(1.0));
    CHECK(b.score == Approx(0.049679).epsilon(1e-4));
    CHECK(says(b, "the usual level for this time of year (2 earlier years)"));
}

TEST_CASE("community_incidents method: the seasonal level and its dispersion", "[plugins]") {
    const auto now = day(2026, 6, 1);
    const auto loc = three_years(now);
    const auto a = configured().assess(loc.view(now), now);
    // Oldest row now - 1132: 1132 / 364 = 3 years, season_years 3 -> 9 bins, all within the
    // history (the oldest ends at now - 1092 - 28 = now - 1120). Counts 5, 3, 1 | 4, 2, 3 |
    // 9, 5, 4: sum 36, mean 4, E = 4.5. The row at now - 100 is in no seasonal bin.
    // Deviations 1, -1, -3, 0, -2, -1, 5, 1, 0: squares sum 42, sample variance 42 / 8 = 5.25,
    // over the mean 5.25 / 4 = 1.3125 = phi (severity dispersion 1, weight 1).
    // O = 12: O / phi = 9.142857 -> k = 9; E / phi = 3.428571.
    // P(X >= 9 | 3.428571) = 1 - e^-3.428571 sum_{i=0..8} 3.428571^i / i!
    //   = 1 - (0.032433 + 0.111200 + 0.190628 + 0.217861 + 0.186738 + 0.128049 + 0.073171
    //          + 0.035839 + 0.015359) = 1 - 0.991277 = 0.0087233
    // score = -log10(0.0087233) / 3 = 2.059320 / 3 = 0.686440
    CHECK(value_of(a, "seasonal") == 1);
    CHECK(value_of(a, "baseline_bins") == 9);
    CHECK(value_of(a, "weighted_expected") == Approx(4.5));
    CHECK(value_of(a, "dispersion") == Approx(1.3125));
    CHECK(a.score == Approx(0.686440).epsilon(1e-5));
    CHECK(says(a, "at 2.7x the usual level for this time of year (3 earlier years)"));
    // Per 10,000 of 3000 children: 12 -> 40; the usual raw count a bin, 4 -> 13.333333.
    CHECK(value_of(a, "incidents_per_10k") == Approx(40));
    CHECK(value_of(a, "usual_per_10k") == Approx(13.333333));

    // season_years 2: the first two years only, 18 / 6 = 3, E = 3.5; variance
    // (4 + 0 + 4 + 1 + 1 + 0) / 5 = 2, over the mean 0.67 -> phi = 1;
    // P(X >= 12 | 3.5) = 0.000289, -log10 / 3 = 1.18 -> 1.
    const auto two = configured({{"season_years", std::int64_t{2}}}).assess(loc.view(now), now);
    CHECK(value_of(two, "weighted_expected") == Approx(3.5));
    CHECK(value_of(two, "dispersion") == Approx(1.0));
    CHECK(two.score == 1.0);

    // A 150-day window cannot fit three windows in a year (3 * 150 > 364): C2-style with
    // max(1, 364 / 150) = 2 bins ending at now - 164: (now - 464, now - 314] holds the
    // year-1 rows (5, 3, 1 at now - 354, 374, 404) and (now - 314, now - 164] nothing:
    // E = 9 / 2 + 0.5 = 5. (The row at now - 100 is in this window now.)
    const auto wide = configured({{"window_days", std::int64_t{150}}}).assess(loc.view(now), now);
    CHECK(value_of(wide, "seasonal") == 0);
    CHECK(value_of(wide, "baseline_bins") == 2);
    CHECK(value_of(wide, "weighted_expected") == Approx(5.0));
}

TEST_CASE("community_incidents method: few reports halve the score, sentinels do not",
          "[plugins]") {
    const auto now = day(2026, 6, 1);
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    loc.add(trafficking, days_before(now, 3), 2);
    // No history: E = 0.5, phi = 1. P(X >= 2 | 0.5) = 1 - e^-0.5 (1 + 0.5) = 0.090204,
    // -log10 / 3 = 1.044775 / 3 = 0.348258. O = 2 < min_count 3 -> halved 0.174129.
    const auto a = configured().assess(loc.view(now), now);
    CHECK(value_of(a, "exceedance") == Approx(0.348258).epsilon(1e-5));
    CHECK(a.score == Approx(0.174129).epsilon(1e-5));
    CHECK(says(a, "few reports, score halved"));
    // min_count 2: O = 2 is not below it, so the score stands.
    const auto b = configured({{"min_count", 2.0}}).assess(loc.view(now), now);
    CHECK(b.score == Approx(0.348258).epsilon(1e-5));
    CHECK_FALSE(says(b, "few reports"));

    // A sentinel holds the locality at watch even when the count is at its usual level:
    // 60 weekly rows of 5 trafficking (C2-style, 13 bins of 20: E = 20.5) with 4 a week in
    // the window plus one abduction (weight 3): O = 16 + 3 = 19 <= 20.5 -> score 0.
    MemoryLocality usual{"L2", "Village", "KE/KE-03"};
    for (int k = 0; k < 60; ++k) usual.add(trafficking, days_before(now, 7 * k), k < 4 ? 4 : 5);
    usual.add("incident.abduction", days_before(now, 2), 1);
    const auto c = configured({{"min_count", 100.0}}).assess(usual.view(now), now);
    CHECK(value_of(c, "weighted_expected") == Approx(20.5));
    CHECK(c.score == 0);
    CHECK(c.floor == Floor::watch);
    CHECK(says(c, "abduction reported, verify"));
    CHECK_FALSE(says(c, "few reports"));  // 19 < 100, but a sentinel was reported
    CHECK(value_of(c, "abduction") == 1);
}

TEST_CASE("community_incidents method: guard_days and season_years are checked",
          "[plugins]") {
    CommunityIncidents plugin;
    const auto d = plugin.describe();
    CHECK(d.version == "1.1.0");
    for (const auto& [key, fallback, low, high] :
         {std::tuple{"guard_days", 14.0, 0.0, 365.0}, std::tuple{"season_years", 3.0, 2.0, 20.0},
          std::tuple{"baseline_days", 364.0, 7.0, 3660.0}}) {
        const std::string name = key;
        INFO(name);
        const auto spec = std::find_if(d.params.begin(), d.params.end(),
                                       [&](const ews::sdk::ParamSpec& s) { return s.name == name; });
        REQUIRE(spec != d.params.end());
        CHECK(spec->type == ews::sdk::ParamType::integer);
        CHECK(static_cast<double>(std::get<std::int64_t>(spec->default_value)) == fallback);
        CHECK(spec->min == low);
        CHECK(spec->max == high);
        CHECK_NOTHROW(plugin.configure({{name, static_cast<std::int64_t>(low)}}));
        CHECK_NOTHROW(plugin.configure({{name, static_cast<std::int64_t>(high)}}));
        for (const ews::sdk::ParamValue& bad :
             {ews::sdk::ParamValue{static_cast<std::int64_t>(low) - 1},
              ews::sdk::ParamValue{static_cast<std::int64_t>(high) + 1},
              ews::sdk::ParamValue{low + 0.5}, ews::sdk::ParamValue{std::string("two")}}) {
            try {
                plugin.configure({{name, bad}});
                FAIL("a bad value was accepted");
            } catch (const ConfigError& e) {
                CHECK(e.key() == name);
            }
        }
    }

    // A refused value keeps the settings in force: guard 0 (E = 7.25, as in the guard-band
    // test) survives a refused guard of 400.
    auto unguarded_params = weekly;
    unguarded_params["guard_days"] = std::int64_t{0};
    plugin.configure(unguarded_params);
    auto refused = unguarded_params;
    refused["guard_days"] = std::int64_t{400};
    CHECK_THROWS_AS(plugin.configure(refused), ConfigError);
    const auto now = day(2026, 6, 1);
    const auto loc = short_history(now, 20);
    CHECK(value_of(plugin.assess(loc.view(now), now), "weighted_expected") == Approx(7.25));
}
