// keepalive.hpp: tells systemd the daemon is alive while one long step keeps its thread away
// from the main loop, which pings the watchdog between steps. Such steps are rare but real: a
// spool file of millions of rows, an evaluation that raises tens of thousands of alerts, the
// start-up's load of a country's observations. Without pings from inside them systemd would
// kill a daemon that is slow but working (WatchdogSec=, TimeoutStartSec= of the unit).
//
// A long step calls progress() where it has made progress (every few thousand rows): a clock
// read, and the installed ping when one is due. The main loop calls it between steps too, so
// there is one schedule of pings. A step that is stuck (a plugin that never
// returns) calls nothing, so the watchdog still catches it.
//
// The state is per thread: progress() pings only on the thread that called install() (the
// daemon's main thread); anywhere else, and in programs that install nothing (ewsctl, the
// tests), it does nothing.
#pragma once

#include <chrono>
#include <functional>
#include <optional>

namespace ews::keepalive {

using Clock = std::chrono::steady_clock;

// Makes progress() on this thread call `ping` once at least `every` has passed since the last
// ping (or since install). Replaces what was installed before.
void install(std::function<void()> ping, Clock::duration every);
// progress() on this thread does nothing again.
void uninstall();
// Calls the installed ping when it is due.
void progress();
// Returns: when the installed ping is next due on this thread, or nullopt when nothing is
// installed (the main loop wakes for it, so an idle daemon pings on time too).
std::optional<Clock::time_point> next_due();

// Installs for the life of the object.
class Scope {
public:
    Scope(std::function<void()> ping, Clock::duration every) { install(std::move(ping), every); }
    ~Scope() { uninstall(); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
};

}  // namespace ews::keepalive
