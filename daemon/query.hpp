// query.hpp: the query endpoint (ROUTER, for REQ and DEALER clients). JSON requests, JSON replies (docs/protocol.md):
// replay (outbox rows after a seq, paged), snapshot (open alerts under a topic prefix and
// the seq they are current to), status. A malformed request gets {"error": "..."}.
#pragma once

#include "curve.hpp"
#include "store.hpp"

#include <zmq.hpp>

#include <exception>
#include <functional>
#include <optional>
#include <string>

namespace ews {

// Shared by the request endpoints (query, control): one request in, exactly one reply out.

// Takes one request from the ROUTER `socket` when one is waiting and sends exactly one reply
// back through the request's envelope: answer(request text) for a one-frame request, an error
// reply for any other shape. A DEALER's request without the empty delimiter frame is answered
// without one. A reply to a client that has gone is dropped, never waited for.
void serve_one_request(zmq::socket_t& socket,
                       const std::function<std::string(const std::string&)>& answer);
// Returns: {"error": what} as JSON text.
std::string error_reply(const std::string& what);
// Returns: the reason of a JSON parse error without nlohmann's prefix ("[json.exception...]
// parse error at line 1, column 2: "); callers report the byte offset themselves.
std::string parse_reason(const std::exception& parse_error);

// Returns: the reply JSON text for one request JSON text. `endpoint` is the outbox (publish
// endpoint name) replay and snapshot read; `status` gives the status object's JSON text.
std::string answer_query(const std::string& request, Store& store, const std::string& endpoint,
                         const std::function<std::string()>& status);

// The ZAP domain of the query endpoint when it has CURVE.
inline constexpr const char* query_zap_domain = "query";

class QueryServer {
public:
    // Binds `bind`; with `server` a CURVE server of ZAP domain `zap_domain` ([query]'s own, or
    // the name of the [[publish]] endpoint it belongs to), whose clients the context's
    // curve::ZapHandler admits. Throws: std::runtime_error naming the address when it cannot bind.
    QueryServer(zmq::context_t& context, const std::string& bind,
                const std::optional<curve::Certificate>& server = std::nullopt,
                const std::string& zap_domain = query_zap_domain);
    zmq::socket_t& socket() { return socket_; }
    // Receives one request (the socket is readable) and sends its answer.
    void handle(Store& store, const std::string& endpoint, const std::function<std::string()>& status);

private:
    zmq::socket_t socket_;
};

}  // namespace ews
