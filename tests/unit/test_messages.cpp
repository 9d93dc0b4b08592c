#include "messages.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

using namespace ews;
using nlohmann::json;

namespace {

TimePoint at(const char* text) { return *parse_time(text); }

Locality kibera() {
    Locality l;
    l.id = "KE-030-001";
    l.name = "Kibera North";
    l.region = "KE/KE-03/KE-030";
    return l;
}

Contribution contribution(std::string indicator, double score, double confidence, sdk::Status status,
                          std::optional<TimePoint> newest, std::vector<sdk::EvidenceValue> values) {
    Contribution c;
    c.indicator = std::move(indicator);
    c.weight = 1.5;
    c.assessment.score = score;
    c.assessment.confidence = confidence;
    c.assessment.status = status;
    c.assessment.newest = newest;
    c.assessment.evidence.text = "dropout 2.4% vs 1.1% baseline";
    c.assessment.evidence.values = std::move(values);
    return c;
}

struct Fixture {
    AlertEvent event;
    Locality locality = kibera();
    Composite composite;
    std::vector<std::string> actions{"convene the community child-protection committee",
                                     "school outreach to children who left"};

    Fixture() {
        event.type = "raised";
        event.alert_id = "KE-030-001@20261128T000000Z";
        event.level = Level::warning;
        event.previous = Level::none;
        event.at = at("2026-11-28T10:00:00Z");
        event.opened_at = at("2026-11-28T10:00:00Z");
        composite.score = 67.54;
        composite.confidence = 0.81234;
        composite.contributions = {
            contribution("school_dropout", 0.8249, 0.9, sdk::Status::ok, at("2026-11-20"),
                         {{"dropouts", 3, true}, {"enrolled", 412, true}, {"rate", 0.024, false},
                          {"zero_count", 0, true}}),
            contribution("group_presence", 0, 0, sdk::Status::no_data, std::nullopt, {}),
            contribution("community_incidents", 0.5, 0.4, sdk::Status::stale, at("2026-09-01"), {}),
        };
    }

    json payload(int min_cell = 5, std::uint64_t seq = 12, const AlertState* state = nullptr) const {
        AlertMessage m;
        m.state = state;
        m.seq = seq;
        m.event = &event;
        m.locality = &locality;
        m.composite = &composite;
        m.actions = &actions;
        m.min_cell = min_cell;
        return json::parse(alert_payload(m));
    }
};

}  // namespace

TEST_CASE("the alert topic is the region path and locality id, slash-terminated", "[messages]") {
    CHECK(alert_topic(kibera()) == "alert/KE/KE-03/KE-030/KE-030-001/");
    Locality l = kibera();
    l.region = "KE";
    l.id = "L1";
    CHECK(alert_topic(l) == "alert/KE/L1/");
}

TEST_CASE("an alert payload has every protocol v1 field with its type", "[messages]") {
    const json p = Fixture().payload();
    CHECK(p.at("schema") == "ews.alert/1");
    CHECK(p.at("seq").is_number_unsigned());
    CHECK(p.at("seq") == 12);
    CHECK(p.at("id") == "KE-030-001@20261128T000000Z");
    CHECK(p.at("event") == "raised");
    CHECK(p.at("locality") == json{{"id", "KE-030-001"}, {"name", "Kibera North"},
                                   {"region", "KE/KE-03/KE-030"}});
    CHECK(p.at("level") == "warning");
    CHECK(p.at("score") == Approx(67.5).margin(1e-12));
    CHECK(p.at("confidence") == Approx(0.812).margin(1e-12));
    CHECK(p.at("at") == "2026-11-28T10:00:00Z");
    CHECK(p.at("opened_at") == "2026-11-28T10:00:00Z");
    REQUIRE(p.at("contributions").is_array());
    REQUIRE(p.at("contributions").size() == 3);
    for (const auto& c : p.at("contributions")) {
        CHECK(c.at("indicator").is_string());
        CHECK(c.at("weight").is_number());
        CHECK(c.at("score").is_number());
        CHECK(c.at("score") >= 0.0);
        CHECK(c.at("score") <= 1.0);
        CHECK(c.at("confidence").is_number());
        CHECK(c.at("status").is_string());
        CHECK((c.at("newest").is_string() || c.at("newest").is_null()));
        CHECK(c.at("evidence").at("text").is_string());
        CHECK(c.at("evidence").at("values").is_object());
    }
    const json& first = p.at("contributions").at(0);
    CHECK(first.at("indicator") == "school_dropout");
    CHECK(first.at("weight") == 1.5);
    CHECK(first.at("score") == Approx(0.825).margin(1e-12));
    CHECK(first.at("status") == "ok");
    CHECK(first.at("newest") == "2026-11-20T00:00:00Z");
    CHECK(first.at("evidence").at("text") == "dropout 2.4% vs 1.1% baseline");
    CHECK(p.at("contributions").at(1).at("newest").is_null());
    CHECK(p.at("actions") == json{"convene the community child-protection committee",
                                  "school outreach to children who left"});
}

