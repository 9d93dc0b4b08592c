#include "publisher.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <zmq_addon.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <iterator>

using namespace ews;
using nlohmann::json;

namespace {

// Returns: `n` distinct TCP endpoints on 127.0.0.1 whose ports were free a moment ago. Probed
// with plain sockets, all open at once so that the ports differ, because closing a ZeroMQ
// socket releases its port only later, in the I/O thread.
std::vector<std::string> free_tcp_endpoints(std::size_t n) {
    std::vector<int> fds;
    std::vector<std::string> endpoints;
    for (std::size_t i = 0; i < n; ++i) {
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) break;
        fds.push_back(fd);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t length = sizeof address;
        if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0)
            break;
        endpoints.push_back("tcp://127.0.0.1:" + std::to_string(ntohs(address.sin_port)));
    }
    for (int fd : fds) ::close(fd);
    REQUIRE(endpoints.size() == n);
    return endpoints;
}

OutboxRow alert_row(const std::string& endpoint, std::uint64_t seq) {
    OutboxRow r;
    r.endpoint = endpoint;
    r.seq = seq;
    r.topic = "alert/KE/KE-03/KE-030-001/";
    r.payload = json{{"schema", "ews.alert/1"}, {"seq", seq}}.dump();
    return r;
}

// Sends with `send` until `sub` receives a message or 5 s pass: a SUB that has just
// connected misses what is published before its subscription reaches the PUB.
std::vector<zmq::message_t> publish_until_received(zmq::socket_t& sub, const std::function<void()>& send) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
        send();
        zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
        if (zmq::poll(&item, 1, std::chrono::milliseconds(100)) == 1) {
            std::vector<zmq::message_t> frames;
            if (zmq::recv_multipart(sub, std::back_inserter(frames))) return frames;
        }
    }
    return {};
}

}  // namespace

TEST_CASE("a subscriber receives [topic, payload] frames from its endpoint only", "[publisher]") {
    zmq::context_t context;
    const auto endpoints = free_tcp_endpoints(2);
    const std::string& a = endpoints[0];
    const std::string& b = endpoints[1];
    Publisher publisher(context, {{"a", a, ""}, {"b", b, "KE"}});
    CHECK(publisher.endpoint_names() == std::vector<std::string>{"a", "b"});

    zmq::socket_t sub(context, zmq::socket_type::sub);
    sub.set(zmq::sockopt::linger, 0);
    sub.set(zmq::sockopt::subscribe, "alert/KE/");
    sub.connect(a);

    // Rows for the other endpoint and for an unknown one go nowhere near this subscriber.
    auto frames = publish_until_received(sub, [&] {
        publisher.send(alert_row("b", 99));
        publisher.send(alert_row("nowhere", 98));
        publisher.send(alert_row("a", 7));
    });
    REQUIRE(frames.size() == 2);
    CHECK(frames[0].to_string() == "alert/KE/KE-03/KE-030-001/");
    CHECK(json::parse(frames[1].to_string()).at("seq") == 7);

    sub.set(zmq::sockopt::subscribe, "hb/");
    frames = publish_until_received(sub, [&] { publisher.heartbeat("a", 41, *parse_time("2026-11-28T10:00:05Z")); });
    // Alerts sent by the loop above may still be queued; skip to the heartbeat.
    while (frames.size() == 2 && frames[0].to_string() != "hb/") {
        frames.clear();
        zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
        REQUIRE(zmq::poll(&item, 1, std::chrono::milliseconds(5000)) == 1);
        REQUIRE(zmq::recv_multipart(sub, std::back_inserter(frames)));
    }
    REQUIRE(frames.size() == 2);
    CHECK(frames[0].to_string() == "hb/");
    CHECK(json::parse(frames[1].to_string()) ==
          json{{"schema", "ews.heartbeat/1"}, {"seq", 41}, {"at", "2026-11-28T10:00:05Z"}});
}

TEST_CASE("binding an endpoint already in use throws naming the address and the endpoint", "[publisher]") {
    zmq::context_t context;
    zmq::socket_t holder(context, zmq::socket_type::pub);
    holder.set(zmq::sockopt::linger, 0);
    holder.bind("tcp://127.0.0.1:*");
    const std::string taken = holder.get(zmq::sockopt::last_endpoint);
    CHECK_THROWS_WITH(Publisher(context, {{"a", taken, ""}}),
                      "cannot bind " + taken + " ([[publish]] 'a'): Address already in use");
}
