// report::build and the score exports over a real store, filled by the pipeline with a real
// fixture plugin: scope, ranking, published levels (now and at the comparison time), trends,
// and CSV/JSON that spreadsheets and other tools can read.
#include "pipeline.hpp"
#include "report.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>

using namespace ews;
namespace fs = std::filesystem;

namespace {

Config report_config(const fs::path& dir) {
    Config c;
    c.file = dir / "ewsd.toml";
    c.state_dir = dir / "state";
    c.plugin_dir = dir / "plugins";
    c.spool_dir = dir / "state" / "spool";
    c.publish = {{"all", "", ""}, {"north", "", "N"}};
    c.raise_after = 1;
    c.clear_after = 1;
    c.actions[Level::critical] = {"Convene the committee within 48 hours"};
    c.actions[Level::warning] = {"Convene the committee within a week"};
    return c;
}

// Localities A, B, C in N (C in N/N2), D in S; test.signal values make A critical (9),
// C warning (7), B watch (5), D critical (9) from the first evaluation on; A falls to 4.5
// a week later.
Config filled_store(const fs::path& dir, TimePoint t0) {
    fs::create_directories(dir / "plugins");
    fs::copy_file(fs::path(EWS_FIXTURE_DIR) / "fixture_good.so", dir / "plugins" / "fixture_good.so");
    const Config config = report_config(dir);
    fs::create_directories(config.state_dir);
    {
        Store store(config.state_dir / "ewsd.db");
        store.upsert_localities({{"A", "Alpha", "N/N1", 100.0, {"B"}},
                                 {"B", "Beta, the \"second\"", "N/N1", 50.0, {"A"}},
                                 {"C", "=Gamma", "N/N2", std::nullopt, {}},
                                 {"D", "Delta", "S/S1", std::nullopt, {}}});
    }
    std::ofstream(dir / "first.csv") << "locality,time,kind,value\n"
                                        "A,2026-02-27,test.signal,9\nB,2026-02-27,test.signal,5\n"
                                        "C,2026-02-27,test.signal,7\nD,2026-02-27,test.signal,9\n";
    // A falls to watch a week later.
    std::ofstream(dir / "second.csv") << "locality,time,kind,value\nA,2026-03-06,test.signal,4.5\n";
    Pipeline p(config);
    REQUIRE(p.ingest(dir / "first.csv", t0).committed);
    p.evaluate(t0, true);
    REQUIRE(p.ingest(dir / "second.csv", t0 + std::chrono::days(7)).committed);
    p.evaluate(t0 + std::chrono::days(7), true);
    return config;
}

std::vector<std::string> ids(const report::Report& r) {
    std::vector<std::string> out;
    for (const auto& row : r.rows) out.push_back(row.id);
    return out;
}

}  // namespace

