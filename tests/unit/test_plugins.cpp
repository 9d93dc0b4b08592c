// Tests of the three shipped indicator plugins' formulas against hand-computed values.
// The expected numbers are worked out in the comments beside each check.
#include "community_incidents/community_incidents.hpp"
#include "group_presence/group_presence.hpp"
#include "school_dropout/school_dropout.hpp"

#include <ews/sdk/testing.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <memory>

using ews::sdk::Assessment;
using ews::sdk::ConfigError;
using ews::sdk::Floor;
using ews::sdk::Params;
using ews::sdk::Status;
using ews::sdk::TimePoint;
using ews::sdk::testing::day;
using ews::sdk::testing::MemoryLocality;

namespace {

TimePoint days_before(TimePoint t, int n) { return t - std::chrono::days{n}; }

const ews::sdk::EvidenceValue* find_value(const Assessment& a, const std::string& name) {
    for (const auto& v : a.evidence.values)
        if (v.name == name) return &v;
    return nullptr;
}

double value_of(const Assessment& a, const std::string& name) {
    const auto* v = find_value(a, name);
    REQUIRE(v != nullptr);
    return v->value;
}

void require_no_data(const Assessment& a) {
    CHECK(a.status == Status::no_data);
    CHECK(a.score == 0);
    CHECK(a.confidence == 0);
    CHECK_FALSE(a.newest);
}

template <class Plugin>
Plugin configured(const Params& params = {}) {
    Plugin p;
    p.configure(params);
    return p;
}

// Monthly school periods: dropouts dated on the 1st of each month, closing the month before;
// enrolment dated the same day.
void add_month(MemoryLocality& loc, TimePoint t, double enrolled, double dropouts) {
    loc.add("school.enrolled", t, enrolled, 1, "emis");
    loc.add("school.dropouts", t, dropouts, 1, "emis");
}

// 2025-01-01 .. 2025-12-01 (12 periods, all within 365 days before 2026-01-01), then the
// latest period on 2026-01-01.
void add_year(MemoryLocality& loc, double enrolled, double dropouts_per_month) {
    for (unsigned m = 1; m <= 12; ++m) add_month(loc, day(2025, m, 1), enrolled, dropouts_per_month);
}

}  // namespace

// ---- school_dropout ----------------------------------------------------------------------

TEST_CASE("school_dropout: no school data is no_data", "[plugins]") {
    const auto plugin = configured<ews::plugins::SchoolDropout>();
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    const auto now = day(2026, 1, 10);
    require_no_data(plugin.assess(loc.view(now), now));

    // Dropouts without any enrolment give no rate either.
    loc.add("school.dropouts", day(2026, 1, 1), 3);
    require_no_data(plugin.assess(loc.view(now), now));
}

TEST_CASE("school_dropout: a steady rate scores near 0", "[plugins]") {
    const auto plugin = configured<ews::plugins::SchoolDropout>();
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    add_year(loc, 500, 3);
    add_month(loc, day(2026, 1, 1), 500, 3);
    const auto now = day(2026, 1, 10);
    const auto a = plugin.assess(loc.view(now), now);
    // p0 = 0.01 (no neighbours), k = 200.
    // latest:   (3 + 2) / (500 + 200)        = 0.0071429
    // baseline: (36 + 2) / (6000 + 200)      = 0.0061290 (12 periods)
    // ratio 1.165414 -> ratio term (1.165414 - 1) / (3 - 1) = 0.082707;
    // surprise: d = 3 <= n * b_s = 500 * 0.0061290 = 3.064516 -> 0; score = min = 0.
    CHECK(a.status == Status::ok);
    CHECK(value_of(a, "ratio") == Approx(1.165414).epsilon(1e-4));
    CHECK(value_of(a, "surprise") == 0);
    CHECK(a.score == 0);
    CHECK(a.confidence == Approx(1.0));  // 500 >= 100 enrolled, 12 >= 6 periods
    CHECK(a.newest == day(2026, 1, 1));
    CHECK(value_of(a, "baseline_periods") == 12);
    CHECK(value_of(a, "rate") == Approx(0.006));
    CHECK(find_value(a, "dropouts")->is_count);
    CHECK(find_value(a, "enrolled")->is_count);
    CHECK(a.evidence.text.find("2026-01-01") != std::string::npos);
    CHECK(a.evidence.text.find("emis") == std::string::npos);  // no ingested strings
}

