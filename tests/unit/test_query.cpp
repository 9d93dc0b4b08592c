#include "query.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <zmq_addon.hpp>

#include <filesystem>
#include <iterator>
#include <random>
#include <vector>

using namespace ews;
using nlohmann::json;

namespace {

class TempDir {
public:
    TempDir() {
        std::random_device rd;
        path_ = std::filesystem::temp_directory_path() /
                ("ews-test-query-" + std::to_string(rd()) + std::to_string(rd()));
        std::filesystem::create_directories(path_);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

OutboxRow row(const std::string& endpoint, std::uint64_t seq, const std::string& region,
              const std::string& locality, const std::string& alert_id, const std::string& event) {
    OutboxRow r;
    r.endpoint = endpoint;
    r.seq = seq;
    r.topic = "alert/" + region + "/" + locality + "/";
    r.alert_id = alert_id;
    r.locality = locality;
    r.payload = json{{"schema", "ews.alert/1"}, {"seq", seq}, {"id", alert_id}, {"event", event},
                     {"locality", {{"id", locality}, {"name", locality}, {"region", region}}}}
                    .dump();
    return r;
}

AlertState state(const std::string& locality, Level level, const std::string& alert_id) {
    AlertState s;
    s.locality = locality;
    s.level = level;
    s.alert_id = alert_id;
    // Published as it is: subscribers were told of this alert.
    s.notified_level = level;
    s.notified_id = alert_id;
    return s;
}

// Outbox "main": 1 KE raised, 2 UG raised, 3 KE escalated, 4 UG resolved, 5 UG2 raised,
// 6 KE2 raised. Open now: KE-1 (A1, newest row 3), UG-2 (A3), KE-2 (A4). Outbox "other" has
// its own numbering, which must never leak into "main".
struct Fixture {
    TempDir dir;
    Store store{dir.path() / "ews.db"};
    std::function<std::string()> status = [] { return std::string(R"({"uptime_s":3,"localities":2})"); };

    Fixture() {
        store.commit_evaluation({}, {row("main", 1, "KE/KE-03", "KE-1", "A1", "raised"),
                                     row("main", 2, "UG/UG-1", "UG-1", "A2", "raised"),
                                     row("other", 1, "KE/KE-03", "KE-1", "A1", "raised")});
        store.commit_evaluation({state("KE-1", Level::warning, "A1"), state("UG-1", Level::none, ""),
                                 state("UG-2", Level::watch, "A3"), state("KE-2", Level::watch, "A4")},
                                {row("main", 3, "KE/KE-03", "KE-1", "A1", "escalated"),
                                 row("main", 4, "UG/UG-1", "UG-1", "A2", "resolved"),
                                 row("main", 5, "UG/UG-1", "UG-2", "A3", "raised"),
                                 row("main", 6, "KE/KE-04", "KE-2", "A4", "raised")});
    }

    json ask(const std::string& request) {
        const std::string reply = answer_query(request, store, "main", status);
        return json::parse(reply);  // every reply, errors included, is JSON
    }
};

std::vector<std::uint64_t> seqs(const json& reply) {
    std::vector<std::uint64_t> out;
    for (const auto& e : reply.at("events")) out.push_back(e.at("payload").at("seq").get<std::uint64_t>());
    return out;
}

// Waits for the next request on `server` (at most 5 s) and answers it from the fixture.
void serve_next(QueryServer& server, Fixture& f) {
    zmq::pollitem_t item{server.socket().handle(), 0, ZMQ_POLLIN, 0};
    REQUIRE(zmq::poll(&item, 1, std::chrono::milliseconds(5000)) == 1);
    server.handle(f.store, "main", f.status);
}

}  // namespace

TEST_CASE("replay pages through the outbox in seq order with a more flag", "[query]") {
    Fixture f;
    json r = f.ask(R"({"op":"replay","since":0,"limit":4})");
    CHECK(seqs(r) == std::vector<std::uint64_t>{1, 2, 3, 4});
    CHECK(r.at("last_seq") == 4);
    CHECK(r.at("more") == true);
    CHECK(r.at("events").at(0).at("topic") == "alert/KE/KE-03/KE-1/");
    CHECK(r.at("events").at(0).at("payload").is_object());
    CHECK(r.at("events").at(0).at("payload").at("event") == "raised");

    r = f.ask(R"({"op":"replay","since":4,"limit":2})");
    CHECK(seqs(r) == std::vector<std::uint64_t>{5, 6});
    CHECK(r.at("last_seq") == 6);
    CHECK(r.at("more") == false);  // exactly the last rows: nothing after them

    r = f.ask(R"({"op":"replay","since":6})");
    CHECK(r.at("events").empty());
    CHECK(r.at("last_seq") == 6);
    CHECK(r.at("more") == false);

    r = f.ask(R"({"op":"replay","since":0})");  // default limit takes everything here
    CHECK(seqs(r) == std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6});
    CHECK(r.at("more") == false);

