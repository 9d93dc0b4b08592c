// publisher.hpp: one ZeroMQ PUB socket per [[publish]] endpoint. Sends committed outbox
// rows as two frames [topic, payload], and heartbeats on "hb/". Never blocks: a message a
// slow subscriber cannot take is dropped for that subscriber, which replays it by seq.
// An endpoint with CURVE keys is a CURVE server whose ZAP domain is the endpoint's name; the
// caller runs the curve::ZapHandler that admits its subscribers.
//
// Each PUB socket also has a socket monitor, read without blocking and without a thread of
// its own, that counts the subscribers connected to the endpoint (for the status).
#pragma once

#include "config.hpp"
#include "store.hpp"

#include <zmq.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace ews {

// Counts the subscribers of one bound socket from its monitor's events (libzmq 4.3, the
// stable event set), by the connection's file descriptor, which ZMQ_EVENT_ACCEPTED and
// ZMQ_EVENT_DISCONNECTED carry as their value.
//
// Without a handshake requirement (a plain endpoint) a connection counts from ACCEPTED to
// DISCONNECTED. With one (a CURVE endpoint) it counts only once its handshake succeeded, so a
// client the ZAP handler refused never counts. libzmq's handshake events carry no descriptor
// (HANDSHAKE_SUCCEEDED has the value 0, HANDSHAKE_FAILED_* an error or ZAP status code, and
// the address frame of an accepted connection is the bound endpoint), so an outcome is tied
// to a descriptor only when it is unambiguous: when every connection still handshaking has
// the same outcome, or when one of them disconnects (a refused client is disconnected at
// once, so a disconnection while a refusal is untied is taken to be that refusal). Until
// then an untied success counts as a subscriber. With one I/O thread (the default) events
// arrive in the order they happened and the count is exact unless handshakes overlap; when
// they overlap it is exact again once those connections have ended or settled.
class SubscriberTally {
public:
    explicit SubscriberTally(bool handshake_required) : handshake_required_(handshake_required) {}

    // Takes one monitor event: `event` is the ZMQ_EVENT_* code, `value` its value. Events
    // other than ACCEPTED, DISCONNECTED, CLOSED and HANDSHAKE_* are ignored. CLOSED for a
    // descriptor not counted here is the listening socket's: every connection is gone.
    void on_event(std::uint16_t event, std::uint32_t value);
    // Returns: the subscribers connected now.
    std::size_t count() const { return connected_.size() + untied_succeeded_; }

private:
    void settle();

    bool handshake_required_;
    std::set<std::uint32_t> connected_;    // descriptors of counted subscribers
    std::set<std::uint32_t> handshaking_;  // accepted, outcome not tied to them yet
    std::size_t untied_succeeded_ = 0;     // handshakes succeeded, not tied to a descriptor
    std::size_t untied_failed_ = 0;        // handshakes failed, not tied to a descriptor
};

class Publisher {
public:
    // Binds every endpoint, CURVE first where configured. Throws: std::runtime_error "cannot
    // bind ADDRESS ([[publish]] 'NAME'): reason", or "FILE:LINE: ..." for a secret key file
    // that no longer reads; zmq::error_t when a socket cannot be made.
    Publisher(zmq::context_t& context, const std::vector<PublishEndpoint>& endpoints);
    ~Publisher();
    Publisher(const Publisher&) = delete;
    Publisher& operator=(const Publisher&) = delete;

    // Sends `row` on the socket of row.endpoint (ignored when the endpoint is unknown).
    void send(const OutboxRow& row);
    // Sends a heartbeat carrying `last_seq` on `endpoint`, and takes the monitor events that
    // arrived on that endpoint meanwhile, so that they never pile up between two status
    // requests.
    void heartbeat(const std::string& endpoint, std::uint64_t last_seq, TimePoint at);
    std::vector<std::string> endpoint_names() const;
    // Returns: the subscribers connected now, by endpoint name (every endpoint, 0 included):
    // on a plain endpoint its TCP connections, on a CURVE endpoint those whose handshake
    // succeeded (admitted by the ZAP handler); see SubscriberTally. Takes the monitor events
    // that arrived since the last call without blocking; a connection made a moment ago may
    // not show yet.
    std::map<std::string, std::size_t> subscribers();

private:
    struct Endpoint;
    std::map<std::string, std::unique_ptr<Endpoint>> endpoints_;
};

}  // namespace ews
