// metrics.cpp: the Prometheus text exposition and the HTTP server of the metrics endpoint.
#include "metrics.hpp"

#include <spdlog/spdlog.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <stdexcept>
#include <string_view>
#include <utility>

namespace ews {

// ---- Histogram ---------------------------------------------------------------------------

const std::vector<double>& Histogram::default_duration_bounds() {
    static const std::vector<double> bounds{0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                            0.5,   1.0,  2.5,   5.0,  10.0};
    return bounds;
}

Histogram::Histogram() : Histogram(default_duration_bounds()) {}

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)) {
    if (bounds_.empty()) throw std::invalid_argument("histogram: no bucket bounds");
    for (std::size_t i = 0; i < bounds_.size(); ++i) {
        if (!std::isfinite(bounds_[i]))
            throw std::invalid_argument("histogram: bucket bound " + std::to_string(i) +
                                        " is not finite");
        if (i > 0 && !(bounds_[i - 1] < bounds_[i]))
            throw std::invalid_argument("histogram: bucket bounds must increase strictly (bound " +
                                        std::to_string(i) + ")");
    }
    per_bucket_.assign(bounds_.size(), 0);
}

void Histogram::observe(double value) {
    if (!std::isfinite(value)) return;
    // The first bound >= value: Prometheus buckets are "less than or equal".
    const auto bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value);
    if (bucket != bounds_.end()) ++per_bucket_[std::size_t(bucket - bounds_.begin())];
    ++count_;
    sum_ += value;
}

std::vector<std::uint64_t> Histogram::cumulative_counts() const {
    std::vector<std::uint64_t> cumulative(per_bucket_.size());
    std::uint64_t running = 0;
    for (std::size_t i = 0; i < per_bucket_.size(); ++i) cumulative[i] = running += per_bucket_[i];
    return cumulative;
}

// ---- text exposition format 0.0.4 ----------------------------------------------------------

namespace {

// Returns: the length of the valid UTF-8 sequence starting at text[at] (a non-ASCII lead
// byte), 0 when it is not one (Unicode Table 3-7: no overlongs, surrogates or > U+10FFFF).
std::size_t utf8_sequence_length(std::string_view text, std::size_t at) {
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
    const unsigned char lead = byte(at);
    std::size_t length = 0;
    unsigned char second_low = 0x80, second_high = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        if (lead == 0xE0) second_low = 0xA0;
        if (lead == 0xED) second_high = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        if (lead == 0xF0) second_low = 0x90;
        if (lead == 0xF4) second_high = 0x8F;
    } else {
        return 0;
    }
    if (at + length > text.size()) return 0;
    if (byte(at + 1) < second_low || byte(at + 1) > second_high) return 0;
    for (std::size_t i = 2; i < length; ++i)
        if (byte(at + i) < 0x80 || byte(at + i) > 0xBF) return 0;
    return length;
}

void append_label_value(std::string& out, std::string_view value) {
    std::size_t i = 0;
    while (i < value.size()) {
        const char c = value[i];
        if (static_cast<unsigned char>(c) < 0x80) {
            if (c == '\\') out += "\\\\";
            else if (c == '"') out += "\\\"";
            else if (c == '\n') out += "\\n";
            else out += c;
            ++i;
        } else if (const std::size_t length = utf8_sequence_length(value, i); length > 0) {
            out.append(value.substr(i, length));
            i += length;
        } else {
            out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
            ++i;
        }
    }
}

void append_number(std::string& out, std::uint64_t value) {
    std::array<char, 24> buffer{};
    const auto result = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
    out.append(buffer.data(), result.ptr);
}

// The shortest text that reads back as `value`; Go's ParseFloat spellings for the specials.
void append_number(std::string& out, double value) {
    if (std::isnan(value)) {
        out += "NaN";
    } else if (std::isinf(value)) {
        out += value > 0 ? "+Inf" : "-Inf";
    } else {
        std::array<char, 32> buffer{};
        const auto result = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
        out.append(buffer.data(), result.ptr);
    }
}

