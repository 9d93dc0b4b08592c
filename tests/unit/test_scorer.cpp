#include "scorer.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

using namespace ews;

namespace {

sdk::Assessment assessed(double score, double confidence, sdk::Status status = sdk::Status::ok,
                         sdk::Floor floor = sdk::Floor::none) {
    sdk::Assessment a;
    a.score = score;
    a.confidence = confidence;
    a.status = status;
    a.floor = floor;
    return a;
}

}  // namespace

TEST_CASE("composite is the weighted, confidence-weighted mean", "[scorer]") {
    const std::vector<std::string> names{"a", "b", "c"};
    // a: w 2, c 0.5, s 0.8; b: w 1 (default), c 1, s 0.2; c: w 1, c 0.25, s 1 (stale counts)
    auto c = compose(names,
                     {assessed(0.8, 0.5), assessed(0.2, 1.0),
                      assessed(1.0, 0.25, sdk::Status::stale)},
                     {{"a", 2.0}, {"c", 1.0}});
    const double num = 2 * 0.5 * 0.8 + 1 * 1.0 * 0.2 + 1 * 0.25 * 1.0;  // 1.25
    const double den = 2 * 0.5 + 1 * 1.0 + 1 * 0.25;                   // 2.25
    CHECK(c.score == Approx(100 * num / den));
    CHECK(c.confidence == Approx(den / 4.0));
    REQUIRE(c.contributions.size() == 3);
    CHECK(c.contributions[0].indicator == "a");
    CHECK(c.contributions[0].weight == 2.0);
    CHECK(c.contributions[1].indicator == "b");
    CHECK(c.contributions[1].weight == 1.0);
    CHECK(c.contributions[2].assessment.status == sdk::Status::stale);
    CHECK(c.floor == Level::none);
}

TEST_CASE("no_data and error do not score but lower confidence", "[scorer]") {
    const std::vector<std::string> names{"a", "b", "c"};
    // The high scores of b and c must not leak into the composite.
    auto c = compose(names,
                     {assessed(0.4, 1.0), assessed(1.0, 1.0, sdk::Status::no_data),
                      assessed(1.0, 1.0, sdk::Status::error)},
                     {});
    CHECK(c.score == Approx(40));
    CHECK(c.confidence == Approx(1.0 / 3.0));
    CHECK(c.contributions[1].assessment.status == sdk::Status::no_data);
    CHECK(c.contributions[2].assessment.status == sdk::Status::error);
}

TEST_CASE("missing assessments count as no data", "[scorer]") {
    auto c = compose({"a", "b"}, {assessed(0.6, 1.0)}, {});
    CHECK(c.score == Approx(60));
    CHECK(c.confidence == Approx(0.5));
    REQUIRE(c.contributions.size() == 2);
    CHECK(c.contributions[1].indicator == "b");
    CHECK(c.contributions[1].assessment.status == sdk::Status::no_data);
    CHECK(c.contributions[1].assessment.confidence == 0);
}

TEST_CASE("nothing assessed gives score 0 and confidence 0", "[scorer]") {
    auto none = compose({"a", "b"}, {}, {});
    CHECK(none.score == 0);
    CHECK(none.confidence == 0);
    auto all_gaps = compose({"a"}, {assessed(0.9, 0.9, sdk::Status::no_data)}, {});
    CHECK(all_gaps.score == 0);
    CHECK(all_gaps.confidence == 0);
    auto zero_conf = compose({"a"}, {assessed(0.9, 0.0)}, {});
    CHECK(zero_conf.score == 0);
    CHECK(zero_conf.confidence == 0);
    auto empty = compose({}, {}, {});
    CHECK(empty.score == 0);
    CHECK(empty.confidence == 0);
}

TEST_CASE("floor is the highest any indicator asks for", "[scorer]") {
    auto c = compose({"a", "b", "c"},
                     {assessed(0, 1, sdk::Status::ok, sdk::Floor::watch),
                      assessed(0, 1, sdk::Status::ok, sdk::Floor::warning),
                      assessed(0, 1, sdk::Status::ok, sdk::Floor::none)},
                     {});
    CHECK(c.floor == Level::warning);
    CHECK(compose({"a"}, {assessed(0, 1, sdk::Status::ok, sdk::Floor::critical)}, {}).floor ==
          Level::critical);
    CHECK(compose({"a"}, {assessed(1, 1)}, {}).floor == Level::none);
}

TEST_CASE("non-finite inputs never give non-finite output", "[scorer]") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double inf = std::numeric_limits<double>::infinity();
    for (double bad : {nan, inf, -inf}) {
        auto c = compose({"a", "b"}, {assessed(bad, bad), assessed(0.5, 1.0)},
                         {{"a", 1.0}, {"b", 1.0}});
        CHECK(std::isfinite(c.score));
        CHECK(std::isfinite(c.confidence));
        CHECK(c.score >= 0);
        CHECK(c.score <= 100);
        auto w = compose({"a", "b"}, {assessed(0.5, 1.0), assessed(0.5, 1.0)},
                         {{"a", bad}, {"b", 1e308}});
        CHECK(std::isfinite(w.score));
        CHECK(std::isfinite(w.confidence));
        CHECK(w.confidence <= 1);
    }
}

TEST_CASE("the dominant indicator has the largest share, and no evidence is not a score", "[scorer]") {
    const std::vector<std::string> names{"a", "b", "c"};
    // shares w*c*s: a 1*1*0.3 = 0.3, b 2*0.5*0.6 = 0.6, c stale 1*1*0.5 = 0.5
    auto c = compose(names, {assessed(0.3, 1), assessed(0.6, 0.5), assessed(0.5, 1, sdk::Status::stale)},
                     {{"b", 2.0}});
    CHECK(c.evidence);
    CHECK(c.dominant == 1);

    // Scored with zero confidence, or not scored: no evidence and no dominant indicator.
    c = compose(names, {assessed(0.9, 0), assessed(0.9, 1, sdk::Status::no_data),
                        assessed(0.9, 1, sdk::Status::error)},
                {});
    CHECK_FALSE(c.evidence);
    CHECK(c.dominant == -1);

    // Evidence of no risk: scored, but nothing to dominate.
    c = compose(names, {assessed(0, 1), assessed(0, 1), assessed(0, 1)}, {});
    CHECK(c.evidence);
    CHECK(c.dominant == -1);

    // Moving the assessments in gives the same composite as copying them.
    std::vector<sdk::Assessment> in{assessed(0.3, 1), assessed(0.6, 0.5), assessed(0.5, 1)};
    in[1].evidence.text = "kept";
    const auto copied = compose(names, in, {});
    const auto moved = compose(names, std::move(in), {});
    CHECK(moved.score == copied.score);
    CHECK(moved.dominant == copied.dominant);
    CHECK(moved.contributions[1].assessment.evidence.text == "kept");
}