TEST_CASE("school_dropout: a spike scores by its shrunk ratio to the usual rate", "[plugins]") {
    const auto plugin = configured<ews::plugins::SchoolDropout>();
    MemoryLocality loc{"L1", "Town", "KE/KE-03"};
    add_year(loc, 2000, 12);
    add_month(loc, day(2026, 1, 1), 2000, 32);
    const auto now = day(2026, 1, 10);
    const auto a = plugin.assess(loc.view(now), now);
    // latest (32 + 2) / 2200 = 0.0154545; baseline (144 + 2) / 24200 = 0.0060331
    // ratio 2.561644 -> ratio term (2.561644 - 1) / 2 = 0.780822
    // surprise: P(X >= 32 | Binomial(2000, 0.0060331)) = 1.26182e-06, -log10 = 5.899 -> 1;
    // level = min(0.780822, 1) = 0.780822.
    // CUSUM (K = 2): the five periods before are at their usual 12 (12 ln 2 = 8.317766
    // against n e of about 12.1: S stays 0); the latest 32 ln 2 - 2000 x 0.0060331
    // = 22.180710 - 12.066116 = 10.114594 -> trend min(1, 10.114594 / 4) = 1.
    // score = max(0.780822, 1) = 1: a jump this far beyond chance is a doubling of the rate.
    CHECK(value_of(a, "level") == Approx(0.780822).epsilon(1e-4));
    CHECK(value_of(a, "ratio") == Approx(2.561644).epsilon(1e-4));
    CHECK(value_of(a, "surprise") == 1.0);
    CHECK(value_of(a, "cusum") == Approx(10.114594).epsilon(1e-5));
    CHECK(a.score == 1.0);
    CHECK(a.evidence.text.find("a jump in the latest period: CUSUM S = 10.1") != std::string::npos);

    // With trend_h 20 the CUSUM term is 10.114594 / 20 = 0.505730 and the level decides.
    const auto level_only = configured<ews::plugins::SchoolDropout>({{"trend_h", 20.0}});
    CHECK(level_only.assess(loc.view(now), now).score == Approx(0.780822).epsilon(1e-4));

    // Three times the usual rate and more saturates at 1.
    MemoryLocality worse{"L2", "Town", "KE/KE-03"};
    add_year(worse, 500, 3);
    add_month(worse, day(2026, 1, 1), 500, 25);
    // latest 27 / 700 = 0.0385714, ratio 6.293233 -> 2.646617; surprise
    // P(X >= 25 | Binomial(500, 0.0061290)) = 3.06801e-15 -> 1; score = min -> 1
    CHECK(plugin.assess(worse.view(now), now).score == 1.0);
}

TEST_CASE("school_dropout: a rise chance could give is capped by its binomial surprise",
          "[plugins]") {
    const auto plugin = configured<ews::plugins::SchoolDropout>();
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    add_year(loc, 500, 3);
    add_month(loc, day(2026, 1, 1), 500, 8);
    const auto now = day(2026, 1, 10);
    const auto a = plugin.assess(loc.view(now), now);
    // latest (8 + 2) / 700 = 0.0142857; baseline 38 / 6200 = 0.0061290
    // ratio 2.330827 -> ratio term (2.330827 - 1) / 2 = 0.665414
    // surprise: P(X >= 8 | Binomial(500, 0.0061290)) = 0.0130763, -log10 = 1.883518,
    // / 3 decades = 0.627839; score = min(0.665414, 0.627839) = 0.627839
    CHECK(value_of(a, "ratio") == Approx(2.330827).epsilon(1e-4));
    CHECK(value_of(a, "surprise") == Approx(0.627839).epsilon(1e-4));
    CHECK(a.score == Approx(0.627839).epsilon(1e-4));

    // full_decades 1.5: surprise 1.883518 / 1.5 -> 1, so the ratio term decides: 0.665414
    const auto lenient = configured<ews::plugins::SchoolDropout>({{"full_decades", 1.5}});
    CHECK(lenient.assess(loc.view(now), now).score == Approx(0.665414).epsilon(1e-4));
}

TEST_CASE("school_dropout: the enrolment in force at each period is used", "[plugins]") {
    const auto plugin = configured<ews::plugins::SchoolDropout>();
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    // Enrolment 1000 at the start of the year, dropping to 500 from July; dropouts 0.6%.
    loc.add("school.enrolled", day(2025, 1, 1), 1000);
    loc.add("school.enrolled", day(2025, 7, 1), 500);
    for (unsigned m = 1; m <= 6; ++m) loc.add("school.dropouts", day(2025, m, 1), 6);
    for (unsigned m = 7; m <= 12; ++m) loc.add("school.dropouts", day(2025, m, 1), 3);
    loc.add("school.dropouts", day(2026, 1, 1), 6);
    // An enrolment dated after the latest period is not the one in force.
    loc.add("school.enrolled", day(2026, 1, 5), 5000);
    const auto now = day(2026, 1, 10);
    const auto a = plugin.assess(loc.view(now), now);
    // baseline: (36 + 18 + 2) / (6000 + 3000 + 200) = 0.0060870; latest 8/700 = 0.0114286
    // ratio 1.877551 -> ratio term 0.438776
    // surprise: P(X >= 6 | Binomial(500, 0.0060870)) = 0.0877447, -log10 = 1.056779 -> 0.352260
    // score = min = 0.352260 (with 5000 in force, 6 <= 5000 * b_s and the score would be 0)
    CHECK(value_of(a, "enrolled") == 500);
    CHECK(value_of(a, "usual_rate") == Approx(54.0 / 9000.0));
    CHECK(a.score == Approx(0.352260).epsilon(1e-4));
}