std::string format_number(double value) {
    std::string text;
    append_number(text, value);
    return text;
}

double seconds_since_epoch(std::chrono::system_clock::time_point at) {
    return std::chrono::duration<double>(at.time_since_epoch()).count();
}

using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

class Exposition {
public:
    // HELP text is constant and has neither backslash nor newline, which HELP would escape.
    void family(std::string_view name, std::string_view type, std::string_view help) {
        out_ += "# HELP ";
        out_ += name;
        out_ += ' ';
        out_ += help;
        out_ += "\n# TYPE ";
        out_ += name;
        out_ += ' ';
        out_ += type;
        out_ += '\n';
    }

    template <typename Number>
    void sample(std::string_view name, Labels labels, Number value) {
        out_ += name;
        if (labels.size() > 0) {
            out_ += '{';
            bool first = true;
            for (const auto& [label, label_value] : labels) {
                if (!first) out_ += ',';
                first = false;
                out_ += label;
                out_ += "=\"";
                append_label_value(out_, label_value);
                out_ += '"';
            }
            out_ += '}';
        }
        out_ += ' ';
        append_number(out_, value);
        out_ += '\n';
    }

    std::string take() { return std::move(out_); }

private:
    std::string out_;
};

}  // namespace

std::string render_metrics(const MetricsSnapshot& s) {
    Exposition e;
    using Uint = std::uint64_t;

    e.family("ewsd_ingest_rows_total", "counter",
             "Observation rows ingested, by outcome (committed to the store, or rejected with a "
             "reason).");
    e.sample("ewsd_ingest_rows_total", {{"outcome", "committed"}}, Uint{s.ingest_rows_committed});
    e.sample("ewsd_ingest_rows_total", {{"outcome", "rejected"}}, Uint{s.ingest_rows_rejected});

    e.family("ewsd_ingest_batches_total", "counter",
             "Spool files and ingest requests processed, by outcome (duplicate: the same content "
             "had been ingested before; rejected: nothing committed).");
    e.sample("ewsd_ingest_batches_total", {{"outcome", "committed"}},
             Uint{s.ingest_batches_committed});
    e.sample("ewsd_ingest_batches_total", {{"outcome", "duplicate"}},
             Uint{s.ingest_batches_duplicate});
    e.sample("ewsd_ingest_batches_total", {{"outcome", "rejected"}},
             Uint{s.ingest_batches_rejected});

    e.family("ewsd_evaluations_total", "counter",
             "Evaluations run, by kind (full: every locality; incremental: the localities whose "
             "data changed).");
    e.sample("ewsd_evaluations_total", {{"kind", "full"}}, Uint{s.evaluations_full});
    e.sample("ewsd_evaluations_total", {{"kind", "incremental"}}, Uint{s.evaluations_incremental});

    {
        const Histogram& h = s.evaluation_duration;
        e.family("ewsd_evaluation_duration_seconds", "histogram",
                 "Wall-clock duration of each evaluation, full and incremental.");
        const std::vector<Uint> cumulative = h.cumulative_counts();
        for (std::size_t i = 0; i < cumulative.size(); ++i)
            e.sample("ewsd_evaluation_duration_seconds_bucket",
                     {{"le", format_number(h.upper_bounds()[i])}}, cumulative[i]);
        e.sample("ewsd_evaluation_duration_seconds_bucket", {{"le", "+Inf"}}, h.count());
        e.sample("ewsd_evaluation_duration_seconds_sum", {}, h.sum());
        e.sample("ewsd_evaluation_duration_seconds_count", {}, h.count());
    }

    e.family("ewsd_open_alerts", "gauge", "Open locality alerts, by level.");
    e.sample("ewsd_open_alerts", {{"level", "watch"}}, Uint{s.open_alerts_watch});
    e.sample("ewsd_open_alerts", {{"level", "warning"}}, Uint{s.open_alerts_warning});
    e.sample("ewsd_open_alerts", {{"level", "critical"}}, Uint{s.open_alerts_critical});

    e.family("ewsd_alert_events_published_total", "counter",
             "Alert events published, by publish endpoint and event type.");
    for (const auto& [endpoint, published] : s.publish)
        for (const auto& [event, total] : published.events_published)
            e.sample("ewsd_alert_events_published_total", {{"endpoint", endpoint}, {"event", event}},
                     total);

    e.family("ewsd_outbox_lag_events", "gauge",
             "Alert events stored in a publish endpoint's outbox but not yet sent (last seq "
             "stored minus last seq sent).");
    for (const auto& [endpoint, published] : s.publish) {
        const Uint lag = published.last_seq_stored > published.last_seq_sent
                             ? published.last_seq_stored - published.last_seq_sent
                             : 0;
        e.sample("ewsd_outbox_lag_events", {{"endpoint", endpoint}}, lag);
    }

    e.family("ewsd_outbox_rows", "gauge", "Rows kept in a publish endpoint's outbox.");
    for (const auto& [endpoint, published] : s.publish)
        e.sample("ewsd_outbox_rows", {{"endpoint", endpoint}}, published.outbox_rows);

    e.family("ewsd_publish_subscribers", "gauge",
             "Subscribers connected to a publish endpoint.");
    for (const auto& [endpoint, published] : s.publish)
        e.sample("ewsd_publish_subscribers", {{"endpoint", endpoint}}, published.subscribers);

    e.family("ewsd_plugin_assessments_total", "counter",
             "Calls of an indicator plugin's assess(), by plugin.");
    for (const auto& [plugin, calls] : s.plugins)
        e.sample("ewsd_plugin_assessments_total", {{"plugin", plugin}}, calls.assessments);

    e.family("ewsd_plugin_assessment_failures_total", "counter",
             "assess() calls that threw or returned an invalid value, by plugin.");
    for (const auto& [plugin, calls] : s.plugins)
        e.sample("ewsd_plugin_assessment_failures_total", {{"plugin", plugin}}, calls.failures);

    e.family("ewsd_plugin_assessments_over_budget_total", "counter",
             "assess() calls that took longer than their time budget, by plugin.");
    for (const auto& [plugin, calls] : s.plugins)
        e.sample("ewsd_plugin_assessments_over_budget_total", {{"plugin", plugin}},
                 calls.over_budget);

    e.family("ewsd_plugins", "gauge",
             "Plugin files in the plugin directory, by state (loaded, refused, or held back by a "
             "quarantine).");
    e.sample("ewsd_plugins", {{"state", "loaded"}}, Uint{s.plugins_loaded});
    e.sample("ewsd_plugins", {{"state", "refused"}}, Uint{s.plugins_refused});
    e.sample("ewsd_plugins", {{"state", "quarantined"}}, Uint{s.plugins_quarantined});

    e.family("ewsd_curve_handshakes_total", "counter",
             "CURVE clients admitted or refused by the ZAP handler, by ZAP domain (publish or "
             "query endpoint).");
    for (const auto& [domain, counts] : s.curve) {
        e.sample("ewsd_curve_handshakes_total", {{"domain", domain}, {"outcome", "admitted"}},
                 counts.admitted);
        e.sample("ewsd_curve_handshakes_total", {{"domain", domain}, {"outcome", "refused"}},
                 counts.refused);
    }

    e.family("ewsd_database_size_bytes", "gauge", "Size of the SQLite database file plus its WAL.");
    e.sample("ewsd_database_size_bytes", {}, Uint{s.database_bytes});

    e.family("ewsd_localities", "gauge", "Localities known to the daemon.");
    e.sample("ewsd_localities", {}, Uint{s.localities});

    e.family("ewsd_observations", "gauge", "Observation rows held in memory for assessment (retention applies to the store daily; memory follows at the next start).");
    e.sample("ewsd_observations", {}, Uint{s.observations});

    e.family("ewsd_start_time_seconds", "gauge",
             "Start time of the daemon since the Unix epoch, in seconds.");
    e.sample("ewsd_start_time_seconds", {}, seconds_since_epoch(s.started_at));

    e.family("ewsd_uptime_seconds", "gauge", "Seconds since the daemon started.");
    e.sample("ewsd_uptime_seconds", {}, s.uptime.count());

    e.family("ewsd_build_info", "gauge", "The daemon's version, as a label; the value is 1.");
    e.sample("ewsd_build_info", {{"version", s.version}}, Uint{1});

    e.family("ewsd_config_last_reload_successful", "gauge",
             "Whether the last configuration reload succeeded (1) or was rejected (0).");
    e.sample("ewsd_config_last_reload_successful", {}, Uint{s.last_reload_successful ? 1u : 0u});

    e.family("ewsd_config_last_reload_success_timestamp_seconds", "gauge",
             "Time of the last successful configuration load (start or reload) since the Unix "
             "epoch, in seconds.");
    e.sample("ewsd_config_last_reload_success_timestamp_seconds", {},
             seconds_since_epoch(s.last_reload_success_at));

    return e.take();
}

