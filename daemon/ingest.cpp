// ingest.cpp: CSV reading, row validation, ingest of one file into the store, and the spool
// directory. Validation is strict on purpose: the schema has no field for a person, and a
// row is stored only when every field is what its column promises.
#include "ingest.hpp"

#include "allocator.hpp"
#include "keepalive.hpp"

#include <boost/uuid/detail/sha1.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <cstdint>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <mutex>
#include <optional>
#include <span>
#include <sstream>
#include <system_error>
#include <unordered_map>

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ews {

std::string RowError::format() const {
    std::string out = file;
    if (line > 0) {
        out += ':' + std::to_string(line);
        if (column > 0) out += ':' + std::to_string(column);
    }
    out += ": ";
    out += reason;
    return out;
}

namespace {

// ---- CSV ----------------------------------------------------------------------------------

// One row of a CSV file. `fields` is reused between rows to avoid allocations; only the
// first `count` entries belong to the current row.
struct CsvRow {
    std::size_t line = 0;       // physical line where the row starts
    std::size_t count = 0;
    std::vector<std::string> fields;
    std::size_t error_column = 0;  // set with `error` when the row is malformed
    std::string error;

    std::string_view field(std::size_t i) const { return fields[i]; }
};

// Reads RFC 4180 CSV: quoted fields may hold commas, doubled quotes and line breaks; rows
// end with LF, CRLF or a lone CR; a UTF-8 BOM at the very start is skipped; rows made of
// nothing but blanks are skipped. Malformed rows (unterminated quote, text after a closing
// quote, a quote inside an unquoted field, a field over max_field_bytes, more than
// max_fields fields) are returned with `error` set and never stop the reader: it resumes
// at the next row. Memory stays bounded by the caps whatever the input.
class CsvReader {
public:
    static constexpr std::size_t max_field_bytes = 4096;
    static constexpr std::size_t max_fields = 64;

    explicit CsvReader(std::string_view content) : in_(content) {
        if (in_.substr(0, 3) == "\xEF\xBB\xBF") pos_ = 3;
    }

    // Returns: false at the end of the input; otherwise the next non-blank row in `row`.
    bool next(CsvRow& row) {
        for (;;) {
            if (pos_ >= in_.size()) return false;
            bool quoted_any = false;
            read_row(row, quoted_any);
            if (!row.error.empty() || quoted_any || row.count != 1) return true;
            auto f = row.field(0);
            if (f.find_first_not_of(" \t") != std::string_view::npos) return true;
        }
    }

private:
    void set_error(CsvRow& row, std::size_t column, std::string reason) {
        if (!row.error.empty()) return;
        row.error_column = column;
        row.error = std::move(reason);
    }

    // Returns: where to write the next field, or the scratch string once max_fields is passed.
    std::string& start_field(CsvRow& row) {
        ++row.count;
        if (row.count > max_fields) {
            set_error(row, row.count, "more than " + std::to_string(max_fields) + " fields");
            scratch_.clear();
            return scratch_;
        }
        if (row.fields.size() < row.count) row.fields.emplace_back();
        std::string& f = row.fields[row.count - 1];
        f.clear();
        return f;
    }

    bool at_line_end() const { return in_[pos_] == '\n' || in_[pos_] == '\r'; }

    // Consumes one LF, CRLF or CR at pos_ and counts the line.
    void consume_line_end() {
        if (in_[pos_] == '\r' && pos_ + 1 < in_.size() && in_[pos_ + 1] == '\n') ++pos_;
        ++pos_;
        ++line_;
    }

    void read_row(CsvRow& row, bool& quoted_any) {
        row.line = line_;
        row.count = 0;
        row.error.clear();
        row.error_column = 0;
        const std::size_t n = in_.size();
        for (;;) {
            std::string& f = start_field(row);
            const std::size_t column = row.count;
            bool text_after_quote = false;
            if (pos_ < n && in_[pos_] == '"') {
                quoted_any = true;
                ++pos_;
                bool closed = false;
                while (pos_ < n) {
                    char c = in_[pos_];
                    if (c == '"') {
                        if (pos_ + 1 < n && in_[pos_ + 1] == '"') {
                            append(row, f, column, '"');
                            pos_ += 2;
                            continue;
                        }
                        ++pos_;
                        closed = true;
                        break;
                    }
                    if (c == '\n' || (c == '\r' && !(pos_ + 1 < n && in_[pos_ + 1] == '\n')))
                        ++line_;
                    append(row, f, column, c);
                    ++pos_;
                }
                if (!closed) {
                    set_error(row, column, "unterminated quoted field");
                    return;
                }
                if (pos_ >= n) return;
                if (in_[pos_] == ',') {
                    ++pos_;
                    continue;
                }
                if (at_line_end()) {
                    consume_line_end();
                    return;
                }
                set_error(row, column, "unexpected text after a closing quote");
                text_after_quote = true;
            }
            // Unquoted field (or the junk after a closing quote): up to ',' or a line end.
            std::size_t end = pos_;
            while (end < n && in_[end] != ',' && in_[end] != '\n' && in_[end] != '\r') ++end;
            std::string_view text = in_.substr(pos_, end - pos_);
            if (!text_after_quote) {
                if (text.find('"') != std::string_view::npos)
                    set_error(row, column, "quote inside an unquoted field");
                if (text.size() > max_field_bytes)
                    set_error(row, column,
                              "field longer than " + std::to_string(max_field_bytes) + " bytes");
                else
                    f.assign(text);
            }
            pos_ = end;
            if (pos_ >= n) return;
            if (in_[pos_] == ',') {
                ++pos_;
                continue;
            }
            consume_line_end();
            return;
        }
    }

    void append(CsvRow& row, std::string& f, std::size_t column, char c) {
        if (f.size() >= max_field_bytes) {
            set_error(row, column,
                      "field longer than " + std::to_string(max_field_bytes) + " bytes");
            return;
        }
        f.push_back(c);
    }

    std::string_view in_;
    std::size_t pos_ = 0;
    std::size_t line_ = 1;
    std::string scratch_;
};

// ---- text checks --------------------------------------------------------------------------

// Returns: the length of the well-formed UTF-8 sequence at s[i] (no overlongs, no
// surrogates, nothing above U+10FFFF), or 0 when malformed.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
    auto byte = [&](std::size_t k) -> unsigned { return static_cast<unsigned char>(s[k]); };
    unsigned b0 = byte(i);
    if (b0 < 0x80) return 1;
    std::size_t len;
    unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        len = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        len = 3;
        if (b0 == 0xE0) lo = 0xA0;  // overlong
        if (b0 == 0xED) hi = 0x9F;  // UTF-16 surrogates
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        len = 4;
        if (b0 == 0xF0) lo = 0x90;  // overlong
        if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
    } else {
        return 0;
    }
    if (i + len > s.size()) return 0;
    if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
    for (std::size_t k = 2; k < len; ++k)
        if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
    return len;
}

