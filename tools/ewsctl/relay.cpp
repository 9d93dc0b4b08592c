#include "relay.hpp"

#include "curve.hpp"

#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace ews::relay {

namespace {

// The daemon's publisher absorbs a whole evaluation's burst with this high water mark; the
// relay holds as much on each side, so that a burst passes it without loss.
constexpr int high_water_mark = 100000;
// At a clean stop the last messages get this long to reach the subscribers.
constexpr int linger_ms = 1000;
// At most this many messages are moved in one direction before the other is looked at, so
// that a burst of alerts cannot delay a subscription, nor the reverse.
constexpr int burst = 1024;
// The ZAP domain of the relay's subscriber endpoint.
constexpr const char* zap_domain = "relay";

// The topics of protocol v1 that concern no region (docs/protocol.md, section 2).
constexpr std::string_view heartbeat_prefix = "hb/";
constexpr std::string_view ops_prefix = "ops/";

std::string alert_prefix(std::string_view scope) { return "alert/" + std::string(scope) + "/"; }

// Returns: `topic` with bytes outside printable ASCII written as \xNN, for the log.
std::string printable(std::string_view topic) {
    std::string out;
    for (unsigned char c : topic) {
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out += char(c);
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        }
    }
    return "\"" + out + "\"";
}

// Returns: "" when `scope` is a usable region prefix, else why not.
std::string check_scope(const std::string& scope) {
    if (scope.empty()) return "expected a region prefix such as KE/KE-03, got nothing";
    if (scope.front() == '/') return "a region prefix does not start with '/': " + scope;
    if (scope.find("//") != std::string::npos) return "a region prefix has no empty part: " + scope;
    for (unsigned char c : scope)
        if (c <= 0x20 || c >= 0x7f) return "a region prefix is printable ASCII without spaces: " + scope;
    return {};
}

// Blocks SIGINT and SIGTERM (before the ZeroMQ context starts its threads, which inherit the
// mask) and delivers them through a descriptor the forwarding loop polls. An ignored signal is
// discarded before signalfd can see it (a shell starts background jobs with SIGINT ignored),
// so both get their default action first.
class Signals {
public:
    Signals() {
        std::signal(SIGINT, SIG_DFL);
        std::signal(SIGTERM, SIG_DFL);
        sigemptyset(&mask_);
        sigaddset(&mask_, SIGINT);
        sigaddset(&mask_, SIGTERM);
        if (pthread_sigmask(SIG_BLOCK, &mask_, nullptr) != 0)
            throw std::runtime_error("cannot block SIGINT and SIGTERM");
        fd_ = ::signalfd(-1, &mask_, SFD_NONBLOCK | SFD_CLOEXEC);
        if (fd_ < 0) throw std::runtime_error(std::string("signalfd: ") + std::strerror(errno));
    }
    ~Signals() {
        ::close(fd_);
        pthread_sigmask(SIG_UNBLOCK, &mask_, nullptr);
    }
    Signals(const Signals&) = delete;
    Signals& operator=(const Signals&) = delete;
    int fd() const { return fd_; }
    // Returns: the pending signal's number, or 0 when none.
    int take() {
        signalfd_siginfo info{};
        return ::read(fd_, &info, sizeof info) == ssize_t(sizeof info) ? int(info.ssi_signo) : 0;
    }

private:
    sigset_t mask_{};
    int fd_ = -1;
};

// Returns: the daemon endpoint's public key from `text`: a certificate file, or the 40
// characters of a Z85 key when no file of that name exists. Throws: std::runtime_error.
std::string server_public_key(const std::string& text) {
    std::error_code ec;
    if (text.size() == curve::z85_key_length && !fs::exists(text, ec)) {
        std::array<std::uint8_t, 32> key{};
        if (zmq_z85_decode(key.data(), text.c_str()) == nullptr)
            throw std::runtime_error("--upstream-server-key: neither a file nor a Z85 key: " + text);
        return text;
    }
    try {
        return curve::read_certificate(text).public_key;
    } catch (const std::exception& e) {
        throw std::runtime_error(std::string("--upstream-server-key ") + e.what());
    }
}