// ---- listen address ------------------------------------------------------------------------

namespace {

[[noreturn]] void bad_address(const std::string& text, const std::string& why) {
    throw std::invalid_argument("listen address \"" + text + "\": " + why +
                                " (expected IPV4:PORT or [IPV6]:PORT, e.g. 127.0.0.1:9464 or "
                                "[::1]:9464)");
}

bool is_ipv4(const std::string& host) {
    in_addr address{};
    return inet_pton(AF_INET, host.c_str(), &address) == 1;
}

bool is_ipv6(const std::string& host) {
    in6_addr address{};
    return inet_pton(AF_INET6, host.c_str(), &address) == 1;
}

std::string address_text(const ListenAddress& address) {
    const bool v6 = address.host.find(':') != std::string::npos;
    return (v6 ? "[" + address.host + "]" : address.host) + ":" + std::to_string(address.port);
}

}  // namespace

ListenAddress parse_listen_address(const std::string& text) {
    if (text.empty()) bad_address(text, "empty");
    std::string host;
    std::string port_text;
    if (text.front() == '[') {
        const std::size_t close = text.find(']');
        if (close == std::string::npos) bad_address(text, "missing ']' after the IPv6 address");
        host = text.substr(1, close - 1);
        if (close + 1 >= text.size() || text[close + 1] != ':')
            bad_address(text, "missing ':PORT' after ']'");
        port_text = text.substr(close + 2);
        if (host.empty()) bad_address(text, "empty host");
        if (!is_ipv6(host)) bad_address(text, "\"" + host + "\" is not an IPv6 address");
    } else {
        const std::size_t colon = text.rfind(':');
        if (colon == std::string::npos) bad_address(text, "missing ':PORT'");
        host = text.substr(0, colon);
        port_text = text.substr(colon + 1);
        if (host.empty()) bad_address(text, "empty host");
        if (host.find(':') != std::string::npos)
            bad_address(text, "an IPv6 address must be written in brackets");
        if (!is_ipv4(host))
            bad_address(text, "\"" + host + "\" is not an IPv4 address (host names are not "
                                            "accepted)");
    }
    if (port_text.empty()) bad_address(text, "empty port");
    if (!std::all_of(port_text.begin(), port_text.end(),
                     [](char c) { return c >= '0' && c <= '9'; }))
        bad_address(text, "port \"" + port_text + "\" is not a decimal number");
    unsigned long port = 0;
    const char* const last = port_text.data() + port_text.size();
    const auto [end, error] = std::from_chars(port_text.data(), last, port);
    if (error != std::errc{} || end != last || port < 1 || port > 65535)
        bad_address(text, "port " + port_text + " is outside 1-65535");
    return ListenAddress{host, static_cast<std::uint16_t>(port)};
}

