#include "messages.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <type_traits>
#include <variant>

namespace ews {

namespace {

// A JSON tree for the heartbeat, and for the strings JsonWriter leaves to nlohmann.
using Json = nlohmann::ordered_json;

// What an evidence value is published as. A count is published as an integer when it is
// one; a count in (0, min_cell) as the string "<min_cell>" so that a small group of children
// cannot be singled out; zero reveals nothing about anyone and stays a number. A value that
// is not finite is null (a NaN must never reach a subscriber as a number, and JSON has no
// spelling for it).
using Published = std::variant<std::monostate, double, std::int64_t, std::string>;

Published published(const sdk::EvidenceValue& v, int min_cell) {
    if (!std::isfinite(v.value)) return std::monostate{};
    if (!v.is_count) return v.value;
    if (v.value > 0 && v.value < min_cell) return "<" + std::to_string(min_cell);
    constexpr double exact = 9007199254740992.0;  // 2^53: every integer below is exact
    if (v.value == std::floor(v.value) && std::fabs(v.value) < exact)
        return static_cast<std::int64_t>(v.value);
    return v.value;
}

std::string dump(const Json& j) {
    // Replace rather than throw on invalid UTF-8: a payload is always produced.
    return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

std::string evidence_value_text(const sdk::EvidenceValue& v, int min_cell) {
    const Published p = published(v, min_cell);
    if (std::holds_alternative<std::monostate>(p)) return "-";
    if (const auto* s = std::get_if<std::string>(&p)) return *s;
    if (const auto* i = std::get_if<std::int64_t>(&p)) return std::to_string(*i);
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

namespace {

// Writes compact JSON text straight into one string, byte for byte what nlohmann's dump(-1)
// with the replace error handler writes for the same values (numbers through nlohmann's own
// shortest-form conversion; tests/unit/test_messages.cpp parses and dumps random payloads
// to check). An alert payload is written for every event: building a JSON tree and dumping
// it took 25-30 us an alert, writing it directly 5-7 us. Members are written in the order
// docs/protocol.md lists them, so a payload reads the same on the wire, in the outbox and in
// a replay.
class JsonWriter {
public:
    explicit JsonWriter(std::size_t reserve) { out_.reserve(reserve); }

    JsonWriter& begin_object() { return open('{'); }
    JsonWriter& end_object() { return close('}'); }
    JsonWriter& begin_array() { return open('['); }
    JsonWriter& end_array() { return close(']'); }
    // The next value is the member `name` of the object being written.
    JsonWriter& key(std::string_view name) {
        separate();
        put_string(name);
        out_ += ':';
        first_ = true;
        return *this;
    }
    JsonWriter& string(std::string_view s) {
        separate();
        put_string(s);
        return *this;
    }
    JsonWriter& number(double x) {  // not finite: null
        separate();
        if (!std::isfinite(x)) {
            out_ += "null";
            return *this;
        }
        char buf[64];
        const char* end = nlohmann::detail::to_chars(buf, buf + sizeof buf, x);
        out_.append(buf, static_cast<std::size_t>(end - buf));
        return *this;
    }
    template <class Int>
    JsonWriter& integer(Int x) {
        separate();
        char buf[24];
        const auto r = std::to_chars(buf, buf + sizeof buf, x);
        out_.append(buf, static_cast<std::size_t>(r.ptr - buf));
        return *this;
    }
    JsonWriter& boolean(bool b) {
        separate();
        out_ += b ? "true" : "false";
        return *this;
    }
    JsonWriter& null() {
        separate();
        out_ += "null";
        return *this;
    }
    JsonWriter& time_or_null(const std::optional<TimePoint>& t) {
        return t ? string(format_time(*t)) : null();
    }
    // Returns: the text in a string of its own size. The writer's buffer is larger (its
    // reserve, or what it grew to), and an evaluation keeps thousands of payloads until
    // they are committed: copied out, each takes its own length, and the buffer's block is
    // free for the next payload.
    std::string text() const { return out_; }

private:
    JsonWriter& open(char c) {
        separate();
        out_ += c;
        first_ = true;
        return *this;
    }
    JsonWriter& close(char c) {
        out_ += c;
        first_ = false;
        return *this;
    }
    void separate() {
        if (!first_) out_ += ',';
        first_ = false;
    }
    // ASCII is escaped here as nlohmann escapes it; text with any other byte (valid UTF-8 or
    // not) is left to nlohmann itself, so that invalid sequences are replaced the same way.
    void put_string(std::string_view s) {
        for (unsigned char c : s)
            if (c >= 0x80) {
                out_ += dump(Json(std::string(s)));
                return;
            }
        out_ += '"';
        std::size_t plain = 0;  // start of the characters not yet copied
        for (std::size_t i = 0; i < s.size(); ++i) {
            const auto c = static_cast<unsigned char>(s[i]);
            if (c >= 0x20 && c != '"' && c != '\\') continue;
            out_.append(s.data() + plain, i - plain);
            plain = i + 1;
            switch (c) {
                case '"': out_ += "\\\""; break;
                case '\\': out_ += "\\\\"; break;
                case '\b': out_ += "\\b"; break;
                case '\t': out_ += "\\t"; break;
                case '\n': out_ += "\\n"; break;
                case '\f': out_ += "\\f"; break;
                case '\r': out_ += "\\r"; break;
                default: {
                    static constexpr char hex[] = "0123456789abcdef";
                    out_ += "\\u00";
                    out_ += hex[c >> 4];
                    out_ += hex[c & 0xF];
                }
            }
        }
        out_.append(s.data() + plain, s.size() - plain);
        out_ += '"';
    }

    std::string out_;
    bool first_ = true;  // no value written yet in the innermost object or array
};

// Returns: `x` rounded to `decimals` and clamped to [lo, hi]; not finite stays as it is (and
// is written as null).
double rounded(double x, int decimals, double lo, double hi) {
    if (!std::isfinite(x)) return x;
    const double scale = std::pow(10.0, decimals);
    return std::clamp(std::round(x * scale) / scale, lo, hi);
}

void write_evidence_value(JsonWriter& w, const sdk::EvidenceValue& v, int min_cell) {
    std::visit(
        [&w](const auto& x) {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, std::monostate>)
                w.null();
            else if constexpr (std::is_same_v<T, double>)
                w.number(x);
            else if constexpr (std::is_same_v<T, std::int64_t>)
                w.integer(x);
            else
                w.string(x);
        },
        published(v, min_cell));
}

void write_contribution(JsonWriter& w, const Contribution& c, int min_cell) {
    const auto& a = c.assessment;
    w.begin_object();
    w.key("indicator").string(c.indicator);
    w.key("weight").number(c.weight);
    w.key("score").number(rounded(a.score, 3, 0.0, 1.0));
    w.key("confidence").number(rounded(a.confidence, 3, 0.0, 1.0));
    w.key("status").string(to_string(a.status));
    w.key("newest").time_or_null(a.newest);
    w.key("evidence").begin_object();
    w.key("text").string(a.evidence.text);
    // A name given twice is written once, at its first place, with its last value (what a
    // JSON tree keeps of a repeated member).
    w.key("values").begin_object();
    const auto& values = a.evidence.values;
    // Sorted by name (stable, so each name's places stay in order), every name's first
    // place gets its last place; the other places of a name are skipped. No quadratic pass:
    // a plugin may return any number of values.
    constexpr auto skipped = static_cast<std::size_t>(-1);
    std::vector<std::size_t> by_name(values.size());
    std::iota(by_name.begin(), by_name.end(), std::size_t{0});
    std::stable_sort(by_name.begin(), by_name.end(), [&](std::size_t x, std::size_t y) {
        return values[x].name < values[y].name;
    });
    std::vector<std::size_t> last(values.size(), skipped);  // by place
    for (std::size_t k = 0; k < by_name.size();) {
        std::size_t end = k + 1;
        while (end < by_name.size() && values[by_name[end]].name == values[by_name[k]].name) ++end;
        last[by_name[k]] = by_name[end - 1];
        k = end;
    }
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (last[i] == skipped) continue;
        w.key(values[i].name);
        write_evidence_value(w, values[last[i]], min_cell);
    }
    w.end_object();
    w.end_object();
    w.end_object();
}

}  // namespace

std::string alert_payload(const AlertMessage& message) {
    if (message.event == nullptr || message.locality == nullptr)
        throw std::invalid_argument("alert_payload: message.event and message.locality are required");
    const AlertEvent& event = *message.event;
    const Locality& locality = *message.locality;
    const Composite* composite = message.composite;
    const AlertState* state = message.state;

    JsonWriter w(4096);
    w.begin_object();
    w.key("schema").string("ews.alert/1");
    w.key("seq").integer(message.seq);
    w.key("id").string(event.alert_id);
    w.key("event").string(event.type);
    w.key("locality").begin_object();
    w.key("id").string(locality.id);
    w.key("name").string(locality.name);
    w.key("region").string(locality.region);
    w.end_object();
    w.key("level").string(to_string(event.level));
    w.key("previous_level").string(to_string(event.previous));
    w.key("score").number(rounded(composite ? composite->score : 0.0, 1, 0.0, 100.0));
    w.key("confidence").number(rounded(composite ? composite->confidence : 0.0, 3, 0.0, 1.0));
    w.key("at").string(format_time(event.at));
    w.key("opened_at").time_or_null(event.opened_at);
    w.key("contributions").begin_array();
    if (composite != nullptr)
        for (const auto& c : composite->contributions) write_contribution(w, c, message.min_cell);
    w.end_array();
    w.key("data_gaps").begin_array();
    if (composite != nullptr)
        for (const auto& c : composite->contributions) {
            const auto status = c.assessment.status;
            if (status != sdk::Status::stale && status != sdk::Status::no_data) continue;
            w.begin_object();
            w.key("indicator").string(c.indicator);
            w.key("status").string(to_string(status));
            w.key("newest").time_or_null(c.assessment.newest);
            w.end_object();
        }
    w.end_array();
    w.key("actions").begin_array();
    if (message.actions != nullptr)
        for (const auto& a : *message.actions) w.string(a);
    w.end_array();
    w.key("dominant");
    if (composite != nullptr && composite->dominant >= 0 &&
        std::size_t(composite->dominant) < composite->contributions.size())
        w.string(composite->contributions[std::size_t(composite->dominant)].indicator);
    else
        w.null();
    w.key("flapping").boolean(state != nullptr && state->flapping);
    w.key("acknowledged");
    if (state != nullptr && state->acked_at && !event.gap && state->acked_id == event.alert_id) {
        w.begin_object();
        w.key("by").string(state->acked_by);
        w.key("at").string(format_time(*state->acked_at));
        w.end_object();
    } else {
        w.null();
    }
    if (event.gap) {
        const DataGap& g = *event.gap;
        w.key("gap").begin_object();
        w.key("indicator").string(g.indicator);
        w.key("status").string(to_string(g.status));
        w.key("since").string(format_time(g.since));
        w.key("newest").time_or_null(g.newest);
        w.key("age_s");
        if (g.newest && event.at >= *g.newest)
            w.integer(std::chrono::duration_cast<std::chrono::seconds>(event.at - *g.newest).count());
        else
            w.null();
        w.end_object();
        w.key("alert_id");
        if (state != nullptr && !state->notified_id.empty())
            w.string(state->notified_id);
        else
            w.null();
    }
    w.end_object();
    return w.text();
}

std::string heartbeat_payload(std::uint64_t seq, TimePoint at) {
    return dump(Json{{"schema", "ews.heartbeat/1"}, {"seq", seq}, {"at", format_time(at)}});
}

}  // namespace ews
