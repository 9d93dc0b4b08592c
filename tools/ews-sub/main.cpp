// ews-sub: a standalone subscriber of ewsd's alert protocol v1 (docs/protocol.md).
//
// It uses nothing of the daemon's code, only ZeroMQ and JSON, so it doubles as a reference
// client: it subscribes to one region's alerts and the heartbeats, prints each alert once,
// in seq order, and settles every seq gap with a replay from the query endpoint.
//
// Exit status: 0 when --count is reached, --timeout passes, or SIGINT/SIGTERM arrives;
// 1 for a connection or protocol error; 2 for a usage error.

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// ordered_json keeps the daemon's field order, so --format json prints what was received.
using Json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

// How long a query may take before the query endpoint counts as unreachable.
constexpr auto query_timeout = std::chrono::seconds(10);

struct Options {
    std::string endpoint = "tcp://127.0.0.1:7601";
    std::string query;
    std::string region;
    std::string min_level = "none";
    std::string format = "pretty";
    std::optional<std::uint64_t> replay_from;
    bool snapshot = false;
    std::optional<std::uint64_t> count;
    std::optional<double> timeout_s;
};

// A connection or protocol fault: ends the program with exit status 1.
class Failure : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Returns: `region` as a topic suffix: without a leading "alert/", with a trailing "/" unless
// empty, so that "KE/KE-03" never also matches "KE/KE-030".
std::string normalise_region(std::string region) {
    if (region.rfind("alert/", 0) == 0) region.erase(0, 6);
    while (!region.empty() && region.front() == '/') region.erase(0, 1);
    if (!region.empty() && region.back() != '/') region += '/';
    return region;
}

int level_rank(const Json& level) {
    if (level.is_string()) {
        const auto& s = level.get_ref<const std::string&>();
        if (s == "none") return 0;
        if (s == "watch") return 1;
        if (s == "warning") return 2;
        if (s == "critical") return 3;
    }
    return -1;  // an unknown level passes only --min-level none
}

int level_rank(const std::string& level) { return level_rank(Json(level)); }

const Json& field(const Json& j, const char* name) {
    static const Json null_value;
    auto it = j.find(name);
    return it == j.end() ? null_value : *it;
}

// Text that came over the network never reaches a terminal as a control sequence.
std::string printable(std::string s) {
    for (char& c : s)
        if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) c = '?';
    return s;
}

// Returns: `j` as printable text ("-" when absent).
std::string text_of(const Json& j) {
    if (j.is_string()) return printable(j.get<std::string>());
    return j.is_null() ? std::string("-") : j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string fixed(const Json& number, int decimals) {
    if (!number.is_number()) return "n/a";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, number.get<double>());
    return buf;
}

std::string evidence_number(const Json& v) {
    if (v.is_number_integer()) return std::to_string(v.get<std::int64_t>());
    if (v.is_number()) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%g", v.get<double>());
        return buf;
    }
    if (v.is_string()) return printable(v.get<std::string>());  // a suppressed count, "<5"
    return "n/a";
}

std::string upper(std::string s) {
    for (char& c : s)
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    return s;
}

std::string pad(std::string s, std::size_t width) {
    if (s.size() < width) s.append(width - s.size(), ' ');
    return s;
}

// One block per alert: a headline, one line per contribution, data gaps, actions.
std::string pretty(const Json& p) {
    const Json& loc = field(p, "locality");
    const std::string level = text_of(field(p, "level"));
    const std::string previous = text_of(field(p, "previous_level"));
    std::string out = "#" + text_of(field(p, "seq")) + " " + text_of(field(p, "at")) + " " +
                      upper(text_of(field(p, "event"))) + " " + pad(level, 8) + " " +
                      text_of(field(loc, "name")) + " (" + text_of(field(loc, "region")) + "/" +
                      text_of(field(loc, "id")) + ") score " + fixed(field(p, "score"), 1) +
                      " conf " + fixed(field(p, "confidence"), 2);
    if (previous != "none" && previous != level) out += ", was " + previous;
    out += "\n  alert " + text_of(field(p, "id")) + " opened " + text_of(field(p, "opened_at")) + "\n";

    const Json& contributions = field(p, "contributions");
    if (contributions.is_array())
        for (const auto& c : contributions) {
            out += "  " + pad(text_of(field(c, "indicator")), 20) + " " + fixed(field(c, "score"), 2) +
                   " (conf " + fixed(field(c, "confidence"), 2) + ", " + text_of(field(c, "status"));
            const Json& newest = field(c, "newest");
            out += newest.is_string() ? ", newest " + text_of(newest) : ", no data";
            out += ")";
            const Json& evidence = field(c, "evidence");
            const Json& text = field(evidence, "text");
            if (text.is_string() && !text.get_ref<const std::string&>().empty())
                out += " " + text_of(text);
            const Json& values = field(evidence, "values");
            if (values.is_object() && !values.empty()) {
                std::string list;
                for (const auto& [name, v] : values.items())
                    list += (list.empty() ? "" : " ") + printable(name) + "=" + evidence_number(v);
                out += " [" + list + "]";
            }
            out += "\n";
        }
    const Json& gaps = field(p, "data_gaps");
    if (gaps.is_array() && !gaps.empty()) {
        std::string list;
        for (const auto& g : gaps)
            list += (list.empty() ? "" : ", ") + text_of(field(g, "indicator")) + " (" +
                    text_of(field(g, "status")) + ")";
        out += "  data gaps: " + list + "\n";
    }
    const Json& actions = field(p, "actions");
    if (actions.is_array() && !actions.empty()) {
        std::string list;
        for (const auto& a : actions) list += (list.empty() ? "" : "; ") + text_of(a);
        out += "  actions: " + list + "\n";
    }
    return out;
}

