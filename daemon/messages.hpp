// messages.hpp: the JSON payloads of protocol v1 (docs/protocol.md), built from values.
// Counts below the privacy threshold are written as "<N>"; no ingested free text is copied.
#pragma once

#include "alerting.hpp"
#include "model.hpp"
#include "scorer.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace ews {

// Returns: an evidence value as text, as alerts publish it: a count in (0, min_cell) as
// "<min_cell>", other counts as integers, other values to 4 significant digits; "-" when
// not finite.
std::string evidence_value_text(const sdk::EvidenceValue& v, int min_cell);

// Returns: "alert/<region path>/<locality id>/".
std::string alert_topic(const Locality& locality);

struct AlertMessage {
    std::uint64_t seq = 0;  // 0 for an event held rather than published
    const AlertEvent* event = nullptr;
    const Locality* locality = nullptr;
    const Composite* composite = nullptr;
    const std::vector<std::string>* actions = nullptr;
    // The locality's state after the evaluation (flapping, acknowledgement); may be null.
    const AlertState* state = nullptr;
    int min_cell = 5;
};

// Returns: the ews.alert/1 JSON text.
std::string alert_payload(const AlertMessage& message);
// Returns: the ews.heartbeat/1 JSON text.
std::string heartbeat_payload(std::uint64_t seq, TimePoint at);

}  // namespace ews