TEST_CASE("a first raise has previous_level none, later events name the level before", "[messages]") {
    Fixture f;
    CHECK(f.payload().at("previous_level") == "none");
    f.event.type = "escalated";
    f.event.previous = Level::warning;
    f.event.level = Level::critical;
    const json p = f.payload();
    CHECK(p.at("event") == "escalated");
    CHECK(p.at("previous_level") == "warning");
    CHECK(p.at("level") == "critical");
}

TEST_CASE("data_gaps lists the stale and no_data indicators only", "[messages]") {
    const json gaps = Fixture().payload().at("data_gaps");
    CHECK(gaps == json::array({
                      json{{"indicator", "group_presence"}, {"status", "no_data"}, {"newest", nullptr}},
                      json{{"indicator", "community_incidents"}, {"status", "stale"},
                           {"newest", "2026-09-01T00:00:00Z"}},
                  }));
}

TEST_CASE("counts below privacy.min_cell are published as \"<N>\"", "[messages]") {
    SECTION("default threshold 5") {
        const json v = Fixture().payload(5).at("contributions").at(0).at("evidence").at("values");
        CHECK(v.at("dropouts") == "<5");
        CHECK(v.at("enrolled") == 412);
        CHECK(v.at("enrolled").is_number_integer());
        CHECK(v.at("rate") == Approx(0.024));
        CHECK(v.at("zero_count") == 0);  // zero singles nobody out
    }
    SECTION("the configured threshold is used") {
        Fixture f;
        f.composite.contributions.at(0).assessment.evidence.values = {
            {"dropouts", 9, true}, {"enrolled", 10, true}, {"share", 3, false}};
        const json v = f.payload(10).at("contributions").at(0).at("evidence").at("values");
        CHECK(v.at("dropouts") == "<10");
        CHECK(v.at("enrolled") == 10);
        CHECK(v.at("share") == 3);  // not a count: never suppressed
    }
}

TEST_CASE("non-finite numbers are published as null", "[messages]") {
    Fixture f;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double inf = std::numeric_limits<double>::infinity();
    f.composite.score = nan;
    f.composite.confidence = inf;
    auto& a = f.composite.contributions.at(0).assessment;
    a.score = nan;
    a.evidence.values = {{"ratio", inf, false}, {"dropouts", nan, true}};
    std::string text;
    {
        AlertMessage m;
        m.event = &f.event;
        m.locality = &f.locality;
        m.composite = &f.composite;
        text = alert_payload(m);
    }
    const json p = json::parse(text);  // parses: no NaN or Infinity tokens in the text
    CHECK(p.at("score").is_null());
    CHECK(p.at("confidence").is_null());
    CHECK(p.at("contributions").at(0).at("score").is_null());
    CHECK(p.at("contributions").at(0).at("evidence").at("values").at("ratio").is_null());
    CHECK(p.at("contributions").at(0).at("evidence").at("values").at("dropouts").is_null());
    CHECK(p.at("actions") == json::array());
}

