// keepalive: pings from long steps, at most once an interval, on the installing thread only.
#include <catch2/catch.hpp>

#include "keepalive.hpp"

#include <chrono>
#include <thread>

using namespace std::chrono_literals;
namespace keepalive = ews::keepalive;

TEST_CASE("keepalive: progress pings only what was installed, when it is due", "[keepalive]") {
    int pings = 0;
    keepalive::progress();  // nothing installed: nothing happens
    {
        keepalive::Scope scope([&] { ++pings; }, 0ms);
        keepalive::progress();
        keepalive::progress();
        CHECK(pings == 2);
    }
    keepalive::progress();  // the scope uninstalled it
    CHECK(pings == 2);
}

TEST_CASE("keepalive: at most one ping an interval", "[keepalive]") {
    int pings = 0;
    keepalive::Scope scope([&] { ++pings; }, 200ms);
    for (int i = 0; i < 1000; ++i) keepalive::progress();
    CHECK(pings == 0);  // the first is due an interval after install
    std::this_thread::sleep_for(250ms);
    for (int i = 0; i < 1000; ++i) keepalive::progress();
    CHECK(pings == 1);
    // A ping by other means (the main loop's) starts the interval again.
    std::this_thread::sleep_for(250ms);
    keepalive::pinged();
    keepalive::progress();
    CHECK(pings == 1);
    std::this_thread::sleep_for(250ms);
    keepalive::progress();
    CHECK(pings == 2);
}

TEST_CASE("keepalive: another thread's progress pings nothing", "[keepalive]") {
    int pings = 0;
    keepalive::Scope scope([&] { ++pings; }, 0ms);
    std::thread other([] {
        for (int i = 0; i < 100; ++i) keepalive::progress();
    });
    other.join();
    CHECK(pings == 0);
    keepalive::progress();
    CHECK(pings == 1);
}

TEST_CASE("keepalive: install replaces, uninstall stops", "[keepalive]") {
    int first = 0, second = 0;
    keepalive::install([&] { ++first; }, 0ms);
    keepalive::progress();
    keepalive::install([&] { ++second; }, 0ms);
    keepalive::progress();
    keepalive::uninstall();
    keepalive::progress();
    CHECK(first == 1);
    CHECK(second == 1);
}
