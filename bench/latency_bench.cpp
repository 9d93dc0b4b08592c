// latency_bench.cpp: the latency target of DESIGN.md, "end-to-end latency from an observation
// batch pushed to the ingest endpoint to the alert received by a subscriber: p50 and p99 at
// 10k observations/s (p99 under 20 ms)", measured beside its reference in the same run, over
// tcp://127.0.0.1.
//
// What is compared:
//   ewsd:      the release ewsd binary (EWS_BENCH_EWSD, or --ewsd FILE), started as a child
//              process with the three shipped plugins (EWS_BENCH_PLUGIN_DIR, or --plugins DIR),
//              an [ingest] bind (ROUTER), one [[publish]] endpoint (PUB), raise_after = 1,
//              evaluate_every_s = 3600 (no full evaluation during the run: the figure is that
//              of the ingest-driven evaluations) and heartbeat_s = 1, in a temporary state
//              directory whose localities are imported first the way `ewsctl localities
//              import` does (parse_localities_csv, Store::upsert_localities). Readiness:
//              READY=1 on a NOTIFY_SOCKET this program owns (the daemon's sd_notify).
//   raw:       the same message path on raw ZeroMQ without ewsd: a relay thread in this
//              process with a ROUTER and a PUB socket (the publisher's send high water mark),
//              which parses each request's JSON header, answers every batch with a reply of
//              the daemon's shape and, for a probe batch, publishes one [topic, payload] with
//              the topic ewsd uses for that locality and a payload of the mean size of the
//              probes' alert payloads ewsd published in this run.
//   Both sides get the same load from the same code: a DEALER socket pushing CSV batches
//   [header, batch] (docs/protocol.md section 13) of --batch-rows rows (100) at a steady
//   --rate observations/s (10,000: a batch every 10 ms) for --seconds (20), after one second
//   of warm-up that is not measured. Every --probe-every'th batch (5th) is a probe: one of its
//   rows is an incident.recruitment_attempt at a locality that has had no data, a sentinel
//   that makes community_incidents floor the locality at watch, so that with raise_after = 1
//   the batch raises exactly one `raised` alert there. The other rows are zero-count
//   incident.drug_trafficking reports going round --localities (20,000) background localities
//   (at 10k obs/s each has a new row every 2 s), which change data (and so are evaluated) but
//   raise nothing; every batch is distinct (no duplicate), and the daemon must acknowledge
//   each as committed. A SUB socket on its own thread and context, subscribed to "alert/" and
//   "hb/", joins before the load starts (it waits for a heartbeat: ZeroMQ's slow joiner).
//   Latency of a probe = the time the subscriber received the alert about the probe's locality
//   minus the time the probe batch was handed to the DEALER socket (one process, steady_clock).
//   p50 and p99 are nearest-rank percentiles over the probes; a probe whose alert never came is
//   counted as lost and fails the run. Printed beside: the time to the batch's reply (the
//   daemon replies once the batch is committed, before evaluating it) and the time from that
//   reply to the alert, which split the latency into ingest and evaluation + publishing; the
//   daemon's incremental evaluations from its log (--keep-log FILE keeps a copy of the log).
//
// The daemon, the relay, the pusher, the subscriber and ZeroMQ's I/O threads share the
// machine's cores: on 2 cores the figures are those of a loaded machine, for both sides alike.
//
// Output: a table on stdout; progress on stderr when it is a terminal; results in
// EWS_BENCH_RESULTS_DIR/latency.json. Exit status 0 when the target is met, 1 when it is missed
// (p99 >= 20 ms, a lost probe, a batch not committed, or the rate not reached), 2 on a usage
// error or a failure to set up. The child daemon is always stopped (SIGTERM, then SIGKILL) and
// the temporary directory removed.
#include "bench_support.hpp"

#include "ingest.hpp"
#include "model.hpp"
#include "store.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <mutex>
#include <optional>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef EWS_BENCH_RESULTS_DIR
#define EWS_BENCH_RESULTS_DIR "bench-results"
#endif
#ifndef EWS_BENCH_EWSD
#define EWS_BENCH_EWSD "ewsd"
#endif
#ifndef EWS_BENCH_PLUGIN_DIR
#define EWS_BENCH_PLUGIN_DIR "plugins"
#endif

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using Ms = std::chrono::duration<double, std::milli>;