TEST_CASE("lifecycle fields: dominant, flapping, acknowledged, and a data event's gap", "[messages]") {
    Fixture f;
    json p = f.payload();
    CHECK(p.at("dominant").is_null());  // no dominant index set
    CHECK(p.at("flapping") == false);
    CHECK(p.at("acknowledged").is_null());
    CHECK_FALSE(p.contains("gap"));

    f.composite.dominant = 0;
    AlertState s;
    s.flapping = true;
    s.acked_id = f.event.alert_id;
    s.acked_by = "officer A";
    s.acked_at = at("2026-11-29T08:00:00Z");
    p = f.payload(5, 12, &s);
    CHECK(p.at("dominant") == "school_dropout");
    CHECK(p.at("flapping") == true);
    CHECK(p.at("acknowledged") == json{{"by", "officer A"}, {"at", "2026-11-29T08:00:00Z"}});

    // An acknowledgement of another alert is not this one's.
    s.acked_id = "KE-030-001@20261001T000000Z";
    CHECK(f.payload(5, 12, &s).at("acknowledged").is_null());

    // A data event: the gap's id and start, the open alert's id, the age of the newest data.
    s.acked_id = f.event.alert_id;
    s.notified_id = f.event.alert_id;
    f.event.type = event::data_gap;
    f.event.gap = DataGap{"community_incidents", at("2026-11-27T00:00:00Z"), sdk::Status::stale,
                          at("2026-11-26T10:00:00Z")};
    f.event.alert_id = gap_id(f.locality.id, *f.event.gap);
    f.event.opened_at = f.event.gap->since;
    p = f.payload(5, 12, &s);
    CHECK(p.at("id") == "KE-030-001/community_incidents@20261127T000000Z");
    CHECK(p.at("opened_at") == "2026-11-27T00:00:00Z");
    CHECK(p.at("alert_id") == "KE-030-001@20261128T000000Z");
    CHECK(p.at("acknowledged").is_null());  // never on data events
    CHECK(p.at("gap") == json{{"indicator", "community_incidents"}, {"status", "stale"},
                              {"since", "2026-11-27T00:00:00Z"}, {"newest", "2026-11-26T10:00:00Z"},
                              {"age_s", 2 * 86400}});
    s.notified_id.clear();
    CHECK(f.payload(5, 12, &s).at("alert_id").is_null());
}

TEST_CASE("the heartbeat carries the endpoint's last seq", "[messages]") {
    const json hb = json::parse(heartbeat_payload(41, at("2026-11-28T10:00:05Z")));
    CHECK(hb == json{{"schema", "ews.heartbeat/1"}, {"seq", 41}, {"at", "2026-11-28T10:00:05Z"}});
}

namespace {

using ordered = nlohmann::ordered_json;

std::vector<std::string> keys_of(const ordered& object) {
    std::vector<std::string> keys;
    for (const auto& [key, value] : object.items()) keys.push_back(key);
    return keys;
}

// Random messages whose strings hold quotes, backslashes, control characters, DEL, valid
// UTF-8 and stray bytes, and whose numbers include NaN, infinities, -0, huge, tiny and
// arbitrary bit patterns.
struct RandomMessage {
    std::mt19937_64 rng;
    Locality locality;
    Composite composite;
    AlertEvent event;
    std::vector<std::string> actions;
    AlertState state;
    AlertMessage message;

    explicit RandomMessage(std::uint64_t seed) : rng(seed) {
        locality.id = text();
        locality.name = text();
        locality.region = text();
        composite.score = number();
        composite.confidence = number();
        composite.dominant = pick(5) - 1;
        for (int i = pick(4); i > 0; --i) {
            Contribution c;
            c.indicator = text();
            c.weight = number();
            c.assessment.score = number();
            c.assessment.confidence = number();
            c.assessment.status = sdk::Status(pick(4));
            if (pick(2)) c.assessment.newest = time();
            c.assessment.evidence.text = text();
            for (int v = pick(5); v > 0; --v)
                c.assessment.evidence.values.push_back(
                    {pick(3) ? text() : std::string("repeated"), number(), pick(2) == 0});
            composite.contributions.push_back(std::move(c));
        }
        event.type = text();
        event.alert_id = text();
        event.level = Level(pick(4));
        event.previous = Level(pick(4));
        event.at = time();
        if (pick(2)) event.opened_at = time();
        if (pick(3) == 0)
            event.gap = DataGap{text(), time(), sdk::Status(pick(4)),
                                pick(2) ? std::optional<TimePoint>(time()) : std::nullopt};
        for (int i = pick(3); i > 0; --i) actions.push_back(text());
        state.flapping = pick(2) == 0;
        if (pick(2)) {
            state.acked_at = time();
            state.acked_by = text();
            state.acked_id = pick(2) ? event.alert_id : text();
        }
        if (pick(2)) state.notified_id = text();
        message = AlertMessage{rng(), &event, &locality, pick(5) ? &composite : nullptr,
                               pick(5) ? &actions : nullptr, pick(4) ? &state : nullptr,
                               1 + pick(10)};
    }

