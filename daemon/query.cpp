#include "query.hpp"

#include "json_text.hpp"

#include <zmq_addon.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <exception>
#include <iterator>
#include <vector>
#include <stdexcept>

namespace ews {

namespace {

// ordered_json: a replayed payload keeps the field order it had on the live stream.
using Json = nlohmann::ordered_json;

constexpr std::size_t default_limit = 1000;
constexpr std::size_t max_limit = 10000;
// Rows one replay request may examine when a prefix skips most of them. Bounds the time a
// request holds the daemon's event loop; the client continues from last_seq.
constexpr std::size_t max_scan = 100000;
// Larger requests are cut off by libzmq before they reach answer_query.
constexpr std::int64_t max_request_bytes = 1 << 20;

// Thrown for a request the client got wrong; becomes {"error": what}.
struct RequestError {
    std::string what;
};

std::uint64_t non_negative_integer(const Json& request, const char* op, const char* field) {
    const Json& v = request.at(field);
    if (!v.is_number_unsigned())
        throw RequestError{std::string(op) + ": field \"" + field +
                           "\" must be a non-negative integer, got " + quoted_value(v)};
    return v.get<std::uint64_t>();
}

std::string string_field(const Json& request, const char* op, const char* field,
                         const std::string& fallback) {
    if (!request.contains(field)) return fallback;
    const Json& v = request.at(field);
    if (!v.is_string())
        throw RequestError{std::string(op) + ": field \"" + field + "\" must be a string, got " +
                           quoted_value(v)};
    return v.get<std::string>();
}

Json parse_payload(const OutboxRow& row) {
    Json payload = Json::parse(row.payload, nullptr, false);
    if (payload.is_discarded())
        throw std::runtime_error("outbox row " + std::to_string(row.seq) + " of endpoint " +
                                 row.endpoint + " holds malformed JSON");
    return payload;
}

bool starts_with(const std::string& s, const std::string& prefix) {
    return s.compare(0, prefix.size(), prefix) == 0;
}

// Paging contract: events are the rows after `since` whose topic starts with `prefix`, at
// most `limit`; last_seq is the last row examined (matching or not), so the next request
// from last_seq neither repeats nor misses a row; more says whether rows exist after it.
Json replay(const Json& request, Store& store, const std::string& endpoint) {
    if (!request.contains("since"))
        throw RequestError{"replay: missing field \"since\" (the last seq the client has, 0 for all)"};
    const std::uint64_t since = non_negative_integer(request, "replay", "since");
    std::size_t limit = default_limit;
    if (request.contains("limit")) {
        const std::uint64_t l = non_negative_integer(request, "replay", "limit");
        if (l == 0) throw RequestError{"replay: field \"limit\" must be at least 1"};
        limit = static_cast<std::size_t>(std::min<std::uint64_t>(l, max_limit));
    }
    const std::string prefix = string_field(request, "replay", "prefix", "");

    Json events = Json::array();
    std::uint64_t cursor = since;
    std::size_t scanned = 0;
    bool more = false;
    for (bool done = false; !done;) {
        // One row beyond what can be taken tells whether there is more.
        const auto rows = store.outbox_after(endpoint, cursor, limit + 1);
        for (const auto& row : rows) {
            if (events.size() == limit || scanned == max_scan) {
                more = true;
                done = true;
                break;
            }
            cursor = row.seq;
            ++scanned;
            if (starts_with(row.topic, prefix))
                events.push_back(Json{{"topic", row.topic}, {"payload", parse_payload(row)}});
        }
        if (rows.size() <= limit) done = true;  // the outbox ends within this batch
    }
    return Json{{"events", std::move(events)}, {"last_seq", cursor}, {"more", more}};
}

// Clone pattern: seq is read before the rows, so every event after seq is published after
// the rows were read; a client that drops live events with seq <= this seq loses nothing
// (it may see an alert's newest state twice, never miss it).
Json snapshot(const Json& request, Store& store, const std::string& endpoint) {
    const std::string prefix = string_field(request, "snapshot", "prefix", "alert/");
    if (!starts_with(prefix, "alert/"))
        throw RequestError{"snapshot: field \"prefix\" must start with \"alert/\", got \"" + prefix +
                           "\""};
    const std::uint64_t seq = store.last_seq(endpoint);
    Json alerts = Json::array();
    for (const auto& row : store.open_alert_rows(endpoint, prefix))
        alerts.push_back(parse_payload(row));
    return Json{{"alerts", std::move(alerts)}, {"seq", seq}};
}

Json status_reply(const std::function<std::string()>& status) {
    if (!status) throw std::runtime_error("status: no status source");
    Json reply = Json::parse(status(), nullptr, false);
    if (!reply.is_object()) throw std::runtime_error("status: the daemon's status is not a JSON object");
    return reply;
}

}  // namespace

std::string answer_query(const std::string& request, Store& store, const std::string& endpoint,
                         const std::function<std::string()>& status) {
    try {
        Json parsed;
        try {
            parsed = Json::parse(request);
        } catch (const nlohmann::json::parse_error& e) {
            // e.byte counts the offending byte from 1; clients get the 0-based offset.
            return error_reply("malformed request: " + parse_reason(e) + " at byte " +
                               std::to_string(e.byte > 0 ? e.byte - 1 : 0));
        } catch (const nlohmann::json::out_of_range& e) {
            // A number too large for a double (1e400): valid JSON, but the client's mistake.
            std::string what = e.what();  // "[json.exception.out_of_range.406] number overflow ..."
            if (const auto b = what.find("] "); b != std::string::npos) what.erase(0, b + 2);
            return error_reply("malformed request: " + what);
        }
        if (!parsed.is_object())
            return error_reply("request must be a JSON object such as {\"op\":\"status\"}, got " +
                               std::string(parsed.type_name()));
        if (!parsed.contains("op"))
            return error_reply("missing field \"op\" (expected \"replay\", \"snapshot\" or \"status\")");
        const Json& op = parsed.at("op");
        if (!op.is_string())
            return error_reply("field \"op\" must be a string, got " + quoted_value(op));
        const auto& name = op.get_ref<const std::string&>();
        if (name == "replay") return json_text(replay(parsed, store, endpoint));
        if (name == "snapshot") return json_text(snapshot(parsed, store, endpoint));
        if (name == "status") return json_text(status_reply(status));
        return error_reply("unknown op \"" + name + "\" (expected \"replay\", \"snapshot\" or \"status\")");
    } catch (const RequestError& e) {
        return error_reply(e.what);
    } catch (const std::exception& e) {
        return error_reply(std::string("server error: ") + e.what());
    } catch (...) {
        return error_reply("server error");
    }
}

QueryServer::QueryServer(zmq::context_t& context, const std::string& bind,
                         const std::optional<curve::Certificate>& server, const std::string& zap_domain)
    : socket_(context, zmq::socket_type::router) {
    socket_.set(zmq::sockopt::maxmsgsize, max_request_bytes);
    socket_.set(zmq::sockopt::linger, 0);
    if (server) curve::make_server(socket_, *server, zap_domain);
    try {
        socket_.bind(bind);
    } catch (const zmq::error_t& e) {
        throw std::runtime_error("cannot bind " + bind + " (query endpoint, ZAP domain " + zap_domain +
                                 "): " + e.what());
    }
}

void QueryServer::handle(Store& store, const std::string& endpoint,
                         const std::function<std::string()>& status) {
    serve_one_request(socket_, [&](const std::string& request) {
        return answer_query(request, store, endpoint, status);
    });
}

std::string error_reply(const std::string& what) {
    return json_text(Json{{"error", what}});
}

std::string parse_reason(const std::exception& parse_error) {
    std::string what = parse_error.what();
    const auto at = what.find("parse error");
    if (at != std::string::npos) {
        const auto colon = what.find(": ", at);
        if (colon != std::string::npos) return what.substr(colon + 2);
    }
    return what;
}

// The query and control endpoints are ROUTER sockets that REQ (and DEALER) clients talk to,
// not REP: libzmq's REP socket (4.3.4) sends the reply to a well-formed request nowhere after
// it has discarded a request without an envelope from a peer that has gone, so one careless
// or hostile client would leave other clients waiting for replies that never come
// (tests/integration/test_fault_query_flood.py). The envelope is handled here instead.
void serve_one_request(zmq::socket_t& socket,
                       const std::function<std::string(const std::string&)>& answer) {
    std::vector<zmq::message_t> frames;
    if (!zmq::recv_multipart(socket, std::back_inserter(frames), zmq::recv_flags::dontwait))
        return;  // nothing was taken, so nothing is owed
    if (frames.empty()) return;
    // [routing id, (envelope frames,) empty delimiter, request]: the envelope ends at the first
    // empty frame (a REQ client's delimiter). A DEALER may send its request without one; the
    // reply then comes without one too.
    std::size_t body = 1;
    while (body < frames.size() && frames[body].size() != 0) ++body;
    if (body < frames.size()) ++body;  // past the delimiter
    else body = 1;                     // no delimiter: everything after the routing id
    const std::size_t parts = frames.size() - body;
    std::string reply;
    if (parts != 1)
        reply = error_reply("request must be one frame holding a JSON object, got " +
                            std::to_string(parts) + " frames");
    else
        reply = answer(frames[body].to_string());
    std::vector<zmq::message_t> out;
    for (std::size_t i = 0; i < body; ++i) out.emplace_back(std::move(frames[i]));
    out.emplace_back(reply.data(), reply.size());
    try {
        // A client gone since its request is dropped by the ROUTER; never blocks.
        zmq::send_multipart(socket, out, zmq::send_flags::dontwait);
    } catch (const zmq::error_t&) {
        // Nothing to do: the client is gone or its queue is full; it may ask again.
    }
}

}  // namespace ews