// Returns: a secret certificate read from `file`. Throws: std::runtime_error when the file
// cannot be read or holds no secret key.
curve::Certificate secret_certificate(const std::string& option, const std::string& file) {
    curve::Certificate certificate;
    try {
        certificate = curve::read_certificate(file);
    } catch (const std::exception& e) {
        throw std::runtime_error(option + " " + e.what());
    }
    if (!certificate.secret_key)
        throw std::runtime_error(option + " " + file +
                                 ": a public certificate; expected the secret one (NAME.key_secret)");
    return certificate;
}

// Logs what becomes of the connection to the daemon, from the XSUB socket's monitor events:
// each connection made and lost, and why a handshake fails (a key the daemon refuses, CURVE
// against a plain endpoint). ZeroMQ retries every 100 ms, so a failure is logged when it
// first happens, not at each retry.
class UpstreamMonitor {
public:
    UpstreamMonitor(zmq::context_t& context, zmq::socket_t& upstream) {
        const std::string endpoint = "inproc://ews-relay-upstream-monitor";
        constexpr int events = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
        if (zmq_socket_monitor(upstream.handle(), endpoint.c_str(), events) != 0) throw zmq::error_t();
        socket_ = zmq::socket_t(context, zmq::socket_type::pair);
        socket_.set(zmq::sockopt::linger, 0);
        socket_.connect(endpoint);
    }
    zmq::socket_t& socket() { return socket_; }

    // Reads and logs the pending events.
    void drain() {
        zmq::message_t head, address;
        while (socket_.recv(head, zmq::recv_flags::dontwait)) {
            if (!head.more() || !socket_.recv(address) || head.size() < 6) continue;
            std::uint16_t event = 0;
            std::uint32_t value = 0;
            std::memcpy(&event, head.data(), sizeof event);
            std::memcpy(&value, static_cast<const char*>(head.data()) + 2, sizeof value);
            report(event, value, address.to_string());
        }
    }

private:
    void report(std::uint16_t event, std::uint32_t value, const std::string& address) {
        std::string failure;
        switch (event) {
            case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
                spdlog::info("upstream connected: {}", address);
                up_ = true;
                last_failure_.clear();
                return;
            case ZMQ_EVENT_DISCONNECTED:
                if (up_) spdlog::warn("upstream disconnected: {}; reconnecting", address);
                up_ = false;
                return;
            case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
                failure = "the daemon refused the relay's key (ZAP status " + std::to_string(value) +
                          "): its public certificate must be in the endpoint's authorized_keys_dir";
                break;
            case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
                failure = "handshake failed (ZMTP protocol error " + std::to_string(value) +
                          "): CURVE on one side only, or another --upstream-server-key?";
                break;
            default:
                failure = "handshake failed (the connection closed during it): another "
                          "--upstream-server-key, or not an ewsd PUB endpoint?";
                break;
        }
        if (failure == last_failure_) return;
        last_failure_ = failure;
        spdlog::warn("upstream {}: {}; retrying", address, failure);
    }

    zmq::socket_t socket_;
    bool up_ = false;
    std::string last_failure_;
};

class Forwarder {
public:
    Forwarder(zmq::socket_t& upstream, zmq::socket_t& downstream, std::string scope)
        : upstream_(upstream), downstream_(downstream), scope_(std::move(scope)),
          alerts_(alert_prefix(scope_)) {}

    // Moves up to `burst` messages from the daemon to the subscribers, frame for frame. A
    // message whose topic lies outside the scope is dropped whole (the daemon sends none while
    // the subscriptions are narrowed; this holds the scope whatever the upstream sends).
    void downstream() {
        for (int n = 0; n < burst; ++n) {
            if (!upstream_.recv(frame_, zmq::recv_flags::dontwait)) return;
            const bool pass = scope_.empty() || allowed(frame_.to_string_view());
            for (;;) {
                const bool more = frame_.more();
                if (pass) downstream_.send(frame_, more ? zmq::send_flags::sndmore : zmq::send_flags::none);
                if (!more) break;
                // The remaining frames of a message arrive with its first one.
                (void)upstream_.recv(frame_);
            }
        }
    }

