#include "output.hpp"

#include <cstdint>
#include <cstdio>

namespace ews::sub {

const char* const alert_event_names[9] = {"raised",           "escalated",        "deescalated",
                                          "resolved",         "reminder",         "flapping_started",
                                          "flapping_stopped", "data_gap",         "data_restored"};

namespace {

const Json& field(const Json& j, const char* name) {
    static const Json null_value;
    if (!j.is_object()) return null_value;
    auto it = j.find(name);
    return it == j.end() ? null_value : *it;
}

// Returns: `j` as printable text ("-" when absent).
std::string text_of(const Json& j) {
    if (j.is_string()) return printable(j.get<std::string>());
    // A JSON text escapes C0 controls but not DEL: printable() catches what is left.
    return j.is_null() ? std::string("-") : printable(j.dump(-1, ' ', false, Json::error_handler_t::replace));
}

std::string fixed(const Json& number, int decimals) {
    if (!number.is_number()) return "n/a";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, number.get<double>());
    return buf;
}

std::string evidence_number(const Json& v) {
    if (v.is_number_integer()) return std::to_string(v.get<std::int64_t>());
    if (v.is_number()) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%g", v.get<double>());
        return buf;
    }
    if (v.is_string()) return printable(v.get<std::string>());  // a suppressed count, "<5"
    return "n/a";
}

std::string upper(std::string s) {
    for (char& c : s)
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    return s;
}

std::string pad(std::string s, std::size_t width) {
    if (s.size() < width) s.append(width - s.size(), ' ');
    return s;
}

// A CSV cell: strings as they are (control characters other than CR, LF and tab made
// printable: quoting keeps line breaks inside the cell), numbers as JSON writes them, null
// or absent as an empty cell.
std::string cell(const Json& j) {
    if (j.is_null()) return "";
    if (j.is_string()) {
        std::string s = j.get<std::string>();
        for (char& c : s)
            if ((static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') ||
                c == 0x7f)
                c = '?';
        return csv_field(s);
    }
    return csv_field(printable(j.dump(-1, ' ', false, Json::error_handler_t::replace)));
}

}  // namespace

std::set<std::string> parse_event_list(const std::string& list) {
    auto valid_names = [] {
        std::string all;
        for (const char* name : alert_event_names) all += (all.empty() ? "" : " ") + std::string(name);
        return all;
    };
    std::set<std::string> names;
    std::size_t start = 0;
    for (;;) {
        const std::size_t comma = list.find(',', start);
        std::string name = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        while (!name.empty() && name.front() == ' ') name.erase(0, 1);
        while (!name.empty() && name.back() == ' ') name.pop_back();
        bool known = false;
        for (const char* valid : alert_event_names) known = known || name == valid;
        if (!known)
            throw std::invalid_argument(
                (name.empty() ? std::string("empty event name") : "unknown event \"" + printable(name) + "\"") +
                " in \"" + printable(list) + "\"; valid events: " + valid_names());
        names.insert(name);
        if (comma == std::string::npos) return names;
        start = comma + 1;
    }
}

bool nested_deeper_than(std::string_view text, std::size_t limit) {
    std::size_t depth = 0;
    bool in_string = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (c == '\\') ++i;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > limit) return true;
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return false;
}

int level_rank(const Json& level) {
    if (level.is_string()) {
        const auto& s = level.get_ref<const std::string&>();
        if (s == "none") return 0;
        if (s == "watch") return 1;
        if (s == "warning") return 2;
        if (s == "critical") return 3;
    }
    return -1;
}

bool passes(const Filter& filter, const std::string& topic, const Json& payload) {
    if (topic.rfind(filter.topic_prefix, 0) != 0) return false;
    const Json& event = field(payload, "event");
    if (!filter.events.empty() &&
        (!event.is_string() || filter.events.count(event.get<std::string>()) == 0))
        return false;
    if (level_rank(field(payload, "level")) >= filter.min_rank) return true;
    return (event == "resolved" || event == "deescalated") &&
           level_rank(field(payload, "previous_level")) >= filter.min_rank;
}

std::string printable(std::string s) {
    for (char& c : s)
        if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) c = '?';
    return s;
}

