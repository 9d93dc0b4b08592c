#include "alerting.hpp"

#include <algorithm>
#include <cmath>

// Counting rule: an evaluation counts towards a move when its target level equals the
// pending one; a different target restarts the count at 1, the current level resets it to 0.
// A floor counts like any other target: with raise_after = 2 a sentinel floor raises after
// two evaluations, so one stray report cannot raise an alert on its own.
//
// A non-finite score is no evidence either way (missing data is not safety): the target is
// then the current level, held at least at the floor, and state.score keeps its last value.

namespace ews {

namespace {

constexpr Level levels_up[] = {Level::watch, Level::warning, Level::critical};

const LevelThresholds& thresholds(const AlertingParams& params, Level level) {
    return params.levels[static_cast<std::size_t>(level) - 1];
}

}  // namespace

Level target_level(double score, Level current, Level floor, const AlertingParams& params) {
    if (!std::isfinite(score)) return std::max(current, floor);
    Level up = Level::none;
    for (Level l : levels_up)
        if (score >= thresholds(params, l).raise) up = l;
    if (up > current) return std::max(up, floor);
    Level stay = Level::none;
    for (Level l : levels_up)
        if (l <= current && score >= thresholds(params, l).clear) stay = l;
    return std::max(stay, floor);
}

std::optional<AlertEvent> step(AlertState& state, double score, Level floor, TimePoint now,
                               const AlertingParams& params, bool may_lower) {
    Level target = target_level(score, state.level, floor, params);
    // Missing data is not safety: with an indicator stale or failing, the score may raise an
    // alert but never lower or resolve one.
    if (!may_lower && target < state.level) target = state.level;
    if (std::isfinite(score)) state.score = score;
    if (target == state.level) {
        state.pending = state.level;
        state.pending_count = 0;
        return std::nullopt;
    }
    if (target == state.pending) {
        ++state.pending_count;
    } else {
        state.pending = target;
        state.pending_count = 1;
    }
    const int needed = target > state.level ? params.raise_after : params.clear_after;
    if (state.pending_count < needed) return std::nullopt;

    AlertEvent event;
    event.previous = state.level;
    event.level = target;
    event.at = now;
    if (state.level == Level::none) {
        event.type = "raised";
        state.alert_id = make_alert_id(state.locality, now);
        state.opened_at = now;
    } else if (target == Level::none) {
        event.type = "resolved";
    } else if (target > state.level) {
        event.type = "escalated";
    } else {
        event.type = "deescalated";
    }
    event.alert_id = state.alert_id;
    event.opened_at = state.opened_at.value_or(now);

    state.level = target;
    state.changed_at = now;
    state.pending = target;
    state.pending_count = 0;
    if (target == Level::none) {
        state.alert_id.clear();
        state.opened_at.reset();
    }
    return event;
}

std::string make_alert_id(const std::string& locality, TimePoint opened_at) {
    std::string stamp = format_time(opened_at);  // 2026-11-28T00:00:00Z
    std::erase_if(stamp, [](char c) { return c == '-' || c == ':'; });
    return locality + "@" + stamp;
}

}  // namespace ews
