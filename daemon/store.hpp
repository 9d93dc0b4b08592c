// store.hpp: the SQLite database in state_dir. The only module that includes sqlite3.h;
// all SQL lives in store.cpp. One writer (the daemon, or ewsctl when no daemon runs).
// WAL mode, foreign keys on, busy_timeout, schema version in PRAGMA user_version with
// forward migrations run at open. Also the store's lifecycle: online backup, retention,
// integrity checks and size statistics, some of which work on the file of a running daemon
// through a separate read-only connection (WAL lets it read while the daemon writes).
#pragma once

#include "model.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <span>
#include <string>
#include <string_view>
#include <utility>
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

// An event that happened but was not published: held by a silence or while flapping.
// Stored for review (`ewsctl silence list`, reports); never numbered on any endpoint.
struct HeldRow {
    TimePoint at{};
    std::string locality;
    std::string alert_id;
    std::string event;
    std::string reason;           // "flapping" or "silence <id>"
    std::int64_t silence_id = 0;  // 0 when held for flapping
    std::string payload;          // the JSON it would have been published as (seq 0)
};

// A silence: events of the localities it covers are stored but not published until `until`
// or until it is expired, whichever comes first.
struct Silence {
    std::int64_t id = 0;          // assigned by the store
    std::string locality;         // exactly one of locality and region is set
    std::string region;           // region prefix: "KE/KE-03" covers KE/KE-03 and below
    TimePoint until{};
    std::string reason;
    std::string by;
    TimePoint created{};
    std::optional<TimePoint> expired;  // set by expire_silence
    std::string expired_by;
    std::int64_t held = 0;        // events held by it so far (filled by silences())

    // Returns: true when in force at `now` (not expired, now < until).
    bool active(TimePoint now) const { return !expired && now < until; }
};

// An acknowledgement of an open alert by a member of staff.
struct Acknowledgement {
    std::string alert_id;
    std::string locality;
    std::string by;
    std::string note;
    TimePoint at{};
};

// Rows removed by one Store::apply_retention.
struct RetentionResult {
    std::int64_t observations = 0;
    std::int64_t ingests = 0;
    std::int64_t outbox = 0;
    std::int64_t held = 0;  // held events (silence, flapping), with the alerts' keep
};

struct TableCount {
    std::string table;
    std::int64_t rows = 0;
};

// What `ewsctl db stats` shows; one read snapshot.
struct StoreStats {
    int schema_version = 0;
    std::uint64_t file_bytes = 0;  // page_count * page_size
    std::uint64_t free_bytes = 0;  // freelist_count * page_size: reused before the file grows
    std::uint64_t wal_bytes = 0;   // size of the -wal file, 0 when there is none
    std::vector<TableCount> tables;  // every table, by name
    std::int64_t observations = 0;
    std::optional<TimePoint> oldest_observation;
    std::optional<TimePoint> newest_observation;
    std::vector<std::pair<std::string, std::int64_t>> kinds;  // top 20 by rows, then by name
    std::vector<std::pair<std::string, std::uint64_t>> last_seq;  // per endpoint, by name
};

// What one backup wrote.
struct BackupResult {
    std::filesystem::path file;  // the final name
    std::uint64_t bytes = 0;
    int schema_version = 0;
    std::vector<TableCount> tables;  // row counts in the backup, every table by name
};

// The order of the observations table's key: locality, kind, time, source.
bool key_less(const Observation& a, const Observation& b);
// Returns: the indices of `rows` sorted by key, stable (of rows with one key, the earlier
// first); empty when `rows` are in key order already.
std::vector<std::uint32_t> key_order(std::span<const Observation> rows);

// Not thread-safe: one thread at a time uses a Store (the daemon's main thread). Two Store
// objects on the same file, each used by its own thread or process, are fine.
class Store {
public:
    static constexpr int schema_version = 3;

    // Opens or creates the database file, runs migrations.
    // Throws: StoreError (cannot open, corrupt, newer schema than this build knows).
    explicit Store(const std::filesystem::path& file);
    ~Store();
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    int user_version();

