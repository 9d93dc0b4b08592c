// store.hpp: the SQLite database in state_dir. The only module that includes sqlite3.h;
// all SQL lives in store.cpp. One writer (the daemon, or ewsctl when no daemon runs).
// WAL mode, foreign keys on, busy_timeout, schema version in PRAGMA user_version with
// forward migrations run at open.
#pragma once

#include "model.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

struct sqlite3;

namespace ews {

class StoreError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct IngestRecord {
    std::string digest;  // hex digest of the file's bytes
    std::string name;    // file name as given
    std::int64_t accepted = 0;
    std::int64_t rejected = 0;
    std::string status;  // "done", "partial", "failed"
    TimePoint at{};
};

// One published message in an endpoint's outbox. `seq` is gapless per endpoint.
struct OutboxRow {
    std::string endpoint;
    std::uint64_t seq = 0;
    std::string topic;
    std::string payload;   // JSON, contains the same seq
    std::string alert_id;  // empty for messages that are not about an alert
    std::string locality;  // empty for messages that are not about a locality
};

// Not thread-safe: one thread at a time uses a Store (the daemon's main thread).
class Store {
public:
    static constexpr int schema_version = 1;

    // Opens or creates the database file, runs migrations.
    // Throws: StoreError (cannot open, corrupt, newer schema than this build knows).
    explicit Store(const std::filesystem::path& file);
    ~Store();
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    int user_version();

    // Localities: create or update by id, one transaction.
    void upsert_localities(const std::vector<Locality>& localities);
    std::vector<Locality> localities();

    // Returns: true when an ingest with this digest has been committed before.
    bool ingest_seen(const std::string& digest);
    // One transaction: upsert every row by its natural key (locality, kind, time, source)
    // and record the ingest. Rows must name known localities. Returns: rows written.
    std::size_t commit_observations(const std::vector<Observation>& rows, const IngestRecord& record);
    // Calls `fn` for every stored observation, ordered by locality, kind, time, source.
    void for_each_observation(const std::function<void(const Observation&)>& fn);
    std::int64_t observation_count();

    std::vector<AlertState> alert_states();
    // Returns: the last seq used on `endpoint`, 0 when none.
    std::uint64_t last_seq(const std::string& endpoint);
    // One transaction: upsert `changed` states and append `rows`. Each row's seq must be the
    // endpoint's last_seq + 1, + 2, ... Throws: StoreError (then nothing is written).
    void commit_evaluation(const std::vector<AlertState>& changed, const std::vector<OutboxRow>& rows);
    // Returns: rows of `endpoint` with seq > after, ascending, at most `limit`.
    std::vector<OutboxRow> outbox_after(const std::string& endpoint, std::uint64_t after,
                                        std::size_t limit);
    // Returns: for each alert open now (alert_state.level > none) whose topic starts with
    // `topic_prefix`, the newest outbox row on `endpoint` about it.
    std::vector<OutboxRow> open_alert_rows(const std::string& endpoint, const std::string& topic_prefix);

    // Small key/value table for the daemon's own bookkeeping.
    std::optional<std::string> meta(const std::string& key);
    void set_meta(const std::string& key, const std::string& value);

    // Appends `what` to the audit table, stamped with the wall clock (config reloads,
    // plugin loads, keys). One transaction.
    void audit(const std::string& what);

private:
    void open();
    void migrate();
    void close() noexcept;
    // Runs `sql`; stores the first column of its first row in `first_value` when given.
    void exec(const char* sql, std::string_view what, std::string* first_value = nullptr);
    std::string where(std::string_view what) const;
    std::string corrupt_message(const std::string& detail) const;

    std::filesystem::path file_;
    sqlite3* db_ = nullptr;
    struct Statements;
    std::unique_ptr<Statements> st_;
};

}  // namespace ews
