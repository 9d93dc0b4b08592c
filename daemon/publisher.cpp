#include "publisher.hpp"

#include "curve.hpp"
#include "messages.hpp"

namespace ews {

namespace {

// A PUB socket drops, never blocks, when a subscriber's queue is full; the subscriber then
// sees a seq gap and replays. A high water mark this size absorbs a whole evaluation's burst.
constexpr int send_high_water_mark = 100000;
// At clean shutdown the last messages get this long to leave before the socket closes.
constexpr int linger_ms = 1000;

void send_two_frames(zmq::socket_t& socket, const std::string& topic, const std::string& payload) {
    // PUB ignores dontwait (it drops at the high water mark instead); it is set so that a
    // change of socket type could never stall the event loop.
    socket.send(zmq::buffer(topic), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    socket.send(zmq::buffer(payload), zmq::send_flags::dontwait);
}

}  // namespace

Publisher::Publisher(zmq::context_t& context, const std::vector<PublishEndpoint>& endpoints) {
    for (const auto& e : endpoints) {
        zmq::socket_t socket(context, zmq::socket_type::pub);
        socket.set(zmq::sockopt::sndhwm, send_high_water_mark);
        socket.set(zmq::sockopt::linger, linger_ms);
        if (e.curve.enabled()) curve::make_server(socket, curve::read_certificate(e.curve.secret_key_file), e.name);
        socket.bind(e.bind);
        sockets_.insert_or_assign(e.name, std::move(socket));
    }
}

void Publisher::send(const OutboxRow& row) {
    auto it = sockets_.find(row.endpoint);
    if (it == sockets_.end()) return;
    send_two_frames(it->second, row.topic, row.payload);
}

void Publisher::heartbeat(const std::string& endpoint, std::uint64_t last_seq, TimePoint at) {
    auto it = sockets_.find(endpoint);
    if (it == sockets_.end()) return;
    send_two_frames(it->second, "hb/", heartbeat_payload(last_seq, at));
}

std::vector<std::string> Publisher::endpoint_names() const {
    std::vector<std::string> names;
    names.reserve(sockets_.size());
    for (const auto& [name, socket] : sockets_) names.push_back(name);
    return names;
}

}  // namespace ews
