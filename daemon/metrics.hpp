// metrics.hpp: the optional Prometheus metrics endpoint. Three parts, each usable alone:
//
//   MetricsSnapshot   plain values the daemon fills from what it already tracks;
//   render_metrics    the snapshot in the text exposition format 0.0.4;
//   MetricsServer     a minimal HTTP/1.1 server on a TCP socket that the daemon's poll loop
//                     drives (GET /metrics answers with render_metrics of a fresh snapshot).
//
// The server must never block the daemon's loop: every socket is non-blocking, a reply that
// does not fit the socket buffer waits in a buffer for POLLOUT, and a client that misbehaves
// (malformed, oversized or stalled request, early hang-up) costs at most its own connection,
// never an exception. Metrics describe the daemon and its localities in aggregate: no label or
// value names a person.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ews {

// A cumulative histogram with fixed upper bounds (Prometheus buckets, `le`).
class Histogram {
public:
    // Upper bounds in seconds for evaluation durations: 5 ms to 10 s.
    static const std::vector<double>& default_duration_bounds();

    Histogram();  // default_duration_bounds()
    // Throws: std::invalid_argument when `upper_bounds` is empty, not strictly increasing or
    // holds a non-finite value (the +Inf bucket is always implied).
    explicit Histogram(std::vector<double> upper_bounds);

    // Counts `value` in every bucket whose bound is >= value, adds it to the sum. A non-finite
    // value is ignored: a duration is always finite, and one NaN would poison the sum forever.
    void observe(double value);

    const std::vector<double>& upper_bounds() const { return bounds_; }
    // Returns: for each upper bound, how many observations were <= it (non-decreasing); the
    // +Inf bucket is count().
    std::vector<std::uint64_t> cumulative_counts() const;
    std::uint64_t count() const { return count_; }
    double sum() const { return sum_; }

private:
    std::vector<double> bounds_;
    std::vector<std::uint64_t> per_bucket_;  // observations in (bound[i-1], bound[i]]
    std::uint64_t count_ = 0;
    double sum_ = 0.0;
};

// What the metrics endpoint reports. Counters (`_total`) count since the daemon started;
// gauges are the state at the time of the snapshot. Maps are keyed by a label value, so each
// label set appears once and in a stable order.
struct MetricsSnapshot {
    // Ingest (spool files, the ingest endpoint, ewsctl ingest through the daemon).
    std::uint64_t ingest_rows_committed = 0;
    std::uint64_t ingest_rows_rejected = 0;
    std::uint64_t ingest_batches_committed = 0;
    std::uint64_t ingest_batches_duplicate = 0;  // the same content had been ingested before
    std::uint64_t ingest_batches_rejected = 0;   // nothing committed

    // Evaluation.
    std::uint64_t evaluations_full = 0;
    std::uint64_t evaluations_incremental = 0;
    Histogram evaluation_duration;  // seconds, every evaluation (full and incremental)

    // Open alerts by level.
    std::uint64_t open_alerts_watch = 0;
    std::uint64_t open_alerts_warning = 0;
    std::uint64_t open_alerts_critical = 0;

    // Per publish endpoint, by its name.
    struct PublishEndpoint {
        std::uint64_t last_seq_stored = 0;  // newest seq in the endpoint's outbox
        std::uint64_t last_seq_sent = 0;    // newest seq handed to the PUB socket
        std::uint64_t outbox_rows = 0;      // rows kept in the endpoint's outbox
        std::uint64_t subscribers = 0;      // connected subscribers
        std::map<std::string, std::uint64_t> events_published;  // by event type ("raised", ...)
    };
    std::map<std::string, PublishEndpoint> publish;

    // Per plugin, by its name: assess() calls, calls that failed (exception or invalid value),
    // calls over their time budget.
    struct PluginCalls {
        std::uint64_t assessments = 0;
        std::uint64_t failures = 0;
        std::uint64_t over_budget = 0;
    };
    std::map<std::string, PluginCalls> plugins;
    std::uint64_t plugins_loaded = 0;
    std::uint64_t plugins_refused = 0;
    std::uint64_t plugins_quarantined = 0;

    // CURVE handshakes per ZAP domain (curve::ZapHandler::counts()).
    struct CurveDomain {
        std::uint64_t admitted = 0;
        std::uint64_t refused = 0;
    };
    std::map<std::string, CurveDomain> curve;

    // Store.
    std::uint64_t database_bytes = 0;  // the SQLite file plus its WAL
    std::uint64_t localities = 0;
    std::uint64_t observations = 0;

    // Process.
    std::string version = EWS_VERSION;  // defined for every target that links ews::core
    std::chrono::system_clock::time_point started_at{};
    std::chrono::duration<double> uptime{};
    bool last_reload_successful = true;  // the last SIGHUP reload, true before any
    // The last configuration load that succeeded (the start counts as one).
    std::chrono::system_clock::time_point last_reload_success_at{};
};