namespace {

using ews::bench::load_average;
using ews::bench::median;
using ews::bench::Progress;

constexpr double target_p99_ms = 20;
// The achieved rate must be within this fraction of --rate for the figures to be "at" it.
constexpr double rate_tolerance = 0.95;
// The publisher's send high water mark (daemon/publisher.cpp); the relay uses it too.
constexpr int send_high_water_mark = 100000;
constexpr std::chrono::seconds ready_limit{60};
constexpr std::chrono::seconds join_limit{20};
// After the last batch, how long the replies and the probes' alerts are waited for.
constexpr std::chrono::seconds drain_limit{10};
constexpr std::chrono::seconds stop_limit{10};
constexpr std::chrono::seconds warmup{1};
// The relay's heartbeat interval (the daemon's is heartbeat_s = 1 s): only the join waits on it.
constexpr std::chrono::milliseconds relay_heartbeat{100};
constexpr const char* probe_prefix = "LP-";
constexpr const char* probe_region = "BM/BM-P";

struct Options {
    double seconds = 20;
    double rate = 10000;
    std::size_t batch_rows = 100;
    std::size_t probe_every = 5;
    std::size_t localities = 20000;
    std::string ewsd = EWS_BENCH_EWSD;
    std::string plugins = EWS_BENCH_PLUGIN_DIR;
    std::string keep_log;  // where to copy the daemon's log; empty = nowhere
};

// ---- clean-up on every exit --------------------------------------------------------------

pid_t g_child = -1;
fs::path g_dir;
volatile std::sig_atomic_t g_interrupted = 0;

// Stops the child daemon: SIGTERM, then SIGKILL after stop_limit. Returns: its exit status
// (or 128 + signal), -1 when there was none.
int stop_child() {
    if (g_child <= 0) return -1;
    const pid_t pid = g_child;
    g_child = -1;
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid)
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    ::kill(pid, SIGTERM);
    const auto give_up = Clock::now() + stop_limit;
    while (Clock::now() < give_up) {
        if (::waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::cerr << "ews_bench_latency: ewsd did not stop within " << stop_limit.count()
              << " s of SIGTERM; killing it\n";
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    return 128 + SIGKILL;
}

void remove_dir() {
    if (g_dir.empty()) return;
    std::error_code ec;
    fs::remove_all(g_dir, ec);
    g_dir.clear();
}

[[noreturn]] void die(const std::string& what) {
    stop_child();
    remove_dir();
    ews::bench::die("ews_bench_latency", what);
}

extern "C" void on_signal(int) { g_interrupted = 1; }

void check_interrupted() {
    if (g_interrupted) die("interrupted");
}

// ---- small helpers -----------------------------------------------------------------------

// Returns: a TCP port on 127.0.0.1 that nothing listens on now.
int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket: cannot find a free port");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        ::close(fd);
        die("bind: cannot find a free port");
    }
    ::close(fd);
    return ntohs(a.sin_port);
}

std::string tcp(int port) { return "tcp://127.0.0.1:" + std::to_string(port); }

// "2026-12-03T07:01:33Z"
std::string iso_time(std::time_t t) {
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string locality_id(const char* prefix, std::size_t i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%06zu", prefix, i);
    return buf;
}

// Returns: the nearest-rank p-th percentile of `v` (p in 0..100); 0 when it is empty.
double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    auto rank = static_cast<std::size_t>(std::ceil(p / 100 * double(v.size())));
    rank = std::clamp<std::size_t>(rank, 1, v.size());
    return v[rank - 1];
}

// "10k obs/s", "2500 obs/s"
std::string rate_text(double rate) {
    char buf[32];
    if (rate >= 1000 && std::fmod(rate, 1000) == 0)
        std::snprintf(buf, sizeof buf, "%.0fk obs/s", rate / 1000);
    else
        std::snprintf(buf, sizeof buf, "%.0f obs/s", rate);
    return buf;
}