bool is_control(unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7F; }

// Returns: why `s` is not clean UTF-8 text, or nullopt. Control characters other than tab
// are refused too: no ingested text needs them, and they would corrupt logs.
std::optional<std::string> text_problem(std::string_view s) {
    // Printable ASCII, the common case, needs no decoding.
    if (std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7F; }))
        return std::nullopt;
    for (std::size_t i = 0; i < s.size();) {
        std::size_t len = utf8_sequence(s, i);
        if (len == 0) {
            char buf[96];
            std::snprintf(buf, sizeof buf,
                          "malformed UTF-8 (byte 0x%02X at byte %zu of the field)",
                          static_cast<unsigned char>(s[i]), i + 1);
            return std::string(buf);
        }
        if (len == 1 && is_control(static_cast<unsigned char>(s[i]))) {
            char buf[96];
            std::snprintf(buf, sizeof buf, "control character 0x%02X at byte %zu of the field",
                          static_cast<unsigned char>(s[i]), i + 1);
            return std::string(buf);
        }
        i += len;
    }
    return std::nullopt;
}

// Returns: `s` quoted for a message: at most 40 bytes, cut on a character boundary; bytes
// that are not clean UTF-8 text are shown as \xNN.
std::string shown(std::string_view s) {
    constexpr std::size_t limit = 40;
    std::string out = "'";
    std::size_t i = 0;
    while (i < s.size() && i < limit) {
        std::size_t len = utf8_sequence(s, i);
        if (len == 0 || (len == 1 && is_control(static_cast<unsigned char>(s[i])))) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02X", static_cast<unsigned char>(s[i]));
            out += buf;
            len = 1;
        } else {
            out.append(s.substr(i, len));
        }
        i += len;
    }
    out += i < s.size() ? "...'" : "'";
    return out;
}

std::string_view trim(std::string_view s) {
    auto b = s.find_first_not_of(" \t");
    if (b == std::string_view::npos) return {};
    auto e = s.find_last_not_of(" \t");
    return s.substr(b, e - b + 1);
}

bool is_id_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
}

// [A-Za-z0-9_.-]+
bool is_id(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), is_id_char);
}

// [a-z0-9_]+(\.[a-z0-9_]+)+
bool is_kind(std::string_view s) {
    std::size_t segments = 0, seg_len = 0;
    for (char c : s) {
        if (c == '.') {
            if (seg_len == 0) return false;
            ++segments;
            seg_len = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') {
            ++seg_len;
        } else {
            return false;
        }
    }
    return seg_len > 0 && segments >= 1;
}

// [A-Za-z0-9_.:-]{1,64}
bool is_source(std::string_view s) {
    return !s.empty() && s.size() <= 64 &&
           std::all_of(s.begin(), s.end(), [](char c) { return is_id_char(c) || c == ':'; });
}

// Segments [A-Za-z0-9_.-]+ separated by '/'.
bool is_region(std::string_view s) {
    std::size_t start = 0;
    for (;;) {
        auto end = s.find('/', start);
        if (!is_id(s.substr(start, end == std::string_view::npos ? end : end - start)))
            return false;
        if (end == std::string_view::npos) return true;
        start = end + 1;
    }
}

// Returns: the number `s` spells in full, finite; nullopt otherwise (nan, inf, 1e999,
// trailing text, empty).
std::optional<double> parse_number(std::string_view s) {
    double v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
    return v;
}

bool starts_with(std::string_view s, std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix;
}

std::string number_text(double v) {
    std::ostringstream out;
    out << v;
    return out.str();
}

// ---- header -------------------------------------------------------------------------------

// Maps the header row to the `allowed` column names: result[k] is the field index of
// allowed[k], or -1. The first `required` names must be present. On a problem adds ONE
// error located at the header and returns nullopt: a file with an unknown column is refused
// as a whole.
std::optional<std::vector<int>> read_header(const CsvRow& header,
                                            std::span<const std::string_view> allowed,
                                            std::size_t required, std::string_view unknown_note,
                                            const std::string& file,
                                            std::vector<RowError>& errors) {
    auto fail = [&](std::size_t column, std::string reason) {
        errors.push_back({file, header.line, column, std::move(reason)});
        return std::nullopt;
    };
    if (!header.error.empty()) return fail(header.error_column, "header: " + header.error);
    std::string list;
    for (auto a : allowed) list += (list.empty() ? "" : ",") + std::string(a);
    std::vector<int> index(allowed.size(), -1);
    for (std::size_t i = 0; i < header.count; ++i) {
        std::string_view name = trim(header.field(i));
        if (auto p = text_problem(name)) return fail(i + 1, "header: " + *p);
        auto it = std::find(allowed.begin(), allowed.end(), name);
        if (it == allowed.end()) {
            if (name.empty()) return fail(i + 1, "empty column name (allowed: " + list + ")");
            return fail(i + 1, "unknown column " + shown(name) + " (allowed: " + list + ")" +
                                   std::string(unknown_note));
        }
        auto k = static_cast<std::size_t>(it - allowed.begin());
        if (index[k] >= 0)
            return fail(i + 1, "duplicate column '" + std::string(name) + "' (first in column " +
                                   std::to_string(index[k] + 1) + ")");
        index[k] = static_cast<int>(i);
    }
    std::string required_list;
    for (std::size_t k = 0; k < required; ++k)
        required_list += (k ? "," : "") + std::string(allowed[k]);
    for (std::size_t k = 0; k < required; ++k)
        if (index[k] < 0)
            return fail(0, "missing column '" + std::string(allowed[k]) +
                               "' (required: " + required_list + ")");
    return index;
}

