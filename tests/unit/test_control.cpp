// Control requests (silences, acknowledgements, status): answer_control through a real
// Pipeline (SQLite file, fixture plugin) and through the store alone as ewsctl uses it when no
// daemon runs; and the ControlServer on a real ipc socket.
#include "control.hpp"

#include "temp_dir.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

using namespace ews;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const TimePoint t0 = *parse_time("2026-03-01");

// Two localities, A in region N/N1 and B in S/S1, the fixture plugin (a test.signal of 9 scores
// critical), alerts raised and cleared after one evaluation.
struct Fixture {
    testing::TempDir tmp;
    Config config;
    std::unique_ptr<Pipeline> pipeline;
    std::function<std::string()> status = [] { return std::string(R"({"schema":"ews.status/1","localities":2})"); };

    Fixture() {
        fs::create_directories(tmp.path() / "plugins");
        fs::copy_file(fs::path(EWS_FIXTURE_DIR) / "fixture_good.so", tmp.path() / "plugins" / "fixture_good.so");
        config.file = tmp.path() / "ewsd.toml";
        config.state_dir = tmp.path() / "state";
        config.plugin_dir = tmp.path() / "plugins";
        config.spool_dir = tmp.path() / "state" / "spool";
        config.publish = {{"all", "", ""}};
        config.raise_after = 1;
        config.clear_after = 1;
        fs::create_directories(config.state_dir);
        {
            Store store(config.state_dir / "ewsd.db");
            store.upsert_localities({{"A", "Alpha", "N/N1", 100.0, {}}, {"B", "Beta", "S/S1", std::nullopt, {}}});
        }
        open();
    }

    void open() { pipeline = std::make_unique<Pipeline>(config); }

    json ask(const std::string& request, TimePoint now = t0) {
        return json::parse(answer_control(request, *pipeline, now, status));  // errors too are JSON
    }
    json ask(const json& request, TimePoint now = t0) { return ask(request.dump(), now); }

    // Ingests test.signal = `value` for both localities, dated the day before `at`.
    void signal(double value, TimePoint at) {
        const auto day = format_time(at - std::chrono::days(1)).substr(0, 10);
        const auto file = tmp.path() / ("signal-" + day + "-" + std::to_string(int(value)) + ".csv");
        std::ofstream(file) << "locality,time,kind,value\nA," << day << ",test.signal," << value << "\nB," << day
                            << ",test.signal," << value << "\n";
        REQUIRE(pipeline->ingest(file, at).committed);
    }

    // "locality:event" of each outbox row of `rows`.
    static std::vector<std::string> events(const std::vector<OutboxRow>& rows) {
        std::vector<std::string> out;
        for (const auto& r : rows) {
            const auto j = json::parse(r.payload);
            out.push_back(j["locality"]["id"].get<std::string>() + ":" + j["event"].get<std::string>());
        }
        return out;
    }

    std::string open_alert(const std::string& locality) {
        for (const auto& s : pipeline->store().alert_states())
            if (s.locality == locality) return s.alert_id;
        return {};
    }
};

std::string error_of(const json& reply) {
    REQUIRE(reply.is_object());
    REQUIRE(reply.contains("error"));
    CHECK_FALSE(reply.contains("ok"));
    return reply["error"].get<std::string>();
}

json silence_request(const std::string& key, const std::string& value) {
    return {{"op", "silence_add"}, {key, value}, {"until", "2026-03-31"}, {"reason", "field visit"}, {"by", "ana"}};
}

}  // namespace