std::string read_text(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Returns: the last `lines` lines of `file`, for an error message.
std::string tail(const fs::path& file, std::size_t lines) {
    const std::string text = read_text(file);
    std::size_t at = text.size();
    for (std::size_t n = 0; at > 0 && n <= lines; ++n) {
        const auto nl = text.rfind('\n', at - 1);
        if (nl == std::string::npos) return text;
        at = nl;
    }
    return text.substr(at);
}

// ---- the load ----------------------------------------------------------------------------

struct Batch {
    std::string header;  // {"format":"csv","name":...}
    std::string body;    // the CSV
    std::optional<std::size_t> probe;  // the probe locality's index, for a probe batch
    bool measured = true;              // false during the warm-up
};

struct Load {
    std::vector<Batch> batches;
    std::size_t probes = 0;
    std::chrono::duration<double> interval{};  // between two batches
};

// The batches of one run, the same for both sides. Background rows of batch k are dated
// 120 + k seconds before `now` (and each batch moves on over the background localities), so
// that every batch is distinct and none is in the future; the probes' sentinel rows are dated
// a minute before `now`, inside the plugin's window.
Load make_load(const Options& o, std::time_t now) {
    Load load;
    load.interval = std::chrono::duration<double>(double(o.batch_rows) / o.rate);
    const auto per_second = 1.0 / load.interval.count();
    const auto warm = static_cast<std::size_t>(std::llround(per_second * double(warmup.count())));
    const auto measured = static_cast<std::size_t>(std::llround(per_second * o.seconds));
    const std::string probe_time = iso_time(now - 60);
    std::size_t next_row = 0;
    for (std::size_t k = 0; k < warm + measured; ++k) {
        Batch b;
        b.measured = k >= warm;
        const bool probe = b.measured && (k - warm) % o.probe_every == o.probe_every - 1;
        std::string name = "bench-" + std::to_string(k);
        std::string& csv = b.body;
        csv.reserve(64 * (o.batch_rows + 1));
        csv += "locality,time,kind,value,source\n";
        std::size_t rows = o.batch_rows;
        if (probe) {
            b.probe = load.probes++;
            const std::string id = locality_id(probe_prefix, *b.probe);
            name = "probe " + id;
            csv += id + "," + probe_time + ",incident.recruitment_attempt,1,bench\n";
            --rows;
        }
        const std::string when = iso_time(now - 120 - std::time_t(k));
        for (std::size_t r = 0; r < rows; ++r)
            csv += locality_id("LB-", next_row++ % o.localities) + "," + when +
                   ",incident.drug_trafficking,0,bench\n";
        b.header = nlohmann::json{{"format", "csv"}, {"name", name}}.dump();
        load.batches.push_back(std::move(b));
    }
    return load;
}

// ---- the subscriber ----------------------------------------------------------------------

struct Arrival {
    std::size_t probe;
    Clock::time_point at;
};

struct Received {
    std::vector<Arrival> raised;      // the first `raised` alert of each probe locality
    std::size_t duplicates = 0;       // further alerts about a probe locality
    std::size_t other = 0;            // alerts about any other locality
    std::size_t payload_bytes = 0;    // the payloads of the probes' alerts
    std::string error;
};

// Its own thread and context: a SUB socket on "alert/" and "hb/". Joined at the first
// heartbeat; then records, for each probe locality, when its first `raised` alert arrived.
class Subscriber {
public:
    Subscriber(std::string endpoint, std::size_t probes)
        : endpoint_(std::move(endpoint)), seen_(probes, 0) {
        thread_ = std::thread([this] { run(); });
    }
    ~Subscriber() {
        stop_.store(true);
        if (thread_.joinable()) thread_.join();
    }
    Subscriber(const Subscriber&) = delete;
    Subscriber& operator=(const Subscriber&) = delete;

    bool joined() const { return joined_.load(std::memory_order_acquire); }
    bool stopped() const { return stopped_.load(std::memory_order_acquire); }
    std::size_t probe_alerts() const { return count_.load(std::memory_order_acquire); }
    Received finish() {
        stop_.store(true);
        if (thread_.joinable()) thread_.join();
        return std::move(received_);
    }

private:
    void run() {
        try {
            zmq::context_t context;
            zmq::socket_t socket(context, zmq::socket_type::sub);
            socket.set(zmq::sockopt::rcvhwm, 0);
            socket.set(zmq::sockopt::linger, 0);
            socket.set(zmq::sockopt::rcvtimeo, 50);
            socket.set(zmq::sockopt::subscribe, "alert/");
            socket.set(zmq::sockopt::subscribe, "hb/");
            socket.connect(endpoint_);
            zmq::message_t topic, payload;
            while (!stop_.load(std::memory_order_relaxed)) {
                if (!socket.recv(topic)) continue;
                if (!topic.more() || !socket.recv(payload)) continue;
                const auto at = Clock::now();
                while (payload.more()) (void)socket.recv(payload);  // not two frames: ignored
                const std::string_view t = topic.to_string_view();
                if (t == "hb/") {
                    joined_.store(true, std::memory_order_release);
                    continue;
                }
                if (t.size() < 7 || t.substr(0, 6) != "alert/" || t.back() != '/') continue;
                // alert/<region path>/<locality id>/
                const auto slash = t.rfind('/', t.size() - 2);
                const std::string_view id = t.substr(slash + 1, t.size() - slash - 2);
                const std::string_view prefix = probe_prefix;
                std::size_t probe = seen_.size();
                if (id.substr(0, prefix.size()) == prefix)
                    probe = std::strtoul(std::string(id.substr(prefix.size())).c_str(), nullptr,
                                         10);
                if (probe >= seen_.size()) {
                    ++received_.other;
                    continue;
                }
                const bool raised = payload.to_string_view().find("\"event\":\"raised\"") !=
                                    std::string_view::npos;
                if (!raised || seen_[probe]) {
                    ++received_.duplicates;
                    continue;
                }
                seen_[probe] = 1;
                received_.raised.push_back({probe, at});
                received_.payload_bytes += payload.size();
                count_.fetch_add(1, std::memory_order_release);
            }
        } catch (const std::exception& e) {
            received_.error = e.what();
        }
        stopped_.store(true, std::memory_order_release);
    }

    std::string endpoint_;
    std::vector<char> seen_;
    std::atomic<bool> stop_{false}, joined_{false}, stopped_{false};
    std::atomic<std::size_t> count_{0};
    Received received_;
    std::thread thread_;
};

// ---- one run -----------------------------------------------------------------------------

struct Run {
    std::size_t batches = 0;          // measured batches sent
    std::size_t rows = 0;             // their rows
    double send_seconds = 0;          // first measured send to the last, plus one interval
    double max_lag_ms = 0;            // the latest a batch left behind its schedule
    std::size_t replies = 0;          // replies to all batches (warm-up included)
    std::size_t not_committed = 0;    // replies that were an error or not fully committed
    std::string first_refusal;
    std::size_t probes = 0;
    std::vector<double> latency_ms;      // probe batch sent -> its alert received
    std::vector<double> ack_ms;          // measured batch sent -> its reply received
    std::vector<double> after_ack_ms;    // probe batch's reply -> its alert
    std::size_t lost = 0;
    std::size_t duplicates = 0;
    std::size_t other_alerts = 0;
    double mean_payload_bytes = 0;  // of the probes' alerts

    double rate() const { return send_seconds > 0 ? double(rows) / send_seconds : 0; }
    double p50() const { return percentile(latency_ms, 50); }
    double p99() const { return percentile(latency_ms, 99); }
};

// Pushes `load` to the ROUTER at `ingest` from a DEALER socket on schedule, and measures when
// the alerts about the probes arrive at a SUB socket connected to `publish`. `alive` is asked
// now and then (the daemon may have died).
template <class Alive>
Run run_load(const std::string& ingest, const std::string& publish, const Load& load,
             std::size_t batch_rows, const std::string& side, const Progress& progress,
             Alive alive) {
    Subscriber subscriber(publish, load.probes);
    {
        const auto give_up = Clock::now() + join_limit;
        while (!subscriber.joined()) {
            check_interrupted();
            alive();
            if (subscriber.stopped() || Clock::now() > give_up)
                die(side + ": the subscriber received no heartbeat within " +
                    std::to_string(join_limit.count()) + " s from " + publish);
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }

    zmq::context_t context;
    zmq::socket_t dealer(context, zmq::socket_type::dealer);
    dealer.set(zmq::sockopt::linger, 0);
    dealer.connect(ingest);

    const std::size_t n = load.batches.size();
    std::vector<Clock::time_point> sent(n), acked(n);
    std::vector<std::optional<std::size_t>> probe_batch(load.probes);
    Run run;
    run.probes = load.probes;
    std::size_t replies = 0;
    auto take_reply = [&](zmq::recv_flags flags) {
        zmq::message_t reply;
        if (!dealer.recv(reply, flags)) return false;
        const auto at = Clock::now();
        while (reply.more()) {
            zmq::message_t rest;
            (void)dealer.recv(rest);
        }
        // Replies come in the order of the batches (one connection, one queue).
        if (replies < n) acked[replies] = at;
        const auto j = nlohmann::json::parse(reply.to_string_view(), nullptr, false);
        const bool ok = j.is_object() && j.value("committed", false) &&
                        j.value("accepted", std::size_t(0)) == batch_rows;
        if (!ok) {
            if (run.not_committed++ == 0) run.first_refusal = reply.to_string();
        }
        ++replies;
        return true;
    };

    // Takes the replies as they come until `due`: waiting in zmq_poll (millisecond timeouts),
    // the last fraction of a millisecond asleep, so a reply's time is late by at most that.
    zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLIN, 0};
    auto replies_until = [&](Clock::time_point due) {
        for (;;) {
            while (take_reply(zmq::recv_flags::dontwait)) {
            }
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(due - Clock::now());
            if (left.count() < 1) break;
            zmq::poll(&item, 1, left);
        }
        std::this_thread::sleep_until(due);
    };

    const auto start = Clock::now() + std::chrono::milliseconds(20);
    std::optional<Clock::time_point> first_measured;
    for (std::size_t k = 0; k < n; ++k) {
        const Batch& b = load.batches[k];
        const auto due =
            start + std::chrono::duration_cast<Clock::duration>(load.interval * double(k));
        replies_until(due);
        sent[k] = Clock::now();
        dealer.send(zmq::buffer(b.header), zmq::send_flags::sndmore);
        dealer.send(zmq::buffer(b.body), zmq::send_flags::none);
        if (b.measured) {
            if (!first_measured) first_measured = sent[k];
            ++run.batches;
            run.rows += batch_rows;
            run.max_lag_ms = std::max(run.max_lag_ms, Ms(sent[k] - due).count());
        }
        if (b.probe) probe_batch[*b.probe] = k;
        while (take_reply(zmq::recv_flags::dontwait)) {
        }
        if (k % 100 == 0) {
            check_interrupted();
            alive();
            progress(side + ": " + std::to_string(k) + "/" + std::to_string(n) + " batches, " +
                     std::to_string(subscriber.probe_alerts()) + " probe alerts");
        }
    }
    if (first_measured)
        run.send_seconds = std::chrono::duration<double>(sent[n - 1] - *first_measured).count() +
                           load.interval.count();

    // The rest of the replies, and the alerts still on their way.
    const auto give_up = Clock::now() + drain_limit;
    while ((replies < n || subscriber.probe_alerts() < load.probes) && Clock::now() < give_up) {
        check_interrupted();
        alive();
        replies_until(Clock::now() + std::chrono::milliseconds(20));
    }
    const Received r = subscriber.finish();
    if (!r.error.empty()) die(side + ": subscriber: " + r.error);

    run.replies = replies;
    for (std::size_t k = 0; k < n && k < replies; ++k)
        if (load.batches[k].measured) run.ack_ms.push_back(Ms(acked[k] - sent[k]).count());
    run.not_committed += n - std::min(n, replies);  // no reply at all
    for (const Arrival& a : r.raised) {
        const std::size_t k = *probe_batch[a.probe];
        run.latency_ms.push_back(Ms(a.at - sent[k]).count());
        if (k < replies) run.after_ack_ms.push_back(Ms(a.at - acked[k]).count());
    }
    run.lost = load.probes - r.raised.size();
    run.duplicates = r.duplicates;
    run.other_alerts = r.other;
    run.mean_payload_bytes =
        r.raised.empty() ? 0 : double(r.payload_bytes) / double(r.raised.size());
    return run;
}

// ---- the reference: a relay on raw ZeroMQ ------------------------------------------------

// A ROUTER and a PUB socket on one thread: each request's header is parsed, a reply of the
// daemon's shape goes back, and a probe batch (header name "probe <locality>") is published
// as one [alert/<region>/<locality>/, payload] of `payload_bytes`.
class Relay {
    static constexpr const char* heartbeat =
        R"({"schema":"ews.heartbeat/1","seq":0,"at":"2026-01-01T00:00:00Z"})";

public:
    explicit Relay(std::size_t payload_bytes)
        : ingest_(tcp(free_port())), publish_(tcp(free_port())) {
        router_.set(zmq::sockopt::linger, 0);
        router_.bind(ingest_);
        pub_.set(zmq::sockopt::sndhwm, send_high_water_mark);
        pub_.set(zmq::sockopt::linger, 0);
        pub_.bind(publish_);
        const std::string head = R"({"schema":"ews.alert/1","event":"raised","pad":")";
        const std::size_t pad =
            payload_bytes > head.size() + 2 ? payload_bytes - head.size() - 2 : 0;
        payload_ = head + std::string(pad, 'x') + "\"}";
        thread_ = std::thread([this] { run(); });
    }
    ~Relay() {
        stop_.store(true);
        if (thread_.joinable()) thread_.join();
    }
    Relay(const Relay&) = delete;
    Relay& operator=(const Relay&) = delete;
    const std::string& ingest() const { return ingest_; }
    const std::string& publish() const { return publish_; }
    std::string error() {
        std::lock_guard lock(mutex_);
        return error_;
    }

private:
    void run() {
        try {
            auto next_hb = Clock::now();
            while (!stop_.load(std::memory_order_relaxed)) {
                if (Clock::now() >= next_hb) {
                    pub_.send(zmq::str_buffer("hb/"), zmq::send_flags::sndmore);
                    pub_.send(zmq::buffer(std::string_view(heartbeat)), zmq::send_flags::none);
                    next_hb = Clock::now() + relay_heartbeat;
                }
                zmq::pollitem_t item{router_.handle(), 0, ZMQ_POLLIN, 0};
                zmq::poll(&item, 1, std::chrono::milliseconds(10));
                for (int i = 0; i < 16; ++i) {
                    std::vector<zmq::message_t> frames;
                    if (!zmq::recv_multipart(router_, std::back_inserter(frames),
                                             zmq::recv_flags::dontwait))
                        break;
                    handle(frames);
                }
            }
        } catch (const std::exception& e) {
            std::lock_guard lock(mutex_);
            error_ = e.what();
        }
    }

    void handle(std::vector<zmq::message_t>& frames) {
        if (frames.size() != 3) return;
        const auto header = nlohmann::json::parse(frames[1].to_string_view(), nullptr, false);
        const std::string name =
            header.is_object() ? header.value("name", std::string("batch")) : "batch";
        const std::string_view body = frames[2].to_string_view();
        const auto lines = std::size_t(std::count(body.begin(), body.end(), '\n'));
        const std::string reply =
            nlohmann::ordered_json{{"name", name},
                                   {"accepted", lines > 0 ? lines - 1 : 0},
                                   {"rejected", nlohmann::json::array()},
                                   {"rejected_total", 0},
                                   {"committed", true},
                                   {"duplicate", false}}
                .dump();
        std::vector<zmq::message_t> out;
        out.emplace_back(std::move(frames[0]));
        out.emplace_back(reply.data(), reply.size());
        zmq::send_multipart(router_, out, zmq::send_flags::dontwait);
        if (name.rfind("probe ", 0) == 0) {
            const std::string topic =
                std::string("alert/") + probe_region + "/" + name.substr(6) + "/";
            pub_.send(zmq::buffer(topic), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
            pub_.send(zmq::buffer(payload_), zmq::send_flags::dontwait);
        }
    }

    zmq::context_t context_;
    zmq::socket_t router_{context_, zmq::socket_type::router};
    zmq::socket_t pub_{context_, zmq::socket_type::pub};
    std::string ingest_, publish_, payload_;
    std::atomic<bool> stop_{false};
    std::mutex mutex_;
    std::string error_;
    std::thread thread_;
};

// ---- ewsd --------------------------------------------------------------------------------

struct Workspace {
    fs::path dir, config, log;
    std::string ingest, publish;
};

Workspace make_workspace(const Options& o, std::size_t probes) {
    g_dir = ews::bench::make_temp_dir("ews_bench_latency", "ews-bench-latency");
    Workspace w;
    w.dir = g_dir;
    w.config = w.dir / "ewsd.toml";
    w.log = w.dir / "ewsd.log";
    w.ingest = tcp(free_port());
    w.publish = tcp(free_port());
    fs::create_directories(w.dir / "state");
    std::ofstream(w.config) << R"([daemon]
state_dir = "state"
plugin_dir = ")" << o.plugins << R"("
evaluate_every_s = 3600
heartbeat_s = 1
log_level = "info"

[ingest]
policy = "partial"
bind = ")" << w.ingest << R"("

[[publish]]
name = "main"
bind = ")" << w.publish << R"("

[scoring]
raise_after = 1
clear_after = 3

[scoring.levels.watch]
raise = 45
clear = 35

[privacy]
min_cell = 5

[actions]
watch = [
  "Share with the community child-protection committee for review at its next meeting",
  "Check data quality and recent reports with the district officer",
]
warning = ["Convene the community child-protection committee within a week"]
critical = ["Convene the child-protection committee and district officer within 48 hours"]
)";

    // The localities, as `ewsctl localities import` puts them in the store.
    std::string csv = "id,name,region,population\n";
    for (std::size_t i = 0; i < o.localities; ++i)
        csv += locality_id("LB-", i) + ",Background " + std::to_string(i) + ",BM/BM-" +
               std::to_string(1 + i % 4) + "/BM-" + std::to_string(1 + i % 4) + "-" +
               std::to_string(1 + i % 25) + "," + std::to_string(500 + i % 1500) + "\n";
    for (std::size_t i = 0; i < probes; ++i)
        csv += locality_id(probe_prefix, i) + ",Probe " + std::to_string(i) + "," + probe_region +
               ",800\n";
    const auto parsed = ews::parse_localities_csv(csv, "localities.csv");
    if (!parsed.errors.empty()) die("localities.csv: " + parsed.errors.front().format());
    try {
        ews::Store store(w.dir / "state" / "ewsd.db");
        store.upsert_localities(parsed.rows);
    } catch (const std::exception& e) {
        die(std::string("cannot import the localities: ") + e.what());
    }
    return w;
}

