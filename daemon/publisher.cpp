#include "publisher.hpp"

#include "curve.hpp"
#include "messages.hpp"

#include <zmq_addon.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <iterator>
#include <stdexcept>

namespace ews {

namespace {

// A PUB socket drops, never blocks, when a subscriber's queue is full; the subscriber then
// sees a seq gap and replays. A high water mark this size absorbs a whole evaluation's burst.
constexpr int send_high_water_mark = 100000;
// At clean shutdown the last messages get this long to leave before the socket closes.
constexpr int linger_ms = 1000;

// The events SubscriberTally needs; the handshake outcomes only where a handshake decides.
constexpr int connection_events = ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_CLOSED;
constexpr int handshake_events = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                 ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;

void send_two_frames(zmq::socket_t& socket, const std::string& topic, const std::string& payload) {
    // PUB ignores dontwait (it drops at the high water mark instead); it is set so that a
    // change of socket type could never stall the event loop.
    socket.send(zmq::buffer(topic), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    socket.send(zmq::buffer(payload), zmq::send_flags::dontwait);
}

// Returns: an inproc address no other monitor of this process uses (inproc names are
// per context, and a closed socket's name is released only later).
std::string next_monitor_address() {
    static std::atomic<unsigned long> next{0};
    return "inproc://ews.publisher.monitor." + std::to_string(next.fetch_add(1));
}

}  // namespace

void SubscriberTally::on_event(std::uint16_t event, std::uint32_t value) {
    switch (event) {
        case ZMQ_EVENT_ACCEPTED:
            (handshake_required_ ? handshaking_ : connected_).insert(value);
            return;
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
            if (!handshake_required_) return;
            ++untied_succeeded_;
            settle();
            return;
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
            if (!handshake_required_) return;
            ++untied_failed_;
            settle();
            return;
        case ZMQ_EVENT_CLOSED:
            if (!connected_.contains(value) && !handshaking_.contains(value)) {
                // The listening socket closed, and every connection with it.
                connected_.clear();
                handshaking_.clear();
                untied_succeeded_ = 0;
                untied_failed_ = 0;
                return;
            }
            [[fallthrough]];
        case ZMQ_EVENT_DISCONNECTED:
            if (connected_.erase(value) > 0) return;
            // Not handshaking either: a refused connection, settled already.
            if (handshaking_.erase(value) == 0) return;
            // A refused client is disconnected as soon as it is refused, a subscriber stays:
            // an untied refusal is the likelier outcome of this connection.
            if (untied_failed_ > 0)
                --untied_failed_;
            else if (untied_succeeded_ > 0)
                --untied_succeeded_;
            settle();
            return;
        default:
            return;
    }
}

void SubscriberTally::settle() {
    // Each connection has one outcome. Should events ever disagree, the doubt goes to the
    // subscriber: a refused connection wrongly counted leaves the count at its disconnection,
    // which follows its refusal at once, while a subscriber wrongly dropped would be missing
    // for as long as it stays connected.
    untied_succeeded_ = std::min(untied_succeeded_, handshaking_.size());
    untied_failed_ = std::min(untied_failed_, handshaking_.size() - untied_succeeded_);
    if (handshaking_.empty()) return;
    if (untied_succeeded_ == handshaking_.size()) {
        connected_.insert(handshaking_.begin(), handshaking_.end());
        handshaking_.clear();
        untied_succeeded_ = 0;
    } else if (untied_failed_ == handshaking_.size()) {
        handshaking_.clear();  // their DISCONNECTED events are ignored
        untied_failed_ = 0;
    }
}

// One endpoint: its PUB socket and the PAIR socket its monitor events arrive on.
struct Publisher::Endpoint {
    Endpoint(zmq::context_t& context, const PublishEndpoint& config);
    // Stops the monitor before either socket closes: libzmq's I/O thread sends monitor events
    // with a blocking send, which must never find the receiving end gone.
    ~Endpoint() { zmq_socket_monitor(socket.handle(), nullptr, 0); }
    Endpoint(const Endpoint&) = delete;
    Endpoint& operator=(const Endpoint&) = delete;

