#include "subscriber.hpp"

#include <zmq_addon.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <ctime>
#include <iostream>
#include <iterator>
#include <vector>

namespace ews::sub {

namespace {

using Json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

// How long one query attempt waits for its answer before the socket is replaced and the
// request sent again.
constexpr auto query_attempt_timeout = std::chrono::seconds(5);
// Backoff between attempts: 0.1 s doubling up to 5 s; ZeroMQ's own reconnects use the same.
constexpr auto backoff_first = std::chrono::milliseconds(100);
constexpr auto backoff_max = std::chrono::milliseconds(5000);
// Before two heartbeats have been seen, the interval is the protocol's default.
constexpr long long default_heartbeat_s = 5;
// Heartbeats that may be missed before the connection counts as lost.
constexpr int silent_heartbeats = 3;
// Events per replay page.
constexpr int replay_page = 1000;

constexpr int monitored_events = ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                                 ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                 ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;

const Json& field(const Json& j, const char* name) {
    static const Json null_value;
    if (!j.is_object()) return null_value;
    auto it = j.find(name);
    return it == j.end() ? null_value : *it;
}

std::string text_of(const Json& j) {
    return printable(j.is_string() ? j.get<std::string>() : j.dump(-1, ' ', false, Json::error_handler_t::replace));
}

std::string seconds_text(Clock::duration d) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", std::chrono::duration<double>(d).count());
    return buf;
}

// Returns: "A..B" or "A" for one seq.
std::string range_text(std::uint64_t from, std::uint64_t to) {
    return from == to ? std::to_string(from) : std::to_string(from) + ".." + std::to_string(to);
}

// Returns: the Unix time of an RFC 3339 UTC time "YYYY-MM-DDThh:mm:ssZ", or nullopt.
std::optional<long long> unix_time(const Json& at) {
    if (!at.is_string()) return std::nullopt;
    std::tm tm{};
    const std::string& s = at.get_ref<const std::string&>();
    if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                    &tm.tm_min, &tm.tm_sec) != 6)
        return std::nullopt;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return static_cast<long long>(timegm(&tm));
}

}  // namespace

// A client socket with the options every connection of ews-sub shares, watched by a
// ZeroMQ monitor so that handshake failures and lost connections can be told apart from a
// quiet endpoint.
class Link {
public:
    struct Event {
        std::uint16_t id = 0;
        std::uint32_t value = 0;
    };

    Link(zmq::context_t& context, zmq::socket_type type, const std::string& endpoint,
         const std::optional<CurveClient>& curve)
        : socket_(context, type), monitor_(context, zmq::socket_type::pair) {
        static std::atomic<unsigned> counter{0};
        socket_.set(zmq::sockopt::linger, 0);
        socket_.set(zmq::sockopt::reconnect_ivl, static_cast<int>(backoff_first.count()));
        socket_.set(zmq::sockopt::reconnect_ivl_max, static_cast<int>(backoff_max.count()));
        if (type == zmq::socket_type::sub) socket_.set(zmq::sockopt::rcvhwm, 100000);
        if (curve) ews::curve::make_client(socket_, curve->server_public_key, curve->client);
        const std::string address = "inproc://ews-sub-monitor-" + std::to_string(counter++);
        if (zmq_socket_monitor(socket_.handle(), address.c_str(), monitored_events) != 0) throw zmq::error_t();
        monitoring_ = true;
        monitor_.set(zmq::sockopt::linger, 0);
        monitor_.connect(address);
        endpoint_ = endpoint;
    }

    ~Link() {
        if (monitoring_) zmq_socket_monitor(socket_.handle(), nullptr, 0);
    }

    Link(const Link&) = delete;
    Link& operator=(const Link&) = delete;

    void connect() { socket_.connect(endpoint_); }
    zmq::socket_t& socket() { return socket_; }
    zmq::socket_t& monitor() { return monitor_; }
    const std::string& endpoint() const { return endpoint_; }

