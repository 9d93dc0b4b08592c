// Tests of group_presence's corroboration: within one bucket of corroboration_days, one
// source's repeats count once and independent sources count more, by
// 1 + corroboration_bonus * (sources - 1). Values worked out by hand beside each check.
#include "group_presence/group_presence.hpp"

#include <ews/sdk/testing.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <variant>

using ews::plugins::GroupPresence;
using ews::sdk::Assessment;
using ews::sdk::ConfigError;
using ews::sdk::Params;
using ews::sdk::TimePoint;
using ews::sdk::testing::day;
using ews::sdk::testing::MemoryLocality;

namespace {

double value_of(const Assessment& a, const std::string& name) {
    const auto v = std::find_if(a.evidence.values.begin(), a.evidence.values.end(),
                                [&](const ews::sdk::EvidenceValue& x) { return x.name == name; });
    REQUIRE(v != a.evidence.values.end());
    return v->value;
}

GroupPresence configured(const Params& params = {}) {
    GroupPresence p;
    p.configure(params);
    return p;
}

constexpr const char* report = "presence.report";
constexpr const char* recruitment = "presence.recruitment_activity";

// A Friday; its 7-day bucket began on Monday 2026-03-02.
const TimePoint friday = day(2026, 3, 6);

}  // namespace

TEST_CASE("group_presence method: independent sources in one bucket corroborate",
          "[plugins]") {
    const auto plugin = configured();
    MemoryLocality two{"L1", "Village", "KE/KE-03"};
    two.add(report, friday, 0.4, 1, "monitor-a");
    two.add(report, friday, 0.6, 1, "monitor-b");
    const auto a = plugin.assess(two.view(friday), friday);
    // Two sources: (0.4 + 0.6) * (1 + 0.5 * (2 - 1)) = 1.0 * 1.5 = 1.5 -> 1 - e^-1 = 0.632121
    CHECK(value_of(a, "own_exposure") == Approx(1.5));
    CHECK(a.score == Approx(0.632121).epsilon(1e-5));
    CHECK(value_of(a, "corroborated_buckets") == 1);
    CHECK(value_of(a, "reports") == 2);
    CHECK(a.confidence == Approx(0.7));  // 0.5 + 0.1 * 2 sources
    CHECK(a.evidence.text.find("two or more sources in 1 period of 7 days") != std::string::npos);

    // corroboration_bonus 0: the plain sum 1.0 -> 1 - exp(-1 / 1.5) = 0.486583
    const auto plain = configured({{"corroboration_bonus", 0.0}}).assess(two.view(friday), friday);
    CHECK(value_of(plain, "own_exposure") == Approx(1.0));
    CHECK(plain.score == Approx(0.486583).epsilon(1e-5));
    CHECK(value_of(plain, "corroborated_buckets") == 1);  // still two sources, no bonus

    // corroboration_bonus 5 with three sources of 0.1: 0.3 * (1 + 5 * 2) = 3.3
    // -> 1 - exp(-3.3 / 1.5) = 0.889197
    MemoryLocality three{"L2", "Village", "KE/KE-03"};
    for (const char* source : {"monitor-a", "monitor-b", "monitor-c"})
        three.add(report, friday, 0.1, 1, source);
    const auto c = configured({{"corroboration_bonus", 5.0}}).assess(three.view(friday), friday);
    CHECK(value_of(c, "own_exposure") == Approx(3.3));
    CHECK(c.score == Approx(0.889197).epsilon(1e-5));
}

TEST_CASE("group_presence method: one source's repeats count once and corroborate nothing",
          "[plugins]") {
    const auto plugin = configured();
    MemoryLocality repeats{"L1", "Village", "KE/KE-03"};
    repeats.add(report, day(2026, 3, 2), 0.4, 1, "monitor-a");  // 4 days old
    repeats.add(report, friday, 0.6, 1, "monitor-a");
    const auto a = plugin.assess(repeats.view(friday), friday);
    // max(0.4 * 2^(-4/30) = 0.364689, 0.6) = 0.6, one source, no bonus:
    // 1 - exp(-0.6 / 1.5) = 0.329680
    CHECK(value_of(a, "own_exposure") == Approx(0.6));
    CHECK(a.score == Approx(0.329680).epsilon(1e-5));
    CHECK(value_of(a, "corroborated_buckets") == 0);
    CHECK(value_of(a, "reports") == 1);

    // Adding monitor-b's 0.6: two sources, not three: (0.6 + 0.6) * 1.5 = 1.8
    // -> 1 - exp(-1.2) = 0.698806
    repeats.add(report, friday, 0.6, 1, "monitor-b");
    const auto b = plugin.assess(repeats.view(friday), friday);
    CHECK(value_of(b, "own_exposure") == Approx(1.8));
    CHECK(b.score == Approx(0.698806).epsilon(1e-5));

    // A second source that saw nothing (value 0) corroborates nothing: 0.6 as alone.
    MemoryLocality nothing{"L2", "Village", "KE/KE-03"};
    nothing.add(report, friday, 0.6, 1, "monitor-a");
    nothing.add(report, friday, 0.0, 1, "monitor-b");
    const auto c = plugin.assess(nothing.view(friday), friday);
    CHECK(value_of(c, "own_exposure") == Approx(0.6));
    CHECK(value_of(c, "corroborated_buckets") == 0);
    CHECK(value_of(c, "sources") == 2);  // it still counts toward confidence

    // Sources in different buckets (Sunday 03-01 and Monday 03-02) do not corroborate:
    // 0.8 (2^(-5/30) + 2^(-4/30)) = 1.442097
    MemoryLocality apart{"L3", "Village", "KE/KE-03"};
    apart.add(report, day(2026, 3, 1), 0.8, 1, "monitor-a");
    apart.add(report, day(2026, 3, 2), 0.8, 1, "monitor-b");
    const auto d = plugin.assess(apart.view(friday), friday);
    CHECK(value_of(d, "own_exposure") == Approx(1.442097).epsilon(1e-5));
    CHECK(value_of(d, "corroborated_buckets") == 0);
}