// A unix datagram socket in the abstract namespace, for the daemon's sd_notify.
struct NotifySocket {
    int fd = -1;
    std::string name;  // "@ews-bench-latency-..." as NOTIFY_SOCKET spells it

    NotifySocket() {
        fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) die(std::string("socket(AF_UNIX): ") + std::strerror(errno));
        std::random_device rd;
        const std::string abstract =
            "ews-bench-latency-" + std::to_string(::getpid()) + "-" + std::to_string(rd());
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::memcpy(a.sun_path + 1, abstract.data(), abstract.size());
        const auto len = socklen_t(offsetof(sockaddr_un, sun_path) + 1 + abstract.size());
        if (::bind(fd, reinterpret_cast<sockaddr*>(&a), len) != 0)
            die(std::string("bind the notify socket: ") + std::strerror(errno));
        name = "@" + abstract;
    }
    ~NotifySocket() {
        if (fd >= 0) ::close(fd);
    }
    NotifySocket(const NotifySocket&) = delete;
    NotifySocket& operator=(const NotifySocket&) = delete;
};

void check_alive(const Workspace& w) {
    if (g_child <= 0) return;
    int status = 0;
    if (::waitpid(g_child, &status, WNOHANG) == g_child) {
        g_child = -1;
        die("ewsd exited (" +
            (WIFEXITED(status) ? "status " + std::to_string(WEXITSTATUS(status))
                               : "signal " + std::to_string(WTERMSIG(status))) +
            "); the end of its log:\n" + tail(w.log, 20));
    }
}

