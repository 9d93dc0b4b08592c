// publish_bench.cpp: the alert-publishing target of DESIGN.md, "alert publishing: at least
// 0.5x raw libzmq PUB/SUB of same-size messages (with and without CURVE)", measured beside
// its reference in the same run, over tcp://127.0.0.1.
//
// What is compared (each figure the median of several runs, the two sides alternating):
//   ewsd:      ews::Publisher::send of OutboxRows whose payloads are built by the daemon's own
//              message code (ews::alert_payload: an alert with three contributions, evidence,
//              data gaps and the demo's playbook actions, about 1.5 KB), the publisher made
//              from a [[publish]] endpoint as the daemon makes it. With CURVE: the endpoint
//              has a server secret certificate and an authorized-keys directory, and an
//              ews::curve::ZapHandler runs on the publisher's context, as in the daemon.
//   raw:       a libzmq PUB socket made and driven through the C API (zmq_socket,
//              zmq_setsockopt, zmq_send), the same send high water mark as the publisher,
//              sending the same [topic, payload] frames. With CURVE: ZMQ_CURVE_SERVER and the
//              same server secret key set directly, and no ZAP handler: libzmq then admits
//              any client key. ZAP is asked once per connection, never per message, so this
//              leaves the per-message work of the two sides the same.
//   Both are received by the same subscriber, on a thread with its own context: a SUB
//   socket (CURVE client when the run has CURVE) subscribed to "alert/" and "hb/", with no
//   receive high water mark, counting the alert/ messages. Before a run is timed, the
//   publisher sends heartbeats (hb/) until the subscriber has received one, so that no
//   message is sent before the subscription has reached the publisher (ZeroMQ's slow
//   joiner); the heartbeats are not counted. A run's rate is the messages received divided
//   by the time from the first send to the last receipt: a message dropped on the way
//   (a PUB socket drops at its high water mark) is not counted, and the table says how many
//   arrived. Runs send 90k messages (plain) and 50k (CURVE) by default, below the
//   publisher's high water mark, so that none is dropped. The time of the send loop alone
//   (the publisher's own work per message, before ZeroMQ's I/O thread) is printed beside.
//
// The sender, the subscriber and the two ZeroMQ I/O threads share the machine's cores: on 2
// cores the figures are those of a loaded machine, for both sides alike.
//
// Output: a table on stdout; progress on stderr when it is a terminal; results in
// EWS_BENCH_RESULTS_DIR/publish.json ("comparisons": this program's own figures; "rows": one
// common row each for plain and CURVE, msg/s, ratio ewsd / raw >= 0.5). The exit status is 0 whatever the ratio (the table
// says pass or FAIL); 2 on a usage error or a failure to set up.
#include "bench_support.hpp"

#include "config.hpp"
#include "curve.hpp"
#include "messages.hpp"
#include "publisher.hpp"
#include "store.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <zmq.h>
#include <zmq.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef EWS_BENCH_RESULTS_DIR
#define EWS_BENCH_RESULTS_DIR "bench-results"
#endif

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

using ews::bench::load_average;
using ews::bench::median;
using ews::bench::Progress;

constexpr double ratio_target = 0.5;
// The publisher's own send high water mark (daemon/publisher.cpp); the raw side uses it too.
constexpr int send_high_water_mark = 100000;
// Distinct payloads the messages cycle through (the same ones on both sides).
constexpr std::size_t distinct_payloads = 512;
// The subscriber stops when no message has come for this long.
constexpr std::chrono::milliseconds idle_limit{2000};
// The publisher gives up when the subscriber has received no heartbeat within this.
constexpr std::chrono::seconds join_limit{20};
constexpr const char* endpoint_name = "bench";

// A run sends less than the publisher's send high water mark (100,000) by default, with room
// for the heartbeats sent while the subscriber joins: the sending thread outpaces the I/O
// thread that writes to TCP, a PUB socket drops what exceeds its high water mark, and the
// I/O thread frees room only in steps of half of it; so a larger run measures drops as much
// as throughput.
struct Options {
    std::size_t plain_messages = 90'000;
    std::size_t curve_messages = 50'000;
    int reps = 5;
};

[[noreturn]] void die(const std::string& what) { ews::bench::die("ews_bench_publish", what); }

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

