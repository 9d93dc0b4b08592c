// Pipeline: store, plugins, engine, scoring, alerting and outbox wired together, with a real
// SQLite file and a real fixture plugin (.so), no sockets.
#include "pipeline.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <fstream>
#include <map>
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

namespace {

void add_plugin(const TempDir& tmp, const std::string& fixture) {
    fs::copy_file(fs::path(EWS_FIXTURE_DIR) / fixture, tmp.path / "plugins" / fixture);
}

void two_localities(const Config& config) {
    fs::create_directories(config.state_dir);
    Store store(config.state_dir / "ewsd.db");
    store.upsert_localities({{"A", "Alpha", "N/N1", 100.0, {}}, {"B", "Beta", "S/S1", std::nullopt, {}}});
}

// The plugin_quarantined events among `rows` of `endpoint`, as "plugin@seq".
std::vector<std::string> quarantine_events(const std::vector<OutboxRow>& rows,
                                           const std::string& endpoint) {
    std::vector<std::string> out;
    for (const auto& r : rows) {
        if (r.endpoint != endpoint || r.topic != plugin_ops_topic) continue;
        auto j = nlohmann::json::parse(r.payload);
        CHECK(j["schema"] == "ews.ops/1");
        CHECK(j["event"] == "plugin_quarantined");
        CHECK(j["seq"].get<std::uint64_t>() == r.seq);
        CHECK(r.alert_id.empty());
        CHECK(r.locality.empty());
        out.push_back(j["plugin"].get<std::string>() + "@" + std::to_string(r.seq));
    }
    return out;
}

}  // namespace

TEST_CASE("a plugin that keeps failing is quarantined while the healthy one goes on",
          "[pipeline]") {
    TempDir tmp;
    add_plugin(tmp, "fixture_throws.so");
    add_plugin(tmp, "fixture_nan.so");
    Config config = make_config(tmp.path);
    config.quarantine_after = 2;
    two_localities(config);
    const auto t0 = *parse_time("2026-03-01");
    write(tmp.path / "high.csv",
          "locality,time,kind,value\nA,2026-02-27,test.signal,9\nB,2026-02-27,test.signal,9\n");
    write(tmp.path / "low.csv", "locality,time,kind,value\nA,2026-03-02,test.signal,0\n");

    {
        Pipeline p(config);
        REQUIRE(p.plugins().loaded.size() == 3);
        REQUIRE(p.ingest(tmp.path / "high.csv", t0).committed);
        // First failing evaluation: errors are contained, the good plugin raises alerts.
        auto rows = p.evaluate(t0, true);
        CHECK(events_of(rows, "all") == std::vector<std::string>{"A:raised:critical", "B:raised:critical"});
        CHECK(p.last_evaluation().failed_assessments == 4);
        CHECK(p.plugins().loaded.size() == 3);
        CHECK(p.plugin_calls().at("fixture_assess_throws").errors == 2);

        // Second failing evaluation (incremental, A only): quarantined. A's own score fell,
        // but with two indicators failing the alert is held, not resolved: a failing plugin
        // is missing data, and missing data is not safety.
        REQUIRE(p.ingest(tmp.path / "low.csv", t0 + std::chrono::days(2)).committed);
        rows = p.evaluate(t0 + std::chrono::days(2), false);
        std::vector<OutboxRow> alerts;
        for (const auto& r : rows)
            if (r.topic != plugin_ops_topic) alerts.push_back(r);
        CHECK(alerts.empty());
        CHECK(quarantine_events(rows, "all") ==
              std::vector<std::string>{"fixture_assess_throws@3", "fixture_nan_score@4"});
        // Not scoped by region: the north endpoint gets them too.
        CHECK(quarantine_events(rows, "north") ==
              std::vector<std::string>{"fixture_assess_throws@2", "fixture_nan_score@3"});
        CHECK(p.last_seq("all") == 4);
        auto committed = p.store().outbox_after("all", 2, 10);
        REQUIRE(committed.size() == 2);
        CHECK(committed[0].topic == "ops/plugin/");
        auto payload = nlohmann::json::parse(committed[0].payload);
        CHECK(payload["file"] == (tmp.path / "plugins" / "fixture_throws.so").string());
        CHECK_THAT(payload["reason"].get<std::string>(),
                   Catch::StartsWith("failed 2 evaluations in a row (last: 1 of 1 assessments "
                                     "failed, first: plugin threw: boom)"));
        CHECK(payload["at"] == "2026-03-03T00:00:00Z");

        REQUIRE(p.plugins().loaded.size() == 1);
        CHECK(p.plugins().loaded[0].name() == "fixture_good");
        CHECK(p.plugins().quarantined.size() == 2);
        CHECK(p.quarantine().entries().size() == 2);

        // Later evaluations run without them and publish no further ops event; with only
        // fresh data left, A's alert now resolves.
        rows = p.evaluate(t0 + std::chrono::days(3), true);
        CHECK(quarantine_events(rows, "all").empty());
        CHECK(events_of(rows, "all") == std::vector<std::string>{"A:resolved:none"});
        CHECK(p.last_evaluation().failed_assessments == 0);
    }
    {
        // A restart does not even load them; a new version of a file lifts its quarantine.
        Pipeline p(config);
        CHECK(p.plugins().loaded.size() == 1);
        REQUIRE(p.plugins().quarantined.size() == 2);
        CHECK_THAT(p.plugins().quarantined[0].reason, Catch::StartsWith("failed 2 evaluations"));
    }
    const fs::path throws = tmp.path / "plugins" / "fixture_throws.so";
    fs::copy_file(fs::path(EWS_FIXTURE_DIR) / "fixture_sleeps.so", throws.string() + ".new");
    fs::rename(throws.string() + ".new", throws);
    {
        Pipeline p(config);
        CHECK(p.plugins().find("fixture_sleeps"));
        REQUIRE(p.plugins().quarantined.size() == 1);
        CHECK(p.plugins().quarantined[0].file.filename() == "fixture_nan.so");
        CHECK(p.quarantine().entries().size() == 1);
    }
}

