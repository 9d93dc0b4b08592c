// Subscribers per publish endpoint: SubscriberTally over scripted monitor events, then the
// Publisher's monitors over real TCP, plain and CURVE.
#include "curve.hpp"
#include "publisher.hpp"

#include "temp_dir.hpp"

#include <catch2/catch.hpp>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <zmq_addon.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <iterator>
#include <thread>

using namespace ews;
namespace fs = std::filesystem;

namespace {

// A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it for a plain socket
// bound to port 0); Publisher binds the endpoint its configuration names.
std::uint16_t free_tcp_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
                    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
    ::close(fd);
    REQUIRE(ok);
    return ntohs(address.sin_port);
}

std::string tcp_endpoint(std::uint16_t port) { return "tcp://127.0.0.1:" + std::to_string(port); }

// Opens a plain TCP connection to 127.0.0.1:`port` that speaks no ZeroMQ at all.
// Returns: the descriptor, to be closed by the caller.
int raw_connection(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    const bool connected = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    if (!connected) ::close(fd);
    REQUIRE(connected);
    return fd;
}

zmq::socket_t plain_subscriber(zmq::context_t& context, const std::string& endpoint) {
    zmq::socket_t sub(context, zmq::socket_type::sub);
    sub.set(zmq::sockopt::linger, 0);
    sub.set(zmq::sockopt::subscribe, "");
    sub.connect(endpoint);
    return sub;
}

zmq::socket_t curve_subscriber(zmq::context_t& context, const std::string& endpoint,
                               const std::string& server_public, const curve::Certificate& client) {
    zmq::socket_t sub(context, zmq::socket_type::sub);
    sub.set(zmq::sockopt::linger, 0);
    curve::make_client(sub, server_public, client);
    sub.set(zmq::sockopt::subscribe, "");
    sub.connect(endpoint);
    return sub;
}

// Asks `publisher` for the subscribers of `endpoint` every 20 ms until there are `expected`
// or 5 s pass (connections and disconnections reach the monitor from the I/O thread).
// Returns: the last count seen.
std::size_t subscribers_eventually(Publisher& publisher, const std::string& endpoint, std::size_t expected) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    std::size_t seen = publisher.subscribers().at(endpoint);
    while (seen != expected && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        seen = publisher.subscribers().at(endpoint);
    }
    return seen;
}

// Asks `publisher` for the subscribers of `endpoint` every 10 ms for `period`.
// Returns: the largest count seen.
std::size_t most_subscribers_during(Publisher& publisher, const std::string& endpoint,
                                    std::chrono::milliseconds period) {
    const auto deadline = std::chrono::steady_clock::now() + period;
    std::size_t most = 0;
    while (std::chrono::steady_clock::now() < deadline) {
        most = std::max(most, publisher.subscribers().at(endpoint));
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return most;
}

// Publishes a heartbeat on `endpoint` every 50 ms until `sub` receives a message or 5 s
// pass (a SUB that has just connected misses what is sent before its subscription arrives).
// Returns: whether `sub` received.
bool receives_heartbeat(Publisher& publisher, const std::string& endpoint, zmq::socket_t& sub) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
        publisher.heartbeat(endpoint, 1, *parse_time("2026-11-28T10:00:00Z"));
        zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
        if (zmq::poll(&item, 1, std::chrono::milliseconds(50)) == 1) {
            std::vector<zmq::message_t> frames;
            if (zmq::recv_multipart(sub, std::back_inserter(frames))) return true;
        }
    }
    return false;
}

// Silences spdlog's default logger (the ZAP handler's admissions and refusals) for one test.
class QuietLog {
public:
    QuietLog() : previous_(spdlog::default_logger()) {
        spdlog::set_default_logger(
            std::make_shared<spdlog::logger>("publisher_test", std::make_shared<spdlog::sinks::null_sink_mt>()));
    }
    ~QuietLog() { spdlog::set_default_logger(previous_); }
    QuietLog(const QuietLog&) = delete;
    QuietLog& operator=(const QuietLog&) = delete;

private:
    std::shared_ptr<spdlog::logger> previous_;
};