    int pick(int n) { return static_cast<int>(rng() % static_cast<std::uint64_t>(n)); }
    std::string text() {
        std::string s;
        for (int i = pick(12); i > 0; --i) {
            const int k = pick(10);
            if (k < 6) s += static_cast<char>('a' + pick(26));
            else if (k == 6) s += static_cast<char>(pick(32));
            else if (k == 7) s += "\"\\/\x7f"[pick(4)];
            else if (k == 8) s += static_cast<char>(0x80 + pick(128));
            else s += "\xc3\xa9";
        }
        return s;
    }
    double number() {
        switch (pick(8)) {
            case 0: return std::numeric_limits<double>::quiet_NaN();
            case 1: return pick(2) ? std::numeric_limits<double>::infinity()
                                   : -std::numeric_limits<double>::infinity();
            case 2: return pick(100);
            case 3: {
                const std::uint64_t bits = rng();
                double d;
                std::memcpy(&d, &bits, sizeof d);
                return d;
            }
            case 4: return -0.0;
            case 5: return 1e-7 * pick(1000);
            case 6: return 1e17 * pick(100);
            default: return std::uniform_real_distribution<double>(-2, 120)(rng);
        }
    }
    TimePoint time() {
        return TimePoint(std::chrono::seconds(1700000000 + static_cast<std::int64_t>(rng() % 200000000)));
    }
};

}  // namespace

TEST_CASE("an alert payload is compact JSON exactly as nlohmann dumps it, fields in protocol order",
          "[messages]") {
    const std::vector<std::string> fields{"schema",   "seq",          "id",          "event",
                                          "locality", "level",        "previous_level",
                                          "score",    "confidence",   "at",          "opened_at",
                                          "contributions", "data_gaps", "actions",   "dominant",
                                          "flapping", "acknowledged"};
    const std::vector<std::string> contribution_fields{"indicator", "weight", "score", "confidence",
                                                       "status", "newest", "evidence"};
    for (std::uint64_t seed = 1; seed <= 3000; ++seed) {
        INFO("seed " << seed);
        RandomMessage r(seed);
        const std::string text = alert_payload(r.message);
        ordered p;
        REQUIRE_NOTHROW(p = ordered::parse(text));
        // Parsing and dumping again gives the same bytes: every string escaped, every
        // number written and every invalid UTF-8 byte replaced as nlohmann does it, no
        // member written twice.
        REQUIRE(p.dump(-1, ' ', false, ordered::error_handler_t::replace) == text);
        auto expected = fields;
        if (r.event.gap) {
            expected.push_back("gap");
            expected.push_back("alert_id");
        }
        REQUIRE(keys_of(p) == expected);
        REQUIRE(keys_of(p.at("locality")) == std::vector<std::string>{"id", "name", "region"});
        const std::size_t contributions = r.message.composite ? r.composite.contributions.size() : 0;
        REQUIRE(p.at("contributions").size() == contributions);
        for (const auto& c : p.at("contributions")) REQUIRE(keys_of(c) == contribution_fields);
        REQUIRE(p.at("actions").size() == (r.message.actions ? r.actions.size() : 0));
    }
}

TEST_CASE("alert payload strings and evidence names", "[messages]") {
    Fixture f;
    f.locality.name = std::string("a\"b\\c\x01\x1f\x7f\n\t", 10);
    f.locality.region = "caf\xc3\xa9 \xff end";  // valid UTF-8, then a stray byte
    auto& values = f.composite.contributions.at(0).assessment.evidence.values;
    values = {{"dropouts", 12, true}, {"rate", 0.5, false}, {"dropouts", 3, true}};
    AlertMessage m;
    m.event = &f.event;
    m.locality = &f.locality;
    m.composite = &f.composite;
    const std::string text = alert_payload(m);
    CHECK(text.find(R"("name":"a\"b\\c\u0001\u001f)" "\x7f" R"(\n\t")") != std::string::npos);
    CHECK(text.find("\"region\":\"caf\xc3\xa9 \xef\xbf\xbd end\"") != std::string::npos);
    // A name given twice keeps its first place and takes its last value (3: below min_cell).
    CHECK(text.find(R"("values":{"dropouts":"<5","rate":0.5})") != std::string::npos);
    // Many places of a name: 40 values under 13 names.
    values.clear();
    for (int i = 0; i < 40; ++i)
        values.push_back({"v" + std::to_string((i * 7) % 13), double(i) + 0.5, false});
    const ordered many = ordered::parse(alert_payload(m));
    const auto& got = many.at("contributions").at(0).at("evidence").at("values");
    ordered expected = ordered::object();  // a JSON tree's own handling of repeated members
    for (const auto& v : values) expected[v.name] = v.value;
    CHECK(got.dump() == expected.dump());
    CHECK(got.size() == 13);
    values = {{"dropouts", 12, true}, {"rate", 0.5, false}, {"dropouts", 3, true}};
    // Doubles as nlohmann writes them: a whole number keeps ".0".
    CHECK(text.find(R"("weight":1.5)") != std::string::npos);
    f.composite.contributions.at(0).weight = 2;
    CHECK(alert_payload(m).find(R"("weight":2.0)") != std::string::npos);
}
