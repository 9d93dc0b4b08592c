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

// Alert state of one locality, persisted with the outbox in one transaction.
struct AlertState {
    std::string locality;
    Level level = Level::none;          // level currently notified
    Level pending = Level::none;        // level the score points to, not yet confirmed
    int pending_count = 0;              // consecutive evaluations pointing at `pending`
    std::string alert_id;               // empty while level == none
    std::optional<TimePoint> opened_at; // when the open alert was raised
    std::optional<TimePoint> changed_at;
    double score = 0;                   // last composite score, 0..100

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
