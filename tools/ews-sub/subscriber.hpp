// subscriber.hpp: the connection logic of ews-sub (docs/protocol.md sections 6 to 8).
//
// Subscribes to one region's alerts, the operational events and the heartbeats, and accounts
// for every seq of the endpoint: each event is handled once, in seq order, and each jump is
// settled by a replay from the query endpoint before anything after it is printed. A lost
// connection (heartbeats silent for three intervals) is reopened; a query that gets no answer
// is sent again on a new socket (ZeroMQ's lazy pirate pattern); both back off from 0.1 s to
// 5 s. What is printed goes to standard output, diagnostics to standard error.
#pragma once

#include "curve.hpp"
#include "output.hpp"
#include "state_file.hpp"

#include <zmq.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>

namespace ews::sub {

// A connection or protocol fault that persists: ews-sub exits with status 1.
class Failure : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// CURVE client credentials, applied to every socket ews-sub opens.
struct CurveClient {
    std::string server_public_key;  // Z85
    ews::curve::Certificate client; // this subscriber's, with its secret key
};

struct Options {
    std::string endpoint = "tcp://127.0.0.1:7601";
    std::string query;  // empty: no replay, no snapshot
    Filter filter;
    Format format = Format::pretty;
    std::optional<std::uint64_t> replay_from;
    bool snapshot = false;
    std::optional<std::uint64_t> count;
    std::optional<double> timeout_s;
    double give_up_s = 60;
    std::optional<CurveClient> curve;
};

class Link;

class Subscriber {
public:
    // `state`, when given, was loaded (or probed) by the caller: `saved` is what it held.
    // `signal_fd` becomes readable on SIGINT/SIGTERM.
    Subscriber(Options options, StateFile* state, std::optional<SavedState> saved, int signal_fd);
    ~Subscriber();

    // Runs until --count, --timeout or a signal. Throws: Failure; StateError.
    void run();

private:
    enum class Wake { ready, timeout, stop };
    using Clock = std::chrono::steady_clock;

    bool done() const;
    // A handshake that keeps failing on one of the two connections.
    struct Trouble {
        std::optional<Clock::time_point> since;
        std::string what;
    };

    Wake wait(Link* link, std::optional<Clock::time_point> limit);
    void read_monitor(Link& link, Trouble& trouble, bool is_sub);
    void check_trouble(const Trouble& trouble, const std::string& endpoint) const;

    void open_sub();
    void open_query();
    std::optional<nlohmann::ordered_json> ask(const nlohmann::ordered_json& request);

    void start();
    void catch_up(std::uint64_t target);
    void take_snapshot();
    void missing(std::uint64_t from, std::uint64_t to);

    void receive();
    void on_heartbeat(const nlohmann::ordered_json& payload, std::uint64_t seq);
    void on_event(const std::string& topic, const nlohmann::ordered_json& payload, std::uint64_t seq);
    bool went_back(std::uint64_t seq, bool event);
    void recover(std::uint64_t upto);
    void connection_lost(const std::string& why);

    void handle(const std::string& topic, const nlohmann::ordered_json& payload);
    void commit();

    std::uint64_t seq_of(const nlohmann::ordered_json& payload, const std::string& what) const;
    void learn_heartbeat(const nlohmann::ordered_json& payload);
    Clock::duration silence_limit() const;

    Options options_;
    StateFile* state_;
    std::optional<SavedState> saved_;
    int signal_fd_;
    zmq::context_t context_;
    std::unique_ptr<Link> sub_;
    std::unique_ptr<Link> query_;
    std::optional<Clock::time_point> deadline_;  // --timeout

    std::uint64_t last_ = 0;                     // every event up to here is handled
    bool synced_ = false;                        // last_ means something
    std::optional<std::uint64_t> live_max_;      // highest seq seen on this connection
    std::optional<std::uint64_t> state_floor_;   // the saved seq: the daemon is at least there
    std::uint64_t printed_ = 0;                  // alert events printed, for --count
    std::string batch_;                          // printed at the next commit()
    std::set<std::uint64_t> printed_ahead_;      // from a snapshot, above its seq
    bool warned_gap_ = false;
    bool stop_ = false;

    Clock::time_point last_message_at_;          // on the current SUB socket
    std::deque<long long> heartbeat_spacings_;   // seconds between heartbeats' `at`
    std::optional<long long> last_heartbeat_at_; // Unix time of the last heartbeat's `at`
    bool connection_down_ = false;               // reported lost, not yet back
    bool silence_reported_ = false;              // heartbeats' silence reported, none since
    Trouble sub_trouble_;
    Trouble query_trouble_;
};

}  // namespace ews::sub