// ---- the messages ----------------------------------------------------------------------

ews::sdk::EvidenceValue value(const char* name, double v, bool count) { return {name, v, count}; }

// Returns: `count` outbox rows of raised, escalated and reminder alerts about distinct
// localities, built by ews::alert_payload as the daemon's pipeline builds them.
std::vector<ews::OutboxRow> make_rows(std::size_t count) {
    using namespace std::chrono;
    const ews::TimePoint at = sys_days(year(2026) / 3 / 2) + hours(10);
    const std::vector<std::string> actions{
        "Convene the community child-protection committee within a week",
        "School outreach: contact families of children who left school, with the teachers",
        "Map available services: psychosocial support, catch-up education, vocational training",
        "School outreach: teachers and the committee visit families of children who left school"};
    const std::vector<std::string> indicators{"school_dropout", "community_incidents",
                                              "group_presence"};
    std::vector<ews::OutboxRow> rows;
    rows.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
        char id[32];
        std::snprintf(id, sizeof id, "DM-%05zu", i + 1);
        ews::Locality locality;
        locality.id = id;
        locality.name = "Locality " + std::to_string(i + 1);
        locality.region = "DM/DM-" + std::to_string(1 + i % 4) + "/DM-" + std::to_string(1 + i % 4) +
                          "-" + std::to_string(1 + i % 25);

        std::vector<ews::sdk::Assessment> assessments(3);
        auto& dropout = assessments[0];
        dropout.score = 0.71 + double(i % 20) / 100;
        dropout.confidence = 0.9;
        dropout.status = ews::sdk::Status::ok;
        dropout.newest = at - days(3);
        dropout.evidence.text = "dropout 2.4% of enrolment over the last term vs 1.1% seasonal "
                                "baseline; CUSUM 5.2 above threshold 4.0 for 3 months";
        dropout.evidence.values = {value("dropouts", double(3 + i % 9), true),
                                   value("enrolled", double(300 + i % 900), true),
                                   value("rate", 0.024, false), value("baseline", 0.011, false),
                                   value("cusum", 5.2, false)};
        auto& incidents = assessments[1];
        incidents.score = 0.55;
        incidents.confidence = 0.8;
        incidents.status = ews::sdk::Status::ok;
        incidents.newest = at - days(6);
        incidents.evidence.text = "recruitment attempts and armed violence above the expected "
                                  "count for 4 weeks, corroborated by 2 sources";
        incidents.evidence.values = {value("incidents", double(2 + i % 7), true),
                                     value("expected", 0.8, false), value("weeks", 4, false)};
        auto& presence = assessments[2];
        presence.status = i % 3 == 0 ? ews::sdk::Status::no_data : ews::sdk::Status::stale;
        presence.confidence = i % 3 == 0 ? 0.0 : 0.3;
        presence.score = 0.4;
        if (i % 3 != 0) presence.newest = at - days(45);
        presence.evidence.text = i % 3 == 0 ? "" : "last field report 45 days ago";
        const ews::Composite composite = ews::compose(indicators, assessments, {});

        ews::AlertEvent event;
        const int kind = int(i % 3);
        event.type = kind == 0 ? ews::event::raised : kind == 1 ? ews::event::escalated
                                                               : ews::event::reminder;
        event.level = kind == 0 ? ews::Level::watch : ews::Level::warning;
        event.previous = kind == 0 ? ews::Level::none : kind == 1 ? ews::Level::watch
                                                                  : ews::Level::warning;
        event.at = at;
        event.opened_at = at - days(7 * kind);
        event.alert_id = locality.id + "@20260223T100000Z";

        ews::OutboxRow row;
        row.endpoint = endpoint_name;
        row.seq = i + 1;
        row.topic = ews::alert_topic(locality);
        row.payload = ews::alert_payload(
            ews::AlertMessage{row.seq, &event, &locality, &composite, &actions, nullptr, 5});
        row.alert_id = event.alert_id;
        row.locality = locality.id;
        rows.push_back(std::move(row));
    }
    return rows;
}

// ---- the keys ----------------------------------------------------------------------------