    // Returns: the next monitor event, or nullopt when none is pending.
    std::optional<Event> next_event() {
        std::vector<zmq::message_t> frames;
        if (!zmq::recv_multipart(monitor_, std::back_inserter(frames), zmq::recv_flags::dontwait))
            return std::nullopt;
        Event e;
        if (!frames.empty() && frames[0].size() >= 6) {
            std::memcpy(&e.id, frames[0].data(), 2);
            std::memcpy(&e.value, static_cast<const char*>(frames[0].data()) + 2, 4);
        }
        return e;
    }

private:
    zmq::socket_t socket_;
    zmq::socket_t monitor_;
    std::string endpoint_;
    bool monitoring_ = false;
};

Subscriber::Subscriber(Options options, StateFile* state, std::optional<SavedState> saved, int signal_fd)
    : options_(std::move(options)), state_(state), saved_(std::move(saved)), signal_fd_(signal_fd) {
    if (options_.timeout_s)
        deadline_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(*options_.timeout_s));
}

Subscriber::~Subscriber() = default;

void Subscriber::run() {
    if (options_.format == Format::csv) {
        batch_ = csv_header();
        commit();
    }
    // Subscribed first, so that nothing published after the replay or snapshot below is
    // missed; live messages they already covered are dropped by seq.
    open_sub();
    if (!options_.query.empty()) open_query();
    start();
    while (!done()) {
        switch (wait(sub_.get(), last_message_at_ + silence_limit())) {
            case Wake::ready: receive(); break;
            case Wake::timeout: {
                // Heartbeats stopped: the daemon is gone or the connection is half-open. A new
                // socket, whose first heartbeat tells whether anything was missed meanwhile.
                const std::string why = "no message for " + seconds_text(Clock::now() - last_message_at_) +
                                        " s (" + std::to_string(silent_heartbeats) + " heartbeat intervals)";
                if (!silence_reported_)
                    std::cerr << "ews-sub: " << options_.endpoint << ": " << why << "; opening a new connection"
                              << std::endl;
                silence_reported_ = true;
                connection_down_ = true;  // "connected ... again" once the new socket is
                open_sub();
                break;
            }
            case Wake::stop: return;
        }
    }
}

bool Subscriber::done() const {
    return stop_ || (options_.count && printed_ >= *options_.count);
}

// Waits until `link`'s socket is readable, a signal arrives, --timeout passes, or `limit`
// passes; reads the monitors meanwhile. `link` may be null (a pause).
Subscriber::Wake Subscriber::wait(Link* link, std::optional<Clock::time_point> limit) {
    for (;;) {
        auto until = limit;
        if (deadline_ && (!until || *deadline_ < *until)) until = deadline_;
        for (const Trouble* t : {&sub_trouble_, &query_trouble_})
            if (t->since) {
                const auto give_up = *t->since + std::chrono::duration_cast<Clock::duration>(
                                                     std::chrono::duration<double>(options_.give_up_s));
                if (!until || give_up < *until) until = give_up;
            }
        long ms = -1;
        if (until) {
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(*until - Clock::now());
            ms = std::max<long>(0, static_cast<long>(left.count()));
        }
        std::vector<zmq::pollitem_t> items;
        items.push_back({nullptr, signal_fd_, ZMQ_POLLIN, 0});
        if (link) items.push_back({link->socket().handle(), 0, ZMQ_POLLIN, 0});
        if (sub_) items.push_back({sub_->monitor().handle(), 0, ZMQ_POLLIN, 0});
        if (query_) items.push_back({query_->monitor().handle(), 0, ZMQ_POLLIN, 0});
        zmq::poll(items.data(), items.size(), std::chrono::milliseconds(ms));
        if (items[0].revents & ZMQ_POLLIN) {
            stop_ = true;
            return Wake::stop;
        }
        // Monitors may close a socket's trouble or declare it persistent (Failure).
        if (sub_) read_monitor(*sub_, sub_trouble_, true);
        if (query_) read_monitor(*query_, query_trouble_, false);
        if (link && (items[1].revents & ZMQ_POLLIN)) return Wake::ready;
        const auto now = Clock::now();
        if (sub_) check_trouble(sub_trouble_, sub_->endpoint());
        if (query_) check_trouble(query_trouble_, query_->endpoint());
        if (deadline_ && now >= *deadline_) {
            stop_ = true;
            return Wake::stop;
        }
        if (limit && now >= *limit) return Wake::timeout;
    }
}