TEST_CASE("malformed control requests get an error naming what is wrong", "[control]") {
    Fixture f;
    CHECK(error_of(f.ask(std::string("{\"op\":"))) == "malformed request: syntax error while parsing value - "
                                                     "unexpected end of input; expected '[', '{', or a "
                                                     "literal at byte 6");
    CHECK_THAT(error_of(f.ask(std::string("{\"op\" \"status\"}"))),
               Catch::StartsWith("malformed request: ") && Catch::Contains("at byte "));
    CHECK_THAT(error_of(f.ask(std::string("[1,2]"))), Catch::Contains("must be a JSON object") &&
                                                         Catch::Contains("got array"));
    CHECK_THAT(error_of(f.ask(std::string("\"status\""))), Catch::Contains("got string"));
    CHECK_THAT(error_of(f.ask(json::object())), Catch::StartsWith("op: missing"));
    CHECK(error_of(f.ask(json{{"op", 7}})) == "op: must be a string, got 7");
    CHECK(error_of(f.ask(json{{"op", json::array({json::array({1})})}})) ==
          "op: must be a string, got an array");
    CHECK(error_of(f.ask(json{{"op", "silence_delete"}})) ==
          "op: unknown \"silence_delete\" (expected silence_add, silence_list, silence_expire, ack or status)");
    CHECK(error_of(f.ask(json{{"op", "status"}, {"verbose", true}})) ==
          "verbose: not a key of op \"status\" (it takes no other key)");
    // Invalid UTF-8 in a request is reported, not thrown.
    CHECK_THAT(error_of(f.ask(std::string("{\"op\":\"ack\",\"alert_id\":\"\xff\"}"))),
               Catch::StartsWith("malformed request: "));
}

TEST_CASE("silence_add stores a silence and silence_list shows it", "[control]") {
    Fixture f;
    json r = f.ask(silence_request("region", "N/N1"));
    REQUIRE(r == json{{"ok", true}, {"id", 1}});
    r = f.ask(json{{"op", "silence_add"}, {"locality", "B"}, {"until", "2026-03-02T12:00:00Z"},
                   {"reason", "data being corrected"}, {"by", "ben"}});
    REQUIRE(r == json{{"ok", true}, {"id", 2}});

    r = f.ask(json{{"op", "silence_list"}});
    REQUIRE(r.at("silences").size() == 2);
    json first;
    for (const auto& s : r["silences"])
        if (s["id"] == 1) first = s;
    CHECK(first == json{{"id", 1}, {"region", "N/N1"}, {"until", "2026-03-31T00:00:00Z"}, {"reason", "field visit"},
                        {"by", "ana"}, {"created", "2026-03-01T00:00:00Z"}, {"expired", nullptr},
                        {"expired_by", ""}, {"held", 0}, {"active", true}});
    CHECK_FALSE(first.contains("locality"));

    // The store holds what the daemon's view shows.
    const auto stored = f.pipeline->store().silences(t0, false);
    REQUIRE(stored.size() == 2);
    for (const auto& s : stored) CHECK(s.created == t0);

    // Listed at a later time, the locality silence has ended and drops out of the default list.
    r = f.ask(json{{"op", "silence_list"}}, t0 + std::chrono::days(2));
    REQUIRE(r["silences"].size() == 1);
    CHECK(r["silences"][0]["id"] == 1);
    r = f.ask(json{{"op", "silence_list"}, {"all", true}}, t0 + std::chrono::days(2));
    REQUIRE(r["silences"].size() == 2);
    for (const auto& s : r["silences"])
        if (s["id"] == 2) {
            CHECK(s["locality"] == "B");
            CHECK(s["active"] == false);
            CHECK(s["expired"].is_null());
        }
}