TEST_CASE("group_presence method: recruitment reports corroborate presence reports",
          "[plugins]") {
    const auto plugin = configured();
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    loc.add(report, friday, 0.4, 1, "monitor-a");
    loc.add(recruitment, friday, 0.5, 1, "monitor-b");
    const auto a = plugin.assess(loc.view(friday), friday);
    // (0.4 + 1.5 * 0.5) * 1.5 = 1.15 * 1.5 = 1.725 -> 1 - exp(-1.15) = 0.683363
    CHECK(value_of(a, "own_exposure") == Approx(1.725));
    CHECK(a.score == Approx(0.683363).epsilon(1e-5));

    // One source reporting both kinds is one source: 1.15 -> 1 - exp(-1.15 / 1.5) = 0.535441
    MemoryLocality same{"L2", "Village", "KE/KE-03"};
    same.add(report, friday, 0.4, 1, "monitor-a");
    same.add(recruitment, friday, 0.5, 1, "monitor-a");
    const auto b = plugin.assess(same.view(friday), friday);
    CHECK(value_of(b, "own_exposure") == Approx(1.15));
    CHECK(b.score == Approx(0.535441).epsilon(1e-5));
    CHECK(value_of(b, "reports") == 2);  // one of each kind
}

TEST_CASE("group_presence method: neighbours' corroborated reports spill over", "[plugins]") {
    const auto plugin = configured();
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    MemoryLocality nb{"L2", "Next", "KE/KE-03"};
    nb.add(report, friday, 0.4, 1, "monitor-a");
    nb.add(report, friday, 0.6, 1, "monitor-b");
    loc.add_neighbour(nb);
    const auto a = plugin.assess(loc.view(friday), friday);
    // spill = 0.3 * (0.4 + 0.6) * 1.5 = 0.45 -> 1 - exp(-0.3) = 0.259182
    CHECK(value_of(a, "spill_exposure") == Approx(0.45));
    CHECK(a.score == Approx(0.259182).epsilon(1e-5));
    CHECK(value_of(a, "corroborated_buckets") == 0);  // the locality's own reports only
}

TEST_CASE("group_presence method: corroboration_bonus is checked", "[plugins]") {
    GroupPresence plugin;
    const auto d = plugin.describe();
    CHECK(d.version == "1.1.0");
    const auto spec =
        std::find_if(d.params.begin(), d.params.end(),
                     [](const ews::sdk::ParamSpec& s) { return s.name == "corroboration_bonus"; });
    REQUIRE(spec != d.params.end());
    CHECK(spec->type == ews::sdk::ParamType::number);
    CHECK(std::get<double>(spec->default_value) == 0.5);
    CHECK(spec->min == 0.0);
    CHECK(spec->max == 5.0);
    CHECK_NOTHROW(plugin.configure({{"corroboration_bonus", 0.0}}));
    CHECK_NOTHROW(plugin.configure({{"corroboration_bonus", 5.0}}));
    CHECK_NOTHROW(plugin.configure({{"corroboration_bonus", std::int64_t{2}}}));
    for (const ews::sdk::ParamValue& bad :
         {ews::sdk::ParamValue{-0.01}, ews::sdk::ParamValue{5.01},
          ews::sdk::ParamValue{std::string("high")}, ews::sdk::ParamValue{true}}) {
        try {
            plugin.configure({{"corroboration_bonus", bad}});
            FAIL("a bad corroboration_bonus was accepted");
        } catch (const ConfigError& e) {
            CHECK(e.key() == "corroboration_bonus");
        }
    }

    // A refused value keeps the settings in force: bonus 0 survives a refused 6, so two
    // sources of 0.4 and 0.6 stay the plain sum 1.0.
    plugin.configure({{"corroboration_bonus", 0.0}});
    CHECK_THROWS_AS(plugin.configure({{"corroboration_bonus", 6.0}}), ConfigError);
    MemoryLocality two{"L1", "Village", "KE/KE-03"};
    two.add(report, friday, 0.4, 1, "monitor-a");
    two.add(report, friday, 0.6, 1, "monitor-b");
    CHECK(value_of(plugin.assess(two.view(friday), friday), "own_exposure") == Approx(1.0));
}
