#include "keepalive.hpp"

#include <utility>

namespace ews::keepalive {

namespace {

struct State {
    std::function<void()> ping;
    Clock::duration every{};
    Clock::time_point next{};
};

thread_local State state;

}  // namespace

void install(std::function<void()> ping, Clock::duration every) {
    state.ping = std::move(ping);
    state.every = every;
    state.next = Clock::now() + every;
}

void uninstall() { state = State{}; }

void progress() {
    if (!state.ping) return;
    const auto now = Clock::now();
    if (now < state.next) return;
    state.next = now + state.every;
    state.ping();
}

std::optional<Clock::time_point> next_due() {
    if (!state.ping) return std::nullopt;
    return state.next;
}

}  // namespace ews::keepalive
