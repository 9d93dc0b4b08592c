// ingest.cpp: CSV reading, row validation, ingest of one file into the store, and the spool
// directory. Validation is strict on purpose: the schema has no field for a person, and a
// row is stored only when every field is what its column promises.
#include "ingest.hpp"

#include <boost/uuid/detail/sha1.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
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

constexpr std::string_view locality_columns[] = {"id", "name", "region", "population",
                                                 "neighbours"};
enum LocCol { c_id, c_name, c_region, c_population, c_neighbours };

}  // namespace

ObservationParse parse_observations_csv(std::string_view content, const std::string& file,
                                        const ObservationRules& rules) {
    ObservationParse out;
    CsvReader reader(content);
    CsvRow row;
    if (!reader.next(row)) {
        out.errors.push_back({file, 1, 0, "empty file, expected a header line"});
        return out;
    }
    auto index = read_header(row, observation_columns, 4,
                             "; no field for a person may be ingested", file, out.errors);
    if (!index) {
        while (reader.next(row)) ++out.data_rows;
        return out;
    }
    const std::size_t columns = row.count;
    const TimePoint latest = rules.now + rules.future_tolerance;
    // One row per line, bounded by the shortest possible row (~20 bytes) so that a file of
    // empty lines cannot make this reserve more than a few times the file's size.
    out.rows.reserve(std::min<std::size_t>(
        static_cast<std::size_t>(std::count(content.begin(), content.end(), '\n')),
        content.size() / 20));

    while (reader.next(row)) {
        ++out.data_rows;
        if (auto e = row_shape_problem(row, columns, file)) {
            out.errors.push_back(std::move(*e));
            continue;
        }
        auto col = [&](ObsCol c) { return std::size_t((*index)[c]) + 1; };
        auto get = [&](ObsCol c) { return trim(row.field(std::size_t((*index)[c]))); };
        auto reject = [&](ObsCol c, std::string reason) {
            out.errors.push_back({file, row.line, col(c), std::move(reason)});
        };

        Observation o;
        std::string_view locality = get(c_locality);
        if (locality.empty()) {
            reject(c_locality, "empty locality");
            continue;
        }
        if (!is_id(locality) || (rules.known_locality && !rules.known_locality(locality))) {
            reject(c_locality, "unknown locality " + shown(locality));
            continue;
        }
        std::string_view time_text = get(c_time);
        auto time = parse_time(time_text);
        if (!time) {
            reject(c_time, "time " + shown(time_text) +
                               " is not an ISO 8601 date or UTC date-time");
            continue;
        }
        if (*time > latest) {
            reject(c_time, "time " + format_time(*time) +
                               " is in the future beyond the tolerance (latest accepted " +
                               format_time(latest) + ")");
            continue;
        }
        std::string_view kind = get(c_kind);
        if (!is_kind(kind)) {
            reject(c_kind, "kind " + shown(kind) + " does not match [a-z0-9_]+(.[a-z0-9_]+)+");
            continue;
        }
        std::string_view value_text = get(c_value);
        auto value = parse_number(value_text);
        if (!value) {
            reject(c_value, "value " + shown(value_text) + " is not a finite number");
            continue;
        }
        if ((starts_with(kind, "school.") || starts_with(kind, "incident.")) && *value < 0) {
            reject(c_value, "negative count " + number_text(*value) + " for kind " +
                                std::string(kind));
            continue;
        }
        if (starts_with(kind, "presence.") && (*value < 0 || *value > 1)) {
            reject(c_value, "confidence outside 0..1: " + number_text(*value) + " for kind " +
                                std::string(kind));
            continue;
        }
        if ((*index)[c_weight] >= 0 && !get(c_weight).empty()) {
            auto weight = parse_number(get(c_weight));
            if (!weight || *weight <= 0) {
                reject(c_weight, "weight " + shown(get(c_weight)) + " is not a number > 0");
                continue;
            }
            o.weight = *weight;
        }
        if ((*index)[c_source] >= 0 && !get(c_source).empty()) {
            if (!is_source(get(c_source))) {
                reject(c_source, "source does not match [A-Za-z0-9_.:-]{1,64}");
                continue;
            }
            o.source = get(c_source);
        } else {
            o.source = "unknown";
        }
        o.locality = locality;
        o.time = *time;
        o.kind = kind;
        o.value = *value;
        out.rows.push_back(std::move(o));
    }
    return out;
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
    sha.process_bytes(content.data(), content.size());
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
    content.assign(static_cast<std::size_t>(st.st_size) + 1, '\0');
    std::size_t size = 0;
    for (;;) {
        if (size == content.size()) content.resize(content.size() * 2);  // the file grew
        ssize_t n = ::read(fd, content.data() + size, content.size() - size);
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

IngestOutcome ingest_file(const std::filesystem::path& file, Store& store,
                          const ObservationRules& rules, RejectPolicy policy) {
    IngestOutcome out;
    out.file = file.string();
    std::string content, read_error;
    if (!read_whole_file(file, content, read_error)) {
        out.errors.push_back({out.file, 0, 0, "cannot read the file: " + read_error});
        return out;
    }
    const std::string digest = content_digest(content);
    if (store.ingest_seen(digest)) {
        out.duplicate = true;
        return out;
    }
    ObservationParse parsed = parse_observations_csv(content, out.file, rules);
    out.errors = std::move(parsed.errors);
    out.data_rows = parsed.data_rows;
    // Nothing is committed when the policy refuses any error, or when no row at all is
    // usable (a file refused as a whole: empty, unknown column, every row bad).
    if (!out.errors.empty() && (policy == RejectPolicy::reject_file || parsed.rows.empty()))
        return out;

    IngestRecord record;
    record.digest = digest;
    record.name = out.file;
    record.accepted = static_cast<std::int64_t>(parsed.rows.size());
    record.rejected = static_cast<std::int64_t>(out.data_rows - parsed.rows.size());
    record.status = out.errors.empty() ? "done" : "partial";
    record.at = wall_now();
    store.commit_observations(parsed.rows, record);
    out.committed = true;
    out.rows = std::move(parsed.rows);
    return out;
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
        if (name.empty() || name.front() == '.' || !ends_with(name, ".csv") ||
            ends_with(name, ".rejected.csv"))
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