// ---- HTTP server ---------------------------------------------------------------------------

namespace {

using Clock = std::chrono::steady_clock;

// What a connection still discards after its reply before it is closed anyway.
constexpr std::size_t max_drained_bytes = 64 * 1024;
// Reads and accepts per call, so that one busy client cannot hold the daemon's loop.
constexpr int max_reads_per_call = 16;

std::string errno_text(int error) { return std::strerror(error); }

bool would_block(int error) { return error == EAGAIN || error == EWOULDBLOCK; }

bool is_tchar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view text) {
    return !text.empty() && std::all_of(text.begin(), text.end(), is_tchar);
}

struct RequestLine {
    std::string method;
    std::string path;  // without the query
    char major = '1';  // HTTP major version digit
};

// Parses "METHOD SP TARGET SP HTTP/D.D" (RFC 9112 section 3). Returns: nullopt when malformed.
std::optional<RequestLine> parse_request_line(std::string_view line) {
    const std::size_t first = line.find(' ');
    if (first == std::string_view::npos) return std::nullopt;
    const std::size_t second = line.find(' ', first + 1);
    if (second == std::string_view::npos) return std::nullopt;
    const std::string_view method = line.substr(0, first);
    std::string_view target = line.substr(first + 1, second - first - 1);
    const std::string_view version = line.substr(second + 1);
    if (!is_token(method) || target.empty()) return std::nullopt;
    if (!std::all_of(target.begin(), target.end(), [](char c) { return c > 0x20 && c < 0x7F; }))
        return std::nullopt;
    if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
        version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9')
        return std::nullopt;
    // Absolute form (to a proxy): keep the path after "scheme://authority".
    if (const std::size_t scheme_end = target.find("://");
        target.front() != '/' && scheme_end != std::string_view::npos) {
        const std::size_t path_start = target.find('/', scheme_end + 3);
        target = path_start == std::string_view::npos ? std::string_view("/")
                                                      : target.substr(path_start);
    }
    const std::string_view path = target.substr(0, target.find('?'));
    return RequestLine{std::string(method), std::string(path), version[5]};
}

