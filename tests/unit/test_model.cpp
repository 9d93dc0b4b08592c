#include "model.hpp"

#include <catch2/catch.hpp>

using namespace ews;

TEST_CASE("times round-trip through RFC 3339", "[model]") {
    auto t = parse_time("2026-03-04T05:06:07Z");
    REQUIRE(t);
    CHECK(format_time(*t) == "2026-03-04T05:06:07Z");
    CHECK(format_time(*parse_time("2026-03-04")) == "2026-03-04T00:00:00Z");
    CHECK(format_time(*parse_time("2026-03-04 05:06:07.250+00:00")) == "2026-03-04T05:06:07Z");
}

TEST_CASE("malformed or non-UTC times are refused", "[model]") {
    for (const char* bad : {"", "2026", "2026-13-01", "2026-02-30", "2026-01-01T25:00:00Z",
                            "2026-01-01T10:00:00+02:00", "20260101", "2026-01-01x", "nan"})
        CHECK_FALSE(parse_time(bad));
}

TEST_CASE("levels have names", "[model]") {
    CHECK(parse_level("warning") == Level::warning);
    CHECK_FALSE(parse_level("severe"));
    CHECK(to_string(Level::critical) == "critical");
}