bool eventually(const std::function<bool()>& predicate) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
        if (predicate()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return predicate();
}

}  // namespace

TEST_CASE("tally of a plain endpoint counts accepted connections until they disconnect", "[publisher]") {
    SubscriberTally tally(false);
    CHECK(tally.count() == 0);
    tally.on_event(ZMQ_EVENT_ACCEPTED, 7);
    tally.on_event(ZMQ_EVENT_ACCEPTED, 8);
    CHECK(tally.count() == 2);
    // Handshake outcomes do not matter on a plain endpoint.
    tally.on_event(ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, 0x11000002);
    tally.on_event(ZMQ_EVENT_HANDSHAKE_SUCCEEDED, 0);
    CHECK(tally.count() == 2);
    tally.on_event(ZMQ_EVENT_DISCONNECTED, 7);
    CHECK(tally.count() == 1);
    tally.on_event(ZMQ_EVENT_DISCONNECTED, 7);   // twice: no effect
    tally.on_event(ZMQ_EVENT_DISCONNECTED, 99);  // never accepted: no effect
    CHECK(tally.count() == 1);
    tally.on_event(ZMQ_EVENT_ACCEPTED, 7);  // the descriptor reused by a new connection
    CHECK(tally.count() == 2);
    tally.on_event(ZMQ_EVENT_CLOSED, 8);  // CLOSED of a counted connection: that one only
    CHECK(tally.count() == 1);
    tally.on_event(ZMQ_EVENT_CLOSED, 5);  // the listening socket: every connection is gone
    CHECK(tally.count() == 0);
}

TEST_CASE("tally of a CURVE endpoint counts a connection only after its handshake succeeded", "[publisher]") {
    SubscriberTally tally(true);

    SECTION("one handshake at a time") {
        tally.on_event(ZMQ_EVENT_ACCEPTED, 7);
        CHECK(tally.count() == 0);
        tally.on_event(ZMQ_EVENT_HANDSHAKE_SUCCEEDED, 0);
        CHECK(tally.count() == 1);
        // Refused by the ZAP handler (status 400), then disconnected: never counted.
        tally.on_event(ZMQ_EVENT_ACCEPTED, 9);
        tally.on_event(ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, 400);
        CHECK(tally.count() == 1);
        tally.on_event(ZMQ_EVENT_DISCONNECTED, 9);
        CHECK(tally.count() == 1);
        // A peer that left during the handshake.
        tally.on_event(ZMQ_EVENT_ACCEPTED, 9);
        tally.on_event(ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL, 104);
        tally.on_event(ZMQ_EVENT_DISCONNECTED, 9);
        CHECK(tally.count() == 1);
        tally.on_event(ZMQ_EVENT_DISCONNECTED, 7);
        CHECK(tally.count() == 0);
    }

    SECTION("overlapping handshakes are tied to descriptors by the refused one's disconnection") {
        tally.on_event(ZMQ_EVENT_ACCEPTED, 7);
        tally.on_event(ZMQ_EVENT_ACCEPTED, 8);
        tally.on_event(ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, 400);  // 7's or 8's: not known yet
        CHECK(tally.count() == 0);
        tally.on_event(ZMQ_EVENT_HANDSHAKE_SUCCEEDED, 0);  // the other one's
        CHECK(tally.count() == 1);
        tally.on_event(ZMQ_EVENT_DISCONNECTED, 7);  // 7 was the refused one, so 8 is counted
        CHECK(tally.count() == 1);
        tally.on_event(ZMQ_EVENT_DISCONNECTED, 7);
        CHECK(tally.count() == 1);
        tally.on_event(ZMQ_EVENT_DISCONNECTED, 8);
        CHECK(tally.count() == 0);
    }

    SECTION("a connection still handshaking does not count, whatever the others did") {
        tally.on_event(ZMQ_EVENT_ACCEPTED, 7);
        tally.on_event(ZMQ_EVENT_ACCEPTED, 8);
        tally.on_event(ZMQ_EVENT_ACCEPTED, 9);
        tally.on_event(ZMQ_EVENT_HANDSHAKE_SUCCEEDED, 0);
        tally.on_event(ZMQ_EVENT_HANDSHAKE_SUCCEEDED, 0);
        CHECK(tally.count() == 2);  // two of three succeeded, the third is handshaking
        tally.on_event(ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, 0x11000002);
        CHECK(tally.count() == 2);  // every outcome known: two succeeded, one refused
        tally.on_event(ZMQ_EVENT_DISCONNECTED, 8);
        CHECK(tally.count() == 2);  // 8 was the refused one: 7 and 9 are the two counted
        tally.on_event(ZMQ_EVENT_DISCONNECTED, 9);
        CHECK(tally.count() == 1);
        tally.on_event(ZMQ_EVENT_DISCONNECTED, 7);
        CHECK(tally.count() == 0);
    }

    SECTION("a misjudged overlap is put right by the next disconnection") {
        // 7 succeeds, 8 is refused, but 7 leaves before 8's disconnection arrives: taken for
        // the refusal, so 8 counts (1 instead of 0) until it disconnects.
        tally.on_event(ZMQ_EVENT_ACCEPTED, 7);
        tally.on_event(ZMQ_EVENT_ACCEPTED, 8);
        tally.on_event(ZMQ_EVENT_HANDSHAKE_SUCCEEDED, 0);
        tally.on_event(ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, 400);
        tally.on_event(ZMQ_EVENT_DISCONNECTED, 7);
        CHECK(tally.count() == 1);
        tally.on_event(ZMQ_EVENT_DISCONNECTED, 8);
        CHECK(tally.count() == 0);
    }

    SECTION("the listening socket closing ends every connection") {
        tally.on_event(ZMQ_EVENT_ACCEPTED, 7);
        tally.on_event(ZMQ_EVENT_HANDSHAKE_SUCCEEDED, 0);
        tally.on_event(ZMQ_EVENT_ACCEPTED, 8);
        CHECK(tally.count() == 1);
        tally.on_event(ZMQ_EVENT_CLOSED, 5);
        CHECK(tally.count() == 0);
        tally.on_event(ZMQ_EVENT_HANDSHAKE_SUCCEEDED, 0);  // 8's, late: no connection to count
        CHECK(tally.count() == 0);
    }
}