    // The database file.
    const std::filesystem::path& file() const { return file_; }
    // SQLite's automatic WAL checkpoint on this connection: run by the commit that leaves
    // more than `pages` pages in the WAL (SQLite's default 1000); 0 = never, for a daemon
    // whose WalCheckpointer checkpoints from a thread of its own.
    void set_autocheckpoint(int pages);
    // For a writer whose checkpoints run elsewhere (set_autocheckpoint(0) and a
    // WalCheckpointer): the commit that leaves more than `pages` pages in the WAL runs a
    // TRUNCATE checkpoint itself, which copies what the WalCheckpointer has not copied yet and
    // empties the WAL file. Without it a steady writer's WAL grows without end: SQLite starts
    // the WAL over only at a commit that finds every frame copied, and a commit every few ms
    // never leaves a second connection's checkpoint time to get there (10 GiB in a 30-minute
    // soak at 10k rows/s). Replaces the automatic checkpoint; 0 turns it off.
    void truncate_wal_above(int pages);
    // 65536 pages of 4 KiB: 256 MiB of WAL. Emptying it pauses the writer (about 100 ms on the
    // development machine), so it should happen rarely: at 10k rows/s about once a minute.
    static constexpr int default_wal_truncate_pages = 65536;

    // Localities: create or update by id, one transaction.
    void upsert_localities(const std::vector<Locality>& localities);
    std::vector<Locality> localities();

    // Returns: true when an ingest with this digest has been committed before.
    bool ingest_seen(const std::string& digest);
    // One transaction: upsert every row by its natural key (locality, kind, time, source)
    // and record the ingest. Rows must name known localities. Returns: rows written.
    std::size_t commit_observations(const std::vector<Observation>& rows, const IngestRecord& record);

    // commit_observations in steps, for rows that arrive in parts: the transaction begins
    // with the object, write() upserts rows, commit() records the ingest and commits.
    // Dropping the object before commit() rolls everything back. Nothing else may use the
    // Store while one is open, except ingest_seen().
    class ObservationWriter {
    public:
        explicit ObservationWriter(Store& store);
        ~ObservationWriter();
        ObservationWriter(const ObservationWriter&) = delete;
        ObservationWriter& operator=(const ObservationWriter&) = delete;

        // Upserts rows[i] for each i of `order` in turn, or every row in turn when `order`
        // is empty (key order is several times faster than any other). Of two rows with one
        // key, the one written later wins. Rows must name known localities.
        // Throws: StoreError; the object must then be dropped (which rolls back).
        void write(std::span<const Observation> rows, std::span<const std::uint32_t> order = {});
        // Records the ingest and commits. Returns: rows written.
        std::size_t commit(const IngestRecord& record);

    private:
        Store& store_;
        struct Impl;
        std::unique_ptr<Impl> impl_;
    };
    // Calls `fn` for every stored observation, ordered by locality, kind, time, source.
    void for_each_observation(const std::function<void(const Observation&)>& fn);
    std::int64_t observation_count();

    std::vector<AlertState> alert_states();
    // Returns: the last seq used on `endpoint`, 0 when none.
    std::uint64_t last_seq(const std::string& endpoint);
    // One transaction: upsert `changed` states (every field, lifecycle included), append `rows`
    // and `held`. Each row's seq must be the endpoint's last_seq + 1, + 2, ...
    // Throws: StoreError (then nothing is written).
    void commit_evaluation(const std::vector<AlertState>& changed, const std::vector<OutboxRow>& rows,
                           const std::vector<HeldRow>& held = {});
    // Returns: held events, newest first, at most `limit`; only those of `silence_id` when
    // it is not 0.
    std::vector<HeldRow> held_events(std::int64_t silence_id, std::size_t limit);

    // Silences. add_silence and expire_silence write the audit table in the same transaction.
    // Returns: the new silence's id.
    std::int64_t add_silence(const Silence& silence);
    // Returns: silences in force at `now` (all silences, newest first, with `include_ended`),
    // each with its count of held events.
    std::vector<Silence> silences(TimePoint now, bool include_ended);
    // Ends silence `id` at `at`. Returns: false when there is no such silence or it has already
    // ended (expired, or past its until at `at`).
    bool expire_silence(std::int64_t id, const std::string& by, TimePoint at);

