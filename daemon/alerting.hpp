// alerting.hpp: the per-locality alert lifecycle. Pure: no clock, no I/O.
//
// Two layers:
//
// 1. step(): the level machine. The target level is the highest level whose raise threshold
//    the score reaches; an open alert stays at its level until the score falls below that
//    level's clear threshold (hysteresis), and a floor (e.g. a sentinel incident) keeps at
//    least that level. A move up must point the same way for raise_after consecutive
//    evaluations, a move down for clear_after; then the confirmed level changes. The alert
//    id is fixed when raised and kept until resolved.
//
// 2. advance(): one evaluation of one locality, on top of step(): data gaps, flap detection,
//    silences, reminders and acknowledgement, and the events to publish. It keeps the true
//    state (what the scores say) apart from the notified state (what subscribers were last
//    told). Events are published as the difference between the two, so a hold (flapping, a
//    silence) ends with exactly the events that bring subscribers up to date: never a
//    `resolved` for an alert they were not told of, never a second open alert.
//
// docs/method.md describes the rules for users; the comments below are the contract.
#pragma once

#include "config.hpp"
#include "model.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ews {

struct AlertingParams {
    std::array<LevelThresholds, 3> levels{{{40, 30}, {60, 50}, {80, 70}}};
    int raise_after = 2;
    int clear_after = 3;
    // An open alert whose level has not changed is notified again (`reminder`) once this long
    // has passed since its last notification; 0 = never.
    std::chrono::seconds repeat_every{0};
    // Flap detection over the last `flap_window` samples (3..32): flapping starts when the
    // weighted share of changes reaches flap_high percent and stops when it falls below
    // flap_low. flap_high = 0 turns flap detection off.
    int flap_window = 21;
    double flap_high = 30;
    double flap_low = 15;
};

// Event names, as published in "event".
namespace event {
inline constexpr const char* raised = "raised";
inline constexpr const char* escalated = "escalated";
inline constexpr const char* deescalated = "deescalated";
inline constexpr const char* resolved = "resolved";
inline constexpr const char* reminder = "reminder";
inline constexpr const char* flapping_started = "flapping_started";
inline constexpr const char* flapping_stopped = "flapping_stopped";
inline constexpr const char* data_gap = "data_gap";
inline constexpr const char* data_restored = "data_restored";
}  // namespace event

struct AlertEvent {
    std::string type;  // one of event::*
    // raised..reminder: the alert's id. flapping_*: the notified alert's id, else the true
    // one, else "". data_gap/data_restored: the gap's own id (gap_id()), the same for both.
    std::string alert_id;
    Level level = Level::none;     // the level after the event (for data and flapping
    Level previous = Level::none;  // events: the notified level, unchanged)
    TimePoint at{};
    // Of the alert the event is about. data_gap/data_restored: when the gap opened.
    // flapping_* without any alert: the event's own time.
    std::optional<TimePoint> opened_at;
    std::optional<DataGap> gap;          // data_gap, data_restored
    // Why an event was held rather than published: "flapping" or "silence <id>"; empty
    // for published events.
    std::string held;
    std::int64_t silence_id = 0;  // the silence that held it; 0 otherwise

    bool operator==(const AlertEvent&) const = default;
};

// What one evaluation saw for one indicator of a locality.
struct IndicatorReading {
    std::string indicator;
    sdk::Status status = sdk::Status::no_data;
    std::optional<TimePoint> newest;
};

// What one evaluation saw for one locality.
struct Reading {
    // Composite score 0..100; not finite when no indicator gave evidence (then the level is
    // held: no evidence is not safety, and state.score keeps its last value).
    double score = 0;
    Level floor = Level::none;
    // One per loaded indicator, in any order. An indicator absent here (not loaded now)
    // keeps its coverage and gaps as they were.
    std::vector<IndicatorReading> indicators;
};

// A silence that covers the locality being evaluated.
struct ActiveSilence {
    std::int64_t id = 0;
};