void Subscriber::read_monitor(Link& link, Trouble& trouble, bool is_sub) {
    while (auto e = link.next_event()) {
        switch (e->id) {
            case ZMQ_EVENT_DISCONNECTED:
                if (is_sub && !trouble.since) connection_lost("the connection closed");
                break;
            case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
                trouble.since.reset();
                if (is_sub && connection_down_) {
                    std::cerr << "ews-sub: connected to " << link.endpoint() << " again" << std::endl;
                    connection_down_ = false;
                }
                break;
            case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
                throw Failure(link.endpoint() + " refused this subscriber's key (ZAP status " +
                              std::to_string(e->value) + "): its public key is not among the endpoint's "
                              "authorized keys");
            case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
            case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL: {
                std::string what;
                if (e->id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
                    e->value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
                    what = "the security mechanisms differ: CURVE on one side only (--server-key and "
                           "--key-file must match the endpoint's configuration)";
                else if (e->id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
                    char buf[32];
                    std::snprintf(buf, sizeof buf, "0x%x", e->value);
                    what = std::string("protocol error ") + buf + (options_.curve ? " (is --server-key the "
                                                                                    "endpoint's public key?)"
                                                                                  : "");
                } else {
                    what = options_.curve ? "no detail (is --server-key the endpoint's public key?)" : "no detail";
                }
                if (!trouble.since) {
                    std::cerr << "ews-sub: handshake with " << link.endpoint() << " failed: " << what
                              << "; retrying for " << options_.give_up_s << " s" << std::endl;
                    trouble.since = Clock::now();
                }
                trouble.what = what;
                break;
            }
            default: break;
        }
    }
}

void Subscriber::check_trouble(const Trouble& trouble, const std::string& endpoint) const {
    if (trouble.since &&
        Clock::now() - *trouble.since >= std::chrono::duration<double>(options_.give_up_s))
        throw Failure("handshake with " + endpoint + " has failed for " + seconds_text(Clock::now() - *trouble.since) +
                      " s: " + trouble.what);
}

void Subscriber::open_sub() {
    sub_.reset();  // the old socket and its monitor go first
    sub_ = std::make_unique<Link>(context_, zmq::socket_type::sub, options_.endpoint, options_.curve);
    sub_->socket().set(zmq::sockopt::subscribe, options_.filter.topic_prefix);
    sub_->socket().set(zmq::sockopt::subscribe, "ops/");
    sub_->socket().set(zmq::sockopt::subscribe, "hb/");
    sub_->connect();
    last_message_at_ = Clock::now();
    live_max_.reset();  // a new connection may reach a daemon on another database
}

void Subscriber::open_query() {
    query_.reset();
    query_ = std::make_unique<Link>(context_, zmq::socket_type::req, options_.query, options_.curve);
    query_->connect();
}

// Lazy pirate: a request without an answer in time is sent again on a new socket, after a
// backoff, until --give-up seconds have passed without an answer.
std::optional<Json> Subscriber::ask(const Json& request) {
    const auto started = Clock::now();
    const auto give_up = started + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(options_.give_up_s));
    auto backoff = std::chrono::duration_cast<Clock::duration>(backoff_first);
    bool reported = false;
    const std::string text = request.dump();
    for (;;) {
        // Without ZMQ_IMMEDIATE a connecting REQ socket queues the request: never blocks.
        const bool sent = query_->socket().send(zmq::buffer(text), zmq::send_flags::dontwait).has_value();
        const auto attempt_end = std::min(Clock::now() + query_attempt_timeout, give_up);
        const Wake wake = sent ? wait(query_.get(), attempt_end) : Wake::timeout;
        if (wake == Wake::stop) return std::nullopt;
        if (wake == Wake::ready) {
            std::vector<zmq::message_t> frames;
            if (!zmq::recv_multipart(query_->socket(), std::back_inserter(frames)) || frames.size() != 1)
                throw Failure("query endpoint " + options_.query + ": reply is not one frame");
            const std::string reply_text = frames.front().to_string();
            if (nested_deeper_than(reply_text, max_json_depth))
                throw Failure("query endpoint " + options_.query + ": reply nested deeper than " +
                              std::to_string(max_json_depth) + " levels");
            Json reply = Json::parse(reply_text, nullptr, false);
            if (!reply.is_object())
                throw Failure("query endpoint " + options_.query + ": reply is not a JSON object");
            if (reply.contains("error"))
                throw Failure("query endpoint " + options_.query + " answered " + text + " with an error: " +
                              text_of(reply.at("error")));
            if (reported)
                std::cerr << "ews-sub: query endpoint " << options_.query << " answers again" << std::endl;
            return reply;
        }
        if (!sent && wait(nullptr, std::min(Clock::now() + query_attempt_timeout, give_up)) == Wake::stop)
            return std::nullopt;
        if (Clock::now() >= give_up)
            throw Failure("query endpoint " + options_.query + " did not answer " + text + " for " +
                          seconds_text(Clock::now() - started) + " s (--give-up " +
                          seconds_text(std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(options_.give_up_s))) +
                          "), while seqs after " + std::to_string(last_) + " need settling");
        if (!reported) {
            std::cerr << "ews-sub: query endpoint " << options_.query << " does not answer; retrying until "
                      << options_.give_up_s << " s have passed" << std::endl;
            reported = true;
        }
        open_query();
        if (wait(nullptr, std::min(Clock::now() + backoff, give_up)) == Wake::stop) return std::nullopt;
        backoff = std::min<Clock::duration>(backoff * 2, backoff_max);
    }
}