TEST_CASE("report build ranks the localities in scope by published level and score", "[report]") {
    testing::TempDir tmp;
    const TimePoint t0 = *parse_time("2026-03-01");
    const Config config = filled_store(tmp.path(), t0);
    const TimePoint t1 = t0 + std::chrono::days(7);

    report::Options o;
    o.region = "N";
    o.at = t1;
    o.periods = 3;
    o.compare_days = 3;  // compared with t1 - 3 days: after the first evaluation
    const report::Report r = report::build(config, o);

    CHECK(r.scope == "N");
    CHECK(r.localities == 3);
    // C warning (70), then B (50) and A (45) at watch; D is outside the scope.
    CHECK(ids(r) == std::vector<std::string>{"C", "B", "A"});
    REQUIRE(r.rows.size() == 3);
    CHECK(r.rows[0].level == Level::warning);
    CHECK(r.rows[2].level == Level::watch);
    CHECK(r.rows[2].before == Level::critical);  // A was critical after the first evaluation
    CHECK(r.rows[0].score == Approx(70.0));
    CHECK(r.rows[0].actions == std::vector<std::string>{"Convene the committee within a week"});
    CHECK_FALSE(r.rows[0].alert_id.empty());
    REQUIRE(r.periods.size() == 3);
    CHECK(r.periods.back() == t1);
    CHECK(r.periods.front() == t1 - std::chrono::days(14));
    // A's trend: no data two weeks before, 90 a week before, 45 now.
    const auto& a = r.rows[2];
    REQUIRE(a.trend.size() == 3);
    CHECK(std::isnan(a.trend[0]));
    CHECK(a.trend[1] == Approx(90.0));
    CHECK(a.trend[2] == Approx(45.0));
    REQUIRE(a.indicator_trend.size() == 1);
    CHECK(a.indicator_trend[0][2] == Approx(0.45));
    // A's marks: raised critical, then deescalated to watch, both within the periods.
    REQUIRE(a.marks.size() == 2);
    CHECK(a.marks[0].event == "raised");
    CHECK(a.marks[1].event == "deescalated");
    CHECK(a.marks[1].level == Level::watch);
    REQUIRE(a.indicators.size() == 1);
    CHECK(a.dominant == 0);
    CHECK(a.indicators[0].evidence == "latest test.signal value");
    // Totals and regions cover the scope only.
    CHECK(r.total_now[std::size_t(Level::warning)] == 1);
    CHECK(r.total_now[std::size_t(Level::watch)] == 2);
    CHECK(r.total_before[std::size_t(Level::critical)] == 1);
    REQUIRE(r.regions.size() == 2);
    CHECK(r.regions[0].region == "N/N1");
    CHECK(r.regions[1].region == "N/N2");
    CHECK(r.published_events > 0);

    SECTION("levels before the first evaluation are none") {
        o.compare_days = 28;
        const report::Report early = report::build(config, o);
        for (const auto& row : early.rows) CHECK(row.before == Level::none);
        CHECK(early.total_before[0] == 3);
    }
    SECTION("a past --at takes the levels published by then") {
        o.at = t0 + std::chrono::days(1);
        const report::Report past = report::build(config, o);
        REQUIRE(past.rows.size() == 3);
        CHECK(past.rows[0].id == "A");
        CHECK(past.rows[0].level == Level::critical);
        CHECK(std::isnan(past.rows[0].trend[0]));
    }
    SECTION("every region: D joins and ranks first") {
        o.region = "";
        const report::Report all = report::build(config, o);
        CHECK(ids(all) == std::vector<std::string>{"D", "C", "B", "A"});
    }
}

TEST_CASE("report build refuses bad options and a missing database", "[report]") {
    testing::TempDir tmp;
    Config config = report_config(tmp.path());
    report::Options o;
    o.region = "N//x";
    CHECK_THROWS_AS(report::build(config, o), std::invalid_argument);
    o.region = "";
    o.periods = 0;
    CHECK_THROWS_AS(report::build(config, o), std::invalid_argument);
    o.periods = 12;
    CHECK_THROWS_WITH(report::build(config, o), Catch::Contains("no database"));
    CHECK_FALSE(fs::exists(config.state_dir / "ewsd.db"));
}

TEST_CASE("scores exports: CSV quoting, formulas neutralised, JSON per locality", "[report]") {
    testing::TempDir tmp;
    const TimePoint t0 = *parse_time("2026-03-01");
    const Config config = filled_store(tmp.path(), t0);
    report::Options o;
    o.at = t0 + std::chrono::days(7);
    o.trends = false;
    const report::Report r = report::build(config, o);
    CHECK(r.periods.size() == 1);

    const std::string csv = report::scores_csv(r);
    CHECK(csv.rfind("id,name,region,level,score,confidence,dominant,newest,fixture_good_score,"
                    "fixture_good_status,fixture_good_newest\n", 0) == 0);
    CHECK(csv.find("D,Delta,S/S1,critical,90.0,1.000,fixture_good,2026-02-27T00:00:00Z,0.900,ok,") !=
          std::string::npos);
    CHECK(csv.find("\"Beta, the \"\"second\"\"\"") != std::string::npos);
    CHECK(csv.find(",'=Gamma,") != std::string::npos);
    CHECK(std::count(csv.begin(), csv.end(), '\n') == 5);

    const auto j = nlohmann::json::parse(report::scores_json(r));
    CHECK(j["schema"] == "ews.scores/1");
    CHECK(j["scope"] == "");
    REQUIRE(j["localities"].size() == 4);
    CHECK(j["localities"][0]["id"] == "D");
    CHECK(j["localities"][0]["level"] == "critical");
    CHECK(j["localities"][0]["dominant"] == "fixture_good");
    CHECK(j["localities"][0]["indicators"][0]["evidence"]["values"]["test.signal"] == 9);
    CHECK(j["localities"][1]["name"] == "=Gamma");  // JSON needs no neutralising
}