TEST_CASE("school_dropout: a small school's single dropout is shrunk toward the prior",
          "[plugins]") {
    const auto plugin = configured<ews::plugins::SchoolDropout>();
    const auto now = day(2026, 1, 10);
    // Small school: 20 children, 1 dropout in 6 earlier months, then 1 of 20 (5%).
    MemoryLocality small{"S", "Hamlet", "KE/KE-03"};
    for (unsigned m = 7; m <= 12; ++m) add_month(small, day(2025, m, 1), 20, m == 9 ? 1 : 0);
    add_month(small, day(2026, 1, 1), 20, 1);
    // Large school: 1000 children, 5 a month before, then 50 of 1000 (5%).
    MemoryLocality large{"B", "Town", "KE/KE-03"};
    for (unsigned m = 7; m <= 12; ++m) add_month(large, day(2025, m, 1), 1000, 5);
    add_month(large, day(2026, 1, 1), 1000, 50);

    const auto s = plugin.assess(small.view(now), now);
    const auto b = plugin.assess(large.view(now), now);
    // small: latest (1 + 2) / 220 = 0.013636, baseline (1 + 2) / 320 = 0.009375,
    //        ratio 1.454545 -> ratio term 0.227273; surprise
    //        P(X >= 1 | Binomial(20, 0.009375)) = 0.171704 -> 0.765220 / 3 = 0.255073;
    //        score = min = 0.227273; confidence 20/100 * 6/6 = 0.2
    // large: latest (50 + 2) / 1200 = 0.043333, baseline (30 + 2) / 6200 = 0.005161,
    //        ratio 8.395833 -> 1; surprise P(X >= 50 | Binomial(1000, 0.005161)) = 3.3e-32
    //        -> 1; score 1; confidence 1
    CHECK(s.score == Approx(0.227273).epsilon(1e-4));
    CHECK(s.confidence == Approx(0.2));
    CHECK(b.score == 1.0);
    CHECK(b.confidence == Approx(1.0));
    CHECK(value_of(s, "rate") == Approx(value_of(b, "rate")));
}

TEST_CASE("school_dropout: the neighbours' pooled rate is the prior", "[plugins]") {
    const auto plugin = configured<ews::plugins::SchoolDropout>();
    const auto now = day(2026, 1, 10);
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    add_month(loc, day(2026, 1, 1), 500, 10);  // 2%, no earlier periods
    // Without neighbours p0 = 0.01: latest 12/700 = 0.017143, baseline = p0,
    // ratio 1.714286 -> ratio term 0.357143; surprise P(X >= 10 | Binomial(500, 0.01))
    // = 0.0311021 -> 1.507210 / 3 = 0.502403; level = min = 0.357143.
    // CUSUM over the one period: 10 ln 2 - 500 x 0.01 = 6.931472 - 5 = 1.931472 -> trend
    // 1.931472 / 8 = 0.241434; score = max = 0.357143; confidence 0 (no baseline periods).
    const auto alone = plugin.assess(loc.view(now), now);
    CHECK(value_of(alone, "level") == Approx(0.357143).epsilon(1e-4));
    CHECK(alone.score == Approx(0.357143).epsilon(1e-4));
    CHECK(alone.confidence == 0);

    // A neighbour whose usual rate is 2%: 12 periods of 20 of 1000.
    MemoryLocality nb{"L2", "Next", "KE/KE-03"};
    add_year(nb, 1000, 20);
    loc.add_neighbour(nb);
    // p0 = (240 + 200 * 0.01) / (12000 + 200) = 0.0198361
    // latest (10 + 200 p0) / 700 = 0.0199532; ratio 1.005903 -> ratio term 0.002952;
    // surprise P(X >= 10 | Binomial(500, 0.0198361)) = 0.532935 -> 0.091109;
    // CUSUM 6.931472 - 500 x 0.0198361 = 6.931472 - 9.918033 < 0 -> 0;
    // score = max(min(0.002952, 0.091109), 0) = 0.002952
    const auto a = plugin.assess(loc.view(now), now);
    CHECK(value_of(a, "prior_rate") == Approx(0.0198361).epsilon(1e-4));
    CHECK(a.score == Approx(0.002952).epsilon(1e-2));
}

TEST_CASE("school_dropout: an old latest period is stale with halved confidence",
          "[plugins]") {
    const auto plugin = configured<ews::plugins::SchoolDropout>();
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    add_year(loc, 500, 3);
    add_month(loc, day(2026, 1, 1), 500, 8);
    const auto now = days_before(day(2026, 1, 1), -63);  // 63 days after, max_age_days 62
    const auto a = plugin.assess(loc.view(now), now);
    CHECK(a.status == Status::stale);
    CHECK(a.score == Approx(0.627839).epsilon(1e-4));  // still computed, as in the cap test
    CHECK(a.confidence == Approx(0.5));
    CHECK(a.newest == day(2026, 1, 1));

    const auto fresh_now = days_before(day(2026, 1, 1), -62);
    CHECK(plugin.assess(loc.view(fresh_now), fresh_now).status == Status::ok);
}

TEST_CASE("school_dropout: data after now is not used", "[plugins]") {
    const auto plugin = configured<ews::plugins::SchoolDropout>();
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    add_year(loc, 500, 3);
    add_month(loc, day(2026, 1, 1), 500, 3);
    add_month(loc, day(2026, 2, 1), 500, 40);  // the future as of 2026-01-10
    const auto now = day(2026, 1, 10);
    const auto a = plugin.assess(loc.view(now), now);
    CHECK(a.newest == day(2026, 1, 1));
    // The steady case: 3 of 500 scores 0; the future 40 would score 1.
    CHECK(value_of(a, "dropouts") == 3);
    CHECK(a.score == 0);
    // Also when handed a view cut later than `now`.
    const auto b = plugin.assess(loc.view(day(2026, 3, 1)), now);
    CHECK(b.newest == day(2026, 1, 1));
    CHECK(b.score == Approx(a.score));
}

// ---- community_incidents -----------------------------------------------------------------