void Subscriber::start() {
    if (saved_) {
        if (!saved_->endpoint.empty() && saved_->endpoint != options_.endpoint)
            std::cerr << "ews-sub: " << state_->path().string() << " was written for " << saved_->endpoint
                      << ", not " << options_.endpoint << "; going on from its seq " << saved_->seq << std::endl;
        last_ = saved_->seq;
        state_floor_ = saved_->seq;
        synced_ = true;
        catch_up(0);
    } else if (options_.replay_from) {
        last_ = *options_.replay_from;
        synced_ = true;
        catch_up(0);
    } else if (options_.snapshot) {
        take_snapshot();
        synced_ = true;
    }
}

// Replays every event after last_ to the end of the outbox (all topics: the seqs must come
// without holes), handling those under our prefixes. `target`: a seq known to exist, which
// the replay must reach.
void Subscriber::catch_up(std::uint64_t target) {
    for (bool more = true; more && !done();) {
        auto reply = ask(Json{{"op", "replay"}, {"since", last_}, {"limit", replay_page}});
        if (!reply) return;
        const Json& events = field(*reply, "events");
        const Json& last_seq = field(*reply, "last_seq");
        if (!events.is_array() || !last_seq.is_number_unsigned())
            throw Failure("query endpoint " + options_.query + ": replay reply lacks events or last_seq");
        for (const auto& e : events) {
            const Json& topic = field(e, "topic");
            if (!topic.is_string())
                throw Failure("query endpoint " + options_.query + ": replayed event without a topic");
            const Json& payload = field(e, "payload");
            const std::uint64_t seq = seq_of(payload, "replayed event");
            if (seq <= last_) continue;
            if (seq > last_ + 1) missing(last_ + 1, seq - 1);
            last_ = seq;
            handle(topic.get<std::string>(), payload);
            if (done()) break;
        }
        if (!done() && last_seq.get<std::uint64_t>() > last_) {
            missing(last_ + 1, last_seq.get<std::uint64_t>());
            last_ = last_seq.get<std::uint64_t>();
        }
        commit();
        more = field(*reply, "more") == true;
    }
    if (!done() && last_ < target) {
        missing(last_ + 1, target);
        last_ = target;
        commit();
    }
}

// Seqs from..to are not in the outbox: pruned by the daemon's retention, or the query
// endpoint serves another publish endpoint. Starting from nothing (last_ 0) the client takes
// what is kept; otherwise events it should print are lost, which it reports and fails on.
void Subscriber::missing(std::uint64_t from, std::uint64_t to) {
    if (from == 1) {
        std::cerr << "ews-sub: seq " << range_text(from, to) << " no longer kept by " << options_.query
                  << "; starting at " << to + 1 << std::endl;
        return;
    }
    commit();
    throw Failure("lost seq " + range_text(from, to) + ": " + options_.query +
                  " no longer has them (pruned by the daemon's retention) or serves another endpoint than " +
                  options_.endpoint +
                  (state_ ? "; to go on without them, write " + std::to_string(to) + " into " + state_->path().string()
                          : std::string()));
}