// Starts ewsd on `w` and waits for its READY=1.
void start_daemon(const std::string& ewsd, const Workspace& w, const NotifySocket& notify) {
    const std::string config = w.config.string();
    const std::string log = w.log.string();
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) die(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
        // The daemon goes when this program goes, however it ends.
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (::getppid() != parent) ::_exit(127);
        ::setpgid(0, 0);  // a ^C reaches this program, which stops the daemon itself
        const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            ::dup2(fd, 1);
            ::dup2(fd, 2);
            ::close(fd);
        }
        ::setenv("NOTIFY_SOCKET", notify.name.c_str(), 1);
        ::unsetenv("JOURNAL_STREAM");  // plain log lines in the file
        ::unsetenv("WATCHDOG_USEC");
        ::execl(ewsd.c_str(), ewsd.c_str(), "--config", config.c_str(),
                static_cast<char*>(nullptr));
        ::_exit(127);
    }
    g_child = pid;

    const auto give_up = Clock::now() + ready_limit;
    for (;;) {
        check_interrupted();
        check_alive(w);
        if (Clock::now() > give_up)
            die("ewsd sent no READY=1 within " + std::to_string(ready_limit.count()) +
                " s; the end of its log:\n" + tail(w.log, 20));
        pollfd p{notify.fd, POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) continue;
        char buf[4096];
        const ssize_t n = ::recv(notify.fd, buf, sizeof buf, 0);
        if (n <= 0) continue;
        const std::string message(buf, std::size_t(n));
        if (("\n" + message + "\n").find("\nREADY=1\n") != std::string::npos) return;
    }
}