namespace {

// Weekly rows of one category at now - 7k days for k = 0..57: k = 0..3 fall in the 28-day
// window (now - 28, now], k = 4..5 in the 14-day guard band (now - 42, now - 28], and
// k = 6..57 (52 weeks) fill the 13 baseline bins of 28 days, (now - 42 - 28(j + 1),
// now - 42 - 28j] for j = 0..12, four rows each. The oldest row, now - 399, is within two
// years, so the baseline is C2-style.
void add_weeks(MemoryLocality& loc, const std::string& kind, TimePoint now, double baseline_count,
               std::array<double, 4> window_counts) {
    for (int k = 0; k < 58; ++k)
        loc.add(kind, days_before(now, 7 * k),
                k < 4 ? window_counts[static_cast<std::size_t>(k)] : baseline_count);
}

}  // namespace

TEST_CASE("community_incidents: no incident rows is no_data", "[plugins]") {
    const auto plugin = configured<ews::plugins::CommunityIncidents>();
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    loc.add("school.dropouts", day(2026, 1, 1), 3);
    const auto now = day(2026, 6, 1);
    require_no_data(plugin.assess(loc.view(now), now));
}

TEST_CASE("community_incidents: the usual weekly level scores 0", "[plugins]") {
    const auto plugin = configured<ews::plugins::CommunityIncidents>();
    const auto now = day(2026, 6, 1);
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    add_weeks(loc, "incident.violence_against_children", now, 1, {1, 1, 1, 1});
    const auto a = plugin.assess(loc.view(now), now);
    // weight 2: O = 4 * 2 = 8; each of the 13 bins holds 4 * 2 = 8, so E = 8 + 0.5 = 8.5;
    // O <= E -> 0.
    CHECK(a.status == Status::ok);
    CHECK(a.score == 0);
    CHECK(value_of(a, "weighted_expected") == Approx(8.5));
    CHECK(value_of(a, "baseline_bins") == 13);
    CHECK(value_of(a, "seasonal") == 0);
    CHECK(a.confidence == Approx(1.0));  // 399 days of history >= 180
    CHECK(a.floor == Floor::none);
    CHECK(a.evidence.text.find("the usual level of the preceding 52 weeks") != std::string::npos);
}

TEST_CASE("community_incidents: a rise scores its Poisson surprise", "[plugins]") {
    const auto plugin = configured<ews::plugins::CommunityIncidents>();
    const auto now = day(2026, 6, 1);
    MemoryLocality loc{"L1", "Village", "KE/KE-03", 2000.0};
    add_weeks(loc, "incident.violence_against_children", now, 1, {1, 1, 2, 2});
    const auto a = plugin.assess(loc.view(now), now);
    // O = 6 * 2 = 12, E = 8.5; one category of weight 2, so the severity dispersion is
    // 2 * 2 / 2 = 2; the 13 bins are equal (variance 0), so phi = max(1, 2, 0) = 2:
    // P(X >= 12 / 2 | Poisson(8.5 / 2)) = P(X >= 6 | 4.25) = 0.255061;
    // score = -log10(0.255061) / 3 = 0.197785
    CHECK(a.score == Approx(0.197785).epsilon(1e-4));
    CHECK(value_of(a, "exceedance") == Approx(0.197785).epsilon(1e-4));
    CHECK(value_of(a, "weighted_observed") == 12);
    CHECK(value_of(a, "incidents") == 6);
    CHECK(find_value(a, "incidents")->is_count);
    // Rates per 10,000 children: 6 / 2000 * 1e4 = 30; usual: 4 a bin, 4 / 2000 * 1e4 = 20.
    CHECK(value_of(a, "incidents_per_10k") == Approx(30));
    CHECK(value_of(a, "usual_per_10k") == Approx(20));

    // full_decades 1: the same tail scores -log10(0.255061) / 1 = 0.593356.
    const auto keen = configured<ews::plugins::CommunityIncidents>({{"full_decades", 1.0}});
    CHECK(keen.assess(loc.view(now), now).score == Approx(0.593356).epsilon(1e-4));
}

TEST_CASE("community_incidents: mixed severities are scored as quasi-Poisson", "[plugins]") {
    const auto plugin = configured<ews::plugins::CommunityIncidents>();
    const auto now = day(2026, 6, 1);
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    add_weeks(loc, "incident.violence_against_children", now, 1, {1, 1, 2, 2});  // weight 2
    add_weeks(loc, "incident.drug_trafficking", now, 1, {1, 1, 1, 1});          // weight 1
    const auto a = plugin.assess(loc.view(now), now);
    // O = 6 * 2 + 4 * 1 = 16; each bin 4 * 2 + 4 * 1 = 12, E = 12 + 0.5 = 12.5
    // severity phi over window and bins = (4 * 58 + 1 * 56) / (16 + 156) = 288 / 172
    // = 1.674419; equal bins add nothing (variance 0)
    // O/phi = 9.555556 -> k = 9; E/phi = 7.465278; P(X >= 9 | 7.465278) = 0.333270;
    // score = -log10(0.333270) / 3 = 0.159068 (plain Poisson, phi = 1, would give 0.237421)
    CHECK(value_of(a, "weighted_observed") == 16);
    CHECK(value_of(a, "weighted_expected") == Approx(12.5));
    CHECK(a.score == Approx(0.159068).epsilon(1e-4));
}