// Checks the field count and the text of every field of a data row.
// Returns: the error for the row, or nullopt.
std::optional<RowError> row_shape_problem(const CsvRow& row, std::size_t columns,
                                          const std::string& file) {
    if (!row.error.empty()) return RowError{file, row.line, row.error_column, row.error};
    if (row.count != columns) {
        std::size_t column = std::min(row.count, columns) + 1;
        std::string reason = row.count < columns
                                 ? "missing field: expected " + std::to_string(columns) +
                                       " fields, got " + std::to_string(row.count)
                                 : "extra field: expected " + std::to_string(columns) +
                                       " fields, got " + std::to_string(row.count);
        return RowError{file, row.line, column, std::move(reason)};
    }
    for (std::size_t i = 0; i < row.count; ++i)
        if (auto p = text_problem(row.field(i))) return RowError{file, row.line, i + 1, *p};
    return std::nullopt;
}

constexpr std::string_view observation_columns[] = {"locality", "time",   "kind",
                                                    "value",    "weight", "source"};
enum ObsCol { c_locality, c_time, c_kind, c_value, c_weight, c_source };
constexpr std::size_t observation_required = 4;  // locality, time, kind, value
constexpr std::string_view person_note = "; no field for a person may be ingested";

constexpr std::string_view locality_columns[] = {"id", "name", "region", "population",
                                                 "neighbours"};
enum LocCol { c_id, c_name, c_region, c_population, c_neighbours };

// The fields of one observation as text, indexed by ObsCol: a CSV field, a JSON string's
// value, or a JSON number's token. Empty weight or source means "not given".
using ObservationText = std::array<std::string_view, std::size(observation_columns)>;

struct FieldProblem {
    ObsCol field;
    std::string reason;
};

// The one set of rules every observation passes, whatever its format.
// Returns: nullopt with `o` filled in, or the first field at fault and why.
std::optional<FieldProblem> validate_observation(const ObservationText& text,
                                                 const ObservationRules& rules, TimePoint latest,
                                                 Observation& o) {
    auto get = [&](ObsCol c) { return trim(text[c]); };
    std::string_view locality = get(c_locality);
    if (locality.empty()) return FieldProblem{c_locality, "empty locality"};
    if (!is_id(locality) || (rules.known_locality && !rules.known_locality(locality)))
        return FieldProblem{c_locality, "unknown locality " + shown(locality)};
    std::string_view time_text = get(c_time);
    auto time = parse_time(time_text);
    if (!time)
        return FieldProblem{c_time, "time " + shown(time_text) +
                                        " is not an ISO 8601 date or UTC date-time"};
    if (*time > latest)
        return FieldProblem{c_time, "time " + format_time(*time) +
                                        " is in the future beyond the tolerance (latest accepted " +
                                        format_time(latest) + ")"};
    std::string_view kind = get(c_kind);
    if (!is_kind(kind))
        return FieldProblem{c_kind,
                            "kind " + shown(kind) + " does not match [a-z0-9_]+(.[a-z0-9_]+)+"};
    std::string_view value_text = get(c_value);
    auto value = parse_number(value_text);
    if (!value) return FieldProblem{c_value, "value " + shown(value_text) + " is not a finite number"};
    if ((starts_with(kind, "school.") || starts_with(kind, "incident.")) && *value < 0)
        return FieldProblem{c_value, "negative count " + number_text(*value) + " for kind " +
                                         std::string(kind)};
    if (starts_with(kind, "presence.") && (*value < 0 || *value > 1))
        return FieldProblem{c_value, "confidence outside 0..1: " + number_text(*value) +
                                         " for kind " + std::string(kind)};
    o.weight = 1;
    if (std::string_view weight_text = get(c_weight); !weight_text.empty()) {
        auto weight = parse_number(weight_text);
        if (!weight || *weight <= 0)
            return FieldProblem{c_weight, "weight " + shown(weight_text) + " is not a number > 0"};
        o.weight = *weight;
    }
    if (std::string_view source = get(c_source); !source.empty()) {
        if (!is_source(source))
            return FieldProblem{c_source, "source does not match [A-Za-z0-9_.:-]{1,64}"};
        o.source = source;
    } else {
        o.source = "unknown";
    }
    o.locality = locality;
    o.time = *time;
    o.kind = kind;
    o.value = *value;
    return std::nullopt;
}

// One row per line, bounded by the shortest possible row (~20 bytes) so that a file of
// empty lines cannot make this reserve more than a few times the file's size.
void reserve_rows(std::vector<Observation>& rows, std::string_view content,
                  const RowChunks* chunks) {
    if (chunks) {
        rows.reserve(chunks->rows);
        return;
    }
    rows.reserve(std::min<std::size_t>(
        static_cast<std::size_t>(std::count(content.begin(), content.end(), '\n')),
        content.size() / 20));
}

// Hands `rows` to the chunk sink once a chunk has accumulated.
// Returns: false when the sink asks parsing to stop.
bool hand_over(std::vector<Observation>& rows, const RowChunks* chunks) {
    if (!chunks || rows.size() < chunks->rows) return true;
    const bool go_on = chunks->sink(rows);
    rows.clear();
    rows.reserve(chunks->rows);  // the sink may have taken the storage
    return go_on;
}

}  // namespace