std::string pretty_alert(const Json& p) {
    const Json& loc = field(p, "locality");
    const std::string level = text_of(field(p, "level"));
    const std::string previous = text_of(field(p, "previous_level"));
    std::string out = "#" + text_of(field(p, "seq")) + " " + text_of(field(p, "at")) + " " +
                      upper(text_of(field(p, "event"))) + " " + pad(level, 8) + " " +
                      text_of(field(loc, "name")) + " (" + text_of(field(loc, "region")) + "/" +
                      text_of(field(loc, "id")) + ") score " + fixed(field(p, "score"), 1) +
                      " conf " + fixed(field(p, "confidence"), 2);
    if (previous != "none" && previous != level) out += ", was " + previous;
    out += "\n  alert " + text_of(field(p, "id")) + " opened " + text_of(field(p, "opened_at")) + "\n";

    const Json& contributions = field(p, "contributions");
    if (contributions.is_array())
        for (const auto& c : contributions) {
            out += "  " + pad(text_of(field(c, "indicator")), 20) + " " + fixed(field(c, "score"), 2) +
                   " (conf " + fixed(field(c, "confidence"), 2) + ", " + text_of(field(c, "status"));
            const Json& newest = field(c, "newest");
            out += newest.is_string() ? ", newest " + text_of(newest) : ", no data";
            out += ")";
            const Json& evidence = field(c, "evidence");
            const Json& text = field(evidence, "text");
            if (text.is_string() && !text.get_ref<const std::string&>().empty())
                out += " " + text_of(text);
            const Json& values = field(evidence, "values");
            if (values.is_object() && !values.empty()) {
                std::string list;
                for (const auto& [name, v] : values.items())
                    list += (list.empty() ? "" : " ") + printable(name) + "=" + evidence_number(v);
                out += " [" + list + "]";
            }
            out += "\n";
        }
    const Json& gaps = field(p, "data_gaps");
    if (gaps.is_array() && !gaps.empty()) {
        std::string list;
        for (const auto& g : gaps)
            list += (list.empty() ? "" : ", ") + text_of(field(g, "indicator")) + " (" +
                    text_of(field(g, "status")) + ")";
        out += "  data gaps: " + list + "\n";
    }
    const Json& actions = field(p, "actions");
    if (actions.is_array() && !actions.empty()) {
        std::string list;
        for (const auto& a : actions) list += (list.empty() ? "" : "; ") + text_of(a);
        out += "  actions: " + list + "\n";
    }
    return out;
}

std::string pretty_ops(const Json& p) {
    std::string out = "ops: " + text_of(field(p, "event")) + " #" + text_of(field(p, "seq")) + " " +
                      text_of(field(p, "at"));
    for (const auto& [name, value] : p.items())
        if (name != "schema" && name != "seq" && name != "event" && name != "at")
            out += " " + printable(name) + "=" + text_of(value);
    return out + "\n";
}

std::string csv_header() {
    return "seq,at,event,level,previous_level,locality,name,region,score,confidence,alert_id\n";
}

std::string csv_row(const Json& p) {
    const Json& loc = field(p, "locality");
    // Data events carry the id of the gap in `id` and the locality's open alert, if any, in
    // `alert_id`; every other event's `id` is the alert's.
    const Json& alert_id = p.is_object() && p.contains("alert_id") ? field(p, "alert_id") : field(p, "id");
    std::string row;
    bool first = true;
    for (const Json* j : {&field(p, "seq"), &field(p, "at"), &field(p, "event"), &field(p, "level"),
                          &field(p, "previous_level"), &field(loc, "id"), &field(loc, "name"),
                          &field(loc, "region"), &field(p, "score"), &field(p, "confidence"), &alert_id}) {
        if (!first) row += ',';
        row += cell(*j);
        first = false;
    }
    return row + "\n";
}

std::string csv_field(const std::string& s) {
    if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
    std::string out = "\"";
    for (char c : s) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + "\"";
}

std::string json_line(const Json& payload) {
    std::string line = payload.dump(-1, ' ', false, Json::error_handler_t::replace);
    // dump() escapes C0 controls but writes DEL as it is. A DEL can only be inside a JSON
    // string, where the escape \u007f stands for the same character.
    for (std::size_t at = line.find('\x7f'); at != std::string::npos; at = line.find('\x7f', at + 6))
        line.replace(at, 1, "\\u007f");
    return line + "\n";
}

}  // namespace ews::sub