// The daemon's incremental evaluations that published events, from its log lines
// "evaluation (incremental): N localities in M ms, E events published, ..." (evaluations that
// publish nothing are logged at debug, which the run does not use).
struct EvaluationLog {
    std::size_t incremental = 0;
    std::vector<double> ms, localities, events;
    std::vector<double> apart_ms;  // between the log times of consecutive ones
};

EvaluationLog read_evaluations(const fs::path& log) {
    EvaluationLog out;
    const std::regex line(
        R"(evaluation \(incremental\): (\d+) localities in (\d+) ms, (\d+) events)");
    // The line's time, "2026-12-03T07:19:40.123 info ...": milliseconds into the day.
    const std::regex stamp(R"(^\d{4}-\d{2}-\d{2}T(\d{2}):(\d{2}):(\d{2})\.(\d{3}) )");
    std::istringstream in(read_text(log));
    std::string text;
    std::smatch m;
    std::optional<double> previous;
    while (std::getline(in, text)) {
        if (!std::regex_search(text, m, line)) continue;
        ++out.incremental;
        if (std::smatch t; std::regex_search(text, t, stamp)) {
            const double at =
                ((std::stod(t[1]) * 60 + std::stod(t[2])) * 60 + std::stod(t[3])) * 1000 +
                std::stod(t[4]);
            if (previous)  // across midnight: a day later
                out.apart_ms.push_back(at >= *previous ? at - *previous : at + 86400e3 - *previous);
            previous = at;
        }
        out.localities.push_back(std::stod(m[1]));
        out.ms.push_back(std::stod(m[2]));
        out.events.push_back(std::stod(m[3]));
    }
    return out;
}

// ---- output ------------------------------------------------------------------------------