ObservationParse parse_observations_csv(std::string_view content, const std::string& file,
                                        const ObservationRules& rules, const RowChunks* chunks) {
    ObservationParse out;
    CsvReader reader(content);
    CsvRow row;
    if (!reader.next(row)) {
        out.errors.push_back({file, 1, 0, "empty file, expected a header line"});
        return out;
    }
    auto index = read_header(row, observation_columns, observation_required, person_note, file,
                             out.errors);
    if (!index) {
        while (reader.next(row)) ++out.data_rows;
        return out;
    }
    const std::size_t columns = row.count;
    const TimePoint latest = rules.now + rules.future_tolerance;
    reserve_rows(out.rows, content, chunks);

    ObservationText text{};
    while (reader.next(row)) {
        ++out.data_rows;
        if (auto e = row_shape_problem(row, columns, file)) {
            out.errors.push_back(std::move(*e));
            continue;
        }
        for (std::size_t c = 0; c < text.size(); ++c)
            text[c] = (*index)[c] >= 0 ? row.field(std::size_t((*index)[c])) : std::string_view();
        Observation o;
        if (auto problem = validate_observation(text, rules, latest, o)) {
            out.errors.push_back({file, row.line, std::size_t((*index)[problem->field]) + 1,
                                  std::move(problem->reason)});
            continue;
        }
        out.rows.push_back(std::move(o));
        if (!hand_over(out.rows, chunks)) break;
    }
    return out;
}

// ---- JSON Lines ---------------------------------------------------------------------------

namespace {

enum class JsonType { null, boolean, number, string, object, array };

struct JsonMember {
    std::string key;
    JsonType type = JsonType::null;
    std::string text;  // a string member's decoded value
};

// Collects the members of one top-level JSON object (nested values only by type) from
// nlohmann's SAX events; stops at a top level that is not an object, and records the first
// syntax error with its byte position.
class FlatObjectSax {
public:
    using json = nlohmann::json;

    void reset() {
        members_.clear();
        depth_ = 0;
        top_ = JsonType::object;
        error_.clear();
        error_byte_ = 0;
        overflow_ = false;
        overflow_key_.clear();
    }
    const std::vector<JsonMember>& members() const { return members_; }
    // Type of the top-level value (object unless the line holds something else).
    JsonType top() const { return top_; }
    const std::string& error() const { return error_; }
    std::size_t error_byte() const { return error_byte_; }  // 1-based, of the last byte read
    // The error is a number too large for a double (valid JSON, but not a finite number):
    // the key of the top-level member it was the value of, else empty.
    bool overflow() const { return overflow_; }
    const std::string& overflow_key() const { return overflow_key_; }

    bool null() { return value(JsonType::null); }
    bool boolean(bool) { return value(JsonType::boolean); }
    bool number_integer(json::number_integer_t) { return value(JsonType::number); }
    bool number_unsigned(json::number_unsigned_t) { return value(JsonType::number); }
    bool number_float(json::number_float_t, const json::string_t&) {
        return value(JsonType::number);
    }
    bool string(json::string_t& s) { return value(JsonType::string, &s); }
    bool binary(json::binary_t&) { return value(JsonType::string); }
    bool start_object(std::size_t) { return start(JsonType::object); }
    bool start_array(std::size_t) { return start(JsonType::array); }
    bool end_object() { return --depth_, true; }
    bool end_array() { return --depth_, true; }
    bool key(json::string_t& k) {
        if (depth_ == 1) members_.push_back({std::move(k), JsonType::null, {}});
        return true;
    }
    bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) {
        error_byte_ = position;
        overflow_ = e.id == 406;  // out_of_range.406: number overflow
        if (overflow_ && depth_ == 1 && !members_.empty()) overflow_key_ = members_.back().key;
        // "[json.exception.parse_error.101] parse error at line 1, column 6: <reason>": the
        // position is reported separately, so only the reason is kept.
        error_ = e.what();
        if (auto b = error_.find("] "); b != std::string::npos) error_.erase(0, b + 2);
        if (error_.starts_with("parse error"))
            if (auto colon = error_.find(": "); colon != std::string::npos) error_.erase(0, colon + 2);
        // "...; last read: '<token>'[; expected ...]": the token may be a whole line; a
        // reason quotes, it never copies.
        constexpr std::string_view last_read = "last read: '";
        if (auto from = error_.find(last_read); from != std::string::npos) {
            from += last_read.size() - 1;
            auto to = error_.find("'; expected", from + 1);
            if (to == std::string::npos) to = error_.rfind('\'');
            if (to != std::string::npos && to > from)
                error_.replace(from, to + 1 - from,
                               shown(std::string_view(error_).substr(from + 1, to - from - 1)));
        }
        return false;
    }

private:
    bool value(JsonType type, std::string* text = nullptr) {
        if (depth_ == 0) {
            top_ = type;
            return false;
        }
        if (depth_ == 1 && !members_.empty()) {
            members_.back().type = type;
            if (text) members_.back().text = std::move(*text);
        }
        return true;
    }
    bool start(JsonType type) {
        if (depth_ == 0 && type != JsonType::object) return value(type);
        if (depth_ > 0) value(type);
        ++depth_;
        return true;
    }

    std::vector<JsonMember> members_;
    int depth_ = 0;
    JsonType top_ = JsonType::object;
    std::string error_;
    std::size_t error_byte_ = 0;
    bool overflow_ = false;
    std::string overflow_key_;
};

// Where a top-level member sits in its line (byte offsets).
struct MemberPlace {
    std::size_t key = 0;  // the key's opening quote
    std::size_t value = 0;
    std::size_t value_end = 0;
};

bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

