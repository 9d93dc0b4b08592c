#include "ingest_endpoint.hpp"

#include "json_text.hpp"

#include <zmq_addon.hpp>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <iterator>
#include <vector>
#include <stdexcept>

namespace ews {

namespace {

// ordered_json: replies keep the field order docs/protocol.md shows.
using Json = nlohmann::ordered_json;

constexpr std::size_t max_name_bytes = 200;

std::string error_reply(const std::string& what) {
    return json_text(Json{{"error", what}});
}

std::string string_field(const Json& header, const char* field) {
    const Json& v = header.at(field);
    if (!v.is_string())
        throw IngestRequestError(std::string("header: field \"") + field +
                                 "\" must be a string, got " + quoted_value(v));
    return v.get<std::string>();
}

}  // namespace

IngestHeader parse_ingest_header(std::string_view json, RejectPolicy default_policy) {
    Json header;
    try {
        header = Json::parse(json);
    } catch (const Json::exception& e) {
        // "[json.exception.parse_error.101] parse error at line 1, column 2: <reason>"
        std::string what = e.what();
        if (auto b = what.find("] "); b != std::string::npos) what.erase(0, b + 2);
        throw IngestRequestError("header: invalid JSON: " + what);
    }
    if (!header.is_object())
        throw IngestRequestError("header: expected a JSON object {\"format\": \"csv\"|\"jsonl\", "
                                 "\"name\": ..., \"policy\": ...}, got " + quoted_value(header));
    for (const auto& [key, value] : header.items())
        if (key != "format" && key != "name" && key != "policy")
            throw IngestRequestError("header: unknown field \"" + key +
                                     "\" (allowed: format, name, policy)");
    IngestHeader out;
    out.policy = default_policy;
    if (!header.contains("format"))
        throw IngestRequestError("header: field \"format\" is required (\"csv\" or \"jsonl\")");
    const std::string format = string_field(header, "format");
    auto parsed_format = parse_ingest_format(format);
    if (!parsed_format)
        throw IngestRequestError("header: format must be \"csv\" or \"jsonl\", got \"" + format +
                                 "\"");
    out.format = *parsed_format;
    if (header.contains("name")) {
        out.name = string_field(header, "name");
        const bool control = std::any_of(out.name.begin(), out.name.end(), [](char c) {
            return static_cast<unsigned char>(c) < 0x20 || c == 0x7F;
        });
        if (out.name.empty() || out.name.size() > max_name_bytes || control)
            throw IngestRequestError("header: name must be 1 to " +
                                     std::to_string(max_name_bytes) +
                                     " bytes without control characters");
    }
    if (header.contains("policy")) {
        const std::string policy = string_field(header, "policy");
        auto parsed_policy = parse_reject_policy(policy);
        if (!parsed_policy)
            throw IngestRequestError("header: policy must be \"partial\" or \"reject_file\", got \"" +
                                     policy + "\"");
        out.policy = *parsed_policy;
    }
    return out;
}

std::string ingest_header_json(const IngestHeader& header) {
    return json_text(Json{{"format", to_string(header.format)},
                     {"name", header.name},
                     {"policy", to_string(header.policy)}});
}

std::string ingest_reply(const IngestOutcome& outcome) {
    Json rejected = Json::array();
    for (std::size_t i = 0; i < outcome.errors.size() && i < max_listed_rejections; ++i) {
        const RowError& e = outcome.errors[i];
        rejected.push_back({{"line", e.line}, {"column", e.column}, {"reason", e.reason}});
    }
    return json_text(Json{{"name", outcome.file},
                     {"accepted", outcome.rows.size()},
                     {"rejected", std::move(rejected)},
                     {"rejected_total", outcome.errors.size()},
                     {"committed", outcome.committed},
                     {"duplicate", outcome.duplicate}});
}

IngestEndpoint::IngestEndpoint(zmq::context_t& context, const std::string& bind,
                               RejectPolicy default_policy)
    : socket_(context, zmq::socket_type::router), default_policy_(default_policy) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.set(zmq::sockopt::maxmsgsize, max_ingest_frame_bytes);
    try {
        socket_.bind(bind);
    } catch (const zmq::error_t& e) {
        throw std::runtime_error("cannot bind " + bind + " ([ingest] bind): " + e.what());
    }
}

bool IngestEndpoint::handle(const Handler& handler) {
    std::vector<zmq::message_t> frames;
    if (!zmq::recv_multipart(socket_, std::back_inserter(frames), zmq::recv_flags::dontwait))
        return false;
    if (frames.empty()) return true;
    // [routing id, (empty delimiter from REQ, optional from DEALER), header, batch]: the reply
    // repeats the envelope the request came with.
    const bool delimited = frames.size() >= 2 && frames[1].size() == 0;
    const std::size_t first = delimited ? 2 : 1;
    const std::size_t parts = frames.size() - first;

    std::string reply;
    auto refuse = [&](const std::string& why) {
        spdlog::warn("ingest endpoint: request refused: {}", why);
        reply = error_reply(why);
    };
    if (parts != 2) {
        refuse("expected 2 frames (a JSON header, then the batch), got " + std::to_string(parts));
    } else if (frames[first + 1].size() > max_ingest_batch_bytes) {
        refuse("batch of " + std::to_string(frames[first + 1].size()) +
               " bytes is over the limit of " + std::to_string(max_ingest_batch_bytes) +
               " bytes (64 MiB); send it in smaller batches");
    } else {
        try {
            const IngestHeader header =
                parse_ingest_header(frames[first].to_string_view(), default_policy_);
            reply = ingest_reply(handler(frames[first + 1].to_string_view(), header));
        } catch (const IngestRequestError& e) {
            refuse(e.what());
        } catch (const std::exception& e) {
            // The handler logged it; the client learns that nothing was committed.
            reply = error_reply(std::string("batch not committed: ") + e.what());
        }
    }

    std::vector<zmq::message_t> out;
    out.emplace_back(std::move(frames[0]));
    if (delimited) out.emplace_back();
    out.emplace_back(reply.data(), reply.size());
    try {
        // A client gone since its request is dropped by the ROUTER; never blocks.
        zmq::send_multipart(socket_, out, zmq::send_flags::dontwait);
    } catch (const zmq::error_t& e) {
        spdlog::warn("ingest endpoint: cannot send a reply: {}", e.what());
    }
    return true;
}

}  // namespace ews