class Subscriber {
public:
    Subscriber(Options options, int signal_fd)
        : options_(std::move(options)),
          topic_prefix_("alert/" + normalise_region(options_.region)),
          min_rank_(level_rank(options_.min_level)),
          signal_fd_(signal_fd),
          sub_(context_, zmq::socket_type::sub) {
        if (options_.timeout_s)
            deadline_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(*options_.timeout_s));
        sub_.set(zmq::sockopt::linger, 0);
        sub_.set(zmq::sockopt::subscribe, topic_prefix_);
        sub_.set(zmq::sockopt::subscribe, "hb/");
        sub_.connect(options_.endpoint);
        if (!options_.query.empty()) connect_query();
    }

    void run() {
        // Subscribed first, so that nothing published after the replay or snapshot below is
        // missed; live messages they already covered are dropped by seq.
        if (options_.replay_from) {
            last_ = *options_.replay_from;
            synced_ = true;
            replay_to_now();
        } else if (options_.snapshot) {
            take_snapshot();
            synced_ = true;
        }
        while (!done()) {
            switch (wait(sub_, std::nullopt)) {
                case Wake::ready: receive(); break;
                case Wake::timeout: break;
                case Wake::stop: return;
            }
        }
    }

private:
    enum class Wake { ready, timeout, stop };

    bool done() const {
        return stop_ || (options_.count && printed_ >= *options_.count);
    }

    // Waits until `socket` is readable, a signal arrives, --timeout passes, or `limit` passes.
    Wake wait(zmq::socket_t& socket, std::optional<Clock::time_point> limit) {
        for (;;) {
            auto until = limit;
            if (deadline_ && (!until || *deadline_ < *until)) until = deadline_;
            long ms = -1;
            if (until) {
                const auto left = std::chrono::ceil<std::chrono::milliseconds>(*until - Clock::now());
                if (left.count() <= 0) {
                    if (deadline_ && Clock::now() >= *deadline_) stop_ = true;
                    return stop_ ? Wake::stop : Wake::timeout;
                }
                ms = static_cast<long>(left.count());
            }
            zmq::pollitem_t items[] = {{socket.handle(), 0, ZMQ_POLLIN, 0},
                                       {nullptr, signal_fd_, ZMQ_POLLIN, 0}};
            zmq::poll(items, 2, std::chrono::milliseconds(ms));
            if (items[1].revents & ZMQ_POLLIN) {
                stop_ = true;
                return Wake::stop;
            }
            if (items[0].revents & ZMQ_POLLIN) return Wake::ready;
        }
    }

    void connect_query() {
        query_.emplace(context_, zmq::socket_type::req);
        query_->set(zmq::sockopt::linger, 0);
        query_->connect(options_.query);
    }

    // Returns: the reply to `request`, or nullopt when stopped while waiting.
    // Throws: Failure when the endpoint does not answer in time or answers with an error.
    std::optional<Json> ask(const Json& request) {
        query_->send(zmq::buffer(request.dump()), zmq::send_flags::none);
        switch (wait(*query_, Clock::now() + query_timeout)) {
            case Wake::stop: return std::nullopt;
            case Wake::timeout:
                throw Failure("query endpoint " + options_.query + " did not answer " + request.dump() +
                              " within " + std::to_string(query_timeout.count()) + " s");
            case Wake::ready: break;
        }
        std::vector<zmq::message_t> frames;
        if (!zmq::recv_multipart(*query_, std::back_inserter(frames)) || frames.size() != 1)
            throw Failure("query endpoint " + options_.query + ": reply is not one frame");
        Json reply = Json::parse(frames.front().to_string(), nullptr, false);
        if (!reply.is_object())
            throw Failure("query endpoint " + options_.query + ": reply is not a JSON object");
        if (reply.contains("error"))
            throw Failure("query endpoint " + options_.query + ": " + text_of(reply.at("error")));
        return reply;
    }

    // Prints every event after last_ under our prefix, page by page, until the outbox ends.
    void replay_to_now() {
        for (bool more = true; more && !done();) {
            auto reply = ask(Json{{"op", "replay"}, {"since", last_}, {"limit", 1000},
                                  {"prefix", topic_prefix_}});
            if (!reply) return;
            const Json& events = field(*reply, "events");
            const Json& last_seq = field(*reply, "last_seq");
            if (!events.is_array() || !last_seq.is_number_unsigned())
                throw Failure("query endpoint " + options_.query + ": replay reply lacks events or last_seq");
            for (const auto& e : events) {
                const Json& payload = field(e, "payload");
                const std::uint64_t seq = seq_of(payload, "replayed alert");
                if (seq <= last_) continue;
                last_ = seq;
                emit(payload);
                if (done()) return;
            }
            last_ = std::max(last_, last_seq.get<std::uint64_t>());
            more = field(*reply, "more") == true;
        }
    }

    // Clone pattern: the open alerts as of seq S; live events with seq <= S are dropped.
    void take_snapshot() {
        auto reply = ask(Json{{"op", "snapshot"}, {"prefix", topic_prefix_}});
        if (!reply) return;
        const Json& alerts = field(*reply, "alerts");
        const Json& seq = field(*reply, "seq");
        if (!alerts.is_array() || !seq.is_number_unsigned())
            throw Failure("query endpoint " + options_.query + ": snapshot reply lacks alerts or seq");
        for (const auto& a : alerts) {
            emit(a);
            if (done()) break;
        }
        last_ = seq.get<std::uint64_t>();
    }

    std::uint64_t seq_of(const Json& payload, const char* what) const {
        const Json& seq = field(payload, "seq");
        if (!payload.is_object() || !seq.is_number_unsigned())
            throw Failure(options_.endpoint + ": " + what + " without an unsigned integer seq");
        return seq.get<std::uint64_t>();
    }

    void receive() {
        std::vector<zmq::message_t> frames;
        if (!zmq::recv_multipart(sub_, std::back_inserter(frames), zmq::recv_flags::dontwait)) return;
        if (frames.size() != 2)
            throw Failure(options_.endpoint + ": message of " + std::to_string(frames.size()) +
                          " frames, expected two [topic, payload]");
        const std::string topic = frames[0].to_string();
        Json payload = Json::parse(frames[1].to_string(), nullptr, false);
        if (payload.is_discarded())
            throw Failure(options_.endpoint + ": topic " + printable(topic) + ": payload is not JSON");
        if (topic == "hb/") {
            expect_schema(payload, "ews.heartbeat/1");
            on_heartbeat(seq_of(payload, "heartbeat"));
        } else if (topic.rfind(topic_prefix_, 0) == 0) {
            expect_schema(payload, "ews.alert/1");
            on_alert(payload, seq_of(payload, "alert"));
        }
    }

    void expect_schema(const Json& payload, const char* schema) const {
        if (field(payload, "schema") != schema)
            throw Failure(options_.endpoint + ": schema " + text_of(field(payload, "schema")) +
                          ", expected " + schema);
    }

    // The live stream of one endpoint is in seq order: alerts strictly increasing, each
    // heartbeat at least the last alert's seq. A step back means a different database.
    bool went_back(std::uint64_t seq, bool strictly) {
        if (!live_max_) return false;
        if (strictly ? seq > *live_max_ : seq >= *live_max_) return false;
        std::cerr << "ews-sub: seq went back from " << *live_max_ << " to " << seq
                  << " on " << options_.endpoint
                  << ": the daemon runs on another database now; resynchronising" << std::endl;
        last_ = 0;
        live_max_.reset();
        return true;
    }

    void on_heartbeat(std::uint64_t seq) {
        const bool reset = went_back(seq, false);
        live_max_ = std::max(live_max_.value_or(0), seq);
        if (!synced_ && !reset) {  // a plain late joiner starts from here
            synced_ = true;
            last_ = seq;
            return;
        }
        synced_ = true;
        if (seq > last_) recover(seq);
    }

    void on_alert(const Json& payload, std::uint64_t seq) {
        const bool reset = went_back(seq, true);
        live_max_ = seq;
        if (!synced_ && !reset) {
            synced_ = true;
            last_ = seq;
            emit(payload);
            return;
        }
        synced_ = true;
        if (seq > last_ + 1) recover(seq - 1);
        if (seq <= last_ || done()) return;  // already printed by a replay or snapshot
        last_ = seq;
        emit(payload);
    }

    // Settles a gap up to at least `upto`: replayed when a query endpoint is known.
    void recover(std::uint64_t upto) {
        if (query_) {
            replay_to_now();
            return;
        }
        if (!warned_gap_) {
            std::cerr << "ews-sub: missed seq " << last_ + 1 << ".." << upto << " on "
                      << options_.endpoint << "; give --query to replay gaps" << std::endl;
            warned_gap_ = true;
        }
        last_ = std::max(last_, upto);
    }

    bool passes(const Json& payload) const {
        if (level_rank(field(payload, "level")) >= min_rank_) return true;
        const Json& event = field(payload, "event");
        return (event == "resolved" || event == "deescalated") &&
               level_rank(field(payload, "previous_level")) >= min_rank_;
    }

    void emit(const Json& payload) {
        if (!passes(payload)) return;
        if (options_.format == "json")
            std::cout << payload.dump(-1, ' ', false, Json::error_handler_t::replace) << '\n';
        else
            std::cout << pretty(payload);
        std::cout.flush();  // read through pipes: each event must arrive whole and at once
        ++printed_;
    }

    Options options_;
    std::string topic_prefix_;
    int min_rank_;
    int signal_fd_;
    zmq::context_t context_;
    zmq::socket_t sub_;
    std::optional<zmq::socket_t> query_;
    std::optional<Clock::time_point> deadline_;

    std::uint64_t last_ = 0;                // every event up to here is printed or filtered
    bool synced_ = false;                   // last_ means something
    std::optional<std::uint64_t> live_max_; // highest seq seen on the live stream
    std::uint64_t printed_ = 0;
    bool warned_gap_ = false;
    bool stop_ = false;
};

}  // namespace