TEST_CASE("subscribers counts the SUB sockets connected to a plain endpoint", "[publisher]") {
    zmq::context_t context;
    const std::string a = tcp_endpoint(free_tcp_port());
    Publisher publisher(context, {{"a", a, ""}});
    CHECK(publisher.subscribers() == std::map<std::string, std::size_t>{{"a", 0}});

    auto first = plain_subscriber(context, a);
    auto second = plain_subscriber(context, a);
    CHECK(subscribers_eventually(publisher, "a", 2) == 2);
    first.close();
    CHECK(subscribers_eventually(publisher, "a", 1) == 1);
    // Publishing goes on as before.
    CHECK(receives_heartbeat(publisher, "a", second));
    second.close();
    CHECK(subscribers_eventually(publisher, "a", 0) == 0);
}

TEST_CASE("subscribers counts per endpoint", "[publisher]") {
    zmq::context_t context;
    const std::uint16_t port_a = free_tcp_port();
    std::uint16_t port_b = free_tcp_port();
    while (port_b == port_a) port_b = free_tcp_port();
    Publisher publisher(context, {{"a", tcp_endpoint(port_a), ""}, {"b", tcp_endpoint(port_b), "KE"}});

    auto on_a = plain_subscriber(context, tcp_endpoint(port_a));
    auto on_b1 = plain_subscriber(context, tcp_endpoint(port_b));
    auto on_b2 = plain_subscriber(context, tcp_endpoint(port_b));
    auto on_b3 = plain_subscriber(context, tcp_endpoint(port_b));
    CHECK(eventually([&] {
        return publisher.subscribers() == std::map<std::string, std::size_t>{{"a", 1}, {"b", 3}};
    }));
}