TEST_CASE("community_incidents: a single report with no history is damped", "[plugins]") {
    const auto plugin = configured<ews::plugins::CommunityIncidents>();
    const auto now = day(2026, 6, 1);
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    loc.add("incident.armed_violence", days_before(now, 3), 1);
    const auto a = plugin.assess(loc.view(now), now);
    // No bin reaches back to the oldest row (now - 3), so none is used: E = 0 + 0.5.
    // O = 1.5, phi = 1.5: P(X >= 1 | Poisson(1/3)) = 1 - e^(-1/3) = 0.283469;
    // -log10 / 3 = 0.182498; O < min_count 3 -> x 0.5 = 0.091249
    CHECK(a.score == Approx(0.091249).epsilon(1e-4));
    CHECK(a.confidence == Approx(3.0 / 180.0));  // 3 days of history
    CHECK(a.evidence.text.find("few reports") != std::string::npos);
}

TEST_CASE("community_incidents: a sentinel category holds the locality at watch",
          "[plugins]") {
    const auto plugin = configured<ews::plugins::CommunityIncidents>();
    const auto now = day(2026, 6, 1);
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    loc.add("incident.recruitment_attempt", days_before(now, 2), 1);
    const auto a = plugin.assess(loc.view(now), now);
    // O = 3, E = 0.5, phi = 3: P(X >= 1 | Poisson(1/6)) = 1 - e^(-1/6) = 0.153518;
    // -log10 / 3 = 0.271280; not halved.
    CHECK(a.floor == Floor::watch);
    CHECK(a.score == Approx(0.271280).epsilon(1e-4));
    CHECK(a.evidence.text.find("recruitment attempt reported, verify") != std::string::npos);
    REQUIRE(find_value(a, "recruitment_attempt"));
    CHECK(find_value(a, "recruitment_attempt")->is_count);
    // A sentinel is never damped as a "few reports" count, even below min_count:
    // O = 3 < 10 keeps 0.271280 (halved it would be 0.135640).
    const auto strict = configured<ews::plugins::CommunityIncidents>({{"min_count", 10.0}});
    CHECK(strict.assess(loc.view(now), now).score == Approx(0.271280).epsilon(1e-4));

    // A sentinel outside the window, or a zero row inside it, raises no floor.
    MemoryLocality old{"L2", "Village", "KE/KE-03"};
    old.add("incident.abduction", days_before(now, 40), 1);
    old.add("incident.abduction", days_before(now, 1), 0);
    const auto b = plugin.assess(old.view(now), now);
    CHECK(b.floor == Floor::none);
    CHECK(b.score == 0);
}

TEST_CASE("community_incidents: weights come from the table, unknown categories default",
          "[plugins]") {
    const auto now = day(2026, 6, 1);
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    loc.add("incident.cattle_raid", days_before(now, 5), 4);
    // default_weight 1: O = 4, E = 0.5, phi = 1: P(X >= 4 | 0.5) = 0.00175162,
    // -log10 = 2.756557 -> 0.918853
    const auto a = configured<ews::plugins::CommunityIncidents>().assess(loc.view(now), now);
    CHECK(a.score == Approx(0.918853).epsilon(1e-4));
    // weight 0.5: O = 2, phi = max(1, 0.25 * 4 / 2) = 1: P(X >= 2 | 0.5) = 1 - 1.5 e^-0.5
    // = 0.090204, -log10 = 1.044775 -> 0.348258; O < 3 -> x 0.5 = 0.174129
    const auto b = configured<ews::plugins::CommunityIncidents>(
                       {{"weights", std::map<std::string, double>{{"cattle_raid", 0.5}}}})
                       .assess(loc.view(now), now);
    CHECK(b.score == Approx(0.174129).epsilon(1e-4));
    // Ingested category names stay out of the text.
    CHECK(a.evidence.text.find("cattle") == std::string::npos);
}

TEST_CASE("community_incidents: stale only when no row at all is recent", "[plugins]") {
    const auto plugin = configured<ews::plugins::CommunityIncidents>();
    const auto now = day(2026, 6, 1);
    MemoryLocality zeros{"L1", "Village", "KE/KE-03"};
    add_weeks(zeros, "incident.armed_violence", now, 0, {0, 0, 0, 0});
    const auto a = plugin.assess(zeros.view(now), now);
    CHECK(a.status == Status::ok);  // zero-count rows are fresh data
    CHECK(a.score == 0);
    CHECK(a.confidence == Approx(1.0));

    MemoryLocality silent{"L2", "Village", "KE/KE-03"};
    silent.add("incident.armed_violence", days_before(now, 200), 0);
    silent.add("incident.armed_violence", days_before(now, 61), 1);
    const auto b = plugin.assess(silent.view(now), now);
    CHECK(b.status == Status::stale);
    CHECK(b.confidence == Approx(0.5));  // 200 days of history, halved
    CHECK(b.newest == days_before(now, 61));
}

TEST_CASE("community_incidents: data after now is not used", "[plugins]") {
    const auto plugin = configured<ews::plugins::CommunityIncidents>();
    const auto now = day(2026, 6, 1);
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    add_weeks(loc, "incident.violence_against_children", now, 1, {1, 1, 1, 1});
    loc.add("incident.abduction", days_before(now, -1), 9);
    for (const auto& view_at : {now, day(2026, 7, 1)}) {
        const auto a = plugin.assess(loc.view(view_at), now);
        CHECK(a.score == 0);
        CHECK(a.floor == Floor::none);
        CHECK(a.newest == now);
    }
}

TEST_CASE("community_incidents: extreme counts keep score and confidence in [0,1]",
          "[plugins]") {
    const auto plugin = configured<ews::plugins::CommunityIncidents>();
    const auto now = day(2026, 6, 1);
    MemoryLocality loc{"L1", "Village", "KE/KE-03", 0.0};
    loc.add("incident.drug_trafficking", days_before(now, 1), 1e9);
    const auto a = plugin.assess(loc.view(now), now);
    CHECK(std::isfinite(a.score));
    CHECK(a.score == Approx(1.0));
    CHECK(a.confidence >= 0);
    CHECK(find_value(a, "incidents_per_10k") == nullptr);  // population 0 gives no rate
}

