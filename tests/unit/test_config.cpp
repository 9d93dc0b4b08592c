#include "config.hpp"
#include "curve.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

using namespace ews;
namespace fs = std::filesystem;

namespace {

// A fresh directory per test case, removed at the end.
struct TempDir {
    fs::path path;
    TempDir() {
        path = fs::temp_directory_path() / ("ews_test_config_" + std::to_string(::getpid()) +
                                            "_" + std::to_string(counter()++));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    static int& counter() {
        static int n = 0;
        return n;
    }
    fs::path write(const std::string& name, const std::string& text) const {
        fs::path p = path / name;
        std::ofstream(p, std::ios::binary) << text;
        return p;
    }
};

const std::string minimal =
    "[daemon]\nstate_dir = \"/var/lib/ewsd\"\nplugin_dir = \"/usr/lib/ewsd\"\n";

// Returns: the ConfigError message of loading `text`, or "" when it loads.
std::string error_of(const TempDir& dir, const std::string& text) {
    auto file = dir.write("ewsd.toml", text);
    try {
        load_config(file);
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("a full configuration loads with every value", "[config]") {
    TempDir dir;
    auto file = dir.write("ewsd.toml", R"(
[daemon]
state_dir = "/var/lib/ewsd"
plugin_dir = "/usr/lib/ewsd/plugins"
evaluate_every_s = 30
heartbeat_s = 2
log_level = "debug"

[ingest]
spool_dir = "/var/spool/ewsd"
policy = "reject_file"
future_tolerance_s = 3600

[[publish]]
name = "national"
bind = "tcp://127.0.0.1:7601"

[[publish]]
bind = "tcp://127.0.0.1:7602"
scope = "KE/KE-03"

[query]
bind = "tcp://127.0.0.1:7700"
endpoint = "publish2"

[scoring]
raise_after = 3
clear_after = 4

[scoring.weights]
school_dropout = 1.5
community_incidents = 2

[scoring.levels.watch]
raise = 35
clear = 25.5
[scoring.levels.warning]
raise = 55
clear = 45
[scoring.levels.critical]
raise = 85
clear = 75

[privacy]
min_cell = 10

[plugins.community_incidents]
sentinel = true
window_days = 28
threshold = 0.75
label = "incidents"
categories = ["abduction", "recruitment_attempt"]
category_weights = { abduction = 3, armed_violence = 0.5 }

[actions]
watch = ["Convene the community child-protection committee"]
critical = ["Activate referral pathways", "Notify the district officer"]
)");
    Config c = load_config(file);
    CHECK(c.file == fs::absolute(file).lexically_normal());
    CHECK(c.state_dir == "/var/lib/ewsd");
    CHECK(c.plugin_dir == "/usr/lib/ewsd/plugins");
    CHECK(c.evaluate_every == std::chrono::seconds(30));
    CHECK(c.heartbeat == std::chrono::seconds(2));
    CHECK(c.log_level == "debug");
    CHECK(c.spool_dir == "/var/spool/ewsd");
    CHECK(c.policy == RejectPolicy::reject_file);
    CHECK(c.future_tolerance == std::chrono::seconds(3600));
    REQUIRE(c.publish.size() == 2);
    CHECK(c.publish[0].name == "national");
    CHECK(c.publish[0].bind == "tcp://127.0.0.1:7601");
    CHECK(c.publish[0].scope.empty());
    CHECK(c.publish[1].name == "publish2");
    CHECK(c.publish[1].scope == "KE/KE-03");
    CHECK(c.query_bind == "tcp://127.0.0.1:7700");
    CHECK(c.query_endpoint == "publish2");
    CHECK(c.raise_after == 3);
    CHECK(c.clear_after == 4);
    CHECK(c.weights == std::map<std::string, double>{{"community_incidents", 2.0},
                                                      {"school_dropout", 1.5}});
    CHECK(c.thresholds(Level::watch).raise == 35);
    CHECK(c.thresholds(Level::watch).clear == 25.5);
    CHECK(c.thresholds(Level::warning).raise == 55);
    CHECK(c.thresholds(Level::critical).clear == 75);
    CHECK(c.min_cell == 10);

    REQUIRE(c.plugin_params.count("community_incidents") == 1);
    const auto& p = c.plugin_params.at("community_incidents");
    CHECK(std::get<bool>(p.at("sentinel")) == true);
    CHECK(std::get<std::int64_t>(p.at("window_days")) == 28);
    CHECK(std::get<double>(p.at("threshold")) == 0.75);
    CHECK(std::get<std::string>(p.at("label")) == "incidents");
    CHECK(std::get<std::vector<std::string>>(p.at("categories")) ==
          std::vector<std::string>{"abduction", "recruitment_attempt"});
    CHECK(std::get<std::map<std::string, double>>(p.at("category_weights")) ==
          std::map<std::string, double>{{"abduction", 3.0}, {"armed_violence", 0.5}});
    const std::string label = file.string();
    CHECK(c.plugin_param_where.at("community_incidents.sentinel") == label + ":48:1");
    CHECK(c.plugin_param_where.at("community_incidents.category_weights") == label + ":53:1");

    CHECK(c.actions.at(Level::watch) ==
          std::vector<std::string>{"Convene the community child-protection committee"});
    CHECK(c.actions.at(Level::critical).size() == 2);
    CHECK(c.actions.count(Level::warning) == 0);
}

TEST_CASE("defaults apply when optional sections are absent", "[config]") {
    TempDir dir;
    Config c = load_config(dir.write("ewsd.toml", minimal));
    CHECK(c.evaluate_every == std::chrono::seconds(60));
    CHECK(c.heartbeat == std::chrono::seconds(5));
    CHECK(c.log_level == "info");
    CHECK(c.spool_dir == "/var/lib/ewsd/spool");
    CHECK(c.policy == RejectPolicy::partial);
    CHECK(c.future_tolerance == std::chrono::seconds(86400));
    CHECK(c.publish.empty());
    CHECK(c.query_bind.empty());
    CHECK(c.thresholds(Level::watch).raise == 40);
    CHECK(c.thresholds(Level::critical).clear == 70);
    CHECK(c.raise_after == 2);
    CHECK(c.clear_after == 3);
    CHECK(c.min_cell == 5);
    CHECK(c.plugin_params.empty());
}

TEST_CASE("relative paths resolve against the config file's directory", "[config]") {
    TempDir dir;
    fs::create_directories(dir.path / "etc");
    auto file = dir.write("etc/ewsd.toml",
                          "[daemon]\nstate_dir = \"state\"\nplugin_dir = \"../plugins\"\n"
                          "[ingest]\nspool_dir = \"./in/spool\"\n");
    Config c = load_config(file);
    auto base = fs::absolute(dir.path).lexically_normal();
    CHECK(c.file == base / "etc" / "ewsd.toml");
    CHECK(c.state_dir == base / "etc" / "state");
    CHECK(c.plugin_dir == base / "plugins");
    CHECK(c.spool_dir == base / "etc" / "in" / "spool");

    // The default spool follows a relative state_dir too.
    Config d = load_config(dir.write("etc/ewsd.toml",
                                     "[daemon]\nstate_dir = \"s\"\nplugin_dir = \"p\"\n"));
    CHECK(d.spool_dir == base / "etc" / "s" / "spool");
}

TEST_CASE("the query endpoint defaults to the first publish endpoint", "[config]") {
    TempDir dir;
    Config c = load_config(dir.write("ewsd.toml", minimal +
                                                      "[[publish]]\nbind = \"tcp://*:1\"\n"
                                                      "[[publish]]\nbind = \"tcp://*:2\"\n"
                                                      "[query]\nbind = \"tcp://*:3\"\n"));
    CHECK(c.query_endpoint == "publish1");
}

TEST_CASE("a publish endpoint may have its own query endpoint", "[config]") {
    TempDir dir;
    const std::string f = (dir.path / "ewsd.toml").string();
    Config c = load_config(dir.write("ewsd.toml", minimal +
                                                      "[[publish]]\nname = \"ke03\"\nbind = \"tcp://*:1\"\n"
                                                      "scope = \"KE/KE-03\"\nquery = \"tcp://*:2\"\n"
                                                      "[[publish]]\nbind = \"tcp://*:3\"\n"));
    REQUIRE(c.publish.size() == 2);
    CHECK(c.publish[0].query_bind == "tcp://*:2");
    CHECK(c.publish[1].query_bind.empty());
    CHECK(c.query_bind.empty());

    // Lines: 4 [[publish]], 5 name or bind, 6 bind or query ...
    CHECK(error_of(dir, minimal + "[[publish]]\nbind = \"tcp://*:1\"\nquery = \"tcp://*:1\"\n") ==
          f + ":6:9: publish[1].query: endpoint 'tcp://*:1' is this endpoint's own bind; the query "
              "endpoint needs another");
    CHECK(error_of(dir, minimal + "[[publish]]\nname = \"a\"\nbind = \"tcp://*:1\"\nquery = \"tcp://*:2\"\n"
                                  "[[publish]]\nbind = \"tcp://*:2\"\n") ==
          f + ":9:8: publish[2].bind: endpoint 'tcp://*:2' is already bound by the query endpoint of "
              "[[publish]] 'a'");
    CHECK(error_of(dir, minimal + "[[publish]]\nname = \"a\"\nbind = \"tcp://*:1\"\n"
                                  "[[publish]]\nbind = \"tcp://*:2\"\nquery = \"tcp://*:1\"\n") ==
          f + ":9:9: publish[2].query: endpoint 'tcp://*:1' is already bound by [[publish]] 'a'");
    CHECK(error_of(dir, minimal + "[[publish]]\nname = \"a\"\nbind = \"tcp://*:1\"\nquery = \"tcp://*:2\"\n"
                                  "[query]\nbind = \"tcp://*:2\"\n") ==
          f + ":9:8: query.bind: endpoint 'tcp://*:2' is already bound by the query endpoint of "
              "[[publish]] 'a'");
    CHECK(error_of(dir, minimal + "[[publish]]\nbind = \"tcp://*:1\"\nquery = 7\n") ==
          f + ":6:9: publish[1].query: expected a non-empty string, got integer");
}

TEST_CASE("[metrics] bind takes a numeric address and port", "[config]") {
    TempDir dir;
    const std::string f = (dir.path / "ewsd.toml").string();
    CHECK(load_config(dir.write("ewsd.toml", minimal)).metrics_bind.empty());  // off unless asked for
    CHECK(load_config(dir.write("ewsd.toml", minimal + "[metrics]\nbind = \"127.0.0.1:9464\"\n")).metrics_bind ==
          "127.0.0.1:9464");
    CHECK(load_config(dir.write("ewsd.toml", minimal + "[metrics]\nbind = \"[::1]:9464\"\n")).metrics_bind ==
          "[::1]:9464");
    const std::string bad = error_of(dir, minimal + "[metrics]\nbind = \"localhost:9464\"\n");
    CHECK(bad.rfind(f + ":5:8: metrics.bind: ", 0) == 0);
    CHECK(bad.find("localhost:9464") != std::string::npos);
    CHECK(error_of(dir, minimal + "[metrics]\nport = 9464\n").rfind(f + ":5:1: metrics.port: ", 0) == 0);
}

TEST_CASE("config errors name file, line, column and key", "[config]") {
    TempDir dir;
    const std::string f = (dir.path / "ewsd.toml").string();

    SECTION("unknown key") {
        CHECK(error_of(dir, minimal + "evaluate_every = 5\n") ==
              f + ":4:1: daemon.evaluate_every: unknown key (expected one of: state_dir, "
                  "plugin_dir, evaluate_every_s, heartbeat_s, log_level, plugin_budget_ms, "
                  "quarantine_after)");
    }
    SECTION("unknown section") {
        auto e = error_of(dir, minimal + "[scorng]\nraise_after = 2\n");
        CHECK(e.rfind(f + ":4:", 0) == 0);
        CHECK(e.find("scorng: unknown section") != std::string::npos);
    }
    SECTION("unknown key in a nested table") {
        auto e = error_of(dir, minimal + "[scoring.levels.watch]\nraise = 40\nclaer = 30\n");
        CHECK(e == f + ":6:1: scoring.levels.watch.claer: unknown key (expected one of: raise, "
                       "clear)");
    }
    SECTION("wrong type") {
        CHECK(error_of(dir, minimal + "evaluate_every_s = \"60\"\n") ==
              f + ":4:20: daemon.evaluate_every_s: expected a positive integer, got string");
        CHECK(error_of(dir, minimal + "heartbeat_s = 1.5\n") ==
              f + ":4:15: daemon.heartbeat_s: expected a positive integer, got float");
    }
    SECTION("out of range") {
        CHECK(error_of(dir, minimal + "evaluate_every_s = 0\n") ==
              f + ":4:20: daemon.evaluate_every_s: expected a positive integer, got 0");
        CHECK(error_of(dir, minimal + "[scoring]\nraise_after = 101\n") ==
              f + ":5:15: scoring.raise_after: expected an integer in 1..100, got 101");
        CHECK(error_of(dir, minimal + "[privacy]\nmin_cell = 0\n") ==
              f + ":5:12: privacy.min_cell: expected an integer in 1..1000, got 0");
        CHECK(error_of(dir, minimal + "[scoring.weights]\nschool_dropout = 0\n") ==
              f + ":5:18: scoring.weights.school_dropout: expected a number > 0, got 0");
        CHECK(error_of(dir, minimal + "[scoring.levels.watch]\nraise = 140\n") ==
              f + ":5:9: scoring.levels.watch.raise: expected a number in 0..100, got 140");
        CHECK(error_of(dir, minimal + "log_level = \"verbose\"\n") ==
              f + ":4:13: daemon.log_level: expected one of trace, debug, info, warn, error, "
                  "critical, off, got 'verbose'");
        CHECK(error_of(dir, minimal + "[ingest]\npolicy = \"drop\"\n") ==
              f + ":5:10: ingest.policy: expected \"partial\" or \"reject_file\", got 'drop'");
        CHECK(error_of(dir, minimal + "[ingest]\nfuture_tolerance_s = -1\n") ==
              f + ":5:22: ingest.future_tolerance_s: expected a non-negative integer, got -1");
    }
    SECTION("clear at or above raise") {
        CHECK(error_of(dir, minimal + "[scoring.levels.warning]\nraise = 60\nclear = 60\n") ==
              f + ":6:9: scoring.levels.warning.clear: clear (60) must be below raise (60)");
        // Only raise given: the default clear (50) is now above it.
        CHECK(error_of(dir, minimal + "[scoring.levels.warning]\nraise = 45\n") ==
              f + ":5:9: scoring.levels.warning.raise: clear (50) must be below raise (45)");
    }
    SECTION("raise thresholds must increase") {
        auto e = error_of(dir, minimal +
                                   "[scoring.levels.warning]\nraise = 90\nclear = 50\n"
                                   "[scoring.levels.critical]\nraise = 85\nclear = 70\n");
        CHECK_THAT(e, Catch::StartsWith(f + ":8:9: scoring.levels.critical.raise: raise "
                                            "thresholds must increase"));
    }
    SECTION("missing required key") {
        CHECK(error_of(dir, "[daemon]\nplugin_dir = \"/p\"\n") ==
              f + ": daemon.state_dir: required key is missing");
        CHECK(error_of(dir, "[daemon]\nstate_dir = \"/s\"\n") ==
              f + ": daemon.plugin_dir: required key is missing");
        CHECK(error_of(dir, "") == f + ": daemon.state_dir: required key is missing");
        CHECK(error_of(dir, minimal + "[[publish]]\nname = \"a\"\n") ==
              f + ": publish[1].bind: required key is missing");
    }
    SECTION("syntax error") {
        auto e = error_of(dir, minimal + "heartbeat_s = = 3\n");
        CHECK(e.rfind(f + ":4:15: ", 0) == 0);
        CHECK(e.size() > f.size() + 8);
    }
    SECTION("duplicate publish name") {
        CHECK(error_of(dir, minimal +
                                "[[publish]]\nname = \"a\"\nbind = \"tcp://*:1\"\n"
                                "[[publish]]\nname = \"a\"\nbind = \"tcp://*:2\"\n") ==
              f + ":8:8: publish[2].name: duplicate endpoint name 'a'");
        // A default name collides with an explicit one as well.
        CHECK(error_of(dir, minimal +
                                "[[publish]]\nname = \"publish2\"\nbind = \"tcp://*:1\"\n"
                                "[[publish]]\nbind = \"tcp://*:2\"\n")
                  .find("publish[2].name: duplicate endpoint name 'publish2'") !=
              std::string::npos);
    }
    SECTION("query endpoint naming nothing") {
        CHECK(error_of(dir, minimal +
                                "[[publish]]\nname = \"a\"\nbind = \"tcp://*:1\"\n"
                                "[query]\nbind = \"tcp://*:2\"\nendpoint = \"b\"\n") ==
              f + ":9:12: query.endpoint: names no [[publish]] endpoint: 'b' (defined: a)");
    }
    SECTION("plugin parameter of an unsupported type") {
        CHECK(error_of(dir, minimal + "[plugins.school_dropout]\nsince = 2026-01-01\n") ==
              f + ":5:9: plugins.school_dropout.since: expected a boolean, integer, float, "
                  "string, array of strings or table of numbers, got date");
        CHECK(error_of(dir, minimal + "[plugins.x]\nlist = [\"a\", 2]\n") ==
              f + ":5:14: plugins.x.list: expected an array of strings, got an element of type "
                  "integer");
        CHECK(error_of(dir, minimal + "[plugins.x]\nw = { a = \"heavy\" }\n") ==
              f + ":5:11: plugins.x.w.a: expected a number, got string");
    }
    SECTION("section of the wrong shape") {
        CHECK(error_of(dir, minimal + "[publish]\nbind = \"tcp://*:1\"\n") ==
              f + ":4:1: publish: expected an array of tables [[publish]], got table");
        CHECK(error_of(dir, minimal + "[actions]\nwatch = \"call\"\n") ==
              f + ":5:9: actions.watch: expected an array of strings, got string");
    }
}

TEST_CASE("an unreadable config file is a ConfigError naming it", "[config]") {
    TempDir dir;
    auto missing = dir.path / "nope.toml";
    try {
        load_config(missing);
        FAIL("no error");
    } catch (const ConfigError& e) {
        CHECK(std::string(e.what()).rfind(missing.string() + ": ", 0) == 0);
    }
}

TEST_CASE("[ingest] bind and endpoint_policy configure the ingest endpoint", "[config]") {
    TempDir dir;
    const std::string f = (dir.path / "ewsd.toml").string();
    Config d = load_config(dir.write("ewsd.toml", minimal));
    CHECK(d.ingest_bind.empty());  // no endpoint unless asked for
    CHECK(d.endpoint_policy == RejectPolicy::reject_file);

    Config c = load_config(dir.write("ewsd.toml", minimal + "[ingest]\npolicy = \"reject_file\"\n"
                                                            "bind = \"tcp://127.0.0.1:7603\"\n"
                                                            "endpoint_policy = \"partial\"\n"));
    CHECK(c.ingest_bind == "tcp://127.0.0.1:7603");
    CHECK(c.endpoint_policy == RejectPolicy::partial);
    CHECK(c.policy == RejectPolicy::reject_file);  // the spool's policy stays its own

    CHECK(error_of(dir, minimal + "[ingest]\nendpoint_policy = \"some\"\n") ==
          f + ":5:19: ingest.endpoint_policy: expected \"partial\" or \"reject_file\", got 'some'");
    CHECK(error_of(dir, minimal + "[ingest]\nbind = \"\"\n") ==
          f + ":5:8: ingest.bind: expected a non-empty string, got ''");
    CHECK(error_of(dir, minimal + "[ingest]\nbind = \"tcp://*:1\"\n[[publish]]\nname = \"a\"\n"
                                  "bind = \"tcp://*:1\"\n") ==
          f + ":5:8: ingest.bind: endpoint 'tcp://*:1' is already bound by [[publish]] 'a'");
    CHECK(error_of(dir, minimal + "[ingest]\nbind = \"tcp://*:2\"\n[[publish]]\n"
                                  "bind = \"tcp://*:1\"\n[query]\nbind = \"tcp://*:2\"\n") ==
          f + ":5:8: ingest.bind: endpoint 'tcp://*:2' is already bound by [query]");

    // The annotated production example names the endpoint.
    Config example = load_config(fs::path(EWS_SOURCE_DIR) / "config" / "ewsd.toml");
    CHECK_FALSE(example.ingest_bind.empty());
    CHECK(example.endpoint_policy == RejectPolicy::reject_file);
}

TEST_CASE("reminders, flap detection and playbooks load from [scoring] and [actions]", "[config]") {
    TempDir dir;
    const std::string f = (dir.path / "ewsd.toml").string();

    SECTION("defaults") {
        Config c = load_config(dir.write("ewsd.toml", minimal));
        CHECK(c.repeat_every == std::chrono::seconds(7 * 86400));
        CHECK(c.flap_window == 21);
        CHECK(c.flap_high == 30);
        CHECK(c.flap_low == 15);
        CHECK(c.resolved_actions.empty());
        CHECK(c.data_gap_actions.empty());
        CHECK(c.indicator_actions.empty());
    }
    SECTION("every key") {
        Config c = load_config(dir.write(
            "ewsd.toml", minimal +
                             "[scoring]\nrepeat_every_s = 0\n"
                             "[scoring.flapping]\nwindow = 10\nhigh = 40\nlow = 12.5\n"
                             "[actions]\nwatch = [\"review\"]\nresolved = [\"record\"]\n"
                             "data_gap = [\"ask why\"]\n"
                             "[actions.school_dropout]\nwarning = [\"school outreach\"]\n"));
        CHECK(c.repeat_every == std::chrono::seconds(0));
        CHECK(c.flap_window == 10);
        CHECK(c.flap_high == 40);
        CHECK(c.flap_low == 12.5);
        CHECK(c.actions.at(Level::watch) == std::vector<std::string>{"review"});
        CHECK(c.resolved_actions == std::vector<std::string>{"record"});
        CHECK(c.data_gap_actions == std::vector<std::string>{"ask why"});
        CHECK(c.indicator_actions.at("school_dropout").at(Level::warning) ==
              std::vector<std::string>{"school outreach"});
    }
    SECTION("flap detection off: low may be anything below 100") {
        Config c = load_config(dir.write("ewsd.toml", minimal + "[scoring.flapping]\nhigh = 0\n"));
        CHECK(c.flap_high == 0);
    }
    SECTION("errors name the key and its place") {
        CHECK(error_of(dir, minimal + "[scoring.flapping]\nhigh = 20\nlow = 20\n") ==
              f + ":6:7: scoring.flapping.low: low (20) must be below high (20)");
        CHECK(error_of(dir, minimal + "[scoring.flapping]\nwindow = 40\n") ==
              f + ":5:10: scoring.flapping.window: expected an integer in 3..32, got 40");
        CHECK(error_of(dir, minimal + "[scoring]\nrepeat_every_s = -1\n") ==
              f + ":5:18: scoring.repeat_every_s: expected an integer in 0..31622400, got -1");
        CHECK(error_of(dir, minimal + "[actions]\nnone = [\"x\"]\n") ==
              f + ":5:1: actions.none: unknown key (expected one of: watch, warning, critical, "
                  "resolved, data_gap, or a table [actions.<indicator>])");
        CHECK(error_of(dir, minimal + "[actions.group_presence]\nresolved = [\"x\"]\n") ==
              f + ":5:1: actions.group_presence.resolved: unknown key (expected one of: watch, "
                  "warning, critical)");
    }
}

namespace {

// Writes DIR/keys/server.key_secret (0600) and .key with `ewsctl keygen`'s writer, and an
// empty DIR/authorized.
void write_server_keys(const TempDir& dir) {
    curve::write_certificate(dir.path / "keys", "server", curve::generate());
    fs::create_directories(dir.path / "authorized");
}

// Line numbers in the CURVE tests below count from this text: lines 1-3 [daemon], 4 [[publish]],
// 5 name, 6 bind; what a test appends starts at line 7.
std::string curve_publish(const std::string& keys) {
    return minimal + "[[publish]]\nname = \"national\"\nbind = \"tcp://127.0.0.1:7601\"\n" + keys;
}

}  // namespace

TEST_CASE("CURVE keys of [[publish]] and [query] load relative to the config file", "[config][curve]") {
    TempDir dir;
    write_server_keys(dir);
    fs::create_directories(dir.path / "query.authorized");
    Config c = load_config(dir.write("ewsd.toml", curve_publish("curve_secret_key_file = \"keys/server.key_secret\"\n"
                                                                "authorized_keys_dir = \"authorized\"\n"
                                                                "[[publish]]\nname = \"plain\"\n"
                                                                "bind = \"tcp://127.0.0.1:7611\"\n"
                                                                "[query]\nbind = \"tcp://127.0.0.1:7602\"\n"
                                                                "curve_secret_key_file = \"keys/server.key_secret\"\n"
                                                                "authorized_keys_dir = \"./query.authorized/\"\n")));
    const auto base = fs::absolute(dir.path).lexically_normal();
    REQUIRE(c.publish.size() == 2);
    CHECK(c.publish[0].curve.enabled());
    CHECK(c.publish[0].curve.secret_key_file == base / "keys" / "server.key_secret");
    CHECK(c.publish[0].curve.authorized_keys_dir == base / "authorized");
    CHECK_FALSE(c.publish[1].curve.enabled());
    CHECK(c.publish[1].curve.authorized_keys_dir.empty());
    CHECK(c.query_curve.enabled());
    CHECK(c.query_curve.secret_key_file == base / "keys" / "server.key_secret");
    CHECK(c.query_curve.authorized_keys_dir == base / "query.authorized/");

    Config plain = load_config(dir.write("ewsd.toml", minimal + "[query]\nbind = \"tcp://127.0.0.1:7602\"\n"
                                                                "endpoint = \"x\"\n[[publish]]\nname = \"x\"\n"
                                                                "bind = \"tcp://127.0.0.1:7601\"\n"));
    CHECK_FALSE(plain.query_curve.enabled());
}

TEST_CASE("CURVE key errors name file, line, column and key", "[config][curve]") {
    TempDir dir;
    write_server_keys(dir);
    const std::string f = (dir.path / "ewsd.toml").string();
    const std::string secret = (fs::absolute(dir.path).lexically_normal() / "keys" / "server.key_secret").string();
    // Both values start at column 25 ("curve_secret_key_file = " is 24 characters) and 23
    // ("authorized_keys_dir = " is 22).

    SECTION("one key without the other") {
        CHECK(error_of(dir, curve_publish("curve_secret_key_file = \"keys/server.key_secret\"\n")) ==
              f + ":7:25: publish[1].curve_secret_key_file: needs authorized_keys_dir as well: CURVE takes both "
                  "keys or neither");
        CHECK(error_of(dir, curve_publish("authorized_keys_dir = \"authorized\"\n")) ==
              f + ":7:23: publish[1].authorized_keys_dir: needs curve_secret_key_file as well: CURVE takes both "
                  "keys or neither");
        // [query]: line 4 is [query], line 5 bind, line 6 the key.
        CHECK(error_of(dir, minimal + "[query]\nbind = \"tcp://127.0.0.1:7602\"\nauthorized_keys_dir = \"authorized\"\n") ==
              f + ":6:23: query.authorized_keys_dir: needs curve_secret_key_file as well: CURVE takes both keys or "
                  "neither");
    }
    SECTION("a missing secret file") {
        const std::string missing = (fs::absolute(dir.path).lexically_normal() / "keys" / "absent.key_secret").string();
        CHECK_THAT(error_of(dir, curve_publish("curve_secret_key_file = \"keys/absent.key_secret\"\n"
                                               "authorized_keys_dir = \"authorized\"\n")),
                   Catch::StartsWith(f + ":7:25: publish[1].curve_secret_key_file: " + missing + ": cannot read: "));
    }
    SECTION("a malformed secret file is named with its own line") {
        // Line 3 of the key file holds a 5-character key.
        std::ofstream(dir.path / "keys" / "bad.key_secret") << "# made by hand\ncurve\n    public-key = \"short\"\n";
        fs::permissions(dir.path / "keys" / "bad.key_secret", fs::perms::owner_read | fs::perms::owner_write);
        const std::string bad = (fs::absolute(dir.path).lexically_normal() / "keys" / "bad.key_secret").string();
        CHECK(error_of(dir, curve_publish("curve_secret_key_file = \"keys/bad.key_secret\"\n"
                                          "authorized_keys_dir = \"authorized\"\n")) ==
              f + ":7:25: publish[1].curve_secret_key_file: " + bad +
                  ":3: public-key: expected a 40-character Z85 key, found 5 characters");
    }
    SECTION("a public certificate where the secret one belongs") {
        const std::string pub = (fs::absolute(dir.path).lexically_normal() / "keys" / "server.key").string();
        CHECK(error_of(dir, curve_publish("curve_secret_key_file = \"keys/server.key\"\n"
                                          "authorized_keys_dir = \"authorized\"\n")) ==
              f + ":7:25: publish[1].curve_secret_key_file: " + pub +
                  " holds no secret-key: name the server's NAME.key_secret, not NAME.key");
    }
    SECTION("a secret file every user can read") {
        fs::permissions(dir.path / "keys" / "server.key_secret", fs::perms::others_read, fs::perm_options::add);
        CHECK(error_of(dir, curve_publish("curve_secret_key_file = \"keys/server.key_secret\"\n"
                                          "authorized_keys_dir = \"authorized\"\n")) ==
              f + ":7:25: publish[1].curve_secret_key_file: " + secret +
                  " is open to every user (mode 0604); expected 0600 or 0640 (chmod o-rwx " + secret + ")");
        // Group-readable (0640) is allowed: a key the ewsd group shares.
        fs::permissions(dir.path / "keys" / "server.key_secret", fs::perms::owner_read | fs::perms::owner_write |
                                                                     fs::perms::group_read);
        CHECK(error_of(dir, curve_publish("curve_secret_key_file = \"keys/server.key_secret\"\n"
                                          "authorized_keys_dir = \"authorized\"\n")) == "");
    }
    SECTION("an authorized-keys directory that cannot be listed") {
        const std::string absent = (fs::absolute(dir.path).lexically_normal() / "nowhere").string();
        CHECK_THAT(error_of(dir, curve_publish("curve_secret_key_file = \"keys/server.key_secret\"\n"
                                               "authorized_keys_dir = \"nowhere\"\n")),
                   Catch::StartsWith(f + ":8:23: publish[1].authorized_keys_dir: " + absent + ": cannot list"));
    }
    SECTION("a wrong type") {
        CHECK(error_of(dir, curve_publish("curve_secret_key_file = 7\nauthorized_keys_dir = \"authorized\"\n")) ==
              f + ":7:25: publish[1].curve_secret_key_file: expected a non-empty string, got integer");
    }
    SECTION("tools that never serve CURVE skip reading the key files") {
        auto file = dir.write("ewsd.toml", curve_publish("curve_secret_key_file = \"keys/absent.key_secret\"\n"
                                                         "authorized_keys_dir = \"nowhere\"\n"));
        CHECK_THROWS_AS(load_config(file), ConfigError);
        Config c = load_config(file, LoadOptions{.read_key_files = false});
        CHECK(c.publish[0].curve.secret_key_file.filename() == "absent.key_secret");
        // ...but both-or-neither still holds.
        auto half = dir.write("ewsd.toml", curve_publish("authorized_keys_dir = \"nowhere\"\n"));
        CHECK_THROWS_AS(load_config(half, LoadOptions{.read_key_files = false}), ConfigError);
    }
}
