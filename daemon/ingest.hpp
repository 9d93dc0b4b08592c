// ingest.hpp: parsing and validation of localities (CSV) and observations (CSV or JSON
// Lines), and the spool directory. Pure parsing functions take bytes and return rows plus
// located errors; both observation formats pass one set of field rules. The spool functions
// move a file to done/ or failed/ only after its rows are committed.
#pragma once

#include "model.hpp"
#include "config.hpp"
#include "store.hpp"

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ews {

struct RowError {
    std::string file;
    std::size_t line = 0;    // 1-based physical line of the row
    // CSV: 1-based field number. JSON Lines: 1-based character column (UTF-8 code points)
    // of the offending value, key or syntax error in the line. 0 when the whole row/file is
    // at fault.
    std::size_t column = 0;
    std::string reason;
    std::string format() const;  // "file:line:column: reason"
};

struct ObservationParse {
    std::vector<Observation> rows;
    std::vector<RowError> errors;
    std::size_t data_rows = 0;  // rows seen, excluding the header
};

struct LocalityParse {
    std::vector<Locality> rows;
    std::vector<RowError> errors;
};

struct ObservationRules {
    std::function<bool(std::string_view)> known_locality;
    TimePoint now{};
    std::chrono::seconds future_tolerance{86400};
};

// Hands parsed rows over in parts while parsing goes on (ingest_content stores the first
// parts while the rest is parsed on another core). Each time `rows` have accumulated, `sink`
// is called with them; it takes what it wants (e.g. moves them out) and the parser clears
// the vector. Rows parsed after the last call are left in ObservationParse::rows. Returns
// false to stop parsing early: data_rows and errors then cover only what was read.
struct RowChunks {
    std::size_t rows = 65536;
    std::function<bool(std::vector<Observation>& rows)> sink;
};

// CSV with header `locality,time,kind,value,weight,source` (columns in any order; weight
// optional, default 1; source optional, default "unknown"). Accepts a UTF-8 BOM, CRLF line
// ends and RFC 4180 quoting. Unknown column: the whole file is rejected (error at line 1).
ObservationParse parse_observations_csv(std::string_view content, const std::string& file,
                                        const ObservationRules& rules,
                                        const RowChunks* chunks = nullptr);

// JSON Lines: one object per line with the CSV's keys (`locality`, `time`, `kind`, `value`
// required; `weight`, `source` optional, null meaning not given). `value` and `weight` must
// be JSON numbers (a number in quotes is refused, so that a producer's type error shows);
// the other fields strings. Every field then passes exactly the CSV's rules. Lines are
// physical ('\n'; a '\r' before it is dropped); blank lines are skipped; a UTF-8 BOM at the
// start is skipped. Each line stands alone: malformed UTF-8, invalid JSON (located where
// nlohmann's parser stopped), a value that is not an object, an unknown key ("no field for
// a person may be ingested"), a duplicate key, a missing key or a bad field rejects that
// line only. A file without any object is an error at line 1.
ObservationParse parse_observations_jsonl(std::string_view content, const std::string& file,
                                          const ObservationRules& rules,
                                          const RowChunks* chunks = nullptr);

// Longest JSON Lines line accepted (a longer one is rejected unparsed).
inline constexpr std::size_t max_jsonl_line_bytes = 65536;

enum class IngestFormat { csv, jsonl };

std::string_view to_string(IngestFormat format);  // "csv", "jsonl"
// Returns: the format `name` spells ("csv", "jsonl"), or nullopt.
std::optional<IngestFormat> parse_ingest_format(std::string_view name);
// Returns: the format a file name's extension names (".csv", ".jsonl"), or nullopt.
std::optional<IngestFormat> format_of(const std::filesystem::path& file);

ObservationParse parse_observations(std::string_view content, const std::string& file,
                                    IngestFormat format, const ObservationRules& rules,
                                    const RowChunks* chunks = nullptr);

// CSV with header `id,name,region,population,neighbours` (neighbours `;`-separated ids).
LocalityParse parse_localities_csv(std::string_view content, const std::string& file);

// Returns: hex SHA-1 of `content`, used to recognise a file ingested before.
std::string content_digest(std::string_view content);

struct IngestOutcome {
    std::string file;
    bool duplicate = false;   // same bytes were committed before: nothing written
    bool committed = false;   // rows were committed (possibly zero rows)
    std::vector<Observation> rows;  // rows committed, for the engine
    std::vector<RowError> errors;
    std::size_t data_rows = 0;
};

// Validates `content` (named `name` in errors and in the ingest record) and commits its
// good rows in one transaction (policy partial) or nothing when any row is bad (policy
// reject_file). Content committed before (same digest) is a duplicate: nothing is written.
// Content with errors and no good row (empty, unknown column, every row bad) is not
// committed under either policy, so it is not recorded as seen and can be ingested again
// once fixed. A header-only CSV commits zero rows. Never throws for bad content.
// Throws: StoreError when the database fails (then nothing was committed).
IngestOutcome ingest_content(std::string_view content, const std::string& name,
                             IngestFormat format, Store& store, const ObservationRules& rules,
                             RejectPolicy policy);

// ingest_content() of the file's bytes: JSON Lines when its name ends in ".jsonl", CSV
// otherwise. An unreadable file is an error with line 0, not an exception.
IngestOutcome ingest_file(const std::filesystem::path& file, Store& store,
                          const ObservationRules& rules, RejectPolicy policy);

// The spool directory: files `*.csv` and `*.jsonl` dropped there (written elsewhere and renamed in, or
// closed after writing) are ingested, then moved to done/ or failed/.
class Spool {
public:
    // Creates dir, dir/done and dir/failed when missing; starts an inotify watch.
    explicit Spool(std::filesystem::path dir);
    ~Spool();
    Spool(const Spool&) = delete;
    Spool& operator=(const Spool&) = delete;

    // inotify file descriptor to poll for readability, -1 when inotify is unavailable.
    int watch_fd() const { return fd_; }
    // Reads and discards pending inotify events (call when watch_fd() is readable).
    void drain_events();
    // Returns: spool files ready to ingest (*.csv or *.jsonl, not hidden, not *.rejected.csv),
    // by name.
    std::vector<std::filesystem::path> pending() const;
    // After ingest_file: a committed or duplicate file moves to done/ (with errors under
    // policy partial, done/NAME.rejected.csv lists each rejected row's line, column and
    // reason); a file not committed moves to failed/ with failed/NAME.error listing why.
    // NAME is the file name without ".csv" or ".jsonl" (the report is CSV either way); an
    // existing NAME gets a suffix (NAME.1.csv).
    // Throws: std::filesystem::filesystem_error when the report or the move fails.
    void finish(const IngestOutcome& outcome);
    const std::filesystem::path& dir() const { return dir_; }

private:
    std::filesystem::path dir_;
    int fd_ = -1;
};

}  // namespace ews