bool is_number_char(char c) {
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

// Returns: the number token that ends at or just before byte offset `at` of `line`.
std::pair<std::size_t, std::string_view> number_before(std::string_view line, std::size_t at) {
    std::size_t end = std::min(at + 1, line.size());
    while (end > 0 && !is_number_char(line[end - 1])) --end;
    std::size_t begin = end;
    while (begin > 0 && is_number_char(line[begin - 1])) --begin;
    return {begin, line.substr(begin, end - begin)};
}

// `line` holds one JSON object that nlohmann accepted, so only its structure is followed.
// Returns: the places of its top-level members, in order (the order of the SAX keys).
void member_places(std::string_view line, std::vector<MemberPlace>& out) {
    out.clear();
    const std::size_t n = line.size();
    std::size_t i = 0;
    auto space = [&] {
        while (i < n && is_json_space(line[i])) ++i;
    };
    auto skip_string = [&] {
        for (++i; i < n && line[i] != '"'; ++i)
            if (line[i] == '\\') ++i;
        ++i;
    };
    auto skip_value = [&] {
        if (i >= n) return;
        if (line[i] == '"') return skip_string();
        if (line[i] == '{' || line[i] == '[') {
            int depth = 0;
            do {
                const char c = line[i];
                if (c == '"') {
                    skip_string();
                    continue;
                }
                if (c == '{' || c == '[') ++depth;
                if (c == '}' || c == ']') --depth;
                ++i;
            } while (i < n && depth > 0);
            return;
        }
        while (i < n && line[i] != ',' && line[i] != '}' && !is_json_space(line[i])) ++i;
    };
    // nlohmann skips a UTF-8 byte order mark before the value, so a line may start with one.
    if (line.starts_with("\xEF\xBB\xBF")) i = 3;
    space();
    ++i;  // '{'
    for (;;) {
        space();
        if (i >= n || line[i] == '}') return;
        MemberPlace p;
        p.key = i;
        skip_string();
        space();
        ++i;  // ':'
        space();
        p.value = i;
        skip_value();
        p.value_end = i;
        out.push_back(p);
        space();
        if (i < n && line[i] == ',') ++i;
    }
}

// Returns: the 1-based character column of byte offset `byte` of the UTF-8 text `line`
// (an offset past the end counts on as if by one-byte characters).
std::size_t char_column(std::string_view line, std::size_t byte) {
    const std::size_t end = std::min(byte, line.size());
    std::size_t chars = 0;
    for (std::size_t i = 0; i < end; ++i)
        if ((static_cast<unsigned char>(line[i]) & 0xC0) != 0x80) ++chars;
    return chars + 1 + (byte - end);
}

std::string allowed_observation_keys() {
    std::string list;
    for (auto a : observation_columns) list += (list.empty() ? "" : ",") + std::string(a);
    return list;
}

}  // namespace

ObservationParse parse_observations_jsonl(std::string_view content, const std::string& file,
                                          const ObservationRules& rules,
                                          const RowChunks* chunks) {
    ObservationParse out;
    if (content.substr(0, 3) == "\xEF\xBB\xBF") content.remove_prefix(3);
    const TimePoint latest = rules.now + rules.future_tolerance;
    const std::string allowed = allowed_observation_keys();
    reserve_rows(out.rows, content, chunks);
    FlatObjectSax sax;
    std::vector<MemberPlace> places;

    std::size_t line_no = 0;
    for (std::size_t pos = 0; pos < content.size();) {
        ++line_no;
        std::size_t eol = content.find('\n', pos);
        if (eol == std::string_view::npos) eol = content.size();
        std::string_view line = content.substr(pos, eol - pos);
        pos = eol + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (std::all_of(line.begin(), line.end(), is_json_space)) continue;
        ++out.data_rows;
        auto reject = [&](std::size_t byte, std::string reason) {
            out.errors.push_back({file, line_no, char_column(line, byte), std::move(reason)});
        };
        if (line.size() > max_jsonl_line_bytes) {
            out.errors.push_back({file, line_no, 0,
                                  "line longer than " + std::to_string(max_jsonl_line_bytes) +
                                      " bytes"});
            continue;
        }
        std::size_t bad = 0;
        while (bad < line.size() && utf8_sequence(line, bad) != 0) bad += utf8_sequence(line, bad);
        if (bad < line.size()) {
            char buf[48];
            std::snprintf(buf, sizeof buf, "malformed UTF-8 (byte 0x%02X)",
                          static_cast<unsigned char>(line[bad]));
            reject(bad, buf);
            continue;
        }

        sax.reset();
        const std::size_t start = line.find_first_not_of(" \t\r");
        if (!nlohmann::json::sax_parse(line.begin(), line.end(), &sax)) {
            const std::size_t at = sax.error_byte() > 0 ? sax.error_byte() - 1 : 0;
            if (sax.overflow()) {
                // The same words as for a CSV field: JSON has no such number, but its
                // producer meant a value.
                auto [begin, token] = number_before(line, at);
                const std::string& key = sax.overflow_key();
                const bool known = std::find(std::begin(observation_columns),
                                             std::end(observation_columns),
                                             key) != std::end(observation_columns);
                reject(begin, (known ? key : std::string("number")) + " " + shown(token) +
                                  " is not a finite number");
            } else if (!sax.error().empty()) {
                reject(at, "invalid JSON: " + sax.error());
            } else {
                static constexpr const char* names[] = {"null",   "a boolean", "a number",
                                                        "a string", "an object", "an array"};
                reject(start, "expected a JSON object with the keys " + allowed + ", got " +
                                  names[static_cast<int>(sax.top())]);
            }
            continue;
        }
        member_places(line, places);
        const auto& members = sax.members();
        if (places.size() != members.size()) {  // cannot happen for JSON nlohmann accepted
            reject(start, "cannot locate the members of this object");
            continue;
        }

        // Which member holds each field: the same rules as a CSV header, per line.
        std::array<std::size_t, std::size(observation_columns)> member_of;
        member_of.fill(SIZE_MAX);
        std::optional<std::pair<std::size_t, std::string>> problem;
        for (std::size_t m = 0; m < members.size() && !problem; ++m) {
            const std::string& key = members[m].key;
            auto it = std::find(std::begin(observation_columns), std::end(observation_columns), key);
            if (it == std::end(observation_columns)) {
                problem = {places[m].key, "unknown key " + shown(key) + " (allowed: " + allowed +
                                              ")" + std::string(person_note)};
                break;
            }
            auto c = static_cast<std::size_t>(it - std::begin(observation_columns));
            if (member_of[c] != SIZE_MAX) {
                problem = {places[m].key,
                           "duplicate key '" + key + "' (first at column " +
                               std::to_string(char_column(line, places[member_of[c]].key)) + ")"};
                break;
            }
            member_of[c] = m;
        }
        for (std::size_t c = 0; c < observation_required && !problem; ++c)
            if (member_of[c] == SIZE_MAX)
                problem = {start, "missing key '" + std::string(observation_columns[c]) +
                                      "' (required: locality,time,kind,value)"};

        // Types: value and weight are JSON numbers, the others strings; an optional field
        // (weight, source) may be null, meaning not given.
        ObservationText text{};
        for (std::size_t c = 0; c < text.size() && !problem; ++c) {
            if (member_of[c] == SIZE_MAX) continue;
            const JsonMember& m = members[member_of[c]];
            const MemberPlace& at = places[member_of[c]];
            const bool optional = c == c_weight || c == c_source;
            const bool numeric = c == c_value || c == c_weight;
            if (m.type == JsonType::null && optional) continue;
            std::string_view raw = line.substr(at.value, at.value_end - at.value);
            if (numeric && m.type != JsonType::number) {
                problem = {at.value, std::string(observation_columns[c]) +
                                         " must be a JSON number, got " + shown(raw) +
                                         (m.type == JsonType::string
                                              ? " (a number in quotes is not accepted)"
                                              : "")};
            } else if (!numeric && m.type != JsonType::string) {
                problem = {at.value, std::string(observation_columns[c]) +
                                         " must be a JSON string, got " + shown(raw)};
            } else if (numeric) {
                text[c] = raw;
            } else if (auto p = text_problem(m.text)) {
                problem = {at.value, std::string(observation_columns[c]) + ": " + *p};
            } else {
                text[c] = m.text;
            }
        }
        if (problem) {
            reject(problem->first, std::move(problem->second));
            continue;
        }
        Observation o;
        if (auto p = validate_observation(text, rules, latest, o)) {
            reject(places[member_of[p->field]].value, std::move(p->reason));
            continue;
        }
        out.rows.push_back(std::move(o));
        if (!hand_over(out.rows, chunks)) return out;
    }
    if (out.data_rows == 0)
        out.errors.push_back({file, 1, 0, "empty file, expected one JSON object per line"});
    return out;
}

