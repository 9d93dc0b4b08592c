// query.hpp: the query endpoint (REP). JSON requests, JSON replies (docs/protocol.md):
// replay (outbox rows after a seq, paged), snapshot (open alerts under a topic prefix and
// the seq they are current to), status. A malformed request gets {"error": "..."}.
#pragma once

#include "store.hpp"

#include <zmq.hpp>

#include <functional>
#include <string>

namespace ews {

// Returns: the reply JSON text for one request JSON text. `endpoint` is the outbox (publish
// endpoint name) replay and snapshot read; `status` gives the status object's JSON text.
std::string answer_query(const std::string& request, Store& store, const std::string& endpoint,
                         const std::function<std::string()>& status);

class QueryServer {
public:
    QueryServer(zmq::context_t& context, const std::string& bind);
    zmq::socket_t& socket() { return socket_; }
    // Receives one request (the socket is readable) and sends its answer.
    void handle(Store& store, const std::string& endpoint, const std::function<std::string()>& status);

private:
    zmq::socket_t socket_;
};

}  // namespace ews