TEST_CASE("a reload gives the plugins a clean record of failing evaluations", "[pipeline]") {
    TempDir tmp;
    add_plugin(tmp, "fixture_throws.so");
    Config config = make_config(tmp.path);
    config.quarantine_after = 2;
    two_localities(config);
    const auto t0 = *parse_time("2026-03-01");
    Pipeline p(config);
    p.evaluate(t0, true);  // failing
    CHECK(p.plugins().loaded.size() == 2);
    p.reconfigure(config, p.load_plugin_set(config));
    p.evaluate(t0, true);  // failing, but only the first in a row
    CHECK(p.plugins().loaded.size() == 2);
    CHECK(p.plugins().quarantined.empty());
}

TEST_CASE("a crash marker left at start quarantines the plugin it names", "[pipeline]") {
    TempDir tmp;
    Config config = make_config(tmp.path);
    two_localities(config);
    const fs::path good = tmp.path / "plugins" / "fixture_good.so";
    {
        // As a process that died inside fixture_good's assess() would have left it.
        auto set = load_plugins(config.plugin_dir, {});
        REQUIRE(set.loaded.size() == 1);
        PluginCallMarker(config.state_dir).enter(set.loaded[0], *parse_time("2026-03-01T08:30:00Z"));
    }
    {
        Pipeline p(config);
        CHECK(p.plugins().loaded.empty());
        REQUIRE(p.plugins().quarantined.size() == 1);
        CHECK(p.plugins().quarantined[0].file == good);
        const std::string reason = "crashed the daemon (marker left by pid " +
                                   std::to_string(::getpid()) + " at 2026-03-01T08:30:00Z)";
        CHECK(p.plugins().quarantined[0].reason == reason);
        CHECK_FALSE(fs::exists(config.state_dir / "plugin-call.marker"));

        // Announced with the first evaluation, on every endpoint.
        auto rows = p.evaluate(*parse_time("2026-03-02"), true);
        CHECK(quarantine_events(rows, "all") == std::vector<std::string>{"fixture_good@1"});
        CHECK(quarantine_events(rows, "north") == std::vector<std::string>{"fixture_good@1"});
        CHECK(nlohmann::json::parse(rows[0].payload)["reason"] == reason);
        CHECK(quarantine_events(p.evaluate(*parse_time("2026-03-03"), true), "all").empty());
        // A clean evaluation leaves no marker behind.
        CHECK_FALSE(fs::exists(config.state_dir / "plugin-call.marker"));
    }
    {
        Pipeline p(config);  // still held at the next start
        CHECK(p.plugins().loaded.empty());
        CHECK(p.plugins().quarantined.size() == 1);
    }
    // A new build of the plugin, installed by rename, lifts it.
    fs::copy_file(fs::path(EWS_FIXTURE_DIR) / "fixture_good.so", good.string() + ".new");
    fs::rename(good.string() + ".new", good);
    Pipeline p(config);
    CHECK(p.plugins().find("fixture_good"));
    CHECK(p.plugins().quarantined.empty());
    CHECK(p.quarantine().entries().empty());
}

TEST_CASE("a crash marker for a file replaced since quarantines nothing", "[pipeline]") {
    TempDir tmp;
    Config config = make_config(tmp.path);
    two_localities(config);
    const fs::path good = tmp.path / "plugins" / "fixture_good.so";
    {
        auto set = load_plugins(config.plugin_dir, {});
        REQUIRE(set.loaded.size() == 1);
        PluginCallMarker(config.state_dir).enter(set.loaded[0], wall_now());
    }
    fs::copy_file(fs::path(EWS_FIXTURE_DIR) / "fixture_good.so", good.string() + ".new");
    fs::rename(good.string() + ".new", good);
    Pipeline p(config);
    CHECK(p.plugins().find("fixture_good"));
    CHECK(p.plugins().quarantined.empty());
    CHECK(quarantine_events(p.evaluate(*parse_time("2026-03-02"), true), "all").empty());
}

