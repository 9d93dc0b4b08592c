// The metrics endpoint: the histogram, the text exposition of a hand-filled snapshot, label
// escaping, listen addresses, and the HTTP server over real loopback sockets, driven by poll()
// the way the daemon's loop drives it.
#include "metrics.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace ews;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;

namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

bool has_line(const std::vector<std::string>& lines, const std::string& wanted) {
    return std::find(lines.begin(), lines.end(), wanted) != lines.end();
}

// Observations chosen to be exact in binary, so the sum prints exactly.
//   0.00390625 (2^-8)  -> le 0.005 and up
//   0.0625     (2^-4)  -> le 0.1 and up
//   0.25               -> le 0.25 and up (on the bound: buckets are "less than or equal")
//   3                  -> le 5 and up
//   20                 -> only +Inf
// sum = 0.00390625 + 0.0625 + 0.25 + 3 + 20 = 23.31640625, count = 5.
void observe_five(Histogram& histogram) {
    for (const double seconds : {0.00390625, 0.0625, 0.25, 3.0, 20.0}) histogram.observe(seconds);
}

MetricsSnapshot sample_snapshot() {
    MetricsSnapshot s;
    s.ingest_rows_committed = 1200;
    s.ingest_rows_rejected = 7;
    s.ingest_batches_committed = 12;
    s.ingest_batches_duplicate = 2;
    s.ingest_batches_rejected = 1;
    s.evaluations_full = 3;
    s.evaluations_incremental = 41;
    observe_five(s.evaluation_duration);
    s.open_alerts_watch = 4;
    s.open_alerts_warning = 2;
    s.open_alerts_critical = 1;
    s.publish["all"] = {45, 42, 45, 2, {{"raised", 30}, {"resolved", 15}}};
    s.publish["north"] = {10, 10, 10, 0, {{"raised", 10}}};
    s.plugins["school_dropout"] = {500, 1, 0};
    s.plugins["group_presence"] = {500, 0, 3};
    s.plugins_loaded = 3;
    s.plugins_refused = 1;
    s.plugins_quarantined = 0;
    s.curve["all"] = {5, 2};
    s.database_bytes = 1081344;  // 1 MiB file + 32 KiB WAL = 1048576 + 32768
    s.localities = 250;
    s.observations = 90000;
    s.version = "0.1.0";
    // 1772323200 s = 2026-03-01T00:00:00Z; plus half a second.
    s.started_at = std::chrono::sys_seconds{1772323200s} + 500ms;
    s.uptime = 3600.25s;
    s.last_reload_successful = false;
    s.last_reload_success_at = std::chrono::sys_seconds{1772326800s};  // one hour later
    return s;
}

// ---- a loopback client and the poll loop ---------------------------------------------------

class Client {
public:
    explicit Client(std::uint16_t port, int receive_buffer = 0) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        if (receive_buffer > 0)
            REQUIRE(::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer,
                                 sizeof receive_buffer) == 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(port);
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        // Completes through the listen backlog before the server accepts.
        REQUIRE(::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
    }
    ~Client() { close(); }
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    int fd() const { return fd_; }
    void close() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }
    void send(const std::string& data) {
        std::size_t sent = 0;
        while (sent < data.size()) {
            const ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
            REQUIRE(n > 0);
            sent += std::size_t(n);
        }
    }
    // Appends what has arrived to `into` without waiting. Returns: whether data came, nothing
    // was waiting, the server closed its side, or the connection was reset.
    enum class Read { data, nothing, eof, reset };
    Read read_some(std::string& into) {
        char buffer[65536];
        const ssize_t n = ::recv(fd_, buffer, sizeof buffer, MSG_DONTWAIT);
        if (n > 0) {
            into.append(buffer, std::size_t(n));
            return Read::data;
        }
        if (n == 0) return Read::eof;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return Read::nothing;
        return Read::reset;
    }

private:
    int fd_ = -1;
};

// One round of the daemon's loop: poll the server's fds for at most `timeout_ms`, dispatch,
// expire.
void pump(MetricsServer& server, const MetricsServer::SnapshotFn& snapshot, int timeout_ms = 5) {
    std::vector<pollfd> items;
    for (const int fd : server.fds()) items.push_back({fd, POLLIN, 0});
    for (const int fd : server.write_fds()) items.push_back({fd, POLLOUT, 0});
    REQUIRE(::poll(items.data(), items.size(), timeout_ms) >= 0);
    for (const pollfd& item : items) {
        if (item.revents == 0) continue;
        if (item.events == POLLIN) server.on_readable(item.fd, snapshot);
        else server.on_writable(item.fd);
    }
    server.expire(Clock::now());
}

