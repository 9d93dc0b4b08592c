#include "messages.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>

namespace ews {

namespace {

// ordered_json keeps the fields in the order docs/protocol.md lists them, so a payload reads
// the same on the wire, in the outbox and in a replay.
using Json = nlohmann::ordered_json;

// Returns: `x` rounded to `decimals`, clamped to [lo, hi]; null when not finite (a NaN must
// never reach a subscriber as a number, and JSON has no spelling for it).
Json bounded(double x, int decimals, double lo, double hi) {
    if (!std::isfinite(x)) return nullptr;
    const double scale = std::pow(10.0, decimals);
    return std::clamp(std::round(x * scale) / scale, lo, hi);
}

Json finite_or_null(double x) {
    if (!std::isfinite(x)) return nullptr;
    return x;
}

Json time_or_null(const std::optional<TimePoint>& t) {
    if (!t) return nullptr;
    return format_time(*t);
}

// A count is published as an integer when it is one; a count in (0, min_cell) is published
// as the string "<min_cell>" so that a small group of children cannot be singled out. Zero
// reveals nothing about anyone and stays a number.
Json evidence_value(const sdk::EvidenceValue& v, int min_cell) {
    if (!std::isfinite(v.value)) return nullptr;
    if (!v.is_count) return v.value;
    if (v.value > 0 && v.value < min_cell) return "<" + std::to_string(min_cell);
    constexpr double exact = 9007199254740992.0;  // 2^53: every integer below is exact
    if (v.value == std::floor(v.value) && std::fabs(v.value) < exact)
        return static_cast<std::int64_t>(v.value);
    return v.value;
}

Json contribution(const Contribution& c, int min_cell) {
    const auto& a = c.assessment;
    Json values = Json::object();
    for (const auto& v : a.evidence.values) values[v.name] = evidence_value(v, min_cell);
    return Json{{"indicator", c.indicator},
                {"weight", finite_or_null(c.weight)},
                {"score", bounded(a.score, 3, 0.0, 1.0)},
                {"confidence", bounded(a.confidence, 3, 0.0, 1.0)},
                {"status", std::string(to_string(a.status))},
                {"newest", time_or_null(a.newest)},
                {"evidence", Json{{"text", a.evidence.text}, {"values", std::move(values)}}}};
}

std::string dump(const Json& j) {
    // Replace rather than throw on invalid UTF-8: a payload is always produced.
    return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

std::string evidence_value_text(const sdk::EvidenceValue& v, int min_cell) {
    const Json j = evidence_value(v, min_cell);
    if (j.is_null()) return "-";
    if (j.is_string()) return j.get<std::string>();
    if (j.is_number_integer()) return j.dump();
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4g", v.value);
    return buf;
}

std::string alert_topic(const Locality& locality) {
    std::string topic = "alert/";
    topic += locality.region;
    if (!locality.region.empty() && locality.region.back() != '/') topic += '/';
    topic += locality.id;
    topic += '/';
    return topic;
}

std::string alert_payload(const AlertMessage& message) {
    if (message.event == nullptr || message.locality == nullptr)
        throw std::invalid_argument("alert_payload: message.event and message.locality are required");
    const AlertEvent& event = *message.event;
    const Locality& locality = *message.locality;

    Json contributions = Json::array();
    Json data_gaps = Json::array();
    double score = 0;
    double confidence = 0;
    if (message.composite != nullptr) {
        score = message.composite->score;
        confidence = message.composite->confidence;
        for (const auto& c : message.composite->contributions) {
            contributions.push_back(contribution(c, message.min_cell));
            const auto status = c.assessment.status;
            if (status == sdk::Status::stale || status == sdk::Status::no_data)
                data_gaps.push_back(Json{{"indicator", c.indicator},
                                         {"status", std::string(to_string(status))},
                                         {"newest", time_or_null(c.assessment.newest)}});
        }
    }
    Json actions = Json::array();
    if (message.actions != nullptr)
        for (const auto& a : *message.actions) actions.push_back(a);
    Json dominant = nullptr;
    if (message.composite != nullptr && message.composite->dominant >= 0 &&
        std::size_t(message.composite->dominant) < message.composite->contributions.size())
        dominant = message.composite->contributions[std::size_t(message.composite->dominant)].indicator;
    const AlertState* state = message.state;
    Json acknowledged = nullptr;
    if (state != nullptr && state->acked_at && !event.gap && state->acked_id == event.alert_id)
        acknowledged = Json{{"by", state->acked_by}, {"at", format_time(*state->acked_at)}};

    Json j{{"schema", "ews.alert/1"},
           {"seq", message.seq},
           {"id", event.alert_id},
           {"event", event.type},
           {"locality", Json{{"id", locality.id}, {"name", locality.name}, {"region", locality.region}}},
           {"level", std::string(to_string(event.level))},
           {"previous_level", std::string(to_string(event.previous))},
           {"score", bounded(score, 1, 0.0, 100.0)},
           {"confidence", bounded(confidence, 3, 0.0, 1.0)},
           {"at", format_time(event.at)},
           {"opened_at", time_or_null(event.opened_at)},
           {"contributions", std::move(contributions)},
           {"data_gaps", std::move(data_gaps)},
           {"actions", std::move(actions)},
           {"dominant", std::move(dominant)},
           {"flapping", state != nullptr && state->flapping},
           {"acknowledged", std::move(acknowledged)}};
    if (event.gap) {
        const DataGap& g = *event.gap;
        Json age = nullptr;
        if (g.newest && event.at >= *g.newest)
            age = std::chrono::duration_cast<std::chrono::seconds>(event.at - *g.newest).count();
        j["gap"] = Json{{"indicator", g.indicator},
                        {"status", std::string(to_string(g.status))},
                        {"since", format_time(g.since)},
                        {"newest", time_or_null(g.newest)},
                        {"age_s", std::move(age)}};
        j["alert_id"] = state != nullptr && !state->notified_id.empty() ? Json(state->notified_id)
                                                                       : Json(nullptr);
    }
    return dump(j);
}

std::string heartbeat_payload(std::uint64_t seq, TimePoint at) {
    return dump(Json{{"schema", "ews.heartbeat/1"}, {"seq", seq}, {"at", format_time(at)}});
}

}  // namespace ews