TEST_CASE("silence_add refuses a bad request and stores nothing", "[control]") {
    Fixture f;
    auto with = [](json request, const std::string& key, json value) {
        request[key] = std::move(value);
        return request;
    };
    auto without = [](json request, const std::string& key) {
        request.erase(key);
        return request;
    };
    const json good = silence_request("region", "N/N1");

    CHECK(error_of(f.ask(with(good, "until", "2026-13-01"))) ==
          "until: not an RFC 3339 date or date-time: \"2026-13-01\"");
    CHECK(error_of(f.ask(with(good, "until", "next week"))) ==
          "until: not an RFC 3339 date or date-time: \"next week\"");
    CHECK(error_of(f.ask(with(good, "until", 20260331))) == "until: must be a string, got 20260331");
    CHECK_THAT(error_of(f.ask(without(good, "until"))), Catch::StartsWith("until: missing"));
    CHECK_THAT(error_of(f.ask(without(good, "reason"))), Catch::StartsWith("reason: missing"));
    CHECK_THAT(error_of(f.ask(without(good, "by"))), Catch::StartsWith("by: missing"));
    CHECK(error_of(f.ask(with(good, "by", 3))) == "by: must be a string, got 3");
    CHECK(error_of(f.ask(with(good, "by", nullptr))) == "by: must be a string, got null");
    CHECK(error_of(f.ask(with(good, "reason", ""))) == "reason: must not be empty");
    CHECK(error_of(f.ask(with(good, "reason", std::string(max_control_string_bytes + 1, 'x')))) ==
          "reason: longer than 1000 bytes");
    CHECK(error_of(f.ask(with(good, "scope", "N"))) ==
          "scope: not a key of op \"silence_add\" (it takes locality, region, until, reason, by)");
    // Checked by validate_silence, whose message names the field.
    CHECK_THAT(error_of(f.ask(with(good, "locality", "A"))), Catch::Contains("locality"));
    CHECK_THAT(error_of(f.ask(without(good, "region"))), Catch::Contains("locality"));
    CHECK_THAT(error_of(f.ask(silence_request("locality", "NOWHERE"))), Catch::Contains("locality"));
    CHECK_THAT(error_of(f.ask(with(good, "until", "2026-02-01"))), Catch::Contains("until"));
    CHECK_THAT(error_of(f.ask(with(good, "until", "2026-03-01"))), Catch::Contains("until"));  // == now

    CHECK(f.pipeline->store().silences(t0, true).empty());
    CHECK(f.ask(json{{"op", "silence_list"}, {"all", true}}) == json{{"silences", json::array()}});
    CHECK(error_of(f.ask(json{{"op", "silence_list"}, {"all", "yes"}})) == "all: must be true or false, got \"yes\"");
}

TEST_CASE("a region is a path of codes, with at most one trailing slash", "[control]") {
    Fixture f;
    // As topics spell prefixes: "N/" is the region N, and holds A (in N/N1) but not B.
    REQUIRE(f.ask(silence_request("region", "N/")) == json{{"ok", true}, {"id", 1}});
    f.signal(9, t0);
    CHECK(Fixture::events(f.pipeline->evaluate(t0, true)) == std::vector<std::string>{"B:raised"});
    for (const char* bad : {"/", "/N", "N//", "N//N1", "N/N1//", "N N1"})
        CHECK_THAT(error_of(f.ask(silence_request("region", bad))), Catch::StartsWith("region: "));
}

TEST_CASE("a silence holds a region's alerts until it is expired", "[control]") {
    Fixture f;
    REQUIRE(f.ask(silence_request("region", "N")) == json{{"ok", true}, {"id", 1}});
    f.signal(9, t0);
    // A lies in N/N1: held; B in S/S1 is published as usual.
    CHECK(Fixture::events(f.pipeline->evaluate(t0, true)) == std::vector<std::string>{"B:raised"});
    json listed = f.ask(json{{"op", "silence_list"}});
    REQUIRE(listed["silences"].size() == 1);
    CHECK(listed["silences"][0]["held"].get<std::int64_t>() >= 1);
    const auto held = f.pipeline->store().held_events(1, 10);
    REQUIRE_FALSE(held.empty());
    CHECK(held.front().locality == "A");
    CHECK(held.front().reason == "silence 1");

    CHECK(error_of(f.ask(json{{"op", "silence_expire"}, {"id", 1}})) == "by: missing (who expires the silence)");
    CHECK(f.ask(json{{"op", "silence_expire"}, {"id", 1}, {"by", "ana"}}, t0 + std::chrono::hours(1)) ==
          json{{"ok", true}});
    // The next evaluation tells subscribers what the silence held.
    CHECK(Fixture::events(f.pipeline->evaluate(t0 + std::chrono::hours(2), true)) ==
          std::vector<std::string>{"A:raised"});

    // Expired: gone from the default list, shown with who ended it and when under "all".
    CHECK(f.ask(json{{"op", "silence_list"}}, t0 + std::chrono::hours(2))["silences"].empty());
    json all = f.ask(json{{"op", "silence_list"}, {"all", true}}, t0 + std::chrono::hours(2));
    REQUIRE(all["silences"].size() == 1);
    CHECK(all["silences"][0]["expired"] == "2026-03-01T01:00:00Z");
    CHECK(all["silences"][0]["expired_by"] == "ana");
    CHECK(all["silences"][0]["active"] == false);
}