struct Reply {
    std::string raw;
    std::string status_line;
    std::map<std::string, std::string> headers;  // names in lower case
    std::string body;
};

// Reads from `client` until the server closes its side, driving the server meanwhile.
Reply receive(MetricsServer& server, Client& client, const MetricsServer::SnapshotFn& snapshot) {
    Reply reply;
    const auto give_up = Clock::now() + 5s;
    for (;;) {
        REQUIRE(Clock::now() < give_up);
        const Client::Read read = client.read_some(reply.raw);
        REQUIRE(read != Client::Read::reset);
        if (read == Client::Read::eof) break;
        if (read == Client::Read::nothing) pump(server, snapshot);
    }
    const std::size_t head_end = reply.raw.find("\r\n\r\n");
    REQUIRE(head_end != std::string::npos);
    const std::vector<std::string> head = lines_of(reply.raw.substr(0, head_end + 2));
    REQUIRE(!head.empty());
    for (std::size_t i = 0; i < head.size(); ++i) {
        std::string line = head[i];
        REQUIRE(!line.empty());
        REQUIRE(line.back() == '\r');
        line.pop_back();
        if (i == 0) {
            reply.status_line = line;
            continue;
        }
        const std::size_t colon = line.find(':');
        REQUIRE(colon != std::string::npos);
        std::string name = line.substr(0, colon);
        std::transform(name.begin(), name.end(), name.begin(),
                       [](unsigned char c) { return char(std::tolower(c)); });
        REQUIRE(reply.headers.count(name) == 0);
        reply.headers[name] = line.substr(colon + 2);
    }
    reply.body = reply.raw.substr(head_end + 4);
    return reply;
}

// Pumps until the server holds `count` connections or 2 s passed.
void pump_until_connections(MetricsServer& server, const MetricsServer::SnapshotFn& snapshot,
                            std::size_t count) {
    const auto give_up = Clock::now() + 2s;
    while (server.connection_count() != count && Clock::now() < give_up) pump(server, snapshot);
    REQUIRE(server.connection_count() == count);
}

// A server on 127.0.0.1 with a port of its own, and a snapshot that counts its calls.
struct Served {
    MetricsServer server;
    int snapshots = 0;
    MetricsServer::SnapshotFn snapshot = [this] {
        ++snapshots;
        return sample_snapshot();
    };

    explicit Served(MetricsServer::Limits limits = {}) : server(ListenAddress{"127.0.0.1", 0}, limits) {}

    Reply ask(const std::string& request) {
        Client client(server.port());
        client.send(request);
        Reply reply = receive(server, client, snapshot);
        client.close();
        // The server closes its end once the client has: no connection is left behind.
        pump_until_connections(server, snapshot, 0);
        return reply;
    }
};

}  // namespace

// ---- Histogram -------------------------------------------------------------------------------