// ---- group_presence ----------------------------------------------------------------------

TEST_CASE("group_presence: no reports anywhere is no_data", "[plugins]") {
    const auto plugin = configured<ews::plugins::GroupPresence>();
    const auto now = day(2026, 3, 6);
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    require_no_data(plugin.assess(loc.view(now), now));
    // A report older than twice the lookback (360 days) no longer counts as monitoring.
    loc.add("presence.report", days_before(now, 400), 0.3);
    require_no_data(plugin.assess(loc.view(now), now));
}

TEST_CASE("group_presence: exposure decays with the half-life", "[plugins]") {
    const auto plugin = configured<ews::plugins::GroupPresence>();
    const auto now = day(2026, 3, 6);
    MemoryLocality fresh{"L1", "Village", "KE/KE-03"};
    fresh.add("presence.report", now, 0.4, 1, "monitor-a");
    MemoryLocality older{"L2", "Village", "KE/KE-03"};
    older.add("presence.report", days_before(now, 30), 0.8, 1, "monitor-a");
    // fresh: T = 0.4; older: 0.8 * 2^-1 = 0.4. score = 1 - exp(-0.4 / 1.5) = 0.234072
    for (const auto* loc : {&fresh, &older}) {
        const auto a = plugin.assess(loc->view(now), now);
        CHECK(a.status == Status::ok);
        CHECK(a.score == Approx(0.234072).epsilon(1e-4));
        CHECK(a.confidence == Approx(0.6));  // 0.5 + 0.1 * 1 source
        CHECK(a.evidence.text.find("monitor") == std::string::npos);
    }
    // The observation weight scales the report: 0.8 * 0.5 = 0.4.
    MemoryLocality weighted{"L3", "Village", "KE/KE-03"};
    weighted.add("presence.report", now, 0.8, 0.5, "monitor-a");
    CHECK(plugin.assess(weighted.view(now), now).score == Approx(0.234072).epsilon(1e-4));
    // Recruitment activity counts 1.5 times: 0.5 * 1.5 = 0.75 -> 1 - exp(-0.5) = 0.393469
    MemoryLocality recruit{"L4", "Village", "KE/KE-03"};
    recruit.add("presence.recruitment_activity", now, 0.5, 1, "monitor-a");
    CHECK(plugin.assess(recruit.view(now), now).score == Approx(0.393469).epsilon(1e-4));
}

TEST_CASE("group_presence: one source's repeats within a week count once", "[plugins]") {
    const auto plugin = configured<ews::plugins::GroupPresence>();
    const auto now = day(2026, 3, 6);  // a Friday; the week began Monday 2026-03-02
    MemoryLocality one{"L1", "Village", "KE/KE-03"};
    for (unsigned d = 2; d <= 6; ++d) one.add("presence.report", day(2026, 3, d), 0.8, 1, "monitor-a");
    const auto a = plugin.assess(one.view(now), now);
    // The largest of the five is today's 0.8: T = 0.8 -> 1 - exp(-0.8 / 1.5) = 0.413354
    CHECK(a.score == Approx(0.413354).epsilon(1e-4));
    CHECK(value_of(a, "reports") == 1);
    CHECK(find_value(a, "reports")->is_count);

    MemoryLocality five{"L2", "Village", "KE/KE-03"};
    for (unsigned d = 2; d <= 6; ++d)
        five.add("presence.report", day(2026, 3, d), 0.8, 1, "monitor-" + std::to_string(d));
    const auto b = plugin.assess(five.view(now), now);
    // Five independent sources in one week: their sum 0.8 * sum_{k=0..4} 2^(-k/30) = 3.821406
    // is corroborated, x (1 + 0.5 * (5 - 1)) = 3: T = 11.464217 -> 1 - exp(-7.642811) = 0.999521
    CHECK(value_of(b, "own_exposure") == Approx(11.464217).epsilon(1e-5));
    CHECK(b.score == Approx(0.999521).epsilon(1e-5));
    CHECK(b.confidence == Approx(1.0));  // 0.5 + 0.1 * 5
    CHECK(value_of(b, "reports") == 5);
    CHECK(value_of(b, "corroborated_buckets") == 1);
    // Without the bonus they are the plain sum: 3.821406 -> 1 - exp(-2.547604) = 0.921731
    const auto plain = configured<ews::plugins::GroupPresence>({{"corroboration_bonus", 0.0}});
    CHECK(plain.assess(five.view(now), now).score == Approx(0.921731).epsilon(1e-4));

    // Sunday and the next Monday are different weeks: 0.8 (2^(-5/30) + 2^(-4/30)) = 1.442097
    MemoryLocality split{"L3", "Village", "KE/KE-03"};
    split.add("presence.report", day(2026, 3, 1), 0.8, 1, "monitor-a");
    split.add("presence.report", day(2026, 3, 2), 0.8, 1, "monitor-a");
    const auto c = plugin.assess(split.view(now), now);
    CHECK(value_of(c, "own_exposure") == Approx(1.442097).epsilon(1e-4));
    CHECK(value_of(c, "reports") == 2);
}

