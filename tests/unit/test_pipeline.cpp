// Pipeline: store, plugins, engine, scoring, alerting and outbox wired together, with a real
// SQLite file and a real fixture plugin (.so), no sockets.
#include "pipeline.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <random>

using namespace ews;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        path = fs::temp_directory_path() / ("ews-pipeline-" + std::to_string(std::random_device{}()));
        fs::create_directories(path / "plugins");
        fs::copy_file(fs::path(EWS_FIXTURE_DIR) / "fixture_good.so", path / "plugins" / "fixture_good.so");
    }
    ~TempDir() { fs::remove_all(path); }
};

Config make_config(const fs::path& dir) {
    Config c;
    c.file = dir / "ewsd.toml";
    c.state_dir = dir / "state";
    c.plugin_dir = dir / "plugins";
    c.spool_dir = dir / "state" / "spool";
    c.publish = {{"all", "", ""}, {"north", "", "N/N1"}};
    c.raise_after = 1;
    c.clear_after = 1;
    c.actions[Level::critical] = {"Activate referral pathways"};
    return c;
}

void write(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

std::vector<std::string> events_of(const std::vector<OutboxRow>& rows, const std::string& endpoint) {
    std::vector<std::string> out;
    for (const auto& r : rows)
        if (r.endpoint == endpoint) {
            auto j = nlohmann::json::parse(r.payload);
            CHECK(j["seq"].get<std::uint64_t>() == r.seq);
            out.push_back(j["locality"]["id"].get<std::string>() + ":" + j["event"].get<std::string>() +
                          ":" + j["level"].get<std::string>());
        }
    return out;
}

}  // namespace

TEST_CASE("in_scope matches whole region segments", "[pipeline]") {
    CHECK(in_scope("KE/KE-03/KE-030", ""));
    CHECK(in_scope("KE/KE-03/KE-030", "KE/KE-03"));
    CHECK(in_scope("KE/KE-03", "KE/KE-03/"));
    CHECK_FALSE(in_scope("KE/KE-030", "KE/KE-03"));
    CHECK_FALSE(in_scope("UG/UG-01", "KE"));
}

TEST_CASE("events reach each endpoint's outbox in scope, gapless, and survive a restart",
          "[pipeline]") {
    TempDir tmp;
    const Config config = make_config(tmp.path);
    fs::create_directories(config.state_dir);
    {
        Store store(config.state_dir / "ewsd.db");
        store.upsert_localities({{"A", "Alpha", "N/N1", 100.0, {"B"}}, {"B", "Beta", "S/S1", std::nullopt, {"A"}}});
    }
    const auto t0 = *parse_time("2026-03-01");
    write(tmp.path / "high.csv",
          "locality,time,kind,value\nA,2026-02-27,test.signal,9\nB,2026-02-27,test.signal,9\n");
    write(tmp.path / "low.csv", "locality,time,kind,value\nA,2026-03-02,test.signal,0\n");

    {
        Pipeline p(config);
        REQUIRE(p.plugins().loaded.size() == 1);
        auto in = p.ingest(tmp.path / "high.csv", t0);
        REQUIRE(in.committed);
        auto rows = p.evaluate(t0, true);
        CHECK(events_of(rows, "all") == std::vector<std::string>{"A:raised:critical", "B:raised:critical"});
        // The scoped endpoint numbers only what it publishes: no false gap for its subscribers.
        CHECK(events_of(rows, "north") == std::vector<std::string>{"A:raised:critical"});
        CHECK(p.last_seq("all") == 2);
        CHECK(p.last_seq("north") == 1);
        CHECK(p.open_alerts()[3] == 2);
        auto payload = nlohmann::json::parse(rows.front().payload);
        CHECK(payload["actions"] == nlohmann::json::array({"Activate referral pathways"}));
    }
    {
        // A restart continues where it stopped: the open alerts are not raised again.
        Pipeline p(config);
        CHECK(p.evaluate(t0 + std::chrono::hours(1), true).empty());
        CHECK(p.open_alerts()[3] == 2);
        auto in = p.ingest(tmp.path / "low.csv", t0 + std::chrono::days(2));
        REQUIRE(in.committed);
        auto rows = p.evaluate(t0 + std::chrono::days(2), false);
        CHECK(events_of(rows, "all") == std::vector<std::string>{"A:resolved:none"});
        CHECK(events_of(rows, "north") == std::vector<std::string>{"A:resolved:none"});
        CHECK(p.last_seq("all") == 3);
        CHECK(p.last_seq("north") == 2);
        auto replay = p.store().outbox_after("north", 0, 10);
        REQUIRE(replay.size() == 2);
        CHECK(replay[0].seq == 1);
        CHECK(replay[1].seq == 2);
    }
}
