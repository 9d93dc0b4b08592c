// output.hpp: what ews-sub prints and which events it lets through.
//
// Pure functions over received payloads: no sockets, no files. Filters decide what is
// printed only; the caller accounts for every seq whatever they say.
#pragma once

#include <nlohmann/json.hpp>

#include <set>
#include <stdexcept>
#include <string>
#include <string_view>

namespace ews::sub {

// ordered_json keeps the daemon's field order, so --format json prints what was received.
using Json = nlohmann::ordered_json;

enum class Format { pretty, json, csv };

// The alert event names of protocol v1, in the order --help lists them.
extern const char* const alert_event_names[9];

// Returns: the names of a comma-separated --events list ("raised,resolved").
// Throws: std::invalid_argument naming the first unknown or empty name and listing the valid
// ones.
std::set<std::string> parse_event_list(const std::string& list);

struct Filter {
    std::string topic_prefix = "alert/";  // "alert/" + region path ending in "/"
    int min_rank = 0;                     // level_rank of --min-level
    std::set<std::string> events;         // empty: every event
};

// Deepest nesting of arrays and objects accepted in a message or a query reply (an alert
// payload has 4 levels, a replay reply 7). Printing a value recurses once per level, so a
// deeper text is refused before it is parsed.
inline constexpr std::size_t max_json_depth = 64;

// Returns: whether the JSON text nests arrays and objects deeper than `limit` (brackets in
// strings do not count).
bool nested_deeper_than(std::string_view text, std::size_t limit);

// Returns: 0..3 for none..critical; -1 for anything else (passes only --min-level none).
int level_rank(const Json& level);

// Returns: whether an alert payload on `topic` is printed under `filter`: its topic is under
// the region prefix, its event is listed (when a list is given), and its level is at least
// the minimum, or it is a `resolved`/`deescalated` whose previous level was (so the end of an
// alert that was shown is shown too).
bool passes(const Filter& filter, const std::string& topic, const Json& payload);

// Text that came over the network never reaches a terminal as a control sequence: C0
// controls other than tab, and DEL, become '?'.
std::string printable(std::string s);

// One block per alert event for people: a headline, one line per contribution, data gaps,
// actions.
std::string pretty_alert(const Json& payload);
// One line for an operational event: "ops: <event> #<seq> <at> key=value ...\n".
std::string pretty_ops(const Json& payload);

// The CSV header line (with its "\n").
std::string csv_header();
// One CSV row (with its "\n") for an alert payload, RFC 4180 quoting: a field holding a comma,
// a double quote, CR or LF is quoted, its quotes doubled.
std::string csv_row(const Json& payload);
// Returns: `field` quoted as RFC 4180 requires (unchanged when it needs no quotes).
std::string csv_field(const std::string& field);

// The payload as one JSON line (with its "\n"), invalid UTF-8 replaced.
std::string json_line(const Json& payload);

}  // namespace ews::sub