TEST_CASE("group_presence: neighbours' reports spill over", "[plugins]") {
    const auto plugin = configured<ews::plugins::GroupPresence>();
    const auto now = day(2026, 3, 6);
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    MemoryLocality nb{"L2", "Next", "KE/KE-03"};
    nb.add("presence.report", now, 0.9, 1, "monitor-b");
    loc.add_neighbour(nb);
    const auto a = plugin.assess(loc.view(now), now);
    // spill = 0.3 * 0.9 = 0.27 -> 1 - exp(-0.27 / 1.5) = 0.164730; nothing reported here.
    CHECK(a.status == Status::ok);
    CHECK(a.score == Approx(0.164730).epsilon(1e-4));
    CHECK(a.confidence == Approx(0.3));
    CHECK(value_of(a, "spill_exposure") == Approx(0.27));

    // The neighbour's report decays with the spill half-life (45 days): 0.3 * 0.45 = 0.135.
    MemoryLocality loc2{"L3", "Village", "KE/KE-03"};
    MemoryLocality nb2{"L4", "Next", "KE/KE-03"};
    nb2.add("presence.report", days_before(now, 45), 0.9, 1, "monitor-b");
    loc2.add_neighbour(nb2);
    CHECK(value_of(plugin.assess(loc2.view(now), now), "spill_exposure") == Approx(0.135));
}

TEST_CASE("group_presence: silence after earlier monitoring scores 0 with low confidence",
          "[plugins]") {
    const auto plugin = configured<ews::plugins::GroupPresence>();
    const auto now = day(2026, 3, 6);
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    loc.add("presence.report", days_before(now, 200), 0.3, 1, "monitor-a");
    const auto a = plugin.assess(loc.view(now), now);
    CHECK(a.status == Status::ok);
    CHECK(a.score == 0);
    CHECK(a.confidence == Approx(0.3));
    CHECK(a.newest == days_before(now, 200));
}

TEST_CASE("group_presence: a report after a long quiet spell is flagged as an onset",
          "[plugins]") {
    const auto plugin = configured<ews::plugins::GroupPresence>();
    const auto now = day(2026, 3, 6);
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    loc.add("presence.report", days_before(now, 150), 0.5, 1, "monitor-a");
    loc.add("presence.report", days_before(now, 10), 0.5, 1, "monitor-a");
    const auto a = plugin.assess(loc.view(now), now);
    // T = 0.5 * 2^-5 + 0.5 * 2^(-1/3) = 0.412475 -> 0.240415
    CHECK(a.score == Approx(0.240415).epsilon(1e-4));
    CHECK(value_of(a, "onset") == 1);
    CHECK(a.evidence.text.find("presence reported after 140 quiet days") != std::string::npos);

    MemoryLocality steady{"L2", "Village", "KE/KE-03"};
    steady.add("presence.report", days_before(now, 60), 0.5, 1, "monitor-a");
    steady.add("presence.report", days_before(now, 10), 0.5, 1, "monitor-a");
    CHECK(value_of(plugin.assess(steady.view(now), now), "onset") == 0);
}

TEST_CASE("group_presence: an old newest report is stale", "[plugins]") {
    const auto plugin = configured<ews::plugins::GroupPresence>();
    const auto now = day(2026, 3, 6);
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    loc.add("presence.report", days_before(now, 150), 0.6, 1, "monitor-a");
    const auto a = plugin.assess(loc.view(now), now);
    // 0.6 * 2^-5 = 0.01875 -> 0.012422; confidence 0.6 halved
    CHECK(a.status == Status::stale);
    CHECK(a.score == Approx(0.012422).epsilon(1e-3));
    CHECK(a.confidence == Approx(0.3));
}

TEST_CASE("group_presence: data after now is not used", "[plugins]") {
    const auto plugin = configured<ews::plugins::GroupPresence>();
    const auto now = day(2026, 3, 6);
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    MemoryLocality nb{"L2", "Next", "KE/KE-03"};
    loc.add("presence.report", now, 0.4, 1, "monitor-a");
    loc.add("presence.report", days_before(now, -2), 1.0, 1, "monitor-b");
    nb.add("presence.report", days_before(now, -1), 1.0, 1, "monitor-c");
    loc.add_neighbour(nb);
    for (const auto& view_at : {now, day(2026, 4, 1)}) {
        const auto a = plugin.assess(loc.view(view_at), now);
        CHECK(a.score == Approx(0.234072).epsilon(1e-4));
        CHECK(a.newest == now);
        CHECK(value_of(a, "spill_exposure") == 0);
    }
}

// ---- parameters --------------------------------------------------------------------------

namespace {

// Each plugin's described parameters are the ones configure() accepts, with their ranges.
template <class Plugin>
void check_parameters() {
    Plugin plugin;
    const auto d = plugin.describe();
    CHECK(d.version == "1.1.0");
    Params all;
    for (const auto& spec : d.params) all[spec.name] = spec.default_value;
    CHECK_NOTHROW(plugin.configure(all));

    for (const auto& spec : d.params) {
        INFO(d.name << "." << spec.name);
        CHECK_FALSE(spec.help.empty());
        const bool integer = spec.type == ews::sdk::ParamType::integer;
        auto value_below = [&](double v) -> ews::sdk::ParamValue {
            if (integer) return static_cast<std::int64_t>(std::floor(v));
            return v;
        };
        if (spec.type == ews::sdk::ParamType::number || integer) {
            REQUIRE(spec.min);
            try {
                plugin.configure({{spec.name, value_below(*spec.min - 1)}});
                FAIL("below min accepted");
            } catch (const ConfigError& e) {
                CHECK(e.key() == spec.name);
            }
            REQUIRE(spec.max);
            try {
                plugin.configure({{spec.name, value_below(*spec.max + 1)}});
                FAIL("above max accepted");
            } catch (const ConfigError& e) {
                CHECK(e.key() == spec.name);
            }
        }
        // A value of the wrong type names the key.
        try {
            plugin.configure({{spec.name, std::string("nonsense")}});
            if (spec.type != ews::sdk::ParamType::string) FAIL("wrong type accepted");
        } catch (const ConfigError& e) {
            CHECK(e.key() == spec.name);
        }
    }
    try {
        plugin.configure({{"no_such_parameter", 1.0}});
        FAIL("unknown parameter accepted");
    } catch (const ConfigError& e) {
        CHECK(e.key() == "no_such_parameter");
    }
}

}  // namespace