nlohmann::json run_json(const Run& r) {
    return {{"batches", r.batches},
            {"rows", r.rows},
            {"obs_per_s", r.rate()},
            {"max_lag_behind_schedule_ms", r.max_lag_ms},
            {"replies", r.replies},
            {"not_committed", r.not_committed},
            {"probes", r.probes},
            {"alerts_received", r.latency_ms.size()},
            {"lost", r.lost},
            {"duplicate_alerts", r.duplicates},
            {"other_alerts", r.other_alerts},
            {"latency_p50_ms", r.p50()},
            {"latency_p99_ms", r.p99()},
            {"latency_max_ms", percentile(r.latency_ms, 100)},
            {"reply_p50_ms", percentile(r.ack_ms, 50)},
            {"reply_p99_ms", percentile(r.ack_ms, 99)},
            {"reply_to_alert_p50_ms", percentile(r.after_ack_ms, 50)},
            {"reply_to_alert_p99_ms", percentile(r.after_ack_ms, 99)},
            {"mean_alert_payload_bytes", r.mean_payload_bytes}};
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto number = [&]() -> double {
            if (i + 1 >= argc) die(a + " needs a value");
            try {
                return std::stod(argv[++i]);
            } catch (const std::exception&) {
                die(a + ": not a number: " + argv[i]);
            }
        };
        if (a == "--seconds") o.seconds = number();
        else if (a == "--rate") o.rate = number();
        else if (a == "--batch-rows") o.batch_rows = std::size_t(number());
        else if (a == "--probe-every") o.probe_every = std::size_t(number());
        else if (a == "--localities") o.localities = std::size_t(number());
        else if (a == "--ewsd" && i + 1 < argc) o.ewsd = argv[++i];
        else if (a == "--plugins" && i + 1 < argc) o.plugins = argv[++i];
        else if (a == "--keep-log" && i + 1 < argc) o.keep_log = argv[++i];
        else {
            std::cerr << "usage: ews_bench_latency [--seconds N (20)] [--rate OBS_PER_S (10000)] "
                         "[--batch-rows N (100)] [--probe-every N (5)] [--localities N (20000)] "
                         "[--ewsd FILE] [--plugins DIR] [--keep-log FILE]\n";
            return 2;
        }
    }
    if (!(o.seconds > 0) || !(o.rate > 0) || o.batch_rows < 2 || o.probe_every < 1 ||
        o.localities < o.batch_rows)
        die("seconds and rate must be > 0, batch-rows >= 2, probe-every >= 1, localities >= "
            "batch-rows");
    if (::access(o.ewsd.c_str(), X_OK) != 0) die("no ewsd program at " + o.ewsd);
    if (!fs::is_directory(o.plugins)) die("no plugin directory at " + o.plugins);
    o.plugins = fs::absolute(o.plugins).string();

    struct sigaction sa{};
    sa.sa_handler = on_signal;
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGHUP, &sa, nullptr);

    // The store logs its migrations; the table is the output.
    spdlog::set_level(spdlog::level::warn);
    Progress progress;
    const std::string load_before = load_average();
    const unsigned cores = std::thread::hardware_concurrency();
    const Load load = make_load(o, std::time(nullptr));
    if (load.probes == 0) die("the run is too short for a single probe");

    Run ewsd_run, raw_run;
    int ewsd_status = -1;
    EvaluationLog evaluations;
    std::string ewsd_log_tail;
    std::size_t payload_bytes = 0;
    // ZeroMQ throws on a signal (EINTR); every failure ends here, through die()'s clean-up.
    try {
        // ---- ewsd ----
        progress("setting up ewsd");
        const Workspace w = make_workspace(o, load.probes);
        {
            const NotifySocket notify;
            const auto t0 = Clock::now();
            start_daemon(o.ewsd, w, notify);
            const double ready_s = std::chrono::duration<double>(Clock::now() - t0).count();
            progress("ewsd ready in " + std::to_string(ready_s) + " s");
            ewsd_run = run_load(w.ingest, w.publish, load, o.batch_rows, "ewsd", progress,
                                [&] { check_alive(w); });
            progress("stopping ewsd");
            ewsd_status = stop_child();
        }
        evaluations = read_evaluations(w.log);
        if (ewsd_status != 0) ewsd_log_tail = tail(w.log, 20);
        if (!o.keep_log.empty()) {
            std::error_code ec;
            fs::copy_file(w.log, o.keep_log, fs::copy_options::overwrite_existing, ec);
            if (ec)
                std::cerr << "ews_bench_latency: cannot copy the daemon's log to " << o.keep_log
                          << ": " << ec.message() << "\n";
        }
        remove_dir();

        // ---- the reference ----
        payload_bytes = ewsd_run.mean_payload_bytes > 0
                            ? std::size_t(std::llround(ewsd_run.mean_payload_bytes))
                            : std::size_t(1500);
        Relay relay(payload_bytes);
        raw_run = run_load(relay.ingest(), relay.publish(), load, o.batch_rows, "raw", progress,
                           [&] {
                               if (auto e = relay.error(); !e.empty()) die("relay: " + e);
                           });
    } catch (const std::exception& e) {
        die(g_interrupted ? std::string("interrupted") : std::string(e.what()));
    }
    progress.done();
    const std::string load_after = load_average();

    // ---- the verdict ----
    const bool rate_ok = ewsd_run.rate() >= rate_tolerance * o.rate;
    const bool complete = ewsd_run.lost == 0 && ewsd_run.not_committed == 0 && rate_ok;
    const bool p99_ok = complete && ewsd_run.p99() < target_p99_ms;
    const std::string at = rate_text(o.rate);
    struct Row {
        std::string what;
        double ewsd, raw;
        std::string target_abs;
        bool pass;
    };
    const std::vector<Row> rows{
        {"end-to-end latency p50 at " + at, ewsd_run.p50(), raw_run.p50(), "", true},
        {"end-to-end latency p99 at " + at, ewsd_run.p99(), raw_run.p99(), "p99 < 20 ms", p99_ok}};

    std::printf("end-to-end latency: CSV batch pushed to the ingest endpoint (DEALER -> ROUTER) -> "
                "alert received on a SUB, tcp://127.0.0.1\n");
    std::printf("load: %s in %zu-row batches every %.1f ms for %.0f s (after %lld s of warm-up); "
                "a probe every %zu batches (%zu probes), %zu background localities\n",
                at.c_str(), o.batch_rows, load.interval.count() * 1000, o.seconds,
                static_cast<long long>(warmup.count()), o.probe_every, load.probes, o.localities);
    std::printf("%-38s %10s %10s %8s %12s %s\n", "what", "ewsd ms", "raw ms", "ratio", "target",
                "result");
    for (const auto& r : rows) {
        const double ratio = r.raw > 0 ? r.ewsd / r.raw : 0;
        std::printf("%-38s %10.2f %10.3f %8.1f %12s %s\n", r.what.c_str(), r.ewsd, r.raw, ratio,
                    r.target_abs.empty() ? "-" : r.target_abs.c_str(),
                    r.target_abs.empty() ? "-" : (r.pass ? "pass" : "FAIL"));
    }
    for (const auto* side : {&ewsd_run, &raw_run}) {
        const Run& r = *side;
        const char* name = side == &ewsd_run ? "ewsd" : "raw ";
        std::printf("  %s: %zu probes, %zu alerts received, %zu lost, %zu duplicate, %zu about "
                    "other localities; max %.1f ms\n",
                    name, r.probes, r.latency_ms.size(), r.lost, r.duplicates, r.other_alerts,
                    percentile(r.latency_ms, 100));
        std::printf("        batch sent -> reply (committed): p50 %.2f ms, p99 %.2f ms; reply -> "
                    "alert: p50 %.2f ms, p99 %.2f ms\n",
                    percentile(r.ack_ms, 50), percentile(r.ack_ms, 99),
                    percentile(r.after_ack_ms, 50), percentile(r.after_ack_ms, 99));
        std::printf("        %.0f obs/s sent, at most %.1f ms behind schedule; %zu replies, %zu "
                    "batches not committed\n",
                    r.rate(), r.max_lag_ms, r.replies, r.not_committed);
    }
    if (!ewsd_run.first_refusal.empty())
        std::printf("  first batch ewsd did not commit: %s\n", ewsd_run.first_refusal.c_str());
    if (!rate_ok)
        std::printf("  ewsd took the batches at %.0f obs/s, below %.0f%% of %s: the figures are "
                    "not at the target rate\n",
                    ewsd_run.rate(), rate_tolerance * 100, at.c_str());
    std::printf("  ewsd log: %zu incremental evaluations that published events: median %.0f ms "
                "(max %.0f) over a median %.0f localities, median %.0f events\n",
                evaluations.incremental, median(evaluations.ms),
                percentile(evaluations.ms, 100),
                median(evaluations.localities), median(evaluations.events));
    if (!evaluations.apart_ms.empty())
        std::printf("           one every %.0f ms (median; min %.0f ms) while the batches came "
                    "every %.0f ms\n",
                    median(evaluations.apart_ms),
                    percentile(evaluations.apart_ms, 0),
                    load.interval.count() * 1000);
    if (ewsd_status != 0)
        std::printf("  ewsd exited with status %d at SIGTERM; the end of its log:\n%s\n",
                    ewsd_status, ewsd_log_tail.c_str());
    std::printf("raw: a relay thread (ROUTER -> PUB) parsing each header, replying, and publishing "
                "a %zu-byte alert payload per probe (the ewsd alerts' mean), same topic\n",
                payload_bytes);
    std::printf("load average before %s, after %s; %u cores (ewsd, pusher, subscriber and I/O "
                "threads share them)\n",
                load_before.c_str(), load_after.c_str(), cores);

    nlohmann::json json_rows = nlohmann::json::array();
    for (const auto& r : rows)
        json_rows.push_back({{"what", r.what},
                             {"scale", nullptr},
                             {"ewsd", r.ewsd},
                             {"reference", r.raw},
                             {"reference_name", "the same message path on raw ZeroMQ (DEALER -> "
                                                "ROUTER relay -> PUB -> SUB), same load"},
                             {"unit", "ms"},
                             {"ratio", r.raw > 0 ? r.ewsd / r.raw : 0},
                             {"ratio_name", "latency ewsd / reference"},
                             {"target", "-"},
                             {"target_abs", r.target_abs.empty() ? nlohmann::json(nullptr)
                                                                 : nlohmann::json(r.target_abs)},
                             {"pass", r.pass},
                             {"runs", 1}});
    nlohmann::json doc{
        {"benchmark", "latency"},
        {"measured",
         "the release ewsd as a child process: CSV batches pushed by a DEALER to its [ingest] "
         "endpoint, the probe's alert received by a SUB on its [[publish]] endpoint"},
        {"reference",
         "a relay thread on raw ZeroMQ: ROUTER (parse header, reply) -> PUB of a same-size "
         "alert per probe, the same pusher and subscriber"},
        {"ewsd", o.ewsd},
        {"rate_obs_per_s", o.rate},
        {"batch_rows", o.batch_rows},
        {"seconds", o.seconds},
        {"warmup_seconds", warmup.count()},
        {"probe_every", o.probe_every},
        {"background_localities", o.localities},
        {"ewsd_run", run_json(ewsd_run)},
        {"raw_run", run_json(raw_run)},
        {"ewsd_incremental_evaluations_logged", evaluations.incremental},
        {"ewsd_evaluation_ms_median", median(evaluations.ms)},
        {"ewsd_evaluations_apart_ms_median", median(evaluations.apart_ms)},
        {"ewsd_exit_status", ewsd_status},
        {"cores", cores},
        {"load_average_before", load_before},
        {"load_average_after", load_after},
        {"rows", json_rows},
        {"pass", p99_ok}};
    std::error_code ec;
    fs::create_directories(EWS_BENCH_RESULTS_DIR, ec);
    std::ofstream(fs::path(EWS_BENCH_RESULTS_DIR) / "latency.json") << doc.dump(2) << "\n";
    return p99_ok ? 0 : 1;
}