    // Moves up to `burst` (un)subscriptions from the subscribers to the daemon, each narrowed
    // to the scope (upstream_topics()). The XPUB socket passes on a topic's first subscription
    // and its last unsubscription; the XSUB socket counts each upstream topic, so that two
    // downstream topics narrowed to the same one keep it until both are gone. Anything else a
    // peer sends is discarded.
    void upstream() {
        for (int n = 0; n < burst; ++n) {
            if (!downstream_.recv(frame_, zmq::recv_flags::dontwait)) return;
            const bool single = !frame_.more();
            while (frame_.more()) (void)downstream_.recv(frame_);
            if (!single || frame_.size() == 0) continue;
            const auto* data = static_cast<const char*>(frame_.data());
            const char kind = data[0];
            if (kind != 0 && kind != 1) continue;
            const std::string_view topic(data + 1, frame_.size() - 1);
            const auto topics = upstream_topics(topic, scope_);
            if (kind == 1) log_subscription(topic, topics);
            for (const auto& t : topics) {
                std::string message(1, kind);
                message += t;
                upstream_.send(zmq::buffer(message), zmq::send_flags::none);
            }
        }
    }

private:
    // in_scope() without building the prefix for every message.
    bool allowed(std::string_view topic) const {
        return topic.starts_with(alerts_) || topic.starts_with(heartbeat_prefix) ||
               topic.starts_with(ops_prefix);
    }

    void log_subscription(std::string_view topic, const std::vector<std::string>& topics) const {
        if (topics.empty()) {
            spdlog::info("subscription {} lies outside the scope {}: not forwarded",
                         printable(topic), scope_);
        } else if (topics.size() != 1 || topics[0] != topic) {
            std::string narrowed;
            for (const auto& t : topics) narrowed += (narrowed.empty() ? "" : ", ") + printable(t);
            spdlog::info("subscription {} narrowed to the scope {}: {}", printable(topic), scope_,
                         narrowed);
        }
    }

    zmq::socket_t& upstream_;
    zmq::socket_t& downstream_;
    std::string scope_;
    std::string alerts_;  // "alert/<scope>/"
    zmq::message_t frame_;
};

}  // namespace

CLI::App* add_subcommand(CLI::App& cli, Options& o) {
    auto* cmd = cli.add_subcommand(
        "relay", "forward the daemon's alert stream to many subscribers (no configuration file): "
                 "subscriptions go upstream, alerts downstream; CURVE on either side; a region scope");
    cmd->add_option("--upstream", o.upstream, "the daemon's [[publish]] endpoint to connect to")
        ->required();
    cmd->add_option("--bind", o.bind, "the endpoint subscribers connect to, e.g. tcp://*:7611")
        ->required();
    auto* server_key = cmd->add_option(
        "--upstream-server-key", o.upstream_server_key,
        "the daemon endpoint's public key: its certificate file (NAME.key) or the 40-character Z85 key");
    auto* key_file = cmd->add_option(
        "--key-file", o.key_file, "the relay's own secret certificate (NAME.key_secret), as the daemon's CURVE client");
    server_key->needs(key_file);
    key_file->needs(server_key);
    auto* server_secret = cmd->add_option(
        "--curve-secret-key-file", o.server_secret_file,
        "the relay's server secret certificate (NAME.key_secret): subscribers must use CURVE");
    auto* authorized = cmd->add_option(
        "--authorized-keys-dir", o.authorized_keys_dir,
        "directory of the subscribers' public certificates (NAME.key) the relay admits");
    server_secret->needs(authorized);
    authorized->needs(server_secret);
    cmd->add_option("--scope", o.scope,
                    "region prefix, e.g. KE/KE-03: only its alerts (and hb/, ops/) are relayed")
        ->transform(CLI::Validator(
            [](std::string& s) {
                while (s.size() > 1 && s.back() == '/') s.pop_back();
                return check_scope(s);
            },
            "REGION"));
    return cmd;
}

std::vector<std::string> upstream_topics(std::string_view topic, std::string_view scope) {
    if (scope.empty()) return {std::string(topic)};
    const std::string alerts = alert_prefix(scope);
    if (topic.starts_with(alerts) || topic.starts_with(heartbeat_prefix) || topic.starts_with(ops_prefix))
        return {std::string(topic)};
    std::vector<std::string> out;
    for (std::string_view allowed : {std::string_view(alerts), heartbeat_prefix, ops_prefix})
        if (allowed.starts_with(topic)) out.emplace_back(allowed);
    return out;
}