TEST_CASE("silence_expire refuses an unknown, ended or malformed id", "[control]") {
    Fixture f;
    REQUIRE(f.ask(silence_request("locality", "A"))["id"] == 1);
    const json expire = {{"op", "silence_expire"}, {"id", 1}, {"by", "ana"}};
    CHECK(error_of(f.ask(json{{"op", "silence_expire"}, {"id", 99}, {"by", "ana"}})) == "no silence 99 in force");
    // Past its until the silence has ended by itself: nothing to expire.
    CHECK(error_of(f.ask(expire, t0 + std::chrono::days(40))) == "no silence 1 in force");
    REQUIRE(f.ask(expire) == json{{"ok", true}});
    CHECK(error_of(f.ask(expire)) == "no silence 1 in force");  // not twice

    for (const json& id : {json("1"), json(0), json(-3), json(1.5), json(nullptr), json::array({1})})
        CHECK(error_of(f.ask(json{{"op", "silence_expire"}, {"id", id}, {"by", "ana"}})) ==
              "id: must be a positive integer, got " +
                  (id.is_array() ? std::string("an array") : id.dump()));
    CHECK(error_of(f.ask(json{{"op", "silence_expire"}, {"id", 18446744073709551615ull}, {"by", "ana"}})) ==
          "id: must be a positive integer, got 18446744073709551615");
    CHECK_THAT(error_of(f.ask(json{{"op", "silence_expire"}, {"by", "ana"}})), Catch::StartsWith("id: missing"));
    CHECK(error_of(f.ask(json{{"op", "silence_expire"}, {"id", 1}, {"by", ""}})) == "by: must not be empty");
}

TEST_CASE("ack acknowledges an open alert and refuses anything else", "[control]") {
    Fixture f;
    f.signal(9, t0);
    f.pipeline->evaluate(t0, true);
    const std::string alert = f.open_alert("B");
    REQUIRE_FALSE(alert.empty());

    const TimePoint at = t0 + std::chrono::minutes(5);
    json r = f.ask(json{{"op", "ack"}, {"alert_id", alert}, {"by", "ben"}, {"note", "committee convened"}}, at);
    CHECK(r == json{{"ok", true}, {"alert_id", alert}, {"locality", "B"}, {"by", "ben"}, {"at", "2026-03-01T00:05:00Z"}});
    const auto acks = f.pipeline->store().acknowledgements(alert);
    REQUIRE(acks.size() == 1);
    CHECK(acks[0].by == "ben");
    CHECK(acks[0].note == "committee convened");
    CHECK(acks[0].locality == "B");
    CHECK(acks[0].at == at);
    for (const auto& s : f.pipeline->store().alert_states())
        if (s.locality == "B") {
            CHECK(s.acked_by == "ben");
            CHECK(s.acked_at == at);
        }

    // The note is optional.
    CHECK(f.ask(json{{"op", "ack"}, {"alert_id", alert}, {"by", "cy"}})["ok"] == true);
    CHECK(f.pipeline->store().acknowledgements(alert).size() == 2);

    CHECK_THAT(error_of(f.ask(json{{"op", "ack"}, {"alert_id", "B@20990101T000000Z"}, {"by", "ben"}})),
               Catch::Contains("B@20990101T000000Z"));
    CHECK_THAT(error_of(f.ask(json{{"op", "ack"}, {"by", "ben"}})), Catch::StartsWith("alert_id: missing"));
    CHECK_THAT(error_of(f.ask(json{{"op", "ack"}, {"alert_id", alert}})), Catch::StartsWith("by: missing"));
    CHECK(error_of(f.ask(json{{"op", "ack"}, {"alert_id", ""}, {"by", "ben"}})) == "alert_id: must not be empty");
    CHECK(error_of(f.ask(json{{"op", "ack"}, {"alert_id", alert}, {"by", "ben"}, {"note", 5}})) ==
          "note: must be a string, got 5");
    CHECK(error_of(f.ask(json{{"op", "ack"}, {"alert_id", alert}, {"by", "ben"},
                              {"note", std::string(2000, 'n')}})) == "note: longer than 1000 bytes");
    CHECK(error_of(f.ask(json{{"op", "ack"}, {"alert_id", alert}, {"by", "ben"}, {"level", "watch"}})) ==
          "level: not a key of op \"ack\" (it takes alert_id, by, note)");
    CHECK(f.pipeline->store().acknowledgements(alert).size() == 2);  // none of those was stored
}