ObservationParse parse_observations(std::string_view content, const std::string& file,
                                    IngestFormat format, const ObservationRules& rules,
                                    const RowChunks* chunks) {
    return format == IngestFormat::jsonl ? parse_observations_jsonl(content, file, rules, chunks)
                                         : parse_observations_csv(content, file, rules, chunks);
}

std::string_view to_string(IngestFormat format) {
    return format == IngestFormat::jsonl ? "jsonl" : "csv";
}

std::optional<IngestFormat> parse_ingest_format(std::string_view name) {
    if (name == "csv") return IngestFormat::csv;
    if (name == "jsonl") return IngestFormat::jsonl;
    return std::nullopt;
}

std::optional<IngestFormat> format_of(const std::filesystem::path& file) {
    const auto ext = file.extension();
    if (ext == ".csv") return IngestFormat::csv;
    if (ext == ".jsonl") return IngestFormat::jsonl;
    return std::nullopt;
}

LocalityParse parse_localities_csv(std::string_view content, const std::string& file) {
    LocalityParse out;
    CsvReader reader(content);
    CsvRow row;
    if (!reader.next(row)) {
        out.errors.push_back({file, 1, 0, "empty file, expected a header line"});
        return out;
    }
    auto index = read_header(row, locality_columns, 3, "", file, out.errors);
    if (!index) return out;
    const std::size_t columns = row.count;
    std::unordered_map<std::string, std::size_t> first_line;

    while (reader.next(row)) {
        if (auto e = row_shape_problem(row, columns, file)) {
            out.errors.push_back(std::move(*e));
            continue;
        }
        auto col = [&](LocCol c) { return std::size_t((*index)[c]) + 1; };
        auto has = [&](LocCol c) { return (*index)[c] >= 0; };
        auto get = [&](LocCol c) { return trim(row.field(std::size_t((*index)[c]))); };
        auto reject = [&](LocCol c, std::string reason) {
            out.errors.push_back({file, row.line, col(c), std::move(reason)});
        };

        Locality l;
        std::string_view id = get(c_id);
        if (!is_id(id)) {
            reject(c_id, "id " + shown(id) + " does not match [A-Za-z0-9_.-]+");
            continue;
        }
        if (auto it = first_line.find(std::string(id)); it != first_line.end()) {
            reject(c_id, "duplicate id '" + std::string(id) + "' (first on line " +
                             std::to_string(it->second) + ")");
            continue;
        }
        if (get(c_name).empty()) {
            reject(c_name, "empty name");
            continue;
        }
        std::string_view region = get(c_region);
        if (!is_region(region)) {
            reject(c_region, "region " + shown(region) +
                                 " is not a path of codes [A-Za-z0-9_.-]+ separated by '/'");
            continue;
        }
        if (has(c_population) && !get(c_population).empty()) {
            auto p = parse_number(get(c_population));
            if (!p || *p < 0) {
                reject(c_population,
                       "population " + shown(get(c_population)) + " is not a number >= 0");
                continue;
            }
            l.population = *p;
        }
        bool neighbours_ok = true;
        if (has(c_neighbours) && !get(c_neighbours).empty()) {
            std::string_view rest = get(c_neighbours);
            for (;;) {
                auto semi = rest.find(';');
                std::string_view n = trim(rest.substr(0, semi));
                if (!is_id(n) || n == id) {
                    reject(c_neighbours, n == id ? "a locality cannot be its own neighbour"
                                                 : "neighbour id " + shown(n) +
                                                       " does not match [A-Za-z0-9_.-]+");
                    neighbours_ok = false;
                    break;
                }
                l.neighbours.emplace_back(n);
                if (semi == std::string_view::npos) break;
                rest.remove_prefix(semi + 1);
            }
        }
        if (!neighbours_ok) continue;
        l.id = id;
        l.name = get(c_name);
        l.region = region;
        first_line.emplace(l.id, row.line);
        out.rows.push_back(std::move(l));
    }
    return out;
}