// A server certificate, a client certificate, and an authorized-keys directory holding the
// client's public certificate, in a temporary directory removed at the end.
struct Keys {
    fs::path dir;
    ews::curve::Certificate server, client;
    fs::path server_secret_file;
    fs::path authorized_dir;

    Keys() {
        dir = ews::bench::make_temp_dir("ews_bench_publish", "ews-bench-publish");
        server = ews::curve::generate();
        client = ews::curve::generate();
        server_secret_file = ews::curve::write_certificate(dir / "server", "bench-server", server).secret_file;
        // The subscriber's public certificate, alone in the authorized-keys directory.
        const auto client_files = ews::curve::write_certificate(dir / "client", "bench-subscriber", client);
        authorized_dir = dir / "authorized";
        fs::create_directories(authorized_dir);
        fs::copy_file(client_files.public_file, authorized_dir / client_files.public_file.filename());
    }
    ~Keys() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    Keys(const Keys&) = delete;
    Keys& operator=(const Keys&) = delete;
};

// ---- the subscriber ----------------------------------------------------------------------

struct Received {
    std::size_t count = 0;
    Clock::time_point last{};
    std::string error;
};

// The subscriber of both sides: its own context, a SUB socket on "alert/" and "hb/". Sets
// `joined` at the first heartbeat, then counts alert/ messages until `expected` or until none
// came for idle_limit.
class Subscriber {
public:
    Subscriber(std::string endpoint, std::size_t expected,
               std::function<void(zmq::socket_t&)> set_curve)
        : endpoint_(std::move(endpoint)), expected_(expected), set_curve_(std::move(set_curve)) {
        thread_ = std::thread([this] { run(); });
    }
    ~Subscriber() {
        if (thread_.joinable()) thread_.join();
    }
    bool joined() const { return joined_.load(std::memory_order_acquire); }
    bool stopped() const { return stopped_.load(std::memory_order_acquire); }
    // Returns: what arrived, once the subscriber has stopped.
    Received finish() {
        thread_.join();
        return received_;
    }

private:
    void run() {
        try {
            zmq::context_t context;
            zmq::socket_t socket(context, zmq::socket_type::sub);
            socket.set(zmq::sockopt::rcvhwm, 0);
            socket.set(zmq::sockopt::linger, 0);
            socket.set(zmq::sockopt::rcvtimeo, int(idle_limit.count()));
            if (set_curve_) set_curve_(socket);
            socket.set(zmq::sockopt::subscribe, "alert/");
            socket.set(zmq::sockopt::subscribe, "hb/");
            socket.connect(endpoint_);
            zmq::message_t topic, payload;
            // The first heartbeat: the subscription has reached the publisher.
            const auto give_up = Clock::now() + join_limit;
            while (!joined()) {
                if (Clock::now() > give_up) throw std::runtime_error("no heartbeat arrived");
                if (!socket.recv(topic)) continue;
                (void)socket.recv(payload);
                if (topic.to_string_view() == "hb/") joined_.store(true, std::memory_order_release);
            }
            while (received_.count < expected_) {
                if (!socket.recv(topic)) break;  // idle_limit passed
                (void)socket.recv(payload);
                if (topic.size() < 6 || std::memcmp(topic.data(), "alert/", 6) != 0) continue;
                ++received_.count;
                received_.last = Clock::now();
            }
        } catch (const std::exception& e) {
            received_.error = e.what();
        }
        stopped_.store(true, std::memory_order_release);
    }

    std::string endpoint_;
    std::size_t expected_;
    std::function<void(zmq::socket_t&)> set_curve_;
    std::atomic<bool> joined_{false}, stopped_{false};
    Received received_;
    std::thread thread_;
};

// ---- one run -----------------------------------------------------------------------------

struct Run {
    std::size_t sent = 0;
    std::size_t received = 0;
    double seconds = 0;       // first send to last receipt
    double send_seconds = 0;  // the send loop alone: handing the messages to the socket
    double rate() const { return seconds > 0 ? double(received) / seconds : 0; }
    double send_rate() const { return send_seconds > 0 ? double(sent) / send_seconds : 0; }
};