TEST_CASE("an incremental evaluation in the second of the last one takes only new localities",
          "[pipeline]") {
    TempDir tmp;
    const Config config = make_config(tmp.path);
    fs::create_directories(config.state_dir);
    {
        Store store(config.state_dir / "ewsd.db");
        store.upsert_localities({{"A", "Alpha", "N/N1", 100.0, {"B"}},
                                 {"B", "Beta", "S/S1", std::nullopt, {"A"}},
                                 {"C", "Gamma", "S/S1", std::nullopt, {}}});
    }
    const auto t0 = *parse_time("2026-03-01T12:00:00Z");
    write(tmp.path / "high.csv",
          "locality,time,kind,value\nA,2026-02-27,test.signal,9\nB,2026-02-27,test.signal,9\n");
    write(tmp.path / "more.csv",
          "locality,time,kind,value\nA,2026-02-28,test.signal,0\nC,2026-02-28,test.signal,9\n");

    Pipeline p(config);
    CHECK(p.evaluate(t0, true).empty());  // every locality evaluated at t0, nothing to say
    CHECK(p.last_evaluation().localities_assessed == 3);
    CHECK(p.last_evaluation().full);
    const auto t1 = t0 + std::chrono::seconds(1);
    REQUIRE(p.ingest(tmp.path / "high.csv", t1).committed);
    CHECK(events_of(p.evaluate(t1, false), "all") ==
          std::vector<std::string>{"A:raised:critical", "B:raised:critical"});
    CHECK(p.engine().dirty_count() == 0);

    // New data in the same second: C, last evaluated at t0, goes ahead at t1; A (and B, its
    // neighbour) were evaluated at t1 already and stay marked for the next second.
    REQUIRE(p.ingest(tmp.path / "more.csv", t1).committed);
    CHECK(events_of(p.evaluate(t1, false), "all") == std::vector<std::string>{"C:raised:critical"});
    CHECK(p.last_evaluation().localities_assessed == 1);  // status and the log report it
    CHECK(p.engine().dirty_count() == 2);
    // Still the same second: nothing more, nothing lost.
    CHECK(p.evaluate(t1, false).empty());
    CHECK(p.engine().dirty_count() == 2);

    // The next second takes them.
    CHECK(events_of(p.evaluate(t1 + std::chrono::seconds(1), false), "all") ==
          std::vector<std::string>{"A:resolved:none"});
    CHECK(p.engine().dirty_count() == 0);
}

TEST_CASE("an evaluation writes a state that changed, not one whose score or time alone did",
          "[pipeline]") {
    TempDir tmp;
    Config config = make_config(tmp.path);
    config.raise_after = 2;  // a first high reading only makes the level pending
    fs::create_directories(config.state_dir);
    {
        Store store(config.state_dir / "ewsd.db");
        store.upsert_localities({{"A", "Alpha", "N/N1", 100.0, {}},
                                 {"B", "Beta", "S/S1", std::nullopt, {}}});
    }
    write(tmp.path / "low.csv",
          "locality,time,kind,value\nA,2026-02-27,test.signal,1\nB,2026-02-27,test.signal,1\n");
    write(tmp.path / "high.csv", "locality,time,kind,value\nA,2026-02-28,test.signal,9\n");
    const auto t0 = *parse_time("2026-03-01T12:00:00Z");

    Pipeline p(config);
    REQUIRE(p.ingest(tmp.path / "low.csv", t0).committed);
    auto stored = [&] {
        std::map<std::string, AlertState> by_id;
        for (auto& st : p.store().alert_states()) by_id[st.locality] = st;
        return by_id;
    };
    // The first evaluation: the indicator now covers both localities, a change.
    CHECK(p.evaluate(t0, true).empty());
    auto first = stored();
    REQUIRE(first.size() == 2);
    CHECK(first["A"].evaluated_at == t0);

    // The same readings a second later: only the evaluation time moved, nothing is written.
    const auto t1 = t0 + std::chrono::seconds(1);
    CHECK(p.evaluate(t1, true).empty());
    CHECK(stored() == first);

    // A's level becomes pending (no event yet): a change, written for A alone.
    const auto t2 = t0 + std::chrono::seconds(2);
    REQUIRE(p.ingest(tmp.path / "high.csv", t2).committed);
    CHECK(p.evaluate(t2, true).empty());
    auto now_stored = stored();
    REQUIRE(now_stored.size() == 2);
    CHECK(now_stored["A"].pending == Level::critical);
    CHECK(now_stored["A"].pending_count == 1);
    CHECK(now_stored["A"].level == Level::none);
    CHECK(now_stored["A"].evaluated_at == t2);
    CHECK(now_stored["A"].score == Approx(90));
    CHECK(now_stored["B"] == first["B"]);
}
