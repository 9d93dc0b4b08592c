// alerting.hpp: the per-locality alert state machine. Pure: no clock, no I/O.
//
// The target level is the highest level whose raise threshold the score reaches; an open
// alert stays at its level until the score falls below that level's clear threshold
// (hysteresis), and a floor (e.g. a sentinel incident) keeps at least that level.
// A move up must point the same way for raise_after consecutive evaluations, a move down for
// clear_after; then one event is emitted: raised (from none), escalated, deescalated,
// resolved (to none). The alert id is fixed when raised and kept until resolved.
#pragma once

#include "config.hpp"
#include "model.hpp"

#include <optional>
#include <string>

namespace ews {

struct AlertingParams {
    std::array<LevelThresholds, 3> levels{{{40, 30}, {60, 50}, {80, 70}}};
    int raise_after = 2;
    int clear_after = 3;
};

struct AlertEvent {
    std::string type;  // "raised", "escalated", "deescalated", "resolved"
    std::string alert_id;
    Level level = Level::none;
    Level previous = Level::none;
    TimePoint at{};
    TimePoint opened_at{};
};

// Returns: the level `score` points to from `current`, with hysteresis and `floor`.
Level target_level(double score, Level current, Level floor, const AlertingParams& params);

// Advances `state` by one evaluation at `now` with composite `score`. Updates state.score,
// pending and pending_count always; returns the event when the notified level changes.
// With `may_lower` false (some indicator's data is stale or its plugin failed), the level may
// rise but is held rather than lowered or resolved.
std::optional<AlertEvent> step(AlertState& state, double score, Level floor, TimePoint now,
                               const AlertingParams& params, bool may_lower = true);

// Returns: a stable id for an alert opened on `locality` at `opened_at`,
// e.g. "KE-030-001@20261128T000000Z".
std::string make_alert_id(const std::string& locality, TimePoint opened_at);

}  // namespace ews