// Sends heartbeats through `probe` until `subscriber` has one, then times `send(i)` for
// i in [0, count) up to the subscriber's last receipt.
template <class Probe, class Send>
Run timed_run(Subscriber& subscriber, std::size_t count, Probe probe, Send send) {
    const auto give_up = Clock::now() + join_limit;
    while (!subscriber.joined() && !subscriber.stopped()) {
        if (Clock::now() > give_up) die("the subscriber received no heartbeat within 20 s");
        probe();
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const auto start = Clock::now();
    for (std::size_t i = 0; i < count; ++i) send(i);
    const auto sent = Clock::now();
    const Received r = subscriber.finish();
    if (!r.error.empty()) die("subscriber: " + r.error);
    Run run;
    run.sent = count;
    run.received = r.count;
    run.seconds = r.count > 0 ? std::chrono::duration<double>(r.last - start).count() : 0;
    run.send_seconds = std::chrono::duration<double>(sent - start).count();
    return run;
}

void set_client_curve(zmq::socket_t& socket, const Keys& keys) {
    ews::curve::make_client(socket, keys.server.public_key, keys.client);
}

Run run_ewsd(const std::vector<ews::OutboxRow>& rows, std::size_t count, const Keys* keys) {
    const std::string bind = "tcp://127.0.0.1:" + std::to_string(free_port());
    zmq::context_t context;
    std::unique_ptr<ews::curve::ZapHandler> zap;
    ews::PublishEndpoint endpoint;
    endpoint.name = endpoint_name;
    endpoint.bind = bind;
    if (keys) {
        endpoint.curve.secret_key_file = keys->server_secret_file;
        endpoint.curve.authorized_keys_dir = keys->authorized_dir;
        zap = std::make_unique<ews::curve::ZapHandler>(
            context, std::map<std::string, fs::path>{{endpoint.name, keys->authorized_dir}});
    }
    ews::Publisher publisher(context, {endpoint});
    std::function<void(zmq::socket_t&)> curve;
    if (keys) curve = [keys](zmq::socket_t& s) { set_client_curve(s, *keys); };
    Subscriber subscriber(bind, count, curve);
    const ews::TimePoint now = ews::wall_now();
    return timed_run(
        subscriber, count, [&] { publisher.heartbeat(endpoint_name, 0, now); },
        [&](std::size_t i) { publisher.send(rows[i % rows.size()]); });
}

void check(int rc, const char* what) {
    if (rc != 0) die(std::string("raw libzmq: ") + what + ": " + zmq_strerror(zmq_errno()));
}

Run run_raw(const std::vector<ews::OutboxRow>& rows, std::size_t count, const Keys* keys) {
    const std::string bind = "tcp://127.0.0.1:" + std::to_string(free_port());
    void* context = zmq_ctx_new();
    void* socket = zmq_socket(context, ZMQ_PUB);
    check(zmq_setsockopt(socket, ZMQ_SNDHWM, &send_high_water_mark, sizeof send_high_water_mark),
          "ZMQ_SNDHWM");
    const int linger = 1000;
    check(zmq_setsockopt(socket, ZMQ_LINGER, &linger, sizeof linger), "ZMQ_LINGER");
    if (keys) {
        const int on = 1;
        check(zmq_setsockopt(socket, ZMQ_CURVE_SERVER, &on, sizeof on), "ZMQ_CURVE_SERVER");
        const std::string& secret = *keys->server.secret_key;
        check(zmq_setsockopt(socket, ZMQ_CURVE_SECRETKEY, secret.c_str(), secret.size()),
              "ZMQ_CURVE_SECRETKEY");
    }
    check(zmq_bind(socket, bind.c_str()), "zmq_bind");

    std::function<void(zmq::socket_t&)> curve;
    if (keys)
        curve = [keys](zmq::socket_t& s) {
            s.set(zmq::sockopt::curve_serverkey, keys->server.public_key);
            s.set(zmq::sockopt::curve_publickey, keys->client.public_key);
            s.set(zmq::sockopt::curve_secretkey, *keys->client.secret_key);
        };
    Run run;
    {
        Subscriber subscriber(bind, count, curve);
        const std::string heartbeat = ews::heartbeat_payload(0, ews::wall_now());
        run = timed_run(
            subscriber, count,
            [&] {
                zmq_send(socket, "hb/", 3, ZMQ_SNDMORE | ZMQ_DONTWAIT);
                zmq_send(socket, heartbeat.data(), heartbeat.size(), ZMQ_DONTWAIT);
            },
            [&](std::size_t i) {
                const ews::OutboxRow& row = rows[i % rows.size()];
                zmq_send(socket, row.topic.data(), row.topic.size(), ZMQ_SNDMORE | ZMQ_DONTWAIT);
                zmq_send(socket, row.payload.data(), row.payload.size(), ZMQ_DONTWAIT);
            });
    }
    zmq_close(socket);
    zmq_ctx_term(context);
    return run;
}

// ---- the comparison ----------------------------------------------------------------------

struct Comparison {
    std::string what;
    std::size_t messages = 0;
    std::vector<Run> ewsd, raw;

    static std::vector<double> rates(const std::vector<Run>& runs) {
        std::vector<double> out;
        for (const auto& r : runs) out.push_back(r.rate());
        return out;
    }
    static double send_rate(const std::vector<Run>& runs) {
        std::vector<double> out;
        for (const auto& r : runs) out.push_back(r.send_rate());
        return median(out);
    }
    double ewsd_rate() const { return median(rates(ewsd)); }
    double raw_rate() const { return median(rates(raw)); }
    double ratio() const { return raw_rate() > 0 ? ewsd_rate() / raw_rate() : 0; }
    bool pass() const { return ratio() >= ratio_target; }
    static std::size_t least_received(const std::vector<Run>& runs) {
        std::size_t least = runs.empty() ? 0 : runs[0].received;
        for (const auto& r : runs) least = std::min(least, r.received);
        return least;
    }
};

Comparison compare(const std::string& what, const std::vector<ews::OutboxRow>& rows,
                   std::size_t messages, int reps, const Keys* keys, const Progress& progress) {
    Comparison c;
    c.what = what;
    c.messages = messages;
    for (int rep = 0; rep < reps; ++rep) {
        progress(what + ": ewsd run " + std::to_string(rep + 1) + "/" + std::to_string(reps));
        c.ewsd.push_back(run_ewsd(rows, messages, keys));
        progress(what + ": raw run " + std::to_string(rep + 1) + "/" + std::to_string(reps));
        c.raw.push_back(run_raw(rows, messages, keys));
    }
    return c;
}

nlohmann::json runs_json(const std::vector<Run>& runs) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : runs)
        out.push_back({{"sent", r.sent}, {"received", r.received}, {"seconds", r.seconds},
                       {"msg_per_s", r.rate()}, {"send_loop_seconds", r.send_seconds}});
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto number = [&]() -> std::size_t {
            if (i + 1 >= argc) die(a + " needs a value");
            return std::stoul(argv[++i]);
        };
        if (a == "--plain-messages") o.plain_messages = number();
        else if (a == "--curve-messages") o.curve_messages = number();
        else if (a == "--reps") o.reps = int(number());
        else {
            std::cerr << "usage: ews_bench_publish [--plain-messages N] [--curve-messages N (0: none)] "
                         "[--reps N]\n";
            return 2;
        }
    }
    if (o.plain_messages == 0 || o.reps < 1) die("plain-messages and reps must be > 0");

    // The ZAP handler logs each admission; the table is the output.
    spdlog::set_level(spdlog::level::warn);
    Progress progress;
    const std::string load_before = load_average();
    const unsigned cores = std::thread::hardware_concurrency();
    const auto rows = make_rows(distinct_payloads);
    std::size_t bytes = 0;
    for (const auto& r : rows) bytes += r.topic.size() + r.payload.size();
    const double mean_bytes = double(bytes) / double(rows.size());

    std::vector<Comparison> comparisons;
    try {
        comparisons.push_back(compare("plain", rows, o.plain_messages, o.reps, nullptr, progress));
        if (o.curve_messages > 0) {
            const Keys keys;
            comparisons.push_back(compare("CURVE", rows, o.curve_messages, o.reps, &keys, progress));
        }
    } catch (const std::exception& e) {
        die(e.what());
    }
    progress.done();

    std::printf("alert publishing over tcp://127.0.0.1 to one subscriber, median of %d runs; "
                "messages: [topic, ews.alert/1 payload], %zu distinct, mean %.0f bytes\n",
                o.reps, rows.size(), mean_bytes);
    std::printf("%-34s %12s %12s %7s %9s %s\n", "what", "ewsd msg/s", "raw msg/s", "ratio",
                "target", "result");
    for (const auto& c : comparisons) {
        const std::string what = c.what + ", " + ews::bench::short_count(c.messages) + " messages";
        std::printf("%-34s %12.0f %12.0f %7.2f %9s %s\n", what.c_str(), c.ewsd_rate(),
                    c.raw_rate(), c.ratio(), ">= 0.5", c.pass() ? "pass" : "FAIL");
    }
    for (const auto& c : comparisons)
        std::printf("  %s, the send loop alone (handing messages to the socket): ewsd %.0f msg/s, "
                    "raw %.0f msg/s\n",
                    c.what.c_str(), Comparison::send_rate(c.ewsd), Comparison::send_rate(c.raw));
    for (const auto& c : comparisons) {
        const std::size_t e = Comparison::least_received(c.ewsd), r = Comparison::least_received(c.raw);
        if (e < c.messages || r < c.messages)
            std::printf("  %s: messages were dropped: fewest received in a run: ewsd %zu, raw %zu "
                        "of %zu (rates count only what arrived)\n",
                        c.what.c_str(), e, r, c.messages);
    }
    const std::string load_after = load_average();
    std::printf("raw: libzmq C API, same send high water mark; with CURVE, no ZAP handler (ZAP "
                "is asked once per connection, not per message)\n");
    std::printf("load average before %s, after %s; %u cores (publisher, subscriber and both "
                "I/O threads share them)\n",
                load_before.c_str(), load_after.c_str(), cores);

    nlohmann::json results = nlohmann::json::array();
    std::vector<ews::bench::ResultRow> table;
    bool pass = true;
    for (const auto& c : comparisons) {
        pass = pass && c.pass();
        ews::bench::ResultRow row;
        row.what = "alert publishing, " + c.what + ", " + ews::bench::short_count(c.messages) +
                   " messages";
        row.ewsd = c.ewsd_rate();
        row.reference = c.raw_rate();
        row.reference_name = std::string("raw libzmq PUB/SUB of the same frames") +
                             (c.what == "CURVE" ? " with CURVE" : "");
        row.unit = "msg/s";
        row.ratio = c.ratio();
        row.ratio_name = "msg/s ewsd / raw libzmq";
        row.target = ">= 0.5";
        row.pass = c.pass();
        row.runs = int(c.ewsd.size());
        table.push_back(row);
        results.push_back({{"what", c.what},
                           {"messages", c.messages},
                           {"ewsd_msg_per_s", c.ewsd_rate()},
                           {"raw_msg_per_s", c.raw_rate()},
                           {"ratio", c.ratio()},
                           {"ewsd_send_loop_msg_per_s", Comparison::send_rate(c.ewsd)},
                           {"raw_send_loop_msg_per_s", Comparison::send_rate(c.raw)},
                           {"target", ratio_target},
                           {"pass", c.pass()},
                           {"ewsd_runs", runs_json(c.ewsd)},
                           {"raw_runs", runs_json(c.raw)}});
    }
    nlohmann::json doc{
        {"benchmark", "publish"},
        {"measured",
         "ews::Publisher::send of OutboxRows built by ews::alert_payload, to one SUB over "
         "tcp://127.0.0.1; CURVE: server certificate, authorized-keys directory, ZapHandler"},
        {"reference",
         "a libzmq PUB socket through the C API sending the same frames with the same send high "
         "water mark; CURVE: the same server key set directly, no ZAP handler"},
        {"repetitions", o.reps},
        {"distinct_payloads", rows.size()},
        {"mean_message_bytes", mean_bytes},
        {"cores", cores},
        {"comparisons", results},
        {"rows", ews::bench::rows_json(table)},
        {"load_average_before", load_before},
        {"load_average_after", load_after},
        {"pass", pass}};
    std::error_code ec;
    fs::create_directories(EWS_BENCH_RESULTS_DIR, ec);
    std::ofstream(fs::path(EWS_BENCH_RESULTS_DIR) / "publish.json") << doc.dump(2) << "\n";
    return 0;
}