TEST_CASE("the control socket passes the daemon's status object through", "[control]") {
    Fixture f;
    CHECK(f.ask(json{{"op", "status"}}) == json{{"schema", "ews.status/1"}, {"localities", 2}});
    json r = json::parse(answer_control(R"({"op":"status"})", *f.pipeline, t0, {}));
    CHECK(error_of(r) == "status: no daemon runs here to report it");
    r = json::parse(answer_control(R"({"op":"status"})", *f.pipeline, t0, [] { return std::string("[]"); }));
    CHECK_THAT(error_of(r), Catch::StartsWith("server error: "));
}

TEST_CASE("without a daemon, the store answers the same requests", "[control]") {
    Fixture f;
    f.signal(9, t0);
    f.pipeline->evaluate(t0, true);
    const std::string alert_a = f.open_alert("A");
    REQUIRE_FALSE(alert_a.empty());
    f.pipeline.reset();  // the daemon stops; ewsctl opens the store itself

    {
        Store store(f.config.state_dir / "ewsd.db");
        StoreControl target(store);
        auto ask = [&](const json& request, TimePoint now = t0 + std::chrono::hours(1)) {
            return json::parse(answer_control(request.dump(), target, now, {}));
        };
        CHECK_THAT(error_of(ask(silence_request("locality", "NOWHERE"))), Catch::Contains("locality"));
        json both = silence_request("region", "N/N1");
        both["locality"] = "A";
        CHECK_THAT(error_of(ask(both)), Catch::Contains("locality"));
        json bad_until = silence_request("region", "N/N1");
        bad_until["until"] = "2026-13-01";
        CHECK(error_of(ask(bad_until)) == "until: not an RFC 3339 date or date-time: \"2026-13-01\"");
        REQUIRE(ask(silence_request("locality", "B")) == json{{"ok", true}, {"id", 1}});
        json listed = ask(json{{"op", "silence_list"}});
        REQUIRE(listed["silences"].size() == 1);
        CHECK(listed["silences"][0]["locality"] == "B");
        CHECK(listed["silences"][0]["created"] == "2026-03-01T01:00:00Z");

        json r = ask(json{{"op", "ack"}, {"alert_id", alert_a}, {"by", "ana"}, {"note", "visit planned"}});
        CHECK(r == json{{"ok", true}, {"alert_id", alert_a}, {"locality", "A"}, {"by", "ana"},
                        {"at", "2026-03-01T01:00:00Z"}});
        CHECK_THAT(error_of(ask(json{{"op", "ack"}, {"alert_id", "A@20990101T000000Z"}, {"by", "ana"}})),
                   Catch::Contains("A@20990101T000000Z"));
        CHECK(store.acknowledgements(alert_a).size() == 1);
        for (const auto& s : store.alert_states())
            if (s.locality == "A") CHECK(s.acked_by == "ana");

        CHECK(error_of(ask(json{{"op", "silence_expire"}, {"id", 7}, {"by", "ana"}})) == "no silence 7 in force");
        CHECK(error_of(ask(json{{"op", "status"}})) == "status: no daemon runs here to report it");
    }

    // The daemon, started again, holds B's events under the silence stored without it, and
    // kept A's acknowledgement.
    f.open();
    f.signal(0, t0 + std::chrono::days(3));  // both scores fall: B's resolution is held
    const auto rows = f.pipeline->evaluate(t0 + std::chrono::days(3), true);
    CHECK(Fixture::events(rows) == std::vector<std::string>{"A:resolved"});
    CHECK(f.pipeline->store().held_events(1, 10).size() >= 1);
}