struct AdvanceResult {
    bool advanced = false;              // false: `now` was not after state.evaluated_at
    std::vector<AlertEvent> published;  // to every endpoint's outbox, in this order
    std::vector<AlertEvent> held;       // stored, not published (flapping or silence)
};

// Returns: the level `score` points to from `current`, with hysteresis and `floor`.
Level target_level(double score, Level current, Level floor, const AlertingParams& params);

// The level machine alone. Advances `state` by one evaluation at `now` with composite
// `score`. Updates state.score, pending and pending_count always (afterwards `pending` is the
// level this evaluation pointed to, with hysteresis, floor and may_lower applied, whether or
// not it was confirmed); returns the event when the
// confirmed level changes (raised, escalated, deescalated, resolved), setting state.level,
// alert_id, opened_at and changed_at. With `may_lower` false the level may rise but is held
// rather than lowered or resolved. Does not touch the notified, flap or gap fields.
std::optional<AlertEvent> step(AlertState& state, double score, Level floor, TimePoint now,
                               const AlertingParams& params, bool may_lower = true);

// One evaluation of a locality at `now`. In order:
//
//  0. Idempotence: when state.evaluated_at >= now, nothing changes (advanced = false). An
//     evaluation repeated at the same time, or replayed at an earlier one, is not a new step.
//  1. Data gaps: an indicator with status ok or stale joins state.covered (it has had data);
//     ok closes its open gap; stale, or no_data once covered, opens a gap (since = now) or
//     updates the open one's status and newest. An indicator never covered and with no_data
//     opens no gap (no source has ever reported it here). Status error (the plugin failed)
//     leaves coverage and gaps alone.
//  2. Level: step() with may_lower = false while any gap is open or any indicator has status
//     error (missing data never lowers or resolves an alert).
//  3. Flapping: a sample is taken when the reading's fingerprint (each indicator's status and
//     newest) differs from the last sample's, or the target level differs from the last
//     sample's target; the sample records whether the target changed. Over the last
//     flap_window samples, the share of changes is weighted from 0.75 (oldest) to 1.25
//     (newest) per Nagios; >= flap_high starts flapping, < flap_low stops it. Flapping
//     starts or stops only on a sample.
//  4. Events, unless `silence` is given:
//     - flapping_started / flapping_stopped when flapping changed;
//     - while not flapping: the difference between the notified and the true alert:
//       notified id set and different from the true one -> resolved (of the notified alert);
//       then true level above none and no notified alert -> raised; same alert, higher
//       level -> escalated, lower -> deescalated;
//     - while flapping: level transitions from step() are held ("flapping");
//     - reminder: not flapping, an open alert, no other event for it in this evaluation,
//       repeat_every > 0, now - notified_at >= repeat_every, and not acknowledged at or
//       above its level;
//     - data_gap for each open gap not yet notified, data_restored for each notified gap
//       that closed (not held by flapping).
//     With `silence`, every transition of this evaluation (level, flapping, gaps) is held
//     ("silence <id>") and the notified state stays as it was; the difference is published
//     at the first evaluation after the silence ends.
//  Published raised/escalated/deescalated/reminder set notified_at = now. An escalation or a
//  resolution clears the acknowledgement.
AdvanceResult advance(AlertState& state, const Reading& reading, TimePoint now,
                      const AlertingParams& params, const std::optional<ActiveSilence>& silence);

// Records an acknowledgement of the open alert `alert_id` by `by` at `at`.
// Returns: false when `alert_id` is not the locality's open alert (true or notified).
bool acknowledge(AlertState& state, const std::string& alert_id, const std::string& by,
                 TimePoint at);

// Returns: the weighted share of target changes over the flap window, in percent (0..100).
double flap_percent(const AlertState& state, const AlertingParams& params);

// Returns: a stable id for an alert opened on `locality` at `opened_at`,
// e.g. "KE-030-001@20261128T000000Z".
std::string make_alert_id(const std::string& locality, TimePoint opened_at);
// Returns: a stable id for a data gap, e.g. "KE-030-001/school_dropout@20261128T000000Z".
std::string gap_id(const std::string& locality, const DataGap& gap);

}  // namespace ews