    // One transaction: stores `ack`, upserts `state` (its acknowledgement fields set) and
    // writes the audit table.
    void commit_acknowledgement(const AlertState& state, const Acknowledgement& ack);
    // Returns: acknowledgements of `alert_id` (all when empty), oldest first.
    std::vector<Acknowledgement> acknowledgements(const std::string& alert_id);
    // Returns: the rows `endpoint`'s outbox keeps (retention removes old ones).
    std::uint64_t outbox_rows(const std::string& endpoint);
    // Returns: rows of `endpoint` with seq > after, ascending, at most `limit`.
    std::vector<OutboxRow> outbox_after(const std::string& endpoint, std::uint64_t after,
                                        std::size_t limit);
    // Returns: every kept outbox row about a locality (alert and data events), of every
    // endpoint, by endpoint and seq. An event appears once per endpoint that published it.
    std::vector<OutboxRow> locality_rows();
    // Returns: for each alert subscribers know as open (the notified alert of alert_state:
    // while a silence or flapping holds events, what was last published) whose topic starts
    // with `topic_prefix`, the newest outbox row on `endpoint` about it.
    std::vector<OutboxRow> open_alert_rows(const std::string& endpoint, const std::string& topic_prefix);

    // Small key/value table for the daemon's own bookkeeping.
    std::optional<std::string> meta(const std::string& key);
    void set_meta(const std::string& key, const std::string& value);

    // Appends `what` to the audit table, stamped with the wall clock (config reloads,
    // plugin loads, keys). One transaction.
    void audit(const std::string& what);

    // ---- lifecycle --------------------------------------------------------------------

    // Writes a consistent copy of the database to `out` with SQLite's online backup API:
    // first to a hidden temporary file beside `out`, checked with PRAGMA integrity_check,
    // synced, then renamed to `out` (replacing a file there). On any failure nothing is left
    // at or beside `out` and an existing `out` is untouched. The copy is a single file in
    // rollback-journal mode; Store switches it back to WAL when it is opened.
    // Throws: StoreError naming the file and the cause.
    BackupResult backup(const std::filesystem::path& out);
    // The same, reading `db_file` through its own read-only connection, so it can run while
    // a daemon writes to the file (`ewsctl backup`).
    static BackupResult backup_database(const std::filesystem::path& db_file,
                                        const std::filesystem::path& out);

    // Deletes, each only when its keep is given (>= 1 day):
    //  - observations whose time is before now - keep_observations, and ingest records
    //    committed before then (a file that old may be ingested again);
    //  - outbox rows committed before now - keep_alerts, except the newest row of each
    //    endpoint (last_seq is its max seq, so the numbering continues after a purge) and
    //    the newest row of each notified open alert on each endpoint (open_alert_rows
    //    serves it);
    //    held events committed before then too.
    // Works in transactions of about `batch_rows` deleted rows so the WAL stays small and
    // the write lock is held briefly; a crash between them leaves a consistent store that
    // the next call finishes. The freed pages are reused; the file does not shrink.
    // Throws: StoreError (a keep below one day; SQLite errors).
    RetentionResult apply_retention(TimePoint now, std::optional<std::chrono::days> keep_observations,
                                    std::optional<std::chrono::days> keep_alerts,
                                    std::size_t batch_rows = 20000);

    // Full PRAGMA integrity_check (reads every page and checks every index: O(N log N)).
    // Returns: the problems found; empty when the database is sound.
    std::vector<std::string> integrity_check();
    // The same on `db_file` through a read-only connection (`ewsctl db check`).
    static std::vector<std::string> integrity_check_file(const std::filesystem::path& db_file);

    StoreStats stats();
    // The same on `db_file` through a read-only connection (`ewsctl db stats`).
    static StoreStats stats_of_file(const std::filesystem::path& db_file);

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

// Checkpoints the WAL of a database from a thread and connection of its own, so that the
// writer (the daemon's event loop) never waits for one: a checkpoint copies the WAL's pages
// into the database file and syncs both, which at a steady ingest took 5-25 ms on the loop
// twice a second (bench/latency_bench.cpp). Every `interval` it runs a PASSIVE checkpoint,
// which takes no lock that the writer or readers wait for and copies what it can; SQLite
// starts the WAL from its beginning again at the next commit after a checkpoint that copied
// everything. Give the writer's Store set_autocheckpoint(0) while one runs.
class WalCheckpointer {
public:
    // Opens its connection (never creates the file). Throws: StoreError.
    WalCheckpointer(const std::filesystem::path& file, std::chrono::milliseconds interval);
    ~WalCheckpointer();  // stops the thread (at most one checkpoint's time) and closes
    WalCheckpointer(const WalCheckpointer&) = delete;
    WalCheckpointer& operator=(const WalCheckpointer&) = delete;

    // Checkpoints that succeeded so far.
    std::uint64_t checkpoints() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ews