// A header field line: "name: value" (no obs-fold, no whitespace before the colon).
bool is_header_line(std::string_view line) {
    const std::size_t colon = line.find(':');
    return colon != std::string_view::npos && is_token(line.substr(0, colon));
}

// Splits `head` (without its blank line) into lines ending in LF, a CR before it dropped.
// Returns: nullopt when a line holds a CR elsewhere, or a NUL.
std::optional<std::vector<std::string_view>> split_lines(std::string_view head) {
    std::vector<std::string_view> lines;
    std::size_t start = 0;
    while (start < head.size()) {
        std::size_t end = head.find('\n', start);
        if (end == std::string_view::npos) end = head.size();
        std::string_view line = head.substr(start, end - start);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.find('\r') != std::string_view::npos || line.find('\0') != std::string_view::npos)
            return std::nullopt;
        lines.push_back(line);
        start = end + 1;
    }
    return lines;
}

std::string http_reply(int status, std::string_view reason, std::string_view content_type,
                       const std::string& body, bool head_only,
                       std::string_view extra_header = {}) {
    std::string reply = "HTTP/1.1 " + std::to_string(status) + " ";
    reply += reason;
    reply += "\r\nContent-Type: ";
    reply += content_type;
    reply += "\r\nContent-Length: " + std::to_string(body.size());
    reply += "\r\nConnection: close\r\n";
    if (!extra_header.empty()) {
        reply += extra_header;
        reply += "\r\n";
    }
    reply += "\r\n";
    if (!head_only) reply += body;
    return reply;
}

constexpr std::string_view plain_text = "text/plain; charset=utf-8";