TEST_CASE("plugins: configure accepts the described parameters and rejects bad ones",
          "[plugins]") {
    check_parameters<ews::plugins::SchoolDropout>();
    check_parameters<ews::plugins::CommunityIncidents>();
    check_parameters<ews::plugins::GroupPresence>();
}

namespace {

// full_decades divides -log10 of the tail: it is described with its range [0.5, 20] and
// default 3, and a zero (a division by zero) or a value just outside the range is refused.
template <class Plugin>
void check_full_decades() {
    Plugin plugin;
    const auto d = plugin.describe();
    INFO(d.name);
    const auto spec =
        std::find_if(d.params.begin(), d.params.end(),
                     [](const ews::sdk::ParamSpec& s) { return s.name == "full_decades"; });
    REQUIRE(spec != d.params.end());
    CHECK(spec->type == ews::sdk::ParamType::number);
    CHECK(std::get<double>(spec->default_value) == 3.0);
    REQUIRE(spec->min);
    REQUIRE(spec->max);
    CHECK(*spec->min == 0.5);
    CHECK(*spec->max == 20.0);
    CHECK_NOTHROW(plugin.configure({{"full_decades", 0.5}}));
    CHECK_NOTHROW(plugin.configure({{"full_decades", 20.0}}));
    for (const double bad : {0.0, 0.49, 20.01, -3.0}) {
        INFO("full_decades " << bad);
        try {
            plugin.configure({{"full_decades", bad}});
            FAIL("out-of-range full_decades accepted");
        } catch (const ConfigError& e) {
            CHECK(e.key() == "full_decades");
        }
    }
}

}  // namespace

TEST_CASE("plugins: full_decades is bounded in both count plugins", "[plugins]") {
    check_full_decades<ews::plugins::SchoolDropout>();
    check_full_decades<ews::plugins::CommunityIncidents>();
}

TEST_CASE("plugins: a rejected configuration keeps the previous settings", "[plugins]") {
    ews::plugins::SchoolDropout plugin;
    // trend_h 100 keeps the trend term (CUSUM 10.11 / 100 = 0.10) below the level term, so
    // the score shows which full_ratio is in force.
    plugin.configure({{"full_ratio", 2.0}, {"trend_h", 100.0}});
    CHECK_THROWS_AS(plugin.configure({{"full_ratio", 3.0}, {"trend_h", 100.0}, {"min_rate", -1.0}}),
                    ConfigError);
    CHECK_THROWS_AS(
        plugin.configure({{"full_ratio", 3.0}, {"trend_h", 100.0}, {"full_decades", 0.0}}), ConfigError);
    MemoryLocality loc{"L1", "Town", "KE/KE-03"};
    add_year(loc, 2000, 12);
    add_month(loc, day(2026, 1, 1), 2000, 32);
    const auto now = day(2026, 1, 10);
    // As in the spike test: ratio 2.561644, surprise 1. full_ratio 2 still in force:
    // (2.561644 - 1) / 1 -> clamped to 1; full_ratio 3 would give 0.780822.
    CHECK(plugin.assess(loc.view(now), now).score == 1.0);
    plugin.configure({{"full_ratio", 3.0}, {"trend_h", 100.0}});
    CHECK(plugin.assess(loc.view(now), now).score == Approx(0.780822).epsilon(1e-5));
}

TEST_CASE("community_incidents: table and list parameters are checked", "[plugins]") {
    ews::plugins::CommunityIncidents plugin;
    try {
        plugin.configure({{"weights", std::map<std::string, double>{{"abduction", -1}}}});
        FAIL("negative weight accepted");
    } catch (const ConfigError& e) {
        CHECK(e.key() == "weights");
        CHECK(std::string(e.what()).find("abduction") != std::string::npos);
    }
    try {
        plugin.configure({{"sentinels", std::vector<std::string>{""}}});
        FAIL("empty sentinel accepted");
    } catch (const ConfigError& e) {
        CHECK(e.key() == "sentinels");
    }
    // A configured sentinel list replaces the default one.
    plugin.configure({{"sentinels", std::vector<std::string>{"child_exploitation"}}});
    const auto now = day(2026, 6, 1);
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    loc.add("incident.recruitment_attempt", days_before(now, 2), 1);
    CHECK(plugin.assess(loc.view(now), now).floor == Floor::none);
    loc.add("incident.child_exploitation", days_before(now, 2), 1);
    const auto a = plugin.assess(loc.view(now), now);
    CHECK(a.floor == Floor::watch);
    CHECK(a.evidence.text.find("child exploitation reported, verify") != std::string::npos);
}