bool in_scope(std::string_view topic, std::string_view scope) {
    if (scope.empty()) return true;
    return topic.starts_with(alert_prefix(scope)) || topic.starts_with(heartbeat_prefix) ||
           topic.starts_with(ops_prefix);
}

int run(const Options& options) {
    spdlog::set_level(spdlog::level::info);
    const bool curve_up = !options.upstream_server_key.empty();
    const bool curve_down = !options.server_secret_file.empty();
    std::string server_key;
    std::optional<curve::Certificate> client, server;
    try {
        if (curve_up) {
            server_key = server_public_key(options.upstream_server_key);
            client = secret_certificate("--key-file", options.key_file);
        }
        if (curve_down) server = secret_certificate("--curve-secret-key-file", options.server_secret_file);
    } catch (const std::exception& e) {
        std::cerr << "ewsctl relay: " << e.what() << "\n";
        return 1;
    }

    Signals signals;
    // Destroyed in reverse: the sockets, then the ZAP handler, then the context.
    zmq::context_t context;
    std::unique_ptr<curve::ZapHandler> zap;
    if (curve_down) {
        // It logs how many keys the directory holds and each file it skips.
        try {
            zap = std::make_unique<curve::ZapHandler>(
                context, std::map<std::string, fs::path>{{zap_domain, options.authorized_keys_dir}});
        } catch (const std::exception& e) {
            std::cerr << "ewsctl relay: --authorized-keys-dir " << e.what() << "\n";
            return 1;
        }
    }

    zmq::socket_t upstream(context, zmq::socket_type::xsub);
    upstream.set(zmq::sockopt::rcvhwm, high_water_mark);
    upstream.set(zmq::sockopt::linger, 0);
    if (client) curve::make_client(upstream, server_key, *client);
    zmq::socket_t downstream(context, zmq::socket_type::xpub);
    downstream.set(zmq::sockopt::sndhwm, high_water_mark);
    downstream.set(zmq::sockopt::linger, linger_ms);
    if (server) curve::make_server(downstream, *server, zap_domain);
    try {
        downstream.bind(options.bind);
    } catch (const zmq::error_t& e) {
        std::cerr << "ewsctl relay: --bind " << options.bind << ": " << e.what() << "\n";
        return 1;
    }
    // Watching from before the connection is made, so that its first failure is seen.
    UpstreamMonitor monitor(context, upstream);
    try {
        upstream.connect(options.upstream);
    } catch (const zmq::error_t& e) {
        std::cerr << "ewsctl relay: --upstream " << options.upstream << ": " << e.what() << "\n";
        return 1;
    }

    spdlog::info("relay started: upstream {} ({}), bind {} ({}), scope {}", options.upstream,
                 curve_up ? "CURVE client" : "plain", options.bind,
                 curve_down ? "CURVE server, ZAP domain relay: the keys in " + options.authorized_keys_dir
                            : std::string("plain"),
                 options.scope.empty() ? std::string("everything")
                                       : options.scope + " (alert/" + options.scope + "/, hb/, ops/)");

    Forwarder forwarder(upstream, downstream, options.scope);
    std::array<zmq::pollitem_t, 4> items{{{upstream.handle(), 0, ZMQ_POLLIN, 0},
                                          {downstream.handle(), 0, ZMQ_POLLIN, 0},
                                          {nullptr, signals.fd(), ZMQ_POLLIN, 0},
                                          {monitor.socket().handle(), 0, ZMQ_POLLIN, 0}}};
    for (;;) {
        try {
            zmq::poll(items.data(), items.size(), std::chrono::milliseconds(-1));
        } catch (const zmq::error_t& e) {
            if (e.num() == EINTR) continue;
            throw;
        }
        if (items[2].revents & ZMQ_POLLIN) {
            const int sig = signals.take();
            spdlog::info("relay stopping ({})", sig == SIGINT ? "SIGINT" : "SIGTERM");
            return 0;
        }
        if (items[3].revents & ZMQ_POLLIN) monitor.drain();
        if (items[1].revents & ZMQ_POLLIN) forwarder.upstream();
        if (items[0].revents & ZMQ_POLLIN) forwarder.downstream();
    }
}

}  // namespace ews::relay