// Clone pattern: the open alerts as of seq S; live events with seq <= S are dropped.
void Subscriber::take_snapshot() {
    auto reply = ask(Json{{"op", "snapshot"}, {"prefix", options_.filter.topic_prefix}});
    if (!reply) return;
    const Json& alerts = field(*reply, "alerts");
    const Json& seq = field(*reply, "seq");
    if (!alerts.is_array() || !seq.is_number_unsigned())
        throw Failure("query endpoint " + options_.query + ": snapshot reply lacks alerts or seq");
    for (const auto& a : alerts) {
        // A snapshot carries payloads only: their topic, as published, is rebuilt for the filter.
        const Json& loc = field(a, "locality");
        const Json& region = field(loc, "region");
        const Json& id = field(loc, "id");
        if (!region.is_string() || !id.is_string())
            throw Failure("query endpoint " + options_.query + ": snapshot alert without locality region and id");
        handle("alert/" + region.get<std::string>() + "/" + id.get<std::string>() + "/", a);
        // Newer than the snapshot's seq: it also comes live or by replay, and is not printed twice.
        if (const Json& s = field(a, "seq"); s.is_number_unsigned() && s.get<std::uint64_t>() > seq.get<std::uint64_t>())
            printed_ahead_.insert(s.get<std::uint64_t>());
        if (done()) break;
    }
    last_ = seq.get<std::uint64_t>();
    synced_ = true;
    commit();
}

std::uint64_t Subscriber::seq_of(const Json& payload, const std::string& what) const {
    const Json& seq = field(payload, "seq");
    if (!payload.is_object() || !seq.is_number_unsigned())
        throw Failure(options_.endpoint + ": " + what + " without an unsigned integer seq");
    return seq.get<std::uint64_t>();
}

void Subscriber::receive() {
    std::vector<zmq::message_t> frames;
    if (!zmq::recv_multipart(sub_->socket(), std::back_inserter(frames), zmq::recv_flags::dontwait)) return;
    last_message_at_ = Clock::now();
    silence_reported_ = false;
    if (frames.size() != 2)
        throw Failure(options_.endpoint + ": message of " + std::to_string(frames.size()) +
                      " frames, expected two [topic, payload]");
    const std::string topic = frames[0].to_string();
    const std::string text = frames[1].to_string();
    if (nested_deeper_than(text, max_json_depth))
        throw Failure(options_.endpoint + ": topic " + printable(topic) + ": payload nested deeper than " +
                      std::to_string(max_json_depth) + " levels");
    Json payload = Json::parse(text, nullptr, false);
    if (!payload.is_object())
        throw Failure(options_.endpoint + ": topic " + printable(topic) + ": payload is not a JSON object");
    auto expect_schema = [&](const char* schema) {
        if (field(payload, "schema") != schema)
            throw Failure(options_.endpoint + ": topic " + printable(topic) + ": schema " +
                          text_of(field(payload, "schema")) + ", expected " + schema);
    };
    if (topic == "hb/") {
        expect_schema("ews.heartbeat/1");
        on_heartbeat(payload, seq_of(payload, "heartbeat"));
    } else if (topic.rfind("ops/", 0) == 0) {
        expect_schema("ews.ops/1");
        on_event(topic, payload, seq_of(payload, "operational event"));
    } else if (topic.rfind(options_.filter.topic_prefix, 0) == 0) {
        expect_schema("ews.alert/1");
        on_event(topic, payload, seq_of(payload, "alert"));
    }
}

// The live stream of one connection is in seq order, and a saved state's seq existed before
// this process started: a seq below either means the daemon runs on another database now.
bool Subscriber::went_back(std::uint64_t seq, bool event) {
    std::optional<std::uint64_t> floor;
    if (live_max_) floor = *live_max_;
    if (state_floor_ && (!floor || *state_floor_ > *floor)) floor = *state_floor_;
    if (!floor || (event ? seq > *floor : seq >= *floor)) return false;
    std::cerr << "ews-sub: seq went back from " << *floor << " to " << seq << " on " << options_.endpoint
              << ": the daemon runs on another database now; resynchronising from 0" << std::endl;
    last_ = 0;
    live_max_.reset();
    state_floor_.reset();
    return true;
}