// Returns: `snapshot` in the Prometheus text exposition format 0.0.4: every family with its
// HELP and TYPE lines (also when it has no samples), label values escaped (backslash, double
// quote, newline) and any invalid UTF-8 in them replaced by U+FFFD. Families, all `ewsd_`:
//   ingest_rows_total{outcome}                 counter  committed | rejected
//   ingest_batches_total{outcome}              counter  committed | duplicate | rejected
//   evaluations_total{kind}                    counter  full | incremental
//   evaluation_duration_seconds                histogram
//   open_alerts{level}                         gauge    watch | warning | critical
//   alert_events_published_total{endpoint,event} counter
//   outbox_lag_events{endpoint}                gauge    last seq stored - last seq sent
//   outbox_rows{endpoint}                      gauge
//   publish_subscribers{endpoint}              gauge
//   plugin_assessments_total{plugin}           counter
//   plugin_assessment_failures_total{plugin}   counter
//   plugin_assessments_over_budget_total{plugin} counter
//   plugins{state}                             gauge    loaded | refused | quarantined
//   curve_handshakes_total{domain,outcome}     counter  admitted | refused
//   database_size_bytes, localities, observations                gauges
//   start_time_seconds, uptime_seconds                           gauges
//   build_info{version} 1                                        gauge
//   config_last_reload_successful, config_last_reload_success_timestamp_seconds  gauges
std::string render_metrics(const MetricsSnapshot& snapshot);

// The Content-Type of render_metrics' text.
inline constexpr const char* metrics_content_type = "text/plain; version=0.0.4; charset=utf-8";

struct ListenAddress {
    std::string host;        // a numeric IPv4 or IPv6 address, without brackets
    std::uint16_t port = 0;  // 0 lets the system choose (MetricsServer::port() tells which)
};

// Returns: the host and port of `text`, written "IPV4:PORT" or "[IPV6]:PORT", e.g.
// "127.0.0.1:9464", "0.0.0.0:9464", "[::1]:9464". Host names are not accepted (binding must
// not wait on name resolution); the port is 1-65535.
// Throws: std::invalid_argument naming `text` and what is wrong.
ListenAddress parse_listen_address(const std::string& text);

// A minimal HTTP/1.1 server for the metrics endpoint, driven by the caller's poll loop:
//
//   poll fds() for POLLIN and write_fds() for POLLOUT, wake no later than next_deadline();
//   for each fd with POLLIN, POLLERR or POLLHUP call on_readable(fd, snapshot);
//   for each fd with POLLOUT (or POLLERR/POLLHUP) from write_fds() call on_writable(fd);
//   then expire(now).
//
// Requests: GET or HEAD of /metrics (text exposition) or / (a short page pointing to
// /metrics); a query string is ignored. Other paths 404, other methods on these paths 405
// with Allow, a malformed request line or header line 400, a request head over
// Limits::max_request_head_bytes 431, an HTTP version other than 1.x 505. Every reply carries Content-Length and
// Connection: close; after it the server half-closes and discards what the client still
// sends until the client closes (so a reply is never cut short by a reset), within the idle
// timeout. One request per connection; a request body is not read.
//
// Calls with an fd the server no longer owns (closed earlier in the same poll round) are
// ignored. Not thread-safe: one thread drives it.
class MetricsServer {
public:
    struct Limits {
        std::size_t max_connections = 16;  // beyond it the oldest connection is dropped
        std::chrono::milliseconds idle_timeout{5000};  // no byte in or out for this long: dropped
        std::size_t max_request_head_bytes = 8192;     // request line + headers + blank line
    };

    // Produces the snapshot to render; called once per GET or HEAD of /metrics.
    using SnapshotFn = std::function<MetricsSnapshot()>;

    // Listens on `address` (SO_REUSEADDR, non-blocking, close-on-exec).
    // Throws: std::invalid_argument for a host that is not a numeric address or a limit of 0;
    // std::runtime_error "metrics: cannot listen on HOST:PORT: <step>: <errno text>" when the
    // socket cannot be made, bound or listened on.
    explicit MetricsServer(const ListenAddress& address);
    MetricsServer(const ListenAddress& address, Limits limits);
    ~MetricsServer();  // closes the listener and every connection
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    // The bound port (the chosen one when the address asked for port 0).
    std::uint16_t port() const { return port_; }
    int listen_fd() const { return listen_fd_; }
    std::size_t connection_count() const { return connections_.size(); }

    // Returns: the fds to poll for POLLIN: the listener and every connection that is reading
    // a request or waiting for the client to close.
    std::vector<int> fds() const;
    // Returns: the connections whose reply did not fit the socket buffer: poll them for POLLOUT.
    std::vector<int> write_fds() const;
    // Returns: the earliest time expire() will drop a connection; nullopt when none is open.
    std::optional<std::chrono::steady_clock::time_point> next_deadline() const;

    // The listener: accepts waiting connections. A connection: reads; when the request head is
    // complete (or too large, or malformed) answers it, calling `snapshot` for /metrics. An
    // exception from `snapshot` is answered 500 and logged. Never throws.
    void on_readable(int fd, const SnapshotFn& snapshot);
    // Sends more of a pending reply. Never throws.
    void on_writable(int fd);
    // Drops every connection idle since `now - idle_timeout` or longer.
    void expire(std::chrono::steady_clock::time_point now);

private:
    struct Connection;

    Connection* find(int fd);
    void accept_waiting();
    void read_request(Connection& connection, const SnapshotFn& snapshot);
    void drain(Connection& connection);
    void start_reply(Connection& connection, std::string reply);
    void send_pending(Connection& connection);
    void close_connection(int fd);

    Limits limits_;
    int listen_fd_ = -1;
    std::uint16_t port_ = 0;
    std::vector<std::unique_ptr<Connection>> connections_;  // oldest first
};

}  // namespace ews