std::string content_digest(std::string_view content) {
    boost::uuids::detail::sha1 sha;
    // In pieces: a file of hundreds of megabytes takes seconds, and its progress keeps the
    // watchdog fed.
    constexpr std::size_t piece = std::size_t{16} << 20;
    for (std::size_t at = 0; at < content.size(); at += piece) {
        sha.process_bytes(content.data() + at, std::min(piece, content.size() - at));
        keepalive::progress();
    }
    boost::uuids::detail::sha1::digest_type digest;
    sha.get_digest(digest);
    char hex[41];
    for (int i = 0; i < 5; ++i)
        std::snprintf(hex + 8 * i, 9, "%08x", static_cast<unsigned>(digest[i]));
    return std::string(hex, 40);
}

namespace {

// Reads all bytes of the regular file `file` into `content`.
// Returns: false with `error` set when it cannot.
bool read_whole_file(const std::filesystem::path& file, std::string& content, std::string& error) {
    int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        error = std::strerror(errno);
        return false;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        const bool stat_failed = S_ISREG(st.st_mode) || st.st_mode == 0;
        error = stat_failed ? std::strerror(errno) : "not a regular file";
        ::close(fd);
        return false;
    }
    const auto expected = static_cast<std::size_t>(st.st_size) + 1;
    content.clear();
    content.reserve(expected);
    advise_huge_pages(content.data(), content.capacity());
    content.resize(expected);
    std::size_t size = 0;
    for (;;) {
        if (size == content.size()) content.resize(content.size() * 2);  // the file grew
        // In pieces, so that a file of hundreds of megabytes shows progress (keepalive.hpp).
        constexpr std::size_t piece = std::size_t{64} << 20;
        keepalive::progress();
        ssize_t n = ::read(fd, content.data() + size, std::min(piece, content.size() - size));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            error = std::strerror(errno);
            ::close(fd);
            return false;
        }
        if (n == 0) break;
        size += static_cast<std::size_t>(n);
    }
    ::close(fd);
    content.resize(size);
    return true;
}

}  // namespace

namespace {

// Parts of a parse handed from the parsing thread to the storing one.
class ChunkQueue {
public:
    void push(std::vector<Observation>&& rows) {
        {
            std::lock_guard lock(mutex_);
            chunks_.push_back(std::move(rows));
        }
        ready_.notify_one();
    }
    void close() {
        {
            std::lock_guard lock(mutex_);
            closed_ = true;
        }
        ready_.notify_one();
    }
    // Returns: the next part, or nullopt once the queue is closed and empty.
    std::optional<std::vector<Observation>> pop() {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [this] { return !chunks_.empty() || closed_; });
        if (chunks_.empty()) return std::nullopt;
        auto rows = std::move(chunks_.front());
        chunks_.pop_front();
        return rows;
    }

private:
    std::mutex mutex_;
    std::condition_variable ready_;
    std::deque<std::vector<Observation>> chunks_;
    bool closed_ = false;
};

IngestRecord record_of(const IngestOutcome& out, const std::string& digest, std::size_t accepted) {
    IngestRecord record;
    record.digest = digest;
    record.name = out.file;
    record.accepted = static_cast<std::int64_t>(accepted);
    record.rejected = static_cast<std::int64_t>(out.data_rows - accepted);
    record.status = out.errors.empty() ? "done" : "partial";
    record.at = wall_now();
    return record;
}

// ingest_content of a large file: the rows are parsed on another thread and handed over in
// parts; while the parts arrive in key order (a file exported in the table's order) each is
// written at once, so parsing and writing overlap; from the first part out of order on, the
// rest is kept and written sorted at the end, as commit_observations would. The digest is
// taken by whichever thread is free first: the parsing thread once it has parsed everything,
// or this one as soon as it stops writing parts (so that on two cores writing never shares
// its core); it is checked as soon as it is ready, and a duplicate stops the parse and rolls
// back what was written. Rows refused by the policy roll back the same way.
IngestOutcome ingest_overlapped(std::string_view content, IngestOutcome out, IngestFormat format,
                                Store& store, const ObservationRules& rules,
                                RejectPolicy policy) {
    std::promise<std::string> digest_result;
    auto pending_digest = digest_result.get_future();
    std::atomic<bool> digest_claimed{false};
    auto take_digest = [&] {
        if (!digest_claimed.exchange(true)) digest_result.set_value(content_digest(content));
    };
    ChunkQueue queue;
    std::atomic<bool> stop{false};
    RowChunks chunks;
    chunks.rows = 32768;
    chunks.sink = [&](std::vector<Observation>& rows) {
        queue.push(std::move(rows));
        return !stop.load(std::memory_order_relaxed);
    };
    auto parsing = std::async(std::launch::async, [&] {
        // The queue closes however the parse ends, so the loop below always ends.
        struct Closer {
            ChunkQueue& q;
            ~Closer() { q.close(); }
        } closer{queue};
        auto parsed = parse_observations(content, out.file, format, rules, &chunks);
        take_digest();
        return parsed;
    });
    // Stops the parse before leaving by an exception (the futures' destructors wait for it).
    struct Stopper {
        std::atomic<bool>& stop;
        ~Stopper() { stop = true; }
    } stopper{stop};

    Store::ObservationWriter writer(store);
    std::vector<Observation> rows;
    rows.reserve(std::min<std::size_t>(
        static_cast<std::size_t>(std::count(content.begin(), content.end(), '\n')),
        content.size() / 20));
    advise_huge_pages(rows.data(), rows.capacity() * sizeof(Observation));
    std::size_t written = 0;  // rows[0, written) are in the transaction already
    bool in_order = true;
    std::string digest;
    bool digest_checked = false;
    auto check_digest = [&] {
        digest = pending_digest.get();
        digest_checked = true;
        if (!store.ingest_seen(digest)) return false;
        stop = true;
        return true;
    };
    auto take = [&](std::vector<Observation>&& part) {
        const std::size_t first = rows.size();
        rows.insert(rows.end(), std::make_move_iterator(part.begin()),
                    std::make_move_iterator(part.end()));
        if (!in_order) return;
        // The new part in key order, and after the last row of the previous one.
        const auto from = static_cast<std::ptrdiff_t>(first > 0 ? first - 1 : 0);
        in_order = std::is_sorted(rows.begin() + from, rows.end(), key_less);
        if (!in_order) {
            take_digest();  // nothing more to write until the parse ends
            return;
        }
        writer.write(std::span<const Observation>(rows).subspan(written));
        written = rows.size();
    };
    bool duplicate = false;
    while (auto part = queue.pop()) {
        keepalive::progress();  // a part is 32k rows parsed, and written when in key order
        if (duplicate) continue;  // drain what the parser had queued before it stopped
        if (!digest_checked &&
            pending_digest.wait_for(std::chrono::seconds(0)) == std::future_status::ready)
            duplicate = check_digest();
        if (!duplicate) take(std::move(*part));
    }
    ObservationParse parsed = parsing.get();
    if (!digest_checked) duplicate = check_digest();  // the parsing thread took it last
    if (duplicate) {
        out.duplicate = true;
        return out;  // the writer rolls back
    }
    if (!parsed.rows.empty()) take(std::move(parsed.rows));
    out.errors = std::move(parsed.errors);
    out.data_rows = parsed.data_rows;
    if (!out.errors.empty() && (policy == RejectPolicy::reject_file || rows.empty()))
        return out;  // the writer rolls back
    if (written < rows.size()) {
        const auto rest = std::span<const Observation>(rows).subspan(written);
        writer.write(rest, key_order(rest));
    }
    writer.commit(record_of(out, digest, rows.size()));
    out.committed = true;
    out.rows = std::move(rows);
    return out;
}

}  // namespace