TEST_CASE("the control server binds over a stale socket file, mode 0660, and removes it", "[control]") {
    Fixture f;
    const fs::path file = control_socket_file(f.config.state_dir);
    CHECK(control_endpoint(f.config.state_dir) == "ipc://" + file.string());
    {
        // What a killed daemon leaves: a socket file nobody listens on.
        int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        REQUIRE(fd >= 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, file.c_str(), sizeof addr.sun_path - 1);
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        ::close(fd);
        REQUIRE(fs::is_socket(file));
    }
    zmq::context_t context;
    {
        ControlServer server(context, f.config.state_dir);
        struct stat st{};
        REQUIRE(::stat(file.c_str(), &st) == 0);
        CHECK(S_ISSOCK(st.st_mode));
        CHECK((st.st_mode & 07777) == 0660);

        zmq::socket_t client(context, zmq::socket_type::req);
        client.set(zmq::sockopt::linger, 0);
        client.set(zmq::sockopt::rcvtimeo, 5000);
        client.connect(control_endpoint(f.config.state_dir));
        auto exchange = [&](const std::string& request) {
            client.send(zmq::buffer(request), zmq::send_flags::none);
            zmq::pollitem_t item{server.socket().handle(), 0, ZMQ_POLLIN, 0};
            REQUIRE(zmq::poll(&item, 1, std::chrono::milliseconds(5000)) == 1);
            server.handle(*f.pipeline, t0, f.status);
            zmq::message_t m;
            REQUIRE(client.recv(m));
            return json::parse(m.to_string());
        };
        CHECK(exchange(R"({"op":"status"})")["schema"] == "ews.status/1");
        // A bad request is answered, and the socket serves the next one.
        CHECK_THAT(error_of(exchange("not json")), Catch::StartsWith("malformed request"));
        CHECK(exchange(silence_request("region", "S").dump()) == json{{"ok", true}, {"id", 1}});
        // Two frames are one bad request, still answered.
        client.send(zmq::str_buffer("{\"op\":"), zmq::send_flags::sndmore);
        client.send(zmq::str_buffer("\"status\"}"), zmq::send_flags::none);
        zmq::pollitem_t item{server.socket().handle(), 0, ZMQ_POLLIN, 0};
        REQUIRE(zmq::poll(&item, 1, std::chrono::milliseconds(5000)) == 1);
        server.handle(*f.pipeline, t0, f.status);
        zmq::message_t m;
        REQUIRE(client.recv(m));
        CHECK_THAT(error_of(json::parse(m.to_string())), Catch::Contains("got 2 frames"));
    }
    CHECK_FALSE(fs::exists(file));
}

TEST_CASE("a state directory too long for a socket path is named in the error", "[control]") {
    testing::TempDir tmp;
    const fs::path deep = tmp.path() / std::string(120, 'd');
    zmq::context_t context;
    try {
        ControlServer server(context, deep);
        FAIL("bound a socket path longer than a Unix socket allows");
    } catch (const std::runtime_error& e) {
        CHECK_THAT(e.what(), Catch::Contains(deep.string()) && Catch::Contains("shorter state_dir"));
    }
}
