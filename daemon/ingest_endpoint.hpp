// ingest_endpoint.hpp: the ingest endpoint (ROUTER) where tools push batches of observations
// (docs/protocol.md, "Ingest endpoint"). A request is a JSON header frame and a batch frame;
// the reply, one JSON frame, lists every rejected row. The endpoint only speaks the protocol:
// the caller's handler validates and commits the batch, and the reply goes out only after
// the handler returned, so an acknowledged batch is durable.
//
// It must never leave a client without a reply: a malformed request, an oversized batch or
// a handler that throws gets {"error": "..."}.
#pragma once

#include "config.hpp"
#include "ingest.hpp"

#include <zmq.hpp>

#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace ews {

// Largest batch answered: a larger one gets an error reply (send it in smaller batches).
inline constexpr std::size_t max_ingest_batch_bytes = std::size_t(64) << 20;
// Frames larger than this are dropped by libzmq with the connection, unanswered: the guard
// that keeps a runaway client from exhausting memory.
inline constexpr std::int64_t max_ingest_frame_bytes = std::int64_t(256) << 20;

// The header frame: {"format": "csv"|"jsonl", "name": LABEL, "policy": "partial"|"reject_file"}.
struct IngestHeader {
    IngestFormat format = IngestFormat::csv;
    std::string name = "batch";  // names the batch in errors, logs and the ingest record
    RejectPolicy policy = RejectPolicy::reject_file;
};

// A request the client got wrong; its what() is the reply's "error".
class IngestRequestError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Returns: the header `json` spells; "policy" defaults to `default_policy`, "name" to "batch".
// Throws: IngestRequestError (malformed JSON, unknown or mistyped field, format missing).
IngestHeader parse_ingest_header(std::string_view json, RejectPolicy default_policy);
// Returns: the header frame for `header` (what a client sends; ewsctl uses it).
std::string ingest_header_json(const IngestHeader& header);
// Returns: the reply for `outcome`: {"name", "accepted", "rejected": [{"line", "column",
// "reason"}] (the first max_listed_rejections), "rejected_total", "committed", "duplicate"}.
std::string ingest_reply(const IngestOutcome& outcome);
inline constexpr std::size_t max_listed_rejections = 10000;

class IngestEndpoint {
public:
    // Validates and commits one batch. Throws: anything; the client then gets an error reply.
    using Handler = std::function<IngestOutcome(std::string_view content, const IngestHeader&)>;

    // Binds a ROUTER socket at `bind`. Throws: std::runtime_error naming the address when it cannot.
    IngestEndpoint(zmq::context_t& context, const std::string& bind, RejectPolicy default_policy);
    zmq::socket_t& socket() { return socket_; }
    void set_default_policy(RejectPolicy policy) { default_policy_ = policy; }

    // Takes one waiting request, if any, passes a well-formed batch to `handler` and sends
    // the reply. Returns: false when no request was waiting.
    bool handle(const Handler& handler);

private:
    zmq::socket_t socket_;
    RejectPolicy default_policy_;
};

}  // namespace ews