void Subscriber::on_heartbeat(const Json& payload, std::uint64_t seq) {
    learn_heartbeat(payload);
    const bool reset = went_back(seq, false);
    live_max_ = std::max(live_max_.value_or(0), seq);
    if (!synced_ && !reset) {  // a plain late joiner starts from here
        synced_ = true;
        last_ = seq;
        commit();
        return;
    }
    synced_ = true;
    if (seq > last_) recover(seq);
}

void Subscriber::on_event(const std::string& topic, const Json& payload, std::uint64_t seq) {
    const bool reset = went_back(seq, true);
    live_max_ = seq;
    if (!synced_ && !reset) {
        synced_ = true;
        last_ = seq;
        handle(topic, payload);
        commit();
        return;
    }
    synced_ = true;
    if (seq > last_ + 1) recover(seq - 1);
    if (seq <= last_ || done()) return;  // already handled by a replay or snapshot
    last_ = seq;
    handle(topic, payload);
    commit();
}

// Settles a jump up to at least `upto`: replayed when a query endpoint is known.
void Subscriber::recover(std::uint64_t upto) {
    if (query_) {
        catch_up(upto);
        return;
    }
    if (!warned_gap_) {
        std::cerr << "ews-sub: missed seq " << range_text(last_ + 1, upto) << " on " << options_.endpoint
                  << "; give --query to replay gaps" << std::endl;
        warned_gap_ = true;
    }
    last_ = std::max(last_, upto);
}

void Subscriber::connection_lost(const std::string& why) {
    if (connection_down_) return;
    connection_down_ = true;
    std::cerr << "ews-sub: " << options_.endpoint << ": " << why << "; reconnecting" << std::endl;
}

void Subscriber::handle(const std::string& topic, const Json& payload) {
    if (!printed_ahead_.empty()) {
        const Json& seq = field(payload, "seq");
        if (seq.is_number_unsigned() && printed_ahead_.erase(seq.get<std::uint64_t>()) > 0) return;
    }
    if (topic.rfind("ops/", 0) == 0) {
        // Operational events concern no region or level: every filter lets them through, and
        // they do not count against --count. CSV has no columns for them.
        if (options_.format == Format::json) batch_ += json_line(payload);
        else if (options_.format == Format::pretty) batch_ += pretty_ops(payload);
        return;
    }
    if (topic.rfind("alert/", 0) != 0 || !passes(options_.filter, topic, payload)) return;
    switch (options_.format) {
        case Format::pretty: batch_ += pretty_alert(payload); break;
        case Format::json: batch_ += json_line(payload); break;
        case Format::csv: batch_ += csv_row(payload); break;
    }
    ++printed_;
}

// Prints the batch, and records last_ in the state file: written and synced before the batch
// is printed, renamed into place right after, so that only a kill in between the two can
// make a restarted ews-sub print the batch again.
void Subscriber::commit() {
    const bool save = state_ && synced_ && state_->saved() != last_;
    if (save) state_->prepare(last_);
    if (!batch_.empty()) {
        std::cout << batch_;
        std::cout.flush();  // read through pipes: each event must arrive whole and at once
        batch_.clear();
        if (!std::cout) throw Failure("cannot write to standard output");
    }
    if (save) state_->commit();
}

void Subscriber::learn_heartbeat(const Json& payload) {
    const auto at = unix_time(field(payload, "at"));
    if (!at) return;
    if (last_heartbeat_at_ && *at > *last_heartbeat_at_) {
        heartbeat_spacings_.push_back(*at - *last_heartbeat_at_);
        if (heartbeat_spacings_.size() > 8) heartbeat_spacings_.pop_front();
    }
    last_heartbeat_at_ = *at;
}

// Three heartbeat intervals, the interval being the shortest spacing of the last heartbeats'
// `at` (whole seconds; delays only lengthen a spacing), 5 s until two were seen.
Subscriber::Clock::duration Subscriber::silence_limit() const {
    long long interval = default_heartbeat_s;
    if (!heartbeat_spacings_.empty())
        interval = *std::min_element(heartbeat_spacings_.begin(), heartbeat_spacings_.end());
    return std::chrono::seconds(silent_heartbeats * interval);
}

}  // namespace ews::sub