TEST_CASE("histogram counts each observation in every bucket at or above it", "[metrics]") {
    Histogram histogram;
    REQUIRE(histogram.upper_bounds() ==
            std::vector<double>{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
    observe_five(histogram);
    histogram.observe(std::nan(""));   // ignored
    histogram.observe(INFINITY);       // ignored
    // Bounds: 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10
    // 0.0039 counts from 0.005, 0.0625 from 0.1, 0.25 from 0.25, 3 from 5; 20 in none.
    REQUIRE(histogram.cumulative_counts() ==
            std::vector<std::uint64_t>{1, 1, 1, 1, 2, 3, 3, 3, 3, 4, 4});
    REQUIRE(histogram.count() == 5);
    REQUIRE(histogram.sum() == 23.31640625);
}

TEST_CASE("histogram refuses bounds that are empty, unordered or not finite", "[metrics]") {
    REQUIRE_THROWS_AS(Histogram(std::vector<double>{}), std::invalid_argument);
    REQUIRE_THROWS_AS(Histogram({0.1, 0.1}), std::invalid_argument);
    REQUIRE_THROWS_AS(Histogram({1.0, 0.5}), std::invalid_argument);
    REQUIRE_THROWS_AS(Histogram({0.1, INFINITY}), std::invalid_argument);
    Histogram custom({1.0, 2.0});
    custom.observe(1.5);
    custom.observe(-1.0);  // below every bound: in all of them; the sum goes down
    REQUIRE(custom.cumulative_counts() == std::vector<std::uint64_t>{1, 2});
    REQUIRE(custom.sum() == 0.5);
}

// ---- render_metrics ------------------------------------------------------------------------

TEST_CASE("render_metrics writes counters, gauges and info with their values", "[metrics]") {
    const std::vector<std::string> lines = lines_of(render_metrics(sample_snapshot()));

    REQUIRE(has_line(lines, "# TYPE ewsd_ingest_rows_total counter"));
    REQUIRE(has_line(lines, R"(ewsd_ingest_rows_total{outcome="committed"} 1200)"));
    REQUIRE(has_line(lines, R"(ewsd_ingest_rows_total{outcome="rejected"} 7)"));
    REQUIRE(has_line(lines, R"(ewsd_ingest_batches_total{outcome="duplicate"} 2)"));
    REQUIRE(has_line(lines, R"(ewsd_evaluations_total{kind="incremental"} 41)"));
    REQUIRE(has_line(lines, "# TYPE ewsd_open_alerts gauge"));
    REQUIRE(has_line(lines, R"(ewsd_open_alerts{level="critical"} 1)"));
    REQUIRE(has_line(lines, R"(ewsd_alert_events_published_total{endpoint="all",event="resolved"} 15)"));
    REQUIRE(has_line(lines, R"(ewsd_alert_events_published_total{endpoint="north",event="raised"} 10)"));
    // Lag = last seq stored - last seq sent: all 45 - 42 = 3; north 10 - 10 = 0.
    REQUIRE(has_line(lines, R"(ewsd_outbox_lag_events{endpoint="all"} 3)"));
    REQUIRE(has_line(lines, R"(ewsd_outbox_lag_events{endpoint="north"} 0)"));
    REQUIRE(has_line(lines, R"(ewsd_outbox_rows{endpoint="all"} 45)"));
    REQUIRE(has_line(lines, R"(ewsd_publish_subscribers{endpoint="all"} 2)"));
    REQUIRE(has_line(lines, R"(ewsd_plugin_assessment_failures_total{plugin="school_dropout"} 1)"));
    REQUIRE(has_line(lines, R"(ewsd_plugin_assessments_over_budget_total{plugin="group_presence"} 3)"));
    REQUIRE(has_line(lines, R"(ewsd_plugins{state="refused"} 1)"));
    REQUIRE(has_line(lines, R"(ewsd_curve_handshakes_total{domain="all",outcome="refused"} 2)"));
    REQUIRE(has_line(lines, "ewsd_database_size_bytes 1081344"));
    REQUIRE(has_line(lines, "ewsd_localities 250"));
    REQUIRE(has_line(lines, "ewsd_observations 90000"));
    REQUIRE(has_line(lines, "ewsd_start_time_seconds 1772323200.5"));
    REQUIRE(has_line(lines, "ewsd_uptime_seconds 3600.25"));
    REQUIRE(has_line(lines, R"(ewsd_build_info{version="0.1.0"} 1)"));
    REQUIRE(has_line(lines, "ewsd_config_last_reload_successful 0"));
    REQUIRE(has_line(lines, "ewsd_config_last_reload_success_timestamp_seconds 1772326800"));
}

TEST_CASE("render_metrics writes the histogram cumulatively with +Inf equal to the count", "[metrics]") {
    const std::vector<std::string> lines = lines_of(render_metrics(sample_snapshot()));
    const std::string name = "ewsd_evaluation_duration_seconds";
    REQUIRE(has_line(lines, "# TYPE " + name + " histogram"));
    // The observations of observe_five: cumulative 1 1 1 1 2 3 3 3 3 4 4, +Inf 5.
    const std::vector<std::string> expected{
        name + R"(_bucket{le="0.005"} 1)", name + R"(_bucket{le="0.01"} 1)",
        name + R"(_bucket{le="0.025"} 1)", name + R"(_bucket{le="0.05"} 1)",
        name + R"(_bucket{le="0.1"} 2)",   name + R"(_bucket{le="0.25"} 3)",
        name + R"(_bucket{le="0.5"} 3)",   name + R"(_bucket{le="1"} 3)",
        name + R"(_bucket{le="2.5"} 3)",   name + R"(_bucket{le="5"} 4)",
        name + R"(_bucket{le="10"} 4)",    name + R"(_bucket{le="+Inf"} 5)",
        name + "_sum 23.31640625",         name + "_count 5"};
    const auto first = std::find(lines.begin(), lines.end(), expected.front());
    REQUIRE(first != lines.end());
    REQUIRE(std::vector<std::string>(first, first + long(expected.size())) == expected);
}

TEST_CASE("render_metrics gives every family one HELP and one TYPE before its samples", "[metrics]") {
    const std::string text = render_metrics(sample_snapshot());
    REQUIRE(text.back() == '\n');
    std::set<std::string> helped;
    std::set<std::string> typed;
    std::string family;       // the family whose TYPE came last
    std::string family_type;  // and its type
    std::size_t samples = 0;
    for (const std::string& line : lines_of(text)) {
        REQUIRE(!line.empty());
        if (line.rfind("# HELP ", 0) == 0) {
            const std::string name = line.substr(7, line.find(' ', 7) - 7);
            REQUIRE(name.rfind("ewsd_", 0) == 0);
            REQUIRE(helped.insert(name).second);
            REQUIRE(line.size() > 7 + name.size() + 1);  // a non-empty help text
            continue;
        }
        if (line.rfind("# TYPE ", 0) == 0) {
            const std::size_t space = line.find(' ', 7);
            family = line.substr(7, space - 7);
            family_type = line.substr(space + 1);
            REQUIRE(helped.count(family) == 1);
            REQUIRE(typed.insert(family).second);
            if (family_type == "counter") REQUIRE(family.size() > 6);
            if (family_type == "counter") REQUIRE(family.substr(family.size() - 6) == "_total");
            continue;
        }
        // A sample belongs to the family declared just before it.
        const std::string name = line.substr(0, line.find_first_of("{ "));
        if (family_type == "histogram")
            REQUIRE((name == family + "_bucket" || name == family + "_sum" || name == family + "_count"));
        else
            REQUIRE(name == family);
        ++samples;
    }
    REQUIRE(helped == typed);
    REQUIRE(typed.size() == 22);
    // 2 rows + 3 batches + 2 evaluations + 14 histogram + 3 levels + 3 events published
    // + 2 lag + 2 outbox rows + 2 subscribers + 3 x 2 plugin counters + 3 plugin states
    // + 2 curve + 3 store + 2 time + 1 build + 2 reload = 52
    REQUIRE(samples == 52);
}

TEST_CASE("render_metrics keeps families without samples valid", "[metrics]") {
    const std::vector<std::string> lines = lines_of(render_metrics(MetricsSnapshot{}));
    REQUIRE(has_line(lines, "# TYPE ewsd_plugin_assessments_total counter"));
    REQUIRE(std::none_of(lines.begin(), lines.end(), [](const std::string& line) {
        return line.rfind("ewsd_plugin_assessments_total", 0) == 0;
    }));
    REQUIRE(has_line(lines, R"(ewsd_evaluation_duration_seconds_bucket{le="+Inf"} 0)"));
    REQUIRE(has_line(lines, "ewsd_evaluation_duration_seconds_sum 0"));
    REQUIRE(has_line(lines, "ewsd_config_last_reload_successful 1"));
    REQUIRE(has_line(lines, "ewsd_start_time_seconds 0"));
    REQUIRE(has_line(lines, std::string(R"(ewsd_build_info{version=")") + EWS_VERSION + "\"} 1"));
}

TEST_CASE("render_metrics escapes label values and repairs invalid UTF-8", "[metrics]") {
    MetricsSnapshot s;
    s.plugins["a\"b\\c\nd"] = {1, 0, 0};            // quote, backslash, newline
    s.plugins["caf\xC3\xA9 \xF0\x9F\x98\x80"] = {2, 0, 0};  // valid 2- and 4-byte sequences: kept
    s.plugins["x\xFFy"] = {3, 0, 0};                 // 0xFF is never valid
    s.plugins["\xED\xA0\x80"] = {4, 0, 0};           // a surrogate: three bad bytes
    s.plugins["\xC0\xAF"] = {5, 0, 0};               // overlong '/': two bad bytes
    s.plugins["cut\xE2\x82"] = {6, 0, 0};            // truncated 3-byte sequence: two bad bytes
    s.plugins["tab\tcr\r"] = {7, 0, 0};              // other control characters pass unchanged
    const std::string bad = "\xEF\xBF\xBD";          // U+FFFD
    const std::vector<std::string> lines = lines_of(render_metrics(s));
    const std::string name = "ewsd_plugin_assessments_total";
    REQUIRE(has_line(lines, name + R"({plugin="a\"b\\c\nd"} 1)"));
    REQUIRE(has_line(lines, name + "{plugin=\"caf\xC3\xA9 \xF0\x9F\x98\x80\"} 2"));
    REQUIRE(has_line(lines, name + "{plugin=\"x" + bad + "y\"} 3"));
    REQUIRE(has_line(lines, name + "{plugin=\"" + bad + bad + bad + "\"} 4"));
    REQUIRE(has_line(lines, name + "{plugin=\"" + bad + bad + "\"} 5"));
    REQUIRE(has_line(lines, name + "{plugin=\"cut" + bad + bad + "\"} 6"));
    REQUIRE(has_line(lines, name + "{plugin=\"tab\tcr\r\"} 7"));
    s.version = "1.0 \"beta\"";
    REQUIRE(has_line(lines_of(render_metrics(s)), R"(ewsd_build_info{version="1.0 \"beta\""} 1)"));
}

// ---- parse_listen_address ------------------------------------------------------------------

TEST_CASE("parse_listen_address reads IPv4 and bracketed IPv6 addresses", "[metrics]") {
    const ListenAddress v4 = parse_listen_address("127.0.0.1:9464");
    REQUIRE(v4.host == "127.0.0.1");
    REQUIRE(v4.port == 9464);
    const ListenAddress v6 = parse_listen_address("[::1]:9464");
    REQUIRE(v6.host == "::1");
    REQUIRE(v6.port == 9464);
    REQUIRE(parse_listen_address("0.0.0.0:1").port == 1);
    REQUIRE(parse_listen_address("[::]:65535").host == "::");
    REQUIRE(parse_listen_address("[::]:65535").port == 65535);
    REQUIRE(parse_listen_address("[fd00::1:2]:80").host == "fd00::1:2");
}

TEST_CASE("parse_listen_address names the address and what is wrong", "[metrics]") {
    const auto refusal = [](const std::string& text) {
        try {
            parse_listen_address(text);
        } catch (const std::invalid_argument& e) {
            return std::string(e.what());
        }
        FAIL("accepted: " << text);
        return std::string();
    };
    REQUIRE_THAT(refusal(""), Contains("empty"));
    REQUIRE_THAT(refusal("127.0.0.1"), Contains("\"127.0.0.1\"") && Contains("missing ':PORT'"));
    REQUIRE_THAT(refusal("127.0.0.1:"), Contains("empty port"));
    REQUIRE_THAT(refusal(":9464"), Contains("empty host"));
    REQUIRE_THAT(refusal("127.0.0.1:0"), Contains("outside 1-65535"));
    REQUIRE_THAT(refusal("127.0.0.1:65536"), Contains("outside 1-65535"));
    REQUIRE_THAT(refusal("127.0.0.1:99999999999999999999999"), Contains("outside 1-65535"));
    REQUIRE_THAT(refusal("127.0.0.1:94a4"), Contains("not a decimal number"));
    REQUIRE_THAT(refusal("127.0.0.1:+9464"), Contains("not a decimal number"));
    REQUIRE_THAT(refusal("127.0.0.1: 9464"), Contains("not a decimal number"));
    REQUIRE_THAT(refusal("localhost:9464"), Contains("not an IPv4 address") &&
                                                Contains("host names are not accepted"));
    REQUIRE_THAT(refusal("256.0.0.1:9464"), Contains("not an IPv4 address"));
    REQUIRE_THAT(refusal(" 127.0.0.1:9464"), Contains("not an IPv4 address"));
    REQUIRE_THAT(refusal("::1:9464"), Contains("in brackets"));
    REQUIRE_THAT(refusal("[::1]9464"), Contains("missing ':PORT' after ']'"));
    REQUIRE_THAT(refusal("[::1]"), Contains("missing ':PORT' after ']'"));
    REQUIRE_THAT(refusal("[::1:9464"), Contains("missing ']'"));
    REQUIRE_THAT(refusal("[]:9464"), Contains("empty host"));
    REQUIRE_THAT(refusal("[127.0.0.1]:9464"), Contains("not an IPv6 address"));
    REQUIRE_THAT(refusal("[::g]:9464"), Contains("not an IPv6 address"));
    REQUIRE_THAT(refusal("nonsense"), Contains("e.g. 127.0.0.1:9464 or [::1]:9464"));
}

// ---- MetricsServer -------------------------------------------------------------------------

TEST_CASE("metrics server answers GET /metrics with the exposition", "[metrics]") {
    Served served;
    REQUIRE(served.server.port() != 0);
    const Reply reply = served.ask("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    REQUIRE(reply.status_line == "HTTP/1.1 200 OK");
    REQUIRE(reply.headers.at("content-type") == "text/plain; version=0.0.4; charset=utf-8");
    REQUIRE(reply.headers.at("connection") == "close");
    REQUIRE(reply.body == render_metrics(sample_snapshot()));
    REQUIRE(reply.headers.at("content-length") == std::to_string(reply.body.size()));
    REQUIRE(served.snapshots == 1);

    // A query string is ignored; HTTP/1.0 and bare LF line ends are served too.
    REQUIRE(served.ask("GET /metrics?name[]=x HTTP/1.0\n\n").status_line == "HTTP/1.1 200 OK");
    REQUIRE(served.ask("\r\nGET http://localhost:9464/metrics HTTP/1.1\r\n\r\n").status_line ==
            "HTTP/1.1 200 OK");
    REQUIRE(served.snapshots == 3);
}

TEST_CASE("metrics server answers HEAD with the headers of GET and no body", "[metrics]") {
    Served served;
    const Reply reply = served.ask("HEAD /metrics HTTP/1.1\r\n\r\n");
    REQUIRE(reply.status_line == "HTTP/1.1 200 OK");
    REQUIRE(reply.body.empty());
    REQUIRE(reply.headers.at("content-length") ==
            std::to_string(render_metrics(sample_snapshot()).size()));
    REQUIRE(reply.headers.at("content-type") == "text/plain; version=0.0.4; charset=utf-8");
}

TEST_CASE("metrics server points from / to /metrics and answers other paths 404", "[metrics]") {
    Served served;
    const Reply root = served.ask("GET / HTTP/1.1\r\n\r\n");
    REQUIRE(root.status_line == "HTTP/1.1 200 OK");
    REQUIRE_THAT(root.body, Contains("/metrics"));
    REQUIRE(root.headers.at("content-length") == std::to_string(root.body.size()));

    const Reply missing = served.ask("GET /metricsx HTTP/1.1\r\n\r\n");
    REQUIRE(missing.status_line == "HTTP/1.1 404 Not Found");
    REQUIRE(missing.headers.at("content-length") == std::to_string(missing.body.size()));
    REQUIRE(missing.headers.at("connection") == "close");
    REQUIRE(served.ask("HEAD /nope HTTP/1.1\r\n\r\n").body.empty());
    REQUIRE(served.snapshots == 0);
}

TEST_CASE("metrics server answers other methods 405 with Allow", "[metrics]") {
    Served served;
    const Reply reply = served.ask("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    REQUIRE(reply.status_line == "HTTP/1.1 405 Method Not Allowed");
    REQUIRE(reply.headers.at("allow") == "GET, HEAD");
    REQUIRE(served.ask("DELETE / HTTP/1.1\r\n\r\n").headers.at("allow") == "GET, HEAD");
    REQUIRE(served.snapshots == 0);
}

TEST_CASE("metrics server answers malformed requests 400 and other HTTP versions 505", "[metrics]") {
    Served served;
    REQUIRE(served.ask("GARBAGE\r\n\r\n").status_line == "HTTP/1.1 400 Bad Request");
    REQUIRE(served.ask("GET /metrics\r\n\r\n").status_line == "HTTP/1.1 400 Bad Request");
    REQUIRE(served.ask("GET  /metrics HTTP/1.1\r\n\r\n").status_line == "HTTP/1.1 400 Bad Request");
    REQUIRE(served.ask("GET /metrics HTTP/1.1x\r\n\r\n").status_line == "HTTP/1.1 400 Bad Request");
    REQUIRE(served.ask("G(T /metrics HTTP/1.1\r\n\r\n").status_line == "HTTP/1.1 400 Bad Request");
    REQUIRE(served.ask("GET /metrics HTTP/1.1\r\nno colon\r\n\r\n").status_line ==
            "HTTP/1.1 400 Bad Request");
    REQUIRE(served.ask("GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n").status_line ==
            "HTTP/1.1 400 Bad Request");
    REQUIRE(served.ask("GET /metrics HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n").status_line ==
            "HTTP/1.1 400 Bad Request");
    // A malformed request line is answered as soon as it ends, without waiting for the head.
    REQUIRE(served.ask("NOT A REQUEST LINE\r\n").status_line == "HTTP/1.1 400 Bad Request");
    REQUIRE(served.ask("GET /metrics HTTP/2.0\r\n\r\n").status_line ==
            "HTTP/1.1 505 HTTP Version Not Supported");
    REQUIRE(served.snapshots == 0);
}

TEST_CASE("metrics server answers a request head over 8 KiB 431", "[metrics]") {
    Served served;
    // Head = "GET /metrics HTTP/1.1\r\n" (23) + "X-Pad: " (7) + N + "\r\n" (2) + "\r\n" (2)
    //      = 34 + N bytes: N = 8158 is exactly 8192 (served), N = 8159 is 8193 (refused).
    const auto request = [](std::size_t pad) {
        return "GET /metrics HTTP/1.1\r\nX-Pad: " + std::string(pad, 'a') + "\r\n\r\n";
    };
    REQUIRE(request(8158).size() == 8192);
    REQUIRE(served.ask(request(8158)).status_line == "HTTP/1.1 200 OK");
    const Reply oversize = served.ask(request(8159));
    REQUIRE(oversize.status_line == "HTTP/1.1 431 Request Header Fields Too Large");
    REQUIRE(oversize.headers.at("connection") == "close");
    // No end of head at all: refused once more than 8192 bytes arrived.
    REQUIRE(served.ask("GET /metrics HTTP/1.1\r\nX-Pad: " + std::string(20000, 'b')).status_line ==
            "HTTP/1.1 431 Request Header Fields Too Large");
    // Empty lines before the request line are skipped but count: 8200 of them exceed 8192.
    std::string blank_lines(8200, '\n');
    blank_lines += "GET /metrics HTTP/1.1\r\n\r\n";
    REQUIRE(served.ask(blank_lines).status_line ==
            "HTTP/1.1 431 Request Header Fields Too Large");
    REQUIRE(served.snapshots == 1);
}

TEST_CASE("metrics server assembles a request sent in two pieces", "[metrics]") {
    Served served;
    Client client(served.server.port());
    client.send("GET /met");
    pump_until_connections(served.server, served.snapshot, 1);
    std::string early;
    for (int i = 0; i < 10; ++i) {
        pump(served.server, served.snapshot);
        REQUIRE(client.read_some(early) == Client::Read::nothing);  // no reply to half a request
    }
    REQUIRE(served.server.write_fds().empty());
    client.send("rics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    const Reply reply = receive(served.server, client, served.snapshot);
    REQUIRE(reply.status_line == "HTTP/1.1 200 OK");
    REQUIRE(reply.body == render_metrics(sample_snapshot()));
}

TEST_CASE("metrics server drops a client that sends nothing for the idle timeout", "[metrics]") {
    Served served;
    const auto before = Clock::now();
    Client client(served.server.port());
    pump_until_connections(served.server, served.snapshot, 1);
    const auto after = Clock::now();
    // The deadline is the accept time + 5 s, and the accept happened between before and after.
    REQUIRE(served.server.next_deadline().has_value());
    REQUIRE(*served.server.next_deadline() >= before + 5s);
    REQUIRE(*served.server.next_deadline() <= after + 5s);
    served.server.expire(before + 4s);
    REQUIRE(served.server.connection_count() == 1);
    served.server.expire(after + 5s);
    REQUIRE(served.server.connection_count() == 0);
    REQUIRE_FALSE(served.server.next_deadline().has_value());
    std::string nothing;
    REQUIRE(client.read_some(nothing) == Client::Read::eof);
    REQUIRE(nothing.empty());
}

TEST_CASE("metrics server drops the oldest connection beyond its limit", "[metrics]") {
    MetricsServer::Limits limits;
    limits.max_connections = 2;
    Served served(limits);
    Client first(served.server.port());
    pump_until_connections(served.server, served.snapshot, 1);
    Client second(served.server.port());
    pump_until_connections(served.server, served.snapshot, 2);
    Client third(served.server.port());
    std::string nothing;
    const auto give_up = Clock::now() + 2s;
    Client::Read read = Client::Read::nothing;
    while ((read = first.read_some(nothing)) == Client::Read::nothing && Clock::now() < give_up)
        pump(served.server, served.snapshot);
    REQUIRE(read == Client::Read::eof);
    REQUIRE(served.server.connection_count() == 2);
    // The two newer ones are still served.
    third.send("GET / HTTP/1.1\r\n\r\n");
    REQUIRE(receive(served.server, third, served.snapshot).status_line == "HTTP/1.1 200 OK");
    second.send("GET / HTTP/1.1\r\n\r\n");
    REQUIRE(receive(served.server, second, served.snapshot).status_line == "HTTP/1.1 200 OK");
}

TEST_CASE("metrics server keeps a reply larger than the socket buffer for POLLOUT", "[metrics]") {
    // About 60000 x 3 plugin lines of ~60 bytes: ~10 MB, more than the kernel buffers between
    // the two ends (sender at most tcp_wmem's 4 MiB, receiver clamped to a few KiB here).
    MetricsSnapshot big = sample_snapshot();
    for (int i = 0; i < 60000; ++i) big.plugins["plugin_" + std::to_string(i)] = {std::uint64_t(i), 0, 0};
    const std::string expected = render_metrics(big);
    REQUIRE(expected.size() > 8'000'000);

    MetricsServer server(ListenAddress{"127.0.0.1", 0});
    const MetricsServer::SnapshotFn snapshot = [&big] { return big; };
    Client client(server.port(), 4096);
    client.send("GET /metrics HTTP/1.1\r\n\r\n");
    const auto give_up = Clock::now() + 5s;
    while (server.write_fds().empty() && Clock::now() < give_up) pump(server, snapshot);
    REQUIRE(server.write_fds().size() == 1);  // the reply waits; the loop was not blocked
    REQUIRE(server.fds() == std::vector<int>{server.listen_fd()});

    const Reply reply = receive(server, client, snapshot);
    REQUIRE(reply.status_line == "HTTP/1.1 200 OK");
    REQUIRE(reply.headers.at("content-length") == std::to_string(expected.size()));
    REQUIRE(reply.body == expected);
}

TEST_CASE("metrics server survives clients that hang up early", "[metrics]") {
    Served served;
    {
        Client client(served.server.port());
        client.send("GET /metr");
    }
    {
        Client client(served.server.port());
        client.send("GET /metrics HTTP/1.1\r\n\r\n");  // and never reads the reply
    }
    pump_until_connections(served.server, served.snapshot, 0);
    REQUIRE(served.ask("GET /metrics HTTP/1.1\r\n\r\n").status_line == "HTTP/1.1 200 OK");
}

TEST_CASE("metrics server answers 500 when the snapshot fails and keeps serving", "[metrics]") {
    MetricsServer server(ListenAddress{"127.0.0.1", 0});
    bool fail = true;
    const MetricsServer::SnapshotFn snapshot = [&fail]() -> MetricsSnapshot {
        if (fail) throw std::runtime_error("store is busy");
        return sample_snapshot();
    };
    {
        Client client(server.port());
        client.send("GET /metrics HTTP/1.1\r\n\r\n");
        REQUIRE(receive(server, client, snapshot).status_line == "HTTP/1.1 500 Internal Server Error");
    }
    fail = false;
    Client client(server.port());
    client.send("GET /metrics HTTP/1.1\r\n\r\n");
    REQUIRE(receive(server, client, snapshot).status_line == "HTTP/1.1 200 OK");
}

TEST_CASE("metrics server fds are non-blocking and close-on-exec", "[metrics]") {
    Served served;
    Client client(served.server.port());
    pump_until_connections(served.server, served.snapshot, 1);
    const std::vector<int> fds = served.server.fds();
    REQUIRE(fds.size() == 2);  // the listener and the connection
    for (const int fd : fds) {
        REQUIRE((::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
        REQUIRE((::fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
    }
    int reuse = 0;
    socklen_t length = sizeof reuse;
    REQUIRE(::getsockopt(served.server.listen_fd(), SOL_SOCKET, SO_REUSEADDR, &reuse, &length) == 0);
    REQUIRE(reuse != 0);
    // An fd the server does not own is ignored.
    served.server.on_readable(client.fd(), served.snapshot);
    served.server.on_writable(-1);
    REQUIRE(served.server.connection_count() == 1);
}

TEST_CASE("metrics server names the address when it cannot listen", "[metrics]") {
    MetricsServer first(ListenAddress{"127.0.0.1", 0});
    const std::string address = "127.0.0.1:" + std::to_string(first.port());
    try {
        MetricsServer second(ListenAddress{"127.0.0.1", first.port()});
        FAIL("a second server listened on " << address);
    } catch (const std::runtime_error& e) {
        REQUIRE_THAT(e.what(), Contains("cannot listen on " + address) && Contains("bind") &&
                                   Contains(std::strerror(EADDRINUSE)));
    }
    REQUIRE_THROWS_AS(MetricsServer(ListenAddress{"localhost", 0}), std::invalid_argument);
    MetricsServer::Limits no_connections;
    no_connections.max_connections = 0;
    REQUIRE_THROWS_AS(MetricsServer(ListenAddress{"127.0.0.1", 0}, no_connections),
                      std::invalid_argument);
}

TEST_CASE("metrics server listens on IPv6 loopback", "[metrics]") {
    std::unique_ptr<MetricsServer> server;
    try {
        server = std::make_unique<MetricsServer>(ListenAddress{"::1", 0});
    } catch (const std::runtime_error& e) {
        // A host without IPv6 cannot run this test; say so rather than pass silently.
        WARN("IPv6 loopback unavailable: " << e.what());
        return;
    }
    const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in6 address{};
    address.sin6_family = AF_INET6;
    address.sin6_port = htons(server->port());
    address.sin6_addr = in6addr_loopback;
    REQUIRE(::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
    const std::string request = "HEAD / HTTP/1.1\r\n\r\n";
    REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == ssize_t(request.size()));
    const MetricsServer::SnapshotFn snapshot = sample_snapshot;
    std::string raw;
    const auto give_up = Clock::now() + 5s;
    for (;;) {
        REQUIRE(Clock::now() < give_up);
        char buffer[4096];
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
        if (n == 0) break;
        if (n > 0) raw.append(buffer, std::size_t(n));
        else pump(*server, snapshot);
    }
    ::close(fd);
    REQUIRE(raw.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
}
