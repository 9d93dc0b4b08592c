#include "ingest_endpoint.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <zmq_addon.hpp>

#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

using namespace ews;
using nlohmann::json;

namespace {

std::string refusal(std::string_view header) {
    try {
        parse_ingest_header(header, RejectPolicy::reject_file);
    } catch (const IngestRequestError& e) {
        return e.what();
    }
    return "";
}

// An endpoint on inproc with a handler that records what it was given.
struct Bench {
    zmq::context_t context;
    IngestEndpoint endpoint{context, "inproc://ingest", RejectPolicy::reject_file};
    std::vector<std::pair<std::string, IngestHeader>> batches;
    bool fail = false;

    IngestEndpoint::Handler handler() {
        return [this](std::string_view content, const IngestHeader& header) {
            if (fail) throw std::runtime_error("database is locked");
            batches.emplace_back(std::string(content), header);
            IngestOutcome out;
            out.file = header.name;
            out.committed = true;
            out.rows.resize(2);
            out.errors = {{header.name, 3, 1, "unknown locality 'X'"}};
            return out;
        };
    }

    // Sends `frames` from `client` and returns the frames of the reply.
    std::vector<std::string> exchange(zmq::socket_t& client, const std::vector<std::string>& frames) {
        std::vector<zmq::const_buffer> parts;
        for (const auto& f : frames) parts.push_back(zmq::buffer(f));
        REQUIRE(zmq::send_multipart(client, parts));
        zmq::pollitem_t readable{endpoint.socket().handle(), 0, ZMQ_POLLIN, 0};
        REQUIRE(zmq::poll(&readable, 1, std::chrono::milliseconds(2000)) == 1);
        REQUIRE(endpoint.handle(handler()));
        CHECK_FALSE(endpoint.handle(handler()));  // one request, one answer
        client.set(zmq::sockopt::rcvtimeo, 2000);
        std::vector<zmq::message_t> reply;
        REQUIRE(zmq::recv_multipart(client, std::back_inserter(reply)));
        std::vector<std::string> out;
        for (auto& m : reply) out.push_back(m.to_string());
        return out;
    }
};

}  // namespace

TEST_CASE("the ingest header names the format, a label and the policy", "[ingest_endpoint]") {
    auto h = parse_ingest_header(R"({"format":"jsonl","name":"monitor-12 week 3","policy":"partial"})",
                                 RejectPolicy::reject_file);
    CHECK(h.format == IngestFormat::jsonl);
    CHECK(h.name == "monitor-12 week 3");
    CHECK(h.policy == RejectPolicy::partial);

    auto d = parse_ingest_header(R"({"format":"csv"})", RejectPolicy::partial);
    CHECK(d.format == IngestFormat::csv);
    CHECK(d.name == "batch");
    CHECK(d.policy == RejectPolicy::partial);  // the configured endpoint_policy

    CHECK(parse_ingest_header(ingest_header_json(h), RejectPolicy::reject_file).name == h.name);

    CHECK_THAT(refusal("{\"format\":"), Catch::StartsWith("header: invalid JSON"));
    CHECK_THAT(refusal("[]"), Catch::StartsWith("header: expected a JSON object"));
    CHECK(refusal(R"({"name":"x"})") == "header: field \"format\" is required (\"csv\" or \"jsonl\")");
    CHECK(refusal(R"({"format":"xml"})") == "header: format must be \"csv\" or \"jsonl\", got \"xml\"");
    CHECK(refusal(R"({"format":1})") == "header: field \"format\" must be a string, got 1");
    CHECK(refusal(R"({"format":"csv","policy":"some"})") ==
          "header: policy must be \"partial\" or \"reject_file\", got \"some\"");
    CHECK(refusal(R"({"format":"csv","child":"x"})") ==
          "header: unknown field \"child\" (allowed: format, name, policy)");
    CHECK_THAT(refusal(R"({"format":"csv","name":""})"), Catch::Contains("name must be 1 to 200 bytes"));
    CHECK_THAT(refusal(R"({"format":"csv","name":"a\nb"})"), Catch::Contains("without control"));
    // A header nested far deeper than any stack would take if written back out: refused by
    // its type, never written out.
    const std::string deep = std::string(100000, '[') + std::string(100000, ']');
    CHECK(refusal(deep) == "header: expected a JSON object {\"format\": \"csv\"|\"jsonl\", "
                           "\"name\": ..., \"policy\": ...}, got an array");
    CHECK(refusal(R"({"format":)" + deep + "}") ==
          "header: field \"format\" must be a string, got an array");
}

