// Tests of my_indicator against the SDK's in-memory locality: no daemon, no files.
// The plugin is one source file, so it is compiled into this test by including it.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <ews/sdk/testing.hpp>

#include "my_indicator.cpp"

using ews::sdk::testing::day;
using ews::sdk::testing::MemoryLocality;

namespace {

MyIndicator configured(const sdk::Params& params = {}) {
    MyIndicator plugin;
    plugin.configure(params);
    return plugin;
}

}  // namespace

TEST_CASE("no example.count data is no_data, never a score of 0 with confidence") {
    const auto plugin = configured();
    MemoryLocality loc{"L1", "Village", "DM/DM-1"};
    loc.add("other.kind", day(2026, 3, 2), 50);
    const auto now = day(2026, 3, 10);
    const auto a = plugin.assess(loc.view(now), now);
    CHECK(a.status == sdk::Status::no_data);
    CHECK(a.score == 0);
    CHECK(a.confidence == 0);
    CHECK_FALSE(a.newest);
}

TEST_CASE("a rise above the earlier mean scores 1 - exp(-rise / scale)") {
    const auto plugin = configured();
    MemoryLocality loc{"L1", "Village", "DM/DM-1"};
    for (unsigned d : {2u, 9u, 16u, 23u}) loc.add("example.count", day(2026, 2, d), 2);
    loc.add("example.count", day(2026, 3, 2), 6);
    loc.add("example.count", day(2026, 3, 20), 100);  // after now: must not be seen
    const auto now = day(2026, 3, 10);
    const auto a = plugin.assess(loc.view(now), now);
    CHECK(a.status == sdk::Status::ok);
    CHECK(a.score == Approx(1 - std::exp(-4.0 / 2.0)));  // usual 2, rise 4, scale 2: 0.8647
    CHECK(a.confidence == Approx(0.9));                  // four earlier periods
    CHECK(a.newest == day(2026, 3, 2));
    REQUIRE(a.evidence.values.size() == 2);
    CHECK(a.evidence.values[0].name == "count");
    CHECK(a.evidence.values[0].value == 6);
    CHECK(a.evidence.values[0].is_count);  // published as "<5" when below privacy.min_cell
}

TEST_CASE("a steady count scores 0; old data is stale") {
    const auto plugin = configured({{"scale", 5.0}});
    MemoryLocality loc{"L1", "Village", "DM/DM-1"};
    for (unsigned d : {2u, 9u, 16u}) loc.add("example.count", day(2026, 2, d), 3);
    auto now = day(2026, 2, 20);
    CHECK(plugin.assess(loc.view(now), now).score == 0);
    now = day(2026, 4, 1);  // 44 days after the newest point
    CHECK(plugin.assess(loc.view(now), now).status == sdk::Status::stale);
}

TEST_CASE("configure refuses a bad parameter by naming its key") {
    auto key_of = [](const sdk::Params& params) {
        try {
            configured(params);
        } catch (const sdk::ConfigError& e) {
            return e.key();
        }
        return std::string("(accepted)");
    };
    CHECK(key_of({{"scale", 0.0}}) == "scale");
    CHECK(key_of({{"scale", std::string("big")}}) == "scale");
    CHECK(key_of({{"scael", 2.0}}) == "scael");
    CHECK(key_of({{"scale", std::int64_t{3}}}) == "(accepted)");  // an integer is a number
}
