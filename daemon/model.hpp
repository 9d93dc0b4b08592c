// model.hpp: the plain values that flow between ewsd's modules. No I/O, no dependencies
// beyond the SDK. Nothing here describes a person: the unit is always a locality.
#pragma once

#include <ews/sdk/indicator.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ews {

using sdk::TimePoint;

enum class Level { none = 0, watch = 1, warning = 2, critical = 3 };

std::string_view to_string(Level level);
// Returns: the level named `name` ("none", "watch", "warning", "critical"), or nullopt.
std::optional<Level> parse_level(std::string_view name);
std::string_view to_string(sdk::Status status);

struct Locality {
    std::string id;      // [A-Za-z0-9_.-]+
    std::string name;
    std::string region;  // "KE/KE-03/KE-030"
    std::optional<double> population;  // children, when known
    std::vector<std::string> neighbours;
};

struct Observation {
    std::string locality;
    TimePoint time;
    std::string kind;
    double value = 0;
    double weight = 1;
    std::string source;
};

// An indicator of a locality whose data stopped: it had data (status ok at some earlier
// evaluation) and is now stale or has nothing in its look-back (no_data).
struct DataGap {
    std::string indicator;
    TimePoint since{};                  // the evaluation that first saw the gap
    sdk::Status status = sdk::Status::stale;
    std::optional<TimePoint> newest;    // newest data the indicator still had, if any

    bool operator==(const DataGap&) const = default;
};

// Alert state of one locality, persisted with the outbox in one transaction. It holds two
// views: the true state (what the scores say, after hysteresis and raise_after/clear_after)
// and the notified state (what subscribers were last told). They differ only while
// notifications are held (flapping, silence); alerting.hpp publishes the difference once the
// hold ends.
struct AlertState {
    std::string locality;
    // --- true state
    Level level = Level::none;          // confirmed level
    Level pending = Level::none;        // level the score points to, not yet confirmed
    int pending_count = 0;              // consecutive evaluations pointing at `pending`
    std::string alert_id;               // empty while level == none
    std::optional<TimePoint> opened_at; // when the open alert was raised
    std::optional<TimePoint> changed_at;
    double score = 0;                   // last composite score with evidence, 0..100
    // --- evaluation bookkeeping
    std::optional<TimePoint> evaluated_at;  // last evaluation that advanced this state
    // --- flap detection (Nagios-style): one sample per new reading or target change
    std::uint32_t flap_history = 0;     // bit i set: the i-th newest sample changed target
    int flap_samples = 0;               // samples taken so far, at most the window
    Level flap_last = Level::none;      // target level at the newest sample
    std::uint64_t reading = 0;          // fingerprint of the newest sample's inputs
    bool flapping = false;
    // --- data gaps
    std::vector<std::string> covered;   // indicators that have had data here, sorted
    std::vector<DataGap> gaps;          // open gaps, by indicator
    // --- notified state
    Level notified_level = Level::none;
    std::string notified_id;
    std::optional<TimePoint> notified_opened_at;
    std::optional<TimePoint> notified_at;   // last published raised/escalated/deescalated/reminder
    std::vector<DataGap> notified_gaps;     // gaps announced with data_gap, not yet restored
    bool notified_flapping = false;         // flapping_started published, flapping_stopped not
    // --- acknowledgement of an open alert (cleared when that alert escalates or resolves)
    std::string acked_id;
    std::string acked_by;
    std::optional<TimePoint> acked_at;
    Level acked_level = Level::none;

    bool operator==(const AlertState&) const = default;
};

// Returns: RFC 3339 UTC, e.g. "2026-11-28T00:00:00Z".
std::string format_time(TimePoint t);
// Accepts an ISO 8601 date ("2026-11-28") or UTC date-time ("2026-11-28T10:00:00Z",
// "2026-11-28T10:00:00", "2026-11-28 10:00:00", fractional seconds ignored, "+00:00").
// Returns: nullopt when malformed or out of range.
std::optional<TimePoint> parse_time(std::string_view text);

// Returns: the current wall clock, truncated to seconds.
TimePoint wall_now();

}  // namespace ews