std::string error_reply(int status, std::string_view reason, const std::string& detail,
                        bool head_only = false, std::string_view extra_header = {}) {
    std::string body = std::to_string(status) + " ";
    body += reason;
    body += ": " + detail + "\n";
    return http_reply(status, reason, plain_text, body, head_only, extra_header);
}

// Returns: the reply to a well-formed request.
std::string answer(const RequestLine& request, const MetricsServer::SnapshotFn& snapshot) {
    const bool head_only = request.method == "HEAD";
    const bool known_path = request.path == "/metrics" || request.path == "/";
    if (!known_path)
        return error_reply(404, "Not Found", "no such path; the metrics are at /metrics", head_only);
    if (request.method != "GET" && !head_only)
        return error_reply(405, "Method Not Allowed",
                           request.method + " is not allowed on " + request.path, false,
                           "Allow: GET, HEAD");
    if (request.path == "/")
        return http_reply(200, "OK", plain_text,
                          "ewsd metrics endpoint: the metrics are at /metrics "
                          "(Prometheus text format 0.0.4).\n",
                          head_only);
    std::string why;
    try {
        return http_reply(200, "OK", metrics_content_type, render_metrics(snapshot()), head_only);
    } catch (const std::exception& e) {
        why = e.what();
    } catch (...) {
        why = "unknown exception";
    }
    spdlog::error("metrics: cannot take a snapshot: {}", why);
    return error_reply(500, "Internal Server Error", "cannot take a snapshot", head_only);
}

}  // namespace

struct MetricsServer::Connection {
    enum class State { reading, writing, draining };

    int fd = -1;
    State state = State::reading;
    std::string in;        // the request head so far
    std::string out;       // the reply
    std::size_t sent = 0;  // bytes of `out` sent
    std::size_t skipped = 0;  // empty lines before the request line
    std::size_t drained = 0;  // bytes discarded after the reply
    Clock::time_point deadline;
};

MetricsServer::MetricsServer(const ListenAddress& address) : MetricsServer(address, Limits{}) {}

MetricsServer::MetricsServer(const ListenAddress& address, Limits limits) : limits_(limits) {
    if (limits_.max_connections == 0 || limits_.max_request_head_bytes == 0 ||
        limits_.idle_timeout <= std::chrono::milliseconds::zero())
        throw std::invalid_argument("metrics: every limit must be positive");
    sockaddr_storage storage{};
    socklen_t length = 0;
    if (in_addr v4{}; inet_pton(AF_INET, address.host.c_str(), &v4) == 1) {
        auto& sin = reinterpret_cast<sockaddr_in&>(storage);
        sin.sin_family = AF_INET;
        sin.sin_addr = v4;
        sin.sin_port = htons(address.port);
        length = sizeof sin;
    } else if (in6_addr v6{}; inet_pton(AF_INET6, address.host.c_str(), &v6) == 1) {
        auto& sin6 = reinterpret_cast<sockaddr_in6&>(storage);
        sin6.sin6_family = AF_INET6;
        sin6.sin6_addr = v6;
        sin6.sin6_port = htons(address.port);
        length = sizeof sin6;
    } else {
        throw std::invalid_argument("metrics: \"" + address.host +
                                    "\" is not a numeric IPv4 or IPv6 address");
    }

    const auto fail = [&](const char* step) {
        const int error = errno;
        if (listen_fd_ >= 0) ::close(listen_fd_);
        listen_fd_ = -1;
        throw std::runtime_error("metrics: cannot listen on " + address_text(address) + ": " +
                                 step + ": " + errno_text(error));
    };
    listen_fd_ = ::socket(storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) fail("socket");
    const int on = 1;
    if (::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0)
        fail("setsockopt(SO_REUSEADDR)");
    if (::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&storage), length) != 0) fail("bind");
    if (::listen(listen_fd_, 64) != 0) fail("listen");

    sockaddr_storage bound{};
    socklen_t bound_length = sizeof bound;
    if (::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &bound_length) != 0)
        fail("getsockname");
    port_ = ntohs(bound.ss_family == AF_INET6
                      ? reinterpret_cast<const sockaddr_in6&>(bound).sin6_port
                      : reinterpret_cast<const sockaddr_in&>(bound).sin_port);
}