IngestOutcome ingest_content(std::string_view content, const std::string& name,
                             IngestFormat format, Store& store, const ObservationRules& rules,
                             RejectPolicy policy) {
    IngestOutcome out;
    out.file = name;
    // From this size on, parsing overlaps the digest and the writing (ingest_overlapped).
    constexpr std::size_t parallel_from = 1 << 20;
    if (content.size() >= parallel_from)
        return ingest_overlapped(content, std::move(out), format, store, rules, policy);
    const std::string digest = content_digest(content);
    if (store.ingest_seen(digest)) {
        out.duplicate = true;
        return out;
    }
    ObservationParse parsed = parse_observations(content, out.file, format, rules);
    out.errors = std::move(parsed.errors);
    out.data_rows = parsed.data_rows;
    // Nothing is committed when the policy refuses any error, or when no row at all is
    // usable (a file refused as a whole: empty, unknown column, every row bad).
    if (!out.errors.empty() && (policy == RejectPolicy::reject_file || parsed.rows.empty()))
        return out;
    store.commit_observations(parsed.rows, record_of(out, digest, parsed.rows.size()));
    out.committed = true;
    out.rows = std::move(parsed.rows);
    return out;
}

IngestOutcome ingest_file(const std::filesystem::path& file, Store& store,
                          const ObservationRules& rules, RejectPolicy policy) {
    std::string content, read_error;
    if (!read_whole_file(file, content, read_error)) {
        IngestOutcome out;
        out.file = file.string();
        out.errors.push_back({out.file, 0, 0, "cannot read the file: " + read_error});
        return out;
    }
    return ingest_content(content, file.string(), format_of(file).value_or(IngestFormat::csv),
                          store, rules, policy);
}

// ---- spool --------------------------------------------------------------------------------

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// CSV-quotes `s` when it holds a comma, quote or line break.
std::string csv_field(std::string_view s) {
    if (s.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(s);
    std::string out = "\"";
    for (char c : s) {
        if (c == '"') out += '"';
        out += c;
    }
    out += '"';
    return out;
}

void write_file(const std::filesystem::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out)
        throw std::filesystem::filesystem_error(
            "cannot write", path, std::error_code(errno ? errno : EIO, std::generic_category()));
}

}  // namespace

Spool::Spool(std::filesystem::path dir) : dir_(std::move(dir)) {
    std::filesystem::create_directories(dir_ / "done");
    std::filesystem::create_directories(dir_ / "failed");
    fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd_ >= 0 && ::inotify_add_watch(fd_, dir_.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
        ::close(fd_);
        fd_ = -1;
    }
}

Spool::~Spool() {
    if (fd_ >= 0) ::close(fd_);
}

void Spool::drain_events() {
    if (fd_ < 0) return;
    alignas(inotify_event) char buf[4096];
    while (::read(fd_, buf, sizeof buf) > 0) {
    }
}

std::vector<std::filesystem::path> Spool::pending() const {
    std::vector<std::filesystem::path> out;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
        // Symlinks are not followed: the daemon reads only files dropped into the spool.
        if (!entry.is_regular_file(ec) || entry.is_symlink(ec)) continue;
        const std::string name = entry.path().filename().string();
        if (name.empty() || name.front() == '.' || ends_with(name, ".rejected.csv") ||
            !(ends_with(name, ".csv") || ends_with(name, ".jsonl")))
            continue;
        out.push_back(entry.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

void Spool::finish(const IngestOutcome& outcome) {
    namespace fs = std::filesystem;
    const fs::path source(outcome.file);
    const bool done = outcome.duplicate || outcome.committed;
    const fs::path target_dir = dir_ / (done ? "done" : "failed");
    const std::string stem = source.stem().string();
    const std::string ext = source.extension().string();
    const std::string companion_suffix = done ? ".rejected.csv" : ".error";
    const bool write_companion = !done || (outcome.committed && !outcome.errors.empty());

    // NAME.csv, else NAME.1.csv, NAME.2.csv, ...: never overwrite an earlier file or report.
    fs::path target, companion;
    for (unsigned n = 0;; ++n) {
        const std::string base = n == 0 ? stem : stem + "." + std::to_string(n);
        target = target_dir / (base + ext);
        companion = target_dir / (base + companion_suffix);
        if (!fs::exists(target) && !(write_companion && fs::exists(companion))) break;
    }

    if (write_companion) {
        std::string text;
        if (done) {
            text = "line,column,reason\n";
            for (const auto& e : outcome.errors)
                text += std::to_string(e.line) + "," + std::to_string(e.column) + "," +
                        csv_field(e.reason) + "\n";
        } else {
            for (const auto& e : outcome.errors) text += e.format() + "\n";
        }
        write_file(companion, text);
    }
    fs::rename(source, target);
}

}  // namespace ews
