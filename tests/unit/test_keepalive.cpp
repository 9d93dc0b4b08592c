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
    // The next is due an interval after that ping, and next_due() says when (the main loop
    // wakes for it).
    const auto due = keepalive::next_due();
    REQUIRE(due);
    CHECK(*due > keepalive::Clock::now());
    CHECK(*due <= keepalive::Clock::now() + 200ms);
    keepalive::progress();
    CHECK(pings == 1);
    std::this_thread::sleep_until(*due);
    keepalive::progress();
    CHECK(pings == 2);
}

TEST_CASE("keepalive: nothing is due when nothing is installed", "[keepalive]") {
    CHECK_FALSE(keepalive::next_due());
    {
        keepalive::Scope scope([] {}, 1h);
        CHECK(keepalive::next_due());
    }
    CHECK_FALSE(keepalive::next_due());
}

TEST_CASE("keepalive: another thread's progress pings nothing", "[keepalive]") {
    int pings = 0;
    keepalive::Scope scope([&] { ++pings; }, 0ms);
    bool due_there = true;
    std::thread other([&] {
        for (int i = 0; i < 100; ++i) keepalive::progress();
        due_there = keepalive::next_due().has_value();  // (Catch2 asserts on one thread only)
    });
    other.join();
    CHECK_FALSE(due_there);
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