MetricsServer::~MetricsServer() {
    for (const auto& connection : connections_) ::close(connection->fd);
    if (listen_fd_ >= 0) ::close(listen_fd_);
}

std::vector<int> MetricsServer::fds() const {
    std::vector<int> fds{listen_fd_};
    for (const auto& connection : connections_)
        if (connection->state != Connection::State::writing) fds.push_back(connection->fd);
    return fds;
}

std::vector<int> MetricsServer::write_fds() const {
    std::vector<int> fds;
    for (const auto& connection : connections_)
        if (connection->state == Connection::State::writing) fds.push_back(connection->fd);
    return fds;
}

std::optional<Clock::time_point> MetricsServer::next_deadline() const {
    std::optional<Clock::time_point> earliest;
    for (const auto& connection : connections_)
        if (!earliest || connection->deadline < *earliest) earliest = connection->deadline;
    return earliest;
}

MetricsServer::Connection* MetricsServer::find(int fd) {
    for (const auto& connection : connections_)
        if (connection->fd == fd) return connection.get();
    return nullptr;
}

void MetricsServer::close_connection(int fd) {
    const auto it = std::find_if(connections_.begin(), connections_.end(),
                                 [fd](const auto& connection) { return connection->fd == fd; });
    if (it == connections_.end()) return;
    ::close(fd);
    connections_.erase(it);
}

void MetricsServer::on_readable(int fd, const SnapshotFn& snapshot) {
    if (fd == listen_fd_) {
        accept_waiting();
        return;
    }
    Connection* connection = find(fd);
    if (connection == nullptr) return;
    switch (connection->state) {
        case Connection::State::reading: read_request(*connection, snapshot); break;
        case Connection::State::writing: send_pending(*connection); break;
        case Connection::State::draining: drain(*connection); break;
    }
}

void MetricsServer::on_writable(int fd) {
    Connection* connection = find(fd);
    if (connection != nullptr && connection->state == Connection::State::writing)
        send_pending(*connection);
}

void MetricsServer::expire(Clock::time_point now) {
    std::vector<int> expired;
    for (const auto& connection : connections_)
        if (connection->deadline <= now) expired.push_back(connection->fd);
    for (const int fd : expired) close_connection(fd);
}

void MetricsServer::accept_waiting() {
    for (std::size_t accepted = 0; accepted < limits_.max_connections; ++accepted) {
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            // A connection that went away while queued, or an interrupted call: try the next.
            if (errno == EINTR || errno == ECONNABORTED) continue;
            // Nothing waiting (EAGAIN), or a resource limit (EMFILE, ENOBUFS...): the listener
            // stays readable and the next poll round tries again.
            return;
        }
        while (!connections_.empty() && connections_.size() >= limits_.max_connections)
            close_connection(connections_.front()->fd);
        auto connection = std::make_unique<Connection>();
        connection->fd = fd;
        connection->deadline = Clock::now() + limits_.idle_timeout;
        connections_.push_back(std::move(connection));
    }
}