    // Feeds the monitor events that have arrived to `tally`, without blocking.
    void take_events();

    zmq::socket_t monitor;  // PAIR; declared first, so it closes after `socket`
    zmq::socket_t socket;   // PUB
    SubscriberTally tally;
};

Publisher::Endpoint::Endpoint(zmq::context_t& context, const PublishEndpoint& config)
    : monitor(context, zmq::socket_type::pair),
      socket(context, zmq::socket_type::pub),
      tally(config.curve.enabled()) {
    socket.set(zmq::sockopt::sndhwm, send_high_water_mark);
    socket.set(zmq::sockopt::linger, linger_ms);
    if (config.curve.enabled())
        curve::make_server(socket, curve::read_certificate(config.curve.secret_key_file), config.name);
    const std::string address = next_monitor_address();
    const int events = connection_events | (config.curve.enabled() ? handshake_events : 0);
    if (zmq_socket_monitor(socket.handle(), address.c_str(), events) != 0) throw zmq::error_t();
    try {
        monitor.set(zmq::sockopt::linger, 0);
        // No high water mark on the receiving side makes the inproc pipe unbounded, so the
        // I/O thread's blocking send of an event never waits for this socket to be read
        // (heartbeat() and subscribers() read it).
        monitor.set(zmq::sockopt::rcvhwm, 0);
        monitor.connect(address);
        try {
            socket.bind(config.bind);
        } catch (const zmq::error_t& e) {
            throw std::runtime_error("cannot bind " + config.bind + " ([[publish]] '" + config.name +
                                     "'): " + e.what());
        }
    } catch (...) {
        zmq_socket_monitor(socket.handle(), nullptr, 0);
        throw;
    }
}

void Publisher::Endpoint::take_events() {
    constexpr std::size_t event_frame_size = sizeof(std::uint16_t) + sizeof(std::uint32_t);
    for (;;) {
        std::vector<zmq::message_t> frames;
        if (!zmq::recv_multipart(monitor, std::back_inserter(frames), zmq::recv_flags::dontwait)) return;
        // [event (16 bits) value (32 bits), address], host byte order, not aligned.
        if (frames.size() != 2 || frames[0].size() != event_frame_size) continue;
        std::uint16_t event = 0;
        std::uint32_t value = 0;
        std::memcpy(&event, frames[0].data(), sizeof event);
        std::memcpy(&value, frames[0].data<char>() + sizeof event, sizeof value);
        tally.on_event(event, value);
    }
}

Publisher::Publisher(zmq::context_t& context, const std::vector<PublishEndpoint>& endpoints) {
    for (const auto& e : endpoints) endpoints_.insert_or_assign(e.name, std::make_unique<Endpoint>(context, e));
}

Publisher::~Publisher() = default;

void Publisher::send(const OutboxRow& row) {
    auto it = endpoints_.find(row.endpoint);
    if (it == endpoints_.end()) return;
    send_two_frames(it->second->socket, row.topic, row.payload);
}

void Publisher::heartbeat(const std::string& endpoint, std::uint64_t last_seq, TimePoint at) {
    auto it = endpoints_.find(endpoint);
    if (it == endpoints_.end()) return;
    send_two_frames(it->second->socket, "hb/", heartbeat_payload(last_seq, at));
    it->second->take_events();
}

std::vector<std::string> Publisher::endpoint_names() const {
    std::vector<std::string> names;
    names.reserve(endpoints_.size());
    for (const auto& [name, endpoint] : endpoints_) names.push_back(name);
    return names;
}

std::map<std::string, std::size_t> Publisher::subscribers() {
    std::map<std::string, std::size_t> counts;
    for (auto& [name, endpoint] : endpoints_) {
        endpoint->take_events();
        counts[name] = endpoint->tally.count();
    }
    return counts;
}

}  // namespace ews