    r = f.ask(R"({"op":"replay","since":2,"limit":1000000})");  // above the maximum: capped, fine
    CHECK(seqs(r) == std::vector<std::uint64_t>{3, 4, 5, 6});

    r = f.ask(R"({"op":"replay","since":100})");  // a client ahead of this database
    CHECK(r.at("events").empty());
    CHECK(r.at("last_seq") == 100);
    CHECK(r.at("more") == false);
}

TEST_CASE("replay with a prefix skips other topics yet pages without loss or repeats", "[query]") {
    Fixture f;
    json r = f.ask(R"({"op":"replay","since":0,"limit":1,"prefix":"alert/KE/"})");
    CHECK(seqs(r) == std::vector<std::uint64_t>{1});
    CHECK(r.at("last_seq") == 1);
    CHECK(r.at("more") == true);

    // Walk the whole outbox one event per request, as a client loops on "more".
    std::vector<std::uint64_t> seen;
    std::uint64_t since = 0;
    for (int guard = 0; guard < 20; ++guard) {
        r = f.ask(json{{"op", "replay"}, {"since", since}, {"limit", 1}, {"prefix", "alert/KE/"}}.dump());
        for (auto s : seqs(r)) seen.push_back(s);
        CHECK(r.at("last_seq").get<std::uint64_t>() >= since);
        since = r.at("last_seq").get<std::uint64_t>();
        if (!r.at("more").get<bool>()) break;
    }
    CHECK(seen == std::vector<std::uint64_t>{1, 3, 6});
    CHECK(since == 6);

    // A prefix that matches nothing still moves last_seq over the rows it skipped.
    r = f.ask(R"({"op":"replay","since":0,"prefix":"alert/TZ/"})");
    CHECK(r.at("events").empty());
    CHECK(r.at("last_seq") == 6);
    CHECK(r.at("more") == false);
}

TEST_CASE("snapshot returns the open alerts' newest payloads and the seq they are current to", "[query]") {
    Fixture f;
    json r = f.ask(R"({"op":"snapshot","prefix":"alert/KE/"})");
    REQUIRE(r.at("alerts").size() == 2);
    CHECK(r.at("alerts").at(0).at("id") == "A1");
    CHECK(r.at("alerts").at(0).at("seq") == 3);  // the escalation, not the first raise
    CHECK(r.at("alerts").at(1).at("id") == "A4");
    CHECK(r.at("seq") == 6);

    r = f.ask(R"({"op":"snapshot"})");  // default prefix "alert/": every open alert
    std::vector<std::string> ids;
    for (const auto& a : r.at("alerts")) ids.push_back(a.at("id").get<std::string>());
    CHECK(ids == std::vector<std::string>{"A1", "A3", "A4"});  // the resolved A2 is absent
    CHECK(r.at("seq") == 6);

    r = f.ask(R"({"op":"snapshot","prefix":"alert/KE/KE-04/"})");
    REQUIRE(r.at("alerts").size() == 1);
    CHECK(r.at("alerts").at(0).at("id") == "A4");

    const std::string reply = answer_query(R"({"op":"snapshot"})", f.store, "other", f.status);
    CHECK(json::parse(reply).at("seq") == 1);  // each endpoint has its own numbering
}

TEST_CASE("status passes the daemon's status object through", "[query]") {
    Fixture f;
    CHECK(f.ask(R"({"op":"status"})") == json{{"uptime_s", 3}, {"localities", 2}});
    f.status = [] { return std::string("not json"); };
    CHECK(f.ask(R"({"op":"status"})").at("error").is_string());
    f.status = []() -> std::string { throw std::runtime_error("engine is reloading"); };
    const json r = f.ask(R"({"op":"status"})");
    REQUIRE(r.at("error").is_string());
    CHECK(r.at("error").get<std::string>().find("engine is reloading") != std::string::npos);
}

TEST_CASE("every malformed request gets an error object and never an exception", "[query]") {
    Fixture f;
    std::string deep(5000, '[');
    deep += std::string(5000, ']');
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"", "malformed request"},
        {"{", "malformed request"},
        {"not json", "malformed request"},
        {std::string("\xff\xfe\x00\x01", 4), "malformed request"},
        {"{\"op\":\"st\xff\"}", "malformed request"},
        {"[]", "JSON object"},
        {"42", "JSON object"},
        {"null", "JSON object"},
        {deep, "JSON object"},
        {"{}", "\"op\""},
        {R"({"op":5})", "\"op\""},
        {R"({"op":"drop_tables"})", "drop_tables"},
        {R"({"op":"replay"})", "since"},
        {R"({"op":"replay","since":-1})", "since"},
        {R"({"op":"replay","since":1.5})", "since"},
        {R"({"op":"replay","since":"3"})", "since"},
        {R"({"op":"replay","since":1e30})", "since"},
        {R"({"op":"replay","since":0,"limit":0})", "limit"},
        {R"({"op":"replay","since":0,"limit":-5})", "limit"},
        {R"({"op":"replay","since":0,"limit":true})", "limit"},
        {R"({"op":"replay","since":0,"prefix":7})", "prefix"},
        {R"({"op":"snapshot","prefix":"hb/"})", "prefix"},
        {R"({"op":"snapshot","prefix":["alert/"]})", "prefix"},
    };
    for (const auto& [request, mentions] : cases) {
        INFO("request: " << request);
        std::string reply;
        REQUIRE_NOTHROW(reply = answer_query(request, f.store, "main", f.status));
        const json r = json::parse(reply, nullptr, false);
        REQUIRE(r.is_object());
        REQUIRE(r.size() == 1);
        REQUIRE(r.at("error").is_string());
        CHECK(r.at("error").get<std::string>().find(mentions) != std::string::npos);
    }
    // A deeply nested value is quoted back by its type: writing it out would recurse once per
    // level (300,000 levels here, far beyond the stack).
    std::string deeper(300000, '[');
    deeper += std::string(300000, ']');
    CHECK(f.ask(R"({"op":"replay","since":)" + deeper + "}").at("error") ==
          "replay: field \"since\" must be a non-negative integer, got an array");
    CHECK(f.ask(R"({"op":)" + deeper + "}").at("error") ==
          "field \"op\" must be a string, got an array");
    CHECK(f.ask("{\"op\":").at("error") == "malformed request: syntax error while parsing value - "
                                           "unexpected end of input; expected '[', '{', or a literal "
                                           "at byte 6");
}