void MetricsServer::read_request(Connection& connection, const SnapshotFn& snapshot) {
    std::array<char, 4096> buffer{};
    for (int reads = 0; reads < max_reads_per_call; ++reads) {
        const ssize_t n = ::recv(connection.fd, buffer.data(), buffer.size(), 0);
        if (n == 0) {  // the client closed before its request was complete
            close_connection(connection.fd);
            return;
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            if (!would_block(errno)) close_connection(connection.fd);
            return;
        }
        connection.in.append(buffer.data(), std::size_t(n));
        connection.deadline = Clock::now() + limits_.idle_timeout;

        // Empty lines before the request line are ignored (RFC 9112 section 2.2), but count
        // towards the size limit.
        std::string& in = connection.in;
        std::size_t skip = 0;
        while (skip < in.size() && (in[skip] == '\n' || (in[skip] == '\r' && skip + 1 < in.size() &&
                                                          in[skip + 1] == '\n')))
            skip += in[skip] == '\r' ? 2 : 1;
        in.erase(0, skip);
        connection.skipped += skip;

        // The head ends at the first empty line.
        std::size_t head_end = std::string::npos;  // bytes of the head, blank line included
        if (const std::size_t lf_lf = in.find("\n\n"); lf_lf != std::string::npos)
            head_end = lf_lf + 2;
        if (const std::size_t crlf = in.find("\n\r\n"); crlf != std::string::npos)
            head_end = std::min(head_end, crlf + 3);

        const std::size_t head_size =
            connection.skipped + (head_end == std::string::npos ? in.size() : head_end);
        if (head_size > limits_.max_request_head_bytes) {
            start_reply(connection,
                        error_reply(431, "Request Header Fields Too Large",
                                    "the request head is larger than " +
                                        std::to_string(limits_.max_request_head_bytes) + " bytes"));
            return;
        }

        // Reject a malformed request line as soon as it is complete.
        const std::size_t first_lf = in.find('\n');
        std::optional<RequestLine> request;
        if (first_lf != std::string::npos) {
            std::string_view line(in.data(), first_lf);
            if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
            request = parse_request_line(line);
            if (!request) {
                start_reply(connection, error_reply(400, "Bad Request", "malformed request line"));
                return;
            }
        }
        if (head_end == std::string::npos) continue;

        const auto lines = split_lines(std::string_view(in).substr(0, head_end));
        if (!lines || !std::all_of(lines->begin() + 1, lines->end(), [](std::string_view line) {
                return line.empty() || is_header_line(line);
            })) {
            start_reply(connection, error_reply(400, "Bad Request", "malformed header line"));
            return;
        }
        if (request->major != '1') {
            start_reply(connection, error_reply(505, "HTTP Version Not Supported",
                                                "only HTTP/1.x is served"));
            return;
        }

        start_reply(connection, answer(*request, snapshot));
        return;
    }
}

void MetricsServer::start_reply(Connection& connection, std::string reply) {
    connection.in.clear();
    connection.in.shrink_to_fit();
    connection.out = std::move(reply);
    connection.sent = 0;
    connection.state = Connection::State::writing;
    send_pending(connection);
}

void MetricsServer::send_pending(Connection& connection) {
    while (connection.sent < connection.out.size()) {
        const ssize_t n = ::send(connection.fd, connection.out.data() + connection.sent,
                                 connection.out.size() - connection.sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (!would_block(errno)) close_connection(connection.fd);  // EPIPE, ECONNRESET...
            return;  // would block: poll for POLLOUT
        }
        connection.sent += std::size_t(n);
        connection.deadline = Clock::now() + limits_.idle_timeout;
    }
    // All sent: half-close, then discard what the client still sends until it closes, so that
    // unread bytes do not turn the close into a reset that could destroy the reply in transit.
    connection.out.clear();
    connection.out.shrink_to_fit();
    ::shutdown(connection.fd, SHUT_WR);
    connection.state = Connection::State::draining;
    connection.deadline = Clock::now() + limits_.idle_timeout;  // not extended by what arrives
    drain(connection);
}

void MetricsServer::drain(Connection& connection) {
    std::array<char, 4096> buffer{};
    for (int reads = 0; reads < max_reads_per_call; ++reads) {
        const ssize_t n = ::recv(connection.fd, buffer.data(), buffer.size(), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && would_block(errno)) return;
        if (n <= 0) {  // the client closed (or the connection failed): done
            close_connection(connection.fd);
            return;
        }
        connection.drained += std::size_t(n);
        if (connection.drained > max_drained_bytes) {
            close_connection(connection.fd);
            return;
        }
    }
}

}  // namespace ews