int main(int argc, char** argv) {
    Options options;
    CLI::App app{"ews-sub: print ewsd alerts for one region, in seq order, replaying any gap"};
    app.add_option("--endpoint", options.endpoint, "alert PUB endpoint")->capture_default_str();
    auto* query = app.add_option("--query", options.query,
                                 "query endpoint (REP) for replays and snapshots, e.g. tcp://127.0.0.1:7602");
    app.add_option("--region", options.region, "region prefix, e.g. KE/KE-03 (default: all)");
    app.add_option("--min-level", options.min_level,
                   "lowest level shown (resolved and deescalated alerts show when they were at it)")
        ->check(CLI::IsMember({"none", "watch", "warning", "critical"}))
        ->capture_default_str();
    app.add_option("--format", options.format, "pretty (for people) or json (one payload per line)")
        ->check(CLI::IsMember({"pretty", "json"}))
        ->capture_default_str();
    auto* replay = app.add_option("--replay-from", options.replay_from,
                                  "print the events after seq N first, then live ones")
                       ->needs(query);
    app.add_flag("--snapshot", options.snapshot, "print the open alerts first, then live events")
        ->needs(query)
        ->excludes(replay);
    const CLI::Validator at_least_one(
        [](std::string& s) {
            const bool ok = !s.empty() && s.find_first_not_of("0123456789") == std::string::npos &&
                            s.find_first_not_of('0') != std::string::npos;
            return ok ? std::string() : "expected a whole number of at least 1, got " + s;
        },
        "N>=1");
    const CLI::Validator positive_seconds(
        [](std::string& s) {
            char* end = nullptr;
            const double v = std::strtod(s.c_str(), &end);
            const bool ok = end != s.c_str() && *end == '\0' && std::isfinite(v) && v > 0;
            return ok ? std::string() : "expected a number of seconds above 0, got " + s;
        },
        "SECONDS>0");
    app.add_option("--count", options.count, "exit after N alerts are printed")->check(at_least_one);
    app.add_option("--timeout", options.timeout_s, "exit after SECONDS")->check(positive_seconds);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }

    // Signals become readable on a descriptor that the poll loop watches. Blocked before the
    // ZeroMQ context starts its threads, so that they inherit the mask. An ignored signal is
    // discarded before signalfd can see it (a shell starts background jobs with SIGINT
    // ignored), so both are set to their default action first.
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) {
        std::perror("ews-sub: sigprocmask");
        return 1;
    }
    const int signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (signal_fd < 0) {
        std::perror("ews-sub: signalfd");
        return 1;
    }

    int status = 0;
    try {
        Subscriber subscriber(options, signal_fd);
        subscriber.run();
    } catch (const Failure& e) {
        std::cerr << "ews-sub: " << e.what() << std::endl;
        status = 1;
    } catch (const zmq::error_t& e) {
        std::cerr << "ews-sub: " << options.endpoint << (options.query.empty() ? "" : ", " + options.query)
                  << ": " << e.what() << std::endl;
        status = 1;
    }
    close(signal_fd);
    return status;
}