TEST_CASE("the query server answers every request, even a multi-frame one", "[query]") {
    Fixture f;
    zmq::context_t context;
    QueryServer server(context, "inproc://query-test");
    zmq::socket_t client(context, zmq::socket_type::req);
    client.set(zmq::sockopt::linger, 0);
    client.connect("inproc://query-test");

    auto serve_one = [&] { serve_next(server, f); };
    auto reply = [&] {
        zmq::message_t m;
        REQUIRE(client.recv(m, zmq::recv_flags::dontwait));
        return json::parse(m.to_string());
    };

    client.send(zmq::str_buffer("{\"op\":"), zmq::send_flags::sndmore);
    client.send(zmq::str_buffer("\"status\"}"), zmq::send_flags::none);
    serve_one();
    CHECK(reply().at("error").get<std::string>().find("2 frames") != std::string::npos);

    client.send(zmq::str_buffer(R"({"op":"status"})"), zmq::send_flags::none);
    serve_one();
    CHECK(reply() == json{{"uptime_s", 3}, {"localities", 2}});
}

TEST_CASE("a DEALER is answered with or without the delimiter, and a gone peer harms no one",
          "[query]") {
    Fixture f;
    zmq::context_t context;
    QueryServer server(context, "inproc://query-dealer-test");
    auto serve_one = [&] { serve_next(server, f); };
    auto frames_of = [](zmq::socket_t& s) {
        std::vector<zmq::message_t> frames;
        zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
        REQUIRE(zmq::poll(&item, 1, std::chrono::milliseconds(5000)) == 1);
        REQUIRE(zmq::recv_multipart(s, std::back_inserter(frames)));
        return frames;
    };
    const json status = {{"uptime_s", 3}, {"localities", 2}};

    zmq::socket_t dealer(context, zmq::socket_type::dealer);
    dealer.set(zmq::sockopt::linger, 0);
    dealer.connect("inproc://query-dealer-test");

    // Without a delimiter: the reply is the single JSON frame.
    dealer.send(zmq::str_buffer(R"({"op":"status"})"), zmq::send_flags::none);
    serve_one();
    auto plain = frames_of(dealer);
    REQUIRE(plain.size() == 1);
    CHECK(json::parse(plain[0].to_string()) == status);

    // With one (what a REQ socket sends): the reply keeps it.
    dealer.send(zmq::message_t(), zmq::send_flags::sndmore);
    dealer.send(zmq::str_buffer(R"({"op":"status"})"), zmq::send_flags::none);
    serve_one();
    auto enveloped = frames_of(dealer);
    REQUIRE(enveloped.size() == 2);
    CHECK(enveloped[0].size() == 0);
    CHECK(json::parse(enveloped[1].to_string()) == status);

    // A peer that sends half a request and leaves, then a REQ client: the REQ client is
    // answered (a REP socket could send this reply nowhere).
    {
        zmq::socket_t gone(context, zmq::socket_type::dealer);
        gone.set(zmq::sockopt::linger, 0);
        gone.connect("inproc://query-dealer-test");
        gone.send(zmq::str_buffer("x"), zmq::send_flags::sndmore);
        gone.send(zmq::str_buffer("y"), zmq::send_flags::none);
        serve_one();
    }
    zmq::socket_t req(context, zmq::socket_type::req);
    req.set(zmq::sockopt::linger, 0);
    req.connect("inproc://query-dealer-test");
    req.send(zmq::str_buffer(R"({"op":"status"})"), zmq::send_flags::none);
    serve_one();
    auto answer = frames_of(req);
    REQUIRE(answer.size() == 1);
    CHECK(json::parse(answer[0].to_string()) == status);
}