TEST_CASE("the reply lists every rejected row with line, column and reason", "[ingest_endpoint]") {
    IngestOutcome out;
    out.file = "week-3";
    out.committed = true;
    out.rows.resize(5);
    out.errors = {{"week-3", 2, 13, "unknown locality 'KE-999'"}};
    CHECK(json::parse(ingest_reply(out)) ==
          json::parse(R"({"name":"week-3","accepted":5,"rejected":[{"line":2,"column":13,
                          "reason":"unknown locality 'KE-999'"}],"rejected_total":1,
                          "committed":true,"duplicate":false})"));

    IngestOutcome many;
    many.errors.resize(max_listed_rejections + 5);
    auto r = json::parse(ingest_reply(many));
    CHECK(r["rejected"].size() == max_listed_rejections);
    CHECK(r["rejected_total"] == max_listed_rejections + 5);
    CHECK(r["committed"] == false);
}

TEST_CASE("the endpoint answers REQ and DEALER clients in their own envelope", "[ingest_endpoint]") {
    Bench b;
    zmq::socket_t req(b.context, zmq::socket_type::req);
    req.connect("inproc://ingest");

    auto reply = b.exchange(req, {R"({"format":"csv","name":"w1"})", "locality,time,kind,value\n"});
    REQUIRE(reply.size() == 1);
    auto r = json::parse(reply[0]);
    CHECK(r["accepted"] == 2);
    CHECK(r["rejected"][0]["line"] == 3);
    CHECK(r["committed"] == true);
    REQUIRE(b.batches.size() == 1);
    CHECK(b.batches[0].first == "locality,time,kind,value\n");
    CHECK(b.batches[0].second.name == "w1");
    CHECK(b.batches[0].second.policy == RejectPolicy::reject_file);

    // A malformed request gets an error, and the endpoint keeps serving.
    auto bad = json::parse(b.exchange(req, {R"({"format":"csv"})"})[0]);
    CHECK(bad["error"] == "expected 2 frames (a JSON header, then the batch), got 1");
    auto bad_header = json::parse(b.exchange(req, {"not json", "x"})[0]);
    CHECK_THAT(bad_header["error"].get<std::string>(), Catch::StartsWith("header: invalid JSON"));
    b.fail = true;
    auto failed = json::parse(b.exchange(req, {R"({"format":"csv"})", "x"})[0]);
    CHECK(failed["error"] == "batch not committed: database is locked");
    b.fail = false;
    CHECK(b.batches.size() == 1);

    // DEALER without a delimiter gets a reply without one; with one, with one.
    zmq::socket_t dealer(b.context, zmq::socket_type::dealer);
    dealer.connect("inproc://ingest");
    auto bare = b.exchange(dealer, {R"({"format":"jsonl","policy":"partial"})", "{}"});
    REQUIRE(bare.size() == 1);
    CHECK(json::parse(bare[0])["accepted"] == 2);
    CHECK(b.batches.back().second.policy == RejectPolicy::partial);
    auto delimited = b.exchange(dealer, {"", R"({"format":"jsonl"})", "{}"});
    REQUIRE(delimited.size() == 2);
    CHECK(delimited[0].empty());
    CHECK(json::parse(delimited[1])["committed"] == true);
}

TEST_CASE("a batch over the size limit is refused with a reply", "[ingest_endpoint]") {
    Bench b;
    zmq::socket_t req(b.context, zmq::socket_type::req);
    req.connect("inproc://ingest");
    auto r = json::parse(
        b.exchange(req, {R"({"format":"csv"})", std::string(max_ingest_batch_bytes + 1, 'x')})[0]);
    CHECK_THAT(r["error"].get<std::string>(), Catch::Contains("over the limit of 67108864 bytes"));
    CHECK(b.batches.empty());
}
