// publisher.hpp: one ZeroMQ PUB socket per [[publish]] endpoint. Sends committed outbox
// rows as two frames [topic, payload], and heartbeats on "hb/". Never blocks: a message a
// slow subscriber cannot take is dropped for that subscriber, which replays it by seq.
// An endpoint with CURVE keys is a CURVE server whose ZAP domain is the endpoint's name; the
// caller runs the curve::ZapHandler that admits its subscribers.
#pragma once

#include "config.hpp"
#include "store.hpp"

#include <zmq.hpp>

#include <map>
#include <string>
#include <vector>

namespace ews {

class Publisher {
public:
    // Binds every endpoint, CURVE first where configured. Throws: zmq::error_t naming nothing,
    // the caller reports the bind; std::runtime_error "FILE:LINE: ..." for a secret key file
    // that no longer reads.
    Publisher(zmq::context_t& context, const std::vector<PublishEndpoint>& endpoints);
    // Sends `row` on the socket of row.endpoint (ignored when the endpoint is unknown).
    void send(const OutboxRow& row);
    // Sends a heartbeat carrying `last_seq` on `endpoint`.
    void heartbeat(const std::string& endpoint, std::uint64_t last_seq, TimePoint at);
    std::vector<std::string> endpoint_names() const;

private:
    std::map<std::string, zmq::socket_t> sockets_;
};

}  // namespace ews