TEST_CASE("subscribers on a CURVE endpoint counts admitted clients only", "[publisher]") {
    testing::TempDir tmp;
    const fs::path authorized = tmp.path() / "authorized";
    const fs::path secrets = tmp.path() / "secrets";
    const auto server = curve::generate();
    const auto alice = curve::generate();
    const auto mallory = curve::generate();
    fs::create_directory(authorized);
    const auto server_files = curve::write_certificate(secrets, "server", server);
    const auto alice_files = curve::write_certificate(secrets, "alice", alice);
    fs::copy_file(alice_files.public_file, authorized / "alice.key");

    QuietLog quiet;
    zmq::context_t context;
    curve::ZapHandler zap(context, {{"alerts", authorized}});
    const std::uint16_t port = free_tcp_port();
    PublishEndpoint endpoint;
    endpoint.name = "alerts";
    endpoint.bind = tcp_endpoint(port);
    endpoint.curve.secret_key_file = server_files.secret_file;
    endpoint.curve.authorized_keys_dir = authorized;
    Publisher publisher(context, {endpoint});

    auto good = curve_subscriber(context, endpoint.bind, server.public_key, alice);
    CHECK(receives_heartbeat(publisher, "alerts", good));
    CHECK(subscribers_eventually(publisher, "alerts", 1) == 1);

    SECTION("a key the ZAP handler refuses") {
        auto bad = curve_subscriber(context, endpoint.bind, server.public_key, mallory);
        CHECK(eventually([&] { return zap.counts().at("alerts").refused >= 1; }));
        // Accepted over TCP, refused at the handshake: never a subscriber, not even briefly.
        CHECK(most_subscribers_during(publisher, "alerts", std::chrono::milliseconds(500)) == 1);
        CHECK(zap.counts().at("alerts").admitted == 1);
    }

    SECTION("a plain client on a CURVE endpoint") {
        auto plain = plain_subscriber(context, endpoint.bind);
        CHECK(most_subscribers_during(publisher, "alerts", std::chrono::milliseconds(500)) == 1);
    }

    SECTION("a TCP connection that never starts its handshake") {
        // Accepted at once, then waits for a greeting that never comes: counting it from its
        // acceptance would show 2 here.
        const int fd = raw_connection(port);
        const std::size_t most = most_subscribers_during(publisher, "alerts", std::chrono::milliseconds(500));
        ::close(fd);
        CHECK(most == 1);
        CHECK(most_subscribers_during(publisher, "alerts", std::chrono::milliseconds(200)) == 1);
    }

    good.close();
    CHECK(subscribers_eventually(publisher, "alerts", 0) == 0);
}

TEST_CASE("monitor events left unread never stall the publisher", "[publisher]") {
    // libzmq's I/O thread sends each monitor event with a blocking send; with the default
    // high water marks (1000 + 1000 on an inproc pipe) it would stop for good after 2000
    // unread events, and with it every socket of the context. 1050 connections that open
    // and close give 2 events each (ACCEPTED, DISCONNECTED): 2100, none read until the end.
    // (Not many more: once the I/O thread stops, connections wait in the listen backlog of
    // 100, and beyond it connect() would wait for SYN retries. For that reason, too, they
    // come in batches of 50 with a pause for the I/O thread to accept them.)
    zmq::context_t context;
    const std::uint16_t port = free_tcp_port();
    Publisher publisher(context, {{"a", tcp_endpoint(port), ""}});
    for (int i = 1; i <= 1050; ++i) {
        ::close(raw_connection(port));
        if (i % 50 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }

    auto sub = plain_subscriber(context, tcp_endpoint(port));
    bool received = false;
    {
        // Only the SUB's own connection is read here: the heartbeats sent by
        // receives_heartbeat would read the monitor, so publish on a bare loop instead.
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (!received && std::chrono::steady_clock::now() < deadline) {
            OutboxRow row;
            row.endpoint = "a";
            row.seq = 1;
            row.topic = "alert/KE/";
            row.payload = "{}";
            publisher.send(row);
            zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
            if (zmq::poll(&item, 1, std::chrono::milliseconds(50)) == 1) {
                std::vector<zmq::message_t> frames;
                received = zmq::recv_multipart(sub, std::back_inserter(frames)).has_value();
            }
        }
    }
    // Reads the events (which also frees a stalled I/O thread, so a failure ends cleanly).
    const std::size_t count = subscribers_eventually(publisher, "a", 1);
    CHECK(received);
    CHECK(count == 1);
}
