// store.cpp: every SQL statement of ewsd. See store.hpp for the contract.
#include "store.hpp"

#include "keepalive.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <numeric>
#include <thread>
#include <utility>

namespace ews {

namespace {

// Forward migrations: step i takes a database from user_version i to i + 1. Each step runs in
// its own transaction together with the user_version bump, so a crash leaves the file at a
// version it really has. Append new steps; never edit a step that has shipped.
constexpr const char* migrations[] = {
    // 0 -> 1
    R"sql(
CREATE TABLE localities(
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    region TEXT NOT NULL,
    population REAL,
    neighbours TEXT NOT NULL DEFAULT ''   -- ids joined with ';'
);
CREATE TABLE observations(
    locality TEXT NOT NULL REFERENCES localities(id),
    kind TEXT NOT NULL,
    time INTEGER NOT NULL,                -- unix seconds, UTC
    source TEXT NOT NULL,
    value REAL NOT NULL,
    weight REAL NOT NULL,
    PRIMARY KEY(locality, kind, time, source)
) WITHOUT ROWID;
CREATE TABLE ingests(
    id INTEGER PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    accepted INTEGER NOT NULL,
    rejected INTEGER NOT NULL,
    status TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE TABLE alert_state(
    locality TEXT PRIMARY KEY,
    level INTEGER NOT NULL,
    pending INTEGER NOT NULL,
    pending_count INTEGER NOT NULL,
    alert_id TEXT NOT NULL DEFAULT '',
    opened_at INTEGER,
    changed_at INTEGER,
    score REAL NOT NULL
);
CREATE TABLE outbox(
    endpoint TEXT NOT NULL,
    seq INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    alert_id TEXT NOT NULL DEFAULT '',
    locality TEXT NOT NULL DEFAULT '',
    PRIMARY KEY(endpoint, seq)
) WITHOUT ROWID;
CREATE INDEX outbox_by_alert ON outbox(endpoint, alert_id, seq);
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE audit(id INTEGER PRIMARY KEY, at INTEGER NOT NULL, what TEXT NOT NULL);
)sql",
    // 1 -> 2: outbox rows carry when they were committed, for retention. Rows written before
    // take the "at" of their own JSON payload (the event's time), else the time of the
    // upgrade, so none of them looks older than it is. The column stays nullable: a row
    // without a time is never purged. Observations get no index on time: retention reads
    // that table once a day by locality (its key's first column), which costs less than an
    // index every ingested row would pay for.
    R"sql(
ALTER TABLE outbox ADD COLUMN at INTEGER;
UPDATE outbox SET at = coalesce(
    CASE WHEN json_valid(payload) AND json_type(payload, '$.at') = 'text'
         THEN CAST(strftime('%s', json_extract(payload, '$.at')) AS INTEGER) END,
    CAST(strftime('%s', 'now') AS INTEGER));
CREATE INDEX outbox_by_time ON outbox(at);
)sql",
    // 2 -> 3: the alert lifecycle (flapping, data gaps, notified state, acknowledgement) as
    // one JSON object per locality; silences, acknowledgements, and the events held by a
    // silence or while flapping.
    R"sql(
ALTER TABLE alert_state ADD COLUMN lifecycle TEXT NOT NULL DEFAULT '{}';
CREATE TABLE silences(
    id INTEGER PRIMARY KEY,
    locality TEXT NOT NULL DEFAULT '',
    region TEXT NOT NULL DEFAULT '',
    until INTEGER NOT NULL,
    reason TEXT NOT NULL,
    by TEXT NOT NULL,
    created INTEGER NOT NULL,
    expired INTEGER,
    expired_by TEXT NOT NULL DEFAULT ''
);
CREATE TABLE acknowledgements(
    id INTEGER PRIMARY KEY,
    alert_id TEXT NOT NULL,
    locality TEXT NOT NULL,
    by TEXT NOT NULL,
    note TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX acknowledgements_by_alert ON acknowledgements(alert_id);
CREATE TABLE held_events(
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    locality TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    event TEXT NOT NULL,
    reason TEXT NOT NULL,
    silence_id INTEGER NOT NULL,
    payload TEXT NOT NULL,
    committed INTEGER NOT NULL
);
CREATE INDEX held_by_silence ON held_events(silence_id, id);
CREATE INDEX held_by_time ON held_events(committed);
-- Existing open alerts were published: what subscribers were told is the true state.
UPDATE alert_state SET lifecycle = json_object(
    'notified_level', level, 'notified_id', alert_id, 'notified_opened_at', opened_at,
    'notified_at', changed_at) WHERE level > 0;
)sql",
};
static_assert(std::size(migrations) == Store::schema_version,
              "one migration step per schema version");

std::int64_t to_unix(TimePoint t) { return t.time_since_epoch().count(); }
TimePoint from_unix(std::int64_t s) { return TimePoint{std::chrono::seconds{s}}; }

std::string join_ids(const std::vector<std::string>& ids) {
    std::string out;
    for (const auto& id : ids) {
        if (!out.empty()) out += ';';
        out += id;
    }
    return out;
}

std::vector<std::string> split_ids(std::string_view text) {
    std::vector<std::string> out;
    while (!text.empty()) {
        auto cut = text.find(';');
        auto part = text.substr(0, cut);
        if (!part.empty()) out.emplace_back(part);
        if (cut == std::string_view::npos) break;
        text.remove_prefix(cut + 1);
    }
    return out;
}

// The lifecycle fields of an AlertState as the JSON object of alert_state.lifecycle. Keys
// at their default are left out, so most rows stay "{}"-sized. A key this build does not
// know is ignored on reading (a newer build may add some); a malformed value reads as its
// default rather than failing the start: the state it describes is rebuilt by evaluation.
using Json = nlohmann::json;

Json time_json(const std::optional<TimePoint>& t) {
    return t ? Json(to_unix(*t)) : Json(nullptr);
}

std::optional<TimePoint> json_time(const Json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer()) return std::nullopt;
    return from_unix(it->get<std::int64_t>());
}

template <class T>
T json_value(const Json& j, const char* key, T fallback) {
    auto it = j.find(key);
    if (it == j.end()) return fallback;
    try {
        return it->get<T>();
    } catch (const Json::exception&) {
        return fallback;
    }
}

Level json_level(const Json& j, const char* key) {
    const int v = json_value<int>(j, key, 0);
    return v >= 0 && v <= 3 ? static_cast<Level>(v) : Level::none;
}

Json gaps_json(const std::vector<DataGap>& gaps) {
    Json out = Json::array();
    for (const auto& g : gaps)
        out.push_back(Json{{"indicator", g.indicator}, {"since", to_unix(g.since)},
                           {"status", static_cast<int>(g.status)}, {"newest", time_json(g.newest)}});
    return out;
}

std::vector<DataGap> json_gaps(const Json& j, const char* key) {
    std::vector<DataGap> out;
    auto it = j.find(key);
    if (it == j.end() || !it->is_array()) return out;
    for (const auto& g : *it) {
        if (!g.is_object()) continue;
        DataGap gap;
        gap.indicator = json_value<std::string>(g, "indicator", "");
        gap.since = from_unix(json_value<std::int64_t>(g, "since", 0));
        const int status = json_value<int>(g, "status", int(sdk::Status::stale));
        gap.status = status >= 0 && status <= int(sdk::Status::error) ? static_cast<sdk::Status>(status)
                                                                      : sdk::Status::stale;
        gap.newest = json_time(g, "newest");
        if (!gap.indicator.empty()) out.push_back(std::move(gap));
    }
    return out;
}

std::string lifecycle_json(const AlertState& a) {
    Json j = Json::object();
    auto put_time = [&](const char* key, const std::optional<TimePoint>& t) {
        if (t) j[key] = to_unix(*t);
    };
    put_time("evaluated_at", a.evaluated_at);
    if (a.flap_history) j["flap_history"] = a.flap_history;
    if (a.flap_samples) j["flap_samples"] = a.flap_samples;
    if (a.flap_last != Level::none) j["flap_last"] = static_cast<int>(a.flap_last);
    // As text: JSON numbers beyond 2^53 do not survive every reader.
    if (a.reading) j["reading"] = std::to_string(a.reading);
    if (a.flapping) j["flapping"] = true;
    if (!a.covered.empty()) j["covered"] = a.covered;
    if (!a.gaps.empty()) j["gaps"] = gaps_json(a.gaps);
    if (a.notified_level != Level::none) j["notified_level"] = static_cast<int>(a.notified_level);
    if (!a.notified_id.empty()) j["notified_id"] = a.notified_id;
    put_time("notified_opened_at", a.notified_opened_at);
    put_time("notified_at", a.notified_at);
    if (!a.notified_gaps.empty()) j["notified_gaps"] = gaps_json(a.notified_gaps);
    if (a.notified_flapping) j["notified_flapping"] = true;
    if (!a.acked_id.empty()) j["acked_id"] = a.acked_id;
    if (!a.acked_by.empty()) j["acked_by"] = a.acked_by;
    put_time("acked_at", a.acked_at);
    if (a.acked_level != Level::none) j["acked_level"] = static_cast<int>(a.acked_level);
    return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

void read_lifecycle(std::string_view text, AlertState& a) {
    Json j = Json::parse(text, nullptr, false);
    if (!j.is_object()) return;
    a.evaluated_at = json_time(j, "evaluated_at");
    a.flap_history = json_value<std::uint32_t>(j, "flap_history", 0);
    a.flap_samples = json_value<int>(j, "flap_samples", 0);
    a.flap_last = json_level(j, "flap_last");
    try {
        a.reading = std::stoull(json_value<std::string>(j, "reading", "0"));
    } catch (const std::exception&) {
        a.reading = 0;
    }
    a.flapping = json_value<bool>(j, "flapping", false);
    a.covered = json_value<std::vector<std::string>>(j, "covered", {});
    std::sort(a.covered.begin(), a.covered.end());
    a.gaps = json_gaps(j, "gaps");
    a.notified_level = json_level(j, "notified_level");
    a.notified_id = json_value<std::string>(j, "notified_id", "");
    a.notified_opened_at = json_time(j, "notified_opened_at");
    a.notified_at = json_time(j, "notified_at");
    a.notified_gaps = json_gaps(j, "notified_gaps");
    a.notified_flapping = json_value<bool>(j, "notified_flapping", false);
    a.acked_id = json_value<std::string>(j, "acked_id", "");
    a.acked_by = json_value<std::string>(j, "acked_by", "");
    a.acked_at = json_time(j, "acked_at");
    a.acked_level = json_level(j, "acked_level");
}

// A prepared statement owned for the life of the Store.
class Stmt {
public:
    Stmt() = default;
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;
    ~Stmt() { sqlite3_finalize(stmt_); }
    sqlite3_stmt* get() const { return stmt_; }
    sqlite3_stmt** out() { return &stmt_; }

private:
    sqlite3_stmt* stmt_ = nullptr;
};

// One use of a cached statement: binds, steps and reads columns; resets the statement and
// clears its bindings when the scope ends, whatever happens, so it can be reused and holds
// no read snapshot open.
class Use {
public:
    Use(const Stmt& stmt, sqlite3* db, const std::string& where)
        : s_(stmt.get()), db_(db), where_(where) {}
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;
    ~Use() {
        sqlite3_reset(s_);
        sqlite3_clear_bindings(s_);
    }

    // Text is bound without copying: `v` must outlive the next step().
    Use& text(int i, std::string_view v) {
        return check(sqlite3_bind_text(s_, i, v.data(), int(v.size()), SQLITE_STATIC));
    }
    Use& integer(int i, std::int64_t v) { return check(sqlite3_bind_int64(s_, i, v)); }
    Use& real(int i, double v) { return check(sqlite3_bind_double(s_, i, v)); }
    Use& null(int i) { return check(sqlite3_bind_null(s_, i)); }

    // Returns: true while a row is available; false when done. Throws: StoreError.
    bool step() {
        int rc = sqlite3_step(s_);
        if (rc == SQLITE_ROW) return true;
        if (rc == SQLITE_DONE) return false;
        fail();
    }
    // For statements that return no rows; resets so the statement is ready again.
    void run() {
        while (step()) {
        }
        sqlite3_reset(s_);
    }

    std::int64_t col_int(int i) const { return sqlite3_column_int64(s_, i); }
    double col_real(int i) const { return sqlite3_column_double(s_, i); }
    bool col_null(int i) const { return sqlite3_column_type(s_, i) == SQLITE_NULL; }
    std::string_view col_text(int i) const {
        auto p = reinterpret_cast<const char*>(sqlite3_column_text(s_, i));
        return p ? std::string_view(p, std::size_t(sqlite3_column_bytes(s_, i))) : std::string_view{};
    }

private:
    Use& check(int rc) {
        if (rc != SQLITE_OK) fail();
        return *this;
    }
    [[noreturn]] void fail() { throw StoreError(where_ + ": " + sqlite3_errmsg(db_)); }

    sqlite3_stmt* s_;
    sqlite3* db_;
    const std::string& where_;
};

}  // namespace

struct Store::Statements {
    Stmt begin, commit, rollback;
    Stmt upsert_locality, select_localities;
    Stmt ingest_seen, upsert_observation, insert_ingest, select_observations, count_observations;
    Stmt select_alert_states, upsert_alert_state;
    Stmt last_seq, outbox_rows, insert_outbox, outbox_after, open_alert_rows, locality_rows;
    Stmt select_meta, upsert_meta, insert_audit;
    Stmt insert_held, select_held, select_held_of;
    Stmt insert_silence, select_silences, select_active_silences, select_silence, expire_silence;
    Stmt insert_ack, select_acks, select_acks_of;
    Stmt delete_old_held;
    Stmt next_observed_locality, delete_old_observations, delete_old_ingests, delete_old_outbox;
};

namespace {

// The open write transaction of one write method. BEGIN IMMEDIATE takes the write lock at
// once (waiting up to busy_timeout), so a transaction never fails half-way for want of it.
// Leaving the scope without commit() rolls back.
class Transaction {
public:
    Transaction(sqlite3* db, const Stmt& begin, const Stmt& commit, const Stmt& rollback,
                const std::string& where)
        : db_(db), commit_(commit), rollback_(rollback), where_(where) {
        Use(begin, db_, where_).run();
    }
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    ~Transaction() {
        // Some errors (SQLITE_FULL, SQLITE_IOERR, ...) roll back by themselves.
        if (!done_ && !sqlite3_get_autocommit(db_)) {
            sqlite3_reset(rollback_.get());
            sqlite3_step(rollback_.get());
            sqlite3_reset(rollback_.get());
        }
    }
    void commit() {
        Use(commit_, db_, where_).run();
        done_ = true;
    }

private:
    sqlite3* db_;
    const Stmt& commit_;
    const Stmt& rollback_;
    const std::string& where_;
    bool done_ = false;
};

// The rows of a checking pragma (quick_check, integrity_check) other than "ok".
struct CheckRows {
    int rc = SQLITE_OK;
    std::string error;  // SQLite's message when rc != SQLITE_OK
    std::vector<std::string> problems;
};

CheckRows run_check(sqlite3* db, const char* pragma) {
    CheckRows out;
    char* message = nullptr;
    out.rc = sqlite3_exec(
        db, pragma,
        [](void* rows, int, char** values, char**) {
            auto& problems = *static_cast<std::vector<std::string>*>(rows);
            if (values[0] && std::string_view(values[0]) != "ok") problems.emplace_back(values[0]);
            return 0;
        },
        &out.problems, &message);
    if (out.rc != SQLITE_OK) out.error = message ? message : sqlite3_errmsg(db);
    sqlite3_free(message);
    return out;
}

// Returns: the problems integrity_check reports; a database too damaged to be read at all
// is one problem. Throws: StoreError (other failures, e.g. I/O).
std::vector<std::string> full_check(sqlite3* db, const std::string& where) {
    auto check = run_check(db, "PRAGMA integrity_check");
    if (check.rc == SQLITE_CORRUPT || check.rc == SQLITE_NOTADB) check.problems.push_back(check.error);
    else if (check.rc != SQLITE_OK) throw StoreError(where + ": integrity_check: " + check.error);
    return check.problems;
}

void exec_on(sqlite3* db, const std::string& sql, const std::string& where) {
    char* message = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
    std::string text = message ? message : sqlite3_errmsg(db);
    sqlite3_free(message);
    if (rc != SQLITE_OK) throw StoreError(where + ": " + text);
}

void prepare_once(sqlite3* db, Stmt& s, const std::string& sql, const std::string& where) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, s.out(), nullptr) != SQLITE_OK)
        throw StoreError(where + ": " + sqlite3_errmsg(db) + ": " + sql);
}

std::int64_t query_int(sqlite3* db, const std::string& sql, const std::string& where) {
    Stmt s;
    prepare_once(db, s, sql, where);
    Use u(s, db, where);
    return u.step() ? u.col_int(0) : 0;
}

// Quotes `name` as an SQL identifier.
std::string identifier(std::string_view name) {
    std::string out = "\"";
    for (char c : name) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + '"';
}

std::vector<TableCount> count_tables(sqlite3* db, const std::string& where) {
    std::vector<TableCount> out;
    {
        Stmt s;
        prepare_once(db, s,
                     "SELECT name FROM sqlite_schema WHERE type='table' "
                     "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
                     where);
        Use u(s, db, where);
        while (u.step()) out.push_back(TableCount{std::string(u.col_text(0)), 0});
    }
    for (auto& t : out) t.rows = query_int(db, "SELECT count(*) FROM " + identifier(t.table), where);
    return out;
}

std::uint64_t file_size_or_zero(const std::filesystem::path& p) {
    std::error_code ec;
    auto n = std::filesystem::file_size(p, ec);
    return ec ? 0 : n;
}

// A connection of its own that writes nothing, to a file another process (the daemon) may be
// writing: WAL lets it read a consistent snapshot without blocking that writer.
class ReadConnection {
public:
    explicit ReadConnection(const std::filesystem::path& file) {
        std::error_code ec;
        if (!std::filesystem::is_regular_file(file, ec))
            throw StoreError(file.string() + ": no database file here (check daemon.state_dir " +
                             "in the configuration)");
        // Without a -wal file no connection has the database open. A read-only connection
        // would create an empty -wal and -shm that it may not remove; a read-write one with
        // query_only writes nothing either, and removes them when it closes as the last one.
        // Read-only it is when the file may not be written by this user.
        if (!std::filesystem::exists(file.string() + "-wal", ec) &&
            open(file, SQLITE_OPEN_READWRITE) == SQLITE_OK &&
            sqlite3_exec(db_, "PRAGMA query_only=1", nullptr, nullptr, nullptr) == SQLITE_OK)
            return;
        if (int rc = open(file, SQLITE_OPEN_READONLY); rc != SQLITE_OK) {
            std::string text = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
            sqlite3_close(db_);
            db_ = nullptr;
            throw StoreError(file.string() + ": cannot open database to read: " + text);
        }
    }
    ~ReadConnection() { sqlite3_close(db_); }
    ReadConnection(const ReadConnection&) = delete;
    ReadConnection& operator=(const ReadConnection&) = delete;
    sqlite3* get() const { return db_; }

private:
    // Returns: SQLite's result; on success db_ is open with a busy timeout.
    int open(const std::filesystem::path& file, int mode) {
        sqlite3_close(db_);
        db_ = nullptr;
        int rc = sqlite3_open_v2(file.c_str(), &db_, mode | SQLITE_OPEN_NOMUTEX, nullptr);
        if (rc == SQLITE_OK) sqlite3_busy_timeout(db_, 5000);
        return rc;
    }

    sqlite3* db_ = nullptr;
};

// A read transaction over several statements, so they see one snapshot; ended when the
// scope ends.
class ReadSnapshot {
public:
    ReadSnapshot(sqlite3* db, const std::string& where) : db_(db) { exec_on(db_, "BEGIN", where); }
    ~ReadSnapshot() {
        if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
    }
    ReadSnapshot(const ReadSnapshot&) = delete;
    ReadSnapshot& operator=(const ReadSnapshot&) = delete;

private:
    sqlite3* db_;
};

StoreStats collect_stats(sqlite3* db, const std::filesystem::path& file) {
    const std::string w = file.string() + ": stats";
    StoreStats out;
    ReadSnapshot snapshot(db, w);
    out.schema_version = int(query_int(db, "PRAGMA user_version", w));
    const auto page_size = std::uint64_t(query_int(db, "PRAGMA page_size", w));
    out.file_bytes = page_size * std::uint64_t(query_int(db, "PRAGMA page_count", w));
    out.free_bytes = page_size * std::uint64_t(query_int(db, "PRAGMA freelist_count", w));
    out.wal_bytes = file_size_or_zero(file.string() + "-wal");
    out.tables = count_tables(db, w);
    auto has = [&](std::string_view name) {
        return std::any_of(out.tables.begin(), out.tables.end(),
                           [&](const TableCount& t) { return t.table == name; });
    };
    if (has("observations")) {
        Stmt s;
        prepare_once(db, s, "SELECT count(*), min(time), max(time) FROM observations", w);
        Use u(s, db, w);
        if (u.step()) {
            out.observations = u.col_int(0);
            if (!u.col_null(1)) out.oldest_observation = from_unix(u.col_int(1));
            if (!u.col_null(2)) out.newest_observation = from_unix(u.col_int(2));
        }
        Stmt k;
        prepare_once(db, k,
                     "SELECT kind, count(*) AS n FROM observations GROUP BY kind "
                     "ORDER BY n DESC, kind LIMIT 20",
                     w);
        Use uk(k, db, w);
        while (uk.step()) out.kinds.emplace_back(std::string(uk.col_text(0)), uk.col_int(1));
    }
    if (has("outbox")) {
        Stmt s;
        prepare_once(db, s, "SELECT endpoint, max(seq) FROM outbox GROUP BY endpoint ORDER BY endpoint", w);
        Use u(s, db, w);
        while (u.step())
            out.last_seq.emplace_back(std::string(u.col_text(0)), std::uint64_t(u.col_int(1)));
    }
    return out;
}

// Flushes `p` (a file, or a directory after a rename in it) to stable storage.
void sync_path(const std::filesystem::path& p, bool directory, const std::string& where) {
    int fd = ::open(p.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0 || ::fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0) ::close(fd);
        throw StoreError(where + ": cannot sync " + p.string() + ": " + std::strerror(e));
    }
    ::close(fd);
}

BackupResult backup_to(sqlite3* src, const std::filesystem::path& src_file,
                       const std::filesystem::path& out) {
    namespace fs = std::filesystem;
    const std::string w = "backup of " + src_file.string() + " to " + out.string();
    std::error_code ec;
    if (out.filename().empty() || fs::is_directory(out, ec))
        throw StoreError(w + ": the target is a directory; give the backup's file name");
    const fs::path dir = out.parent_path().empty() ? fs::path(".") : out.parent_path();
    if (!fs::is_directory(dir, ec))
        throw StoreError(w + ": directory " + dir.string() + " does not exist");

    // Hidden and unique: a reader of the directory never takes it for a finished backup.
    const fs::path tmp = dir / ("." + out.filename().string() + ".tmp-" + std::to_string(::getpid()));
    auto remove_tmp = [&tmp] {
        std::error_code ignored;
        for (const char* suffix : {"", "-journal", "-wal", "-shm"})
            fs::remove(tmp.string() + suffix, ignored);
    };
    remove_tmp();

    sqlite3* dest = nullptr;
    auto fail = [&](const std::string& why) {
        if (dest) sqlite3_close(dest);
        dest = nullptr;
        remove_tmp();
        throw StoreError(w + ": " + why);
    };
    int rc = sqlite3_open_v2(tmp.c_str(), &dest,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
        int e = dest ? sqlite3_system_errno(dest) : 0;
        fail("cannot create " + tmp.string() + ": " + (dest ? sqlite3_errmsg(dest) : sqlite3_errstr(rc)) +
             (e ? std::string(" (") + std::strerror(e) + ")" : std::string()));
    }

    sqlite3_backup* copy = sqlite3_backup_init(dest, "main", src, "main");
    if (!copy) fail(std::string("cannot start: ") + sqlite3_errmsg(dest));
    // All pages in one step: one read transaction on the source, a consistent snapshot that
    // WAL lets the daemon keep writing past. Copying in slices would restart the copy from
    // the first page after every commit of another connection, so under a busy daemon it
    // might never finish. The cost: the WAL cannot be checkpointed past the snapshot until
    // the copy ends, so it grows meanwhile.
    for (int attempt = 0;; ++attempt) {
        rc = sqlite3_backup_step(copy, -1);
        if ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && attempt < 50) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            continue;
        }
        break;
    }
    sqlite3_backup_finish(copy);
    if (rc != SQLITE_DONE)
        fail(std::string("copying failed: ") + sqlite3_errstr(rc) + " (" + sqlite3_errmsg(dest) + ")");

    // The copy took the source's WAL flag; a backup is one self-contained file. Then the
    // full check: a copy is only worth keeping if it can be restored.
    BackupResult result;
    result.file = out;
    std::string problem;
    const std::string inner = tmp.string();
    try {
        std::string mode;
        {
            Stmt s;
            prepare_once(dest, s, "PRAGMA journal_mode=DELETE", inner);
            Use u(s, dest, inner);
            if (u.step()) mode = u.col_text(0);
        }
        if (mode != "delete") {
            problem = "cannot leave WAL mode in the copy (journal mode '" + mode + "')";
        } else if (auto problems = full_check(dest, inner); !problems.empty()) {
            std::string text;
            for (std::size_t i = 0; i < problems.size() && i < 5; ++i)
                text += (i ? "; " : "") + problems[i];
            problem = "the copy fails integrity_check, so the database itself is damaged (" +
                      text + "); run `ewsctl db check` and keep the previous backup";
        } else {
            result.schema_version = int(query_int(dest, "PRAGMA user_version", inner));
            result.tables = count_tables(dest, inner);
        }
    } catch (const StoreError& e) {
        problem = std::string("verifying the copy failed: ") + e.what();
    }
    if (!problem.empty()) fail(problem);
    if (sqlite3_close(dest) != SQLITE_OK) fail("closing the copy failed");
    dest = nullptr;
    try {
        sync_path(tmp, false, w);
    } catch (const StoreError&) {
        remove_tmp();
        throw;
    }
    fs::rename(tmp, out, ec);
    if (ec) fail("cannot rename " + tmp.string() + " to " + out.string() + ": " + ec.message());
    sync_path(dir, true, w);
    result.bytes = file_size_or_zero(out);
    return result;
}

}  // namespace

Store::Store(const std::filesystem::path& file) : file_(file) {
    try {
        open();
    } catch (...) {
        close();
        throw;
    }
}

Store::~Store() { close(); }

void Store::close() noexcept {
    st_.reset();  // finalizes every statement; sqlite3_close refuses while any is alive
    if (db_) sqlite3_close(db_);
    db_ = nullptr;
}

std::string Store::where(std::string_view what) const {
    return file_.string() + ": " + std::string(what);
}

void Store::exec(const char* sql, std::string_view what, std::string* first_value) {
    char* message = nullptr;
    auto keep_first = [](void* out, int, char** values, char**) {
        auto& text = *static_cast<std::string*>(out);
        if (text.empty() && values[0]) text = values[0];
        return 0;
    };
    int rc = sqlite3_exec(db_, sql, first_value ? +keep_first : nullptr, first_value, &message);
    if (rc == SQLITE_OK) return;
    std::string text = message ? message : sqlite3_errmsg(db_);
    sqlite3_free(message);
    if (rc == SQLITE_NOTADB)
        throw StoreError(file_.string() + ": not an SQLite database (" + text +
                         "); point daemon.state_dir at a directory holding ewsd's database, "
                         "or move this file aside so that a new one is created");
    if (rc == SQLITE_CORRUPT) throw StoreError(corrupt_message(text));
    throw StoreError(where(what) + ": " + text);
}

std::string Store::corrupt_message(const std::string& detail) const {
    auto f = file_.string();
    return f + ": the database is corrupt (" + detail + "). To restore it: stop ewsd; move " +
           f + " (and " + f + "-wal, " + f + "-shm if present) aside; copy the latest backup " +
           "written by `ewsctl backup` to " + f + "; start ewsd again. Observations ingested " +
           "after that backup must be ingested again.";
}

void Store::open() {
    // NOMUTEX: a Store is used by one thread at a time (its cached statements are bound and
    // stepped across calls, which no SQLite mutex could make safe), so SQLite's own
    // per-call locking would only cost time.
    int rc = sqlite3_open_v2(file_.c_str(), &db_,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             nullptr);
    if (rc != SQLITE_OK) {
        std::string text = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
        throw StoreError(file_.string() + ": cannot open database: " + text);
    }
    sqlite3_extended_result_codes(db_, 0);
    if (sqlite3_db_readonly(db_, "main") == 1)
        throw StoreError(file_.string() +
                         ": the database can only be opened read-only; ewsd must be able to "
                         "write it and create files beside it (check owner and permissions "
                         "of the file and of its directory)");

    // busy_timeout first: the other pragmas may need a lock another process holds briefly.
    exec("PRAGMA busy_timeout=5000", "setting busy_timeout");
    // WAL with synchronous=NORMAL: a committed transaction is in the WAL file before COMMIT
    // returns, so it survives the process being killed (kill -9); only a power loss or OS
    // crash can lose the last few commits, never corrupt the database.
    std::string mode;
    exec("PRAGMA journal_mode=WAL", "switching to WAL", &mode);
    if (mode != "wal")
        throw StoreError(file_.string() + ": cannot use WAL mode (journal mode stays '" + mode +
                         "'); put state_dir on a local file system");
    exec("PRAGMA synchronous=NORMAL", "setting synchronous");
    exec("PRAGMA foreign_keys=ON", "enabling foreign keys");
    // 64 MiB of page cache (SQLite's default is 2 MiB): a large batch of observations
    // touches many b-tree pages; bench/ingest_bench measured a few percent faster bulk ingest.
    exec("PRAGMA cache_size=-65536", "setting cache_size");

    // quick_check, not integrity_check: it reads every page and checks the b-tree structure
    // and records (O(N)) but not that each index matches its table (integrity_check's
    // O(N log N) part), which on years of observations adds many seconds to every start;
    // a restarted daemon should be back within seconds. `ewsctl db check` and every backup
    // run the full check.
    {
        auto check = run_check(db_, "PRAGMA quick_check");
        if (check.rc == SQLITE_NOTADB || check.rc == SQLITE_CORRUPT)
            throw StoreError(corrupt_message(check.error));
        if (check.rc != SQLITE_OK) throw StoreError(where("quick_check") + ": " + check.error);
        if (!check.problems.empty()) {
            std::string text;
            for (const auto& p : check.problems) {
                if (text.size() >= 500) break;
                text += (text.empty() ? "" : "; ") + p;
            }
            throw StoreError(corrupt_message(text));
        }
    }

    migrate();

    st_ = std::make_unique<Statements>();
    auto prepare = [this](Stmt& s, const std::string& sql) {
        if (sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, s.out(), nullptr) != SQLITE_OK)
            throw StoreError(where("preparing statement") + ": " + sqlite3_errmsg(db_) + ": " + sql);
    };
    auto& s = *st_;
    prepare(s.begin, "BEGIN IMMEDIATE");
    prepare(s.commit, "COMMIT");
    prepare(s.rollback, "ROLLBACK");
    prepare(s.upsert_locality,
            "INSERT INTO localities(id, name, region, population, neighbours) VALUES(?1,?2,?3,?4,?5) "
            "ON CONFLICT(id) DO UPDATE SET name=excluded.name, region=excluded.region, "
            "population=excluded.population, neighbours=excluded.neighbours");
    prepare(s.select_localities,
            "SELECT id, name, region, population, neighbours FROM localities ORDER BY id");
    prepare(s.ingest_seen, "SELECT 1 FROM ingests WHERE digest=?1");
    // The WHERE clause skips rewriting rows whose values did not change, so re-ingesting a
    // file writes no pages.
    prepare(s.upsert_observation,
            "INSERT INTO observations(locality, kind, time, source, value, weight) "
            "VALUES(?1,?2,?3,?4,?5,?6) "
            "ON CONFLICT(locality, kind, time, source) DO UPDATE SET value=excluded.value, "
            "weight=excluded.weight "
            "WHERE value IS NOT excluded.value OR weight IS NOT excluded.weight");
    prepare(s.insert_ingest,
            "INSERT INTO ingests(digest, name, accepted, rejected, status, at) "
            "VALUES(?1,?2,?3,?4,?5,?6) ON CONFLICT(digest) DO NOTHING");
    prepare(s.select_observations,
            "SELECT locality, kind, time, source, value, weight FROM observations "
            "ORDER BY locality, kind, time, source");
    prepare(s.count_observations, "SELECT count(*) FROM observations");
    prepare(s.select_alert_states,
            "SELECT locality, level, pending, pending_count, alert_id, opened_at, changed_at, "
            "score, lifecycle FROM alert_state ORDER BY locality");
    prepare(s.upsert_alert_state,
            "INSERT INTO alert_state(locality, level, pending, pending_count, alert_id, "
            "opened_at, changed_at, score, lifecycle) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9) "
            "ON CONFLICT(locality) DO UPDATE SET level=excluded.level, pending=excluded.pending, "
            "pending_count=excluded.pending_count, alert_id=excluded.alert_id, "
            "opened_at=excluded.opened_at, changed_at=excluded.changed_at, score=excluded.score, "
            "lifecycle=excluded.lifecycle");
    prepare(s.last_seq, "SELECT coalesce(max(seq), 0) FROM outbox WHERE endpoint=?1");
    prepare(s.outbox_rows, "SELECT count(*) FROM outbox WHERE endpoint=?1");
    prepare(s.insert_outbox,
            "INSERT INTO outbox(endpoint, seq, topic, payload, alert_id, locality, at) "
            "VALUES(?1,?2,?3,?4,?5,?6,?7)");
    prepare(s.locality_rows,
            "SELECT endpoint, seq, topic, payload, alert_id, locality FROM outbox "
            "WHERE locality<>'' ORDER BY endpoint, seq");
    prepare(s.outbox_after,
            "SELECT endpoint, seq, topic, payload, alert_id, locality FROM outbox "
            "WHERE endpoint=?1 AND seq>?2 ORDER BY seq LIMIT ?3");
    // Prefix match by substr rather than LIKE: topics contain '_' and LIKE is case-blind.
    // The shape (CTE, INDEXED BY, CROSS JOIN) pins the plan to one index probe per open
    // alert; left to itself the planner scans the endpoint's whole outbox per alert.
    prepare(s.open_alert_rows,
            "WITH newest(seq) AS ("
            "  SELECT (SELECT max(x.seq) FROM outbox x INDEXED BY outbox_by_alert "
            "          WHERE x.endpoint=?1 AND x.alert_id=a.notified "
            "          AND substr(x.topic, 1, length(?2))=?2) "
            "  FROM (SELECT json_extract(lifecycle, '$.notified_id') AS notified "
            "        FROM alert_state) a WHERE a.notified IS NOT NULL AND a.notified<>'') "
            "SELECT o.endpoint, o.seq, o.topic, o.payload, o.alert_id, o.locality "
            "FROM newest n CROSS JOIN outbox o ON o.endpoint=?1 AND o.seq=n.seq "
            "ORDER BY o.seq");
    prepare(s.select_meta, "SELECT value FROM meta WHERE key=?1");
    prepare(s.upsert_meta,
            "INSERT INTO meta(key, value) VALUES(?1,?2) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value");
    prepare(s.insert_audit, "INSERT INTO audit(at, what) VALUES(?1,?2)");
    prepare(s.insert_held,
            "INSERT INTO held_events(at, locality, alert_id, event, reason, silence_id, payload, "
            "committed) VALUES(?1,?2,?3,?4,?5,?6,?7,?8)");
    prepare(s.select_held,
            "SELECT at, locality, alert_id, event, reason, silence_id, payload FROM held_events "
            "ORDER BY id DESC LIMIT ?1");
    prepare(s.select_held_of,
            "SELECT at, locality, alert_id, event, reason, silence_id, payload FROM held_events "
            "WHERE silence_id=?1 ORDER BY id DESC LIMIT ?2");
    prepare(s.insert_silence,
            "INSERT INTO silences(locality, region, until, reason, by, created) "
            "VALUES(?1,?2,?3,?4,?5,?6)");
    constexpr const char* silence_columns =
        "SELECT s.id, s.locality, s.region, s.until, s.reason, s.by, s.created, s.expired, "
        "s.expired_by, (SELECT count(*) FROM held_events h WHERE h.silence_id=s.id) "
        "FROM silences s ";
    prepare(s.select_silences, std::string(silence_columns) + "ORDER BY s.id DESC");
    prepare(s.select_active_silences,
            std::string(silence_columns) + "WHERE s.expired IS NULL AND s.until>?1 ORDER BY s.id");
    prepare(s.select_silence, std::string(silence_columns) + "WHERE s.id=?1");
    prepare(s.expire_silence, "UPDATE silences SET expired=?2, expired_by=?3 WHERE id=?1");
    prepare(s.insert_ack,
            "INSERT INTO acknowledgements(alert_id, locality, by, note, at) VALUES(?1,?2,?3,?4,?5)");
    prepare(s.select_acks,
            "SELECT alert_id, locality, by, note, at FROM acknowledgements ORDER BY id");
    prepare(s.select_acks_of,
            "SELECT alert_id, locality, by, note, at FROM acknowledgements WHERE alert_id=?1 "
            "ORDER BY id");
    prepare(s.delete_old_held,
            "DELETE FROM held_events WHERE id IN (SELECT id FROM held_events INDEXED BY "
            "held_by_time WHERE committed<?1 LIMIT ?2)");
    // One index seek: min() over the first column of the primary key.
    prepare(s.next_observed_locality, "SELECT min(locality) FROM observations WHERE locality>?1");
    prepare(s.delete_old_observations, "DELETE FROM observations WHERE locality=?1 AND time<?2");
    prepare(s.delete_old_ingests, "DELETE FROM ingests WHERE at<?1");
    // Candidates come from outbox_by_time; each guard is a primary-key or index probe. The
    // rows the guards keep are few (one per endpoint and per open alert), so rereading them
    // in every batch costs little.
    prepare(s.delete_old_outbox,
            "DELETE FROM outbox WHERE (endpoint, seq) IN ("
            "  SELECT o.endpoint, o.seq FROM outbox o INDEXED BY outbox_by_time "
            "  WHERE o.at<?1 "
            "  AND o.seq < (SELECT max(l.seq) FROM outbox l WHERE l.endpoint=o.endpoint) "
            "  AND NOT EXISTS (SELECT 1 FROM alert_state a "
            "    WHERE a.locality=o.locality AND o.alert_id<>'' "
            "    AND json_extract(a.lifecycle, '$.notified_id')=o.alert_id "
            "    AND o.seq=(SELECT max(x.seq) FROM outbox x INDEXED BY outbox_by_alert "
            "               WHERE x.endpoint=o.endpoint AND x.alert_id=o.alert_id)) "
            "  LIMIT ?2)");
}

void Store::migrate() {
    int from = user_version();
    if (from > schema_version)
        throw StoreError(file_.string() + ": database schema version " + std::to_string(from) +
                         " is newer than this build of ewsd knows (" +
                         std::to_string(schema_version) +
                         "); run the ewsd version that wrote it, or restore a backup made by "
                         "this version");
    if (from < 0)
        throw StoreError(file_.string() + ": database schema version " + std::to_string(from) +
                         " is not one ewsd writes");
    for (int v = from; v < schema_version; ++v) {
        std::string step = "migrating schema from version " + std::to_string(v) + " to " +
                           std::to_string(v + 1);
        exec("BEGIN IMMEDIATE", step);
        try {
            exec(migrations[v], step);
            exec(("PRAGMA user_version=" + std::to_string(v + 1)).c_str(), step);
            exec("COMMIT", step);
        } catch (...) {
            if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
            throw;
        }
        // A new database goes through every step silently; an upgrade says what it changed.
        if (from > 0) spdlog::info("{}: {}: done", file_.string(), step);
    }
}

int Store::user_version() {
    sqlite3_stmt* s = nullptr;
    int rc = sqlite3_prepare_v2(db_, "PRAGMA user_version", -1, &s, nullptr);
    int version = 0;
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            version = sqlite3_column_int(s, 0);
            rc = SQLITE_OK;
        }
    }
    std::string text = sqlite3_errmsg(db_);
    sqlite3_finalize(s);
    if (rc == SQLITE_NOTADB)
        throw StoreError(file_.string() + ": not an SQLite database (" + text + ")");
    if (rc == SQLITE_CORRUPT) throw StoreError(corrupt_message(text));
    if (rc != SQLITE_OK) throw StoreError(where("reading user_version") + ": " + text);
    return version;
}

void Store::upsert_localities(const std::vector<Locality>& localities) {
    const std::string w = where("upsert_localities");
    auto& s = *st_;
    Transaction tx(db_, s.begin, s.commit, s.rollback, w);
    for (const auto& l : localities) {
        std::string neighbours = join_ids(l.neighbours);
        Use u(s.upsert_locality, db_, w);
        u.text(1, l.id).text(2, l.name).text(3, l.region).text(5, neighbours);
        if (l.population)
            u.real(4, *l.population);
        else
            u.null(4);
        u.run();
    }
    tx.commit();
}

std::vector<Locality> Store::localities() {
    const std::string w = where("localities");
    std::vector<Locality> out;
    Use u(st_->select_localities, db_, w);
    while (u.step()) {
        Locality l;
        l.id = u.col_text(0);
        l.name = u.col_text(1);
        l.region = u.col_text(2);
        if (!u.col_null(3)) l.population = u.col_real(3);
        l.neighbours = split_ids(u.col_text(4));
        out.push_back(std::move(l));
    }
    return out;
}

bool Store::ingest_seen(const std::string& digest) {
    const std::string w = where("ingest_seen");
    Use u(st_->ingest_seen, db_, w);
    u.text(1, digest);
    return u.step();
}

bool key_less(const Observation& x, const Observation& y) {
    if (int c = x.locality.compare(y.locality)) return c < 0;
    if (int c = x.kind.compare(y.kind)) return c < 0;
    if (x.time != y.time) return x.time < y.time;
    return x.source < y.source;
}

std::vector<std::uint32_t> key_order(std::span<const Observation> rows) {
    std::vector<std::uint32_t> order;
    if (rows.size() < 2 || rows.size() > std::numeric_limits<std::uint32_t>::max()) return order;
    // Sorting millions of rows takes seconds: its progress keeps the watchdog fed.
    std::uint32_t compared = 0;
    auto less = [rows, &compared](std::uint32_t a, std::uint32_t b) {
        if (++compared % (1u << 20) == 0) keepalive::progress();
        return key_less(rows[a], rows[b]);
    };
    if (std::is_sorted(rows.begin(), rows.end(), key_less)) return order;
    order.resize(rows.size());
    std::iota(order.begin(), order.end(), std::uint32_t{0});
    std::stable_sort(order.begin(), order.end(), less);
    return order;
}

struct Store::ObservationWriter::Impl {
    Impl(Store& store, const std::string& w)
        : where(w), tx(store.db_, store.st_->begin, store.st_->commit, store.st_->rollback, where) {}
    std::string where;  // before tx: tx keeps a reference to it
    Transaction tx;
    std::size_t written = 0;
};

Store::ObservationWriter::ObservationWriter(Store& store)
    : store_(store), impl_(std::make_unique<Impl>(store, store.where("commit_observations"))) {}

Store::ObservationWriter::~ObservationWriter() = default;

void Store::ObservationWriter::write(std::span<const Observation> rows,
                                     std::span<const std::uint32_t> order) {
    auto& s = *store_.st_;
    sqlite3* db = store_.db_;
    const std::string& w = impl_->where;
    Use u(s.upsert_observation, db, w);
    const std::size_t count = order.empty() ? rows.size() : order.size();
    for (std::size_t n = 0; n < count; ++n) {
        const std::size_t i = order.empty() ? n : order[n];
        const auto& r = rows[i];
        u.text(1, r.locality).text(2, r.kind).integer(3, to_unix(r.time)).text(4, r.source);
        u.real(5, r.value).real(6, r.weight);
        int rc = sqlite3_step(s.upsert_observation.get());
        if (rc != SQLITE_DONE) {
            std::string text = sqlite3_errmsg(db);
            if (rc == SQLITE_CONSTRAINT && text.find("FOREIGN KEY") != std::string::npos)
                text = "unknown locality '" + r.locality + "' (" + text + ")";
            throw StoreError(w + ": row " + std::to_string(impl_->written + i + 1) + " (" +
                             r.locality + ", " + r.kind + ", " + format_time(r.time) + ", " +
                             r.source + "): " + text);
        }
        sqlite3_reset(s.upsert_observation.get());
        if (n % 4096 == 4095) keepalive::progress();
    }
    impl_->written += count;
}

std::size_t Store::ObservationWriter::commit(const IngestRecord& record) {
    auto& s = *store_.st_;
    {
        Use u(s.insert_ingest, store_.db_, impl_->where);
        u.text(1, record.digest).text(2, record.name).integer(3, record.accepted);
        u.integer(4, record.rejected).text(5, record.status).integer(6, to_unix(record.at));
        u.run();
    }
    impl_->tx.commit();
    return impl_->written;
}

std::size_t Store::commit_observations(const std::vector<Observation>& rows,
                                       const IngestRecord& record) {
    ObservationWriter writer(*this);
    // Writing in key order turns random b-tree inserts into near-appends: several times
    // faster once the table outgrows the page cache. The sort is stable, so of two rows with
    // the same key the later one still wins.
    writer.write(rows, key_order(rows));
    return writer.commit(record);
}

void Store::for_each_observation(const std::function<void(const Observation&)>& fn) {
    const std::string w = where("for_each_observation");
    Use u(st_->select_observations, db_, w);
    // One value reused for every row: its strings keep their capacity, so most rows
    // allocate nothing.
    Observation o;
    while (u.step()) {
        o.locality.assign(u.col_text(0));
        o.kind.assign(u.col_text(1));
        o.time = from_unix(u.col_int(2));
        o.source.assign(u.col_text(3));
        o.value = u.col_real(4);
        o.weight = u.col_real(5);
        fn(o);
    }
}

std::int64_t Store::observation_count() {
    const std::string w = where("observation_count");
    Use u(st_->count_observations, db_, w);
    return u.step() ? u.col_int(0) : 0;
}

std::vector<AlertState> Store::alert_states() {
    const std::string w = where("alert_states");
    std::vector<AlertState> out;
    Use u(st_->select_alert_states, db_, w);
    while (u.step()) {
        AlertState a;
        a.locality = u.col_text(0);
        a.level = static_cast<Level>(u.col_int(1));
        a.pending = static_cast<Level>(u.col_int(2));
        a.pending_count = static_cast<int>(u.col_int(3));
        a.alert_id = u.col_text(4);
        if (!u.col_null(5)) a.opened_at = from_unix(u.col_int(5));
        if (!u.col_null(6)) a.changed_at = from_unix(u.col_int(6));
        a.score = u.col_real(7);
        read_lifecycle(u.col_text(8), a);
        out.push_back(std::move(a));
    }
    return out;
}

std::uint64_t Store::last_seq(const std::string& endpoint) {
    const std::string w = where("last_seq");
    Use u(st_->last_seq, db_, w);
    u.text(1, endpoint);
    return u.step() ? static_cast<std::uint64_t>(u.col_int(0)) : 0;
}

std::uint64_t Store::outbox_rows(const std::string& endpoint) {
    const std::string w = where("outbox_rows");
    Use u(st_->outbox_rows, db_, w);
    u.text(1, endpoint);
    return u.step() ? static_cast<std::uint64_t>(u.col_int(0)) : 0;
}

namespace {

// Upserts one alert_state row.
void write_state(const Stmt& upsert, sqlite3* db, const std::string& w, const AlertState& a) {
    const std::string lifecycle = lifecycle_json(a);
    Use u(upsert, db, w);
    u.text(1, a.locality).integer(2, static_cast<int>(a.level));
    u.integer(3, static_cast<int>(a.pending)).integer(4, a.pending_count).text(5, a.alert_id);
    if (a.opened_at)
        u.integer(6, to_unix(*a.opened_at));
    else
        u.null(6);
    if (a.changed_at)
        u.integer(7, to_unix(*a.changed_at));
    else
        u.null(7);
    u.real(8, std::isfinite(a.score) ? a.score : 0.0).text(9, lifecycle).run();
}

}  // namespace

void Store::commit_evaluation(const std::vector<AlertState>& changed,
                              const std::vector<OutboxRow>& rows, const std::vector<HeldRow>& held) {
    const std::string w = where("commit_evaluation");
    auto& s = *st_;
    Transaction tx(db_, s.begin, s.commit, s.rollback, w);
    for (std::size_t i = 0; i < changed.size(); ++i) {
        write_state(s.upsert_alert_state, db_, w, changed[i]);
        if (i % 4096 == 4095) keepalive::progress();
    }
    const std::int64_t now_unix = to_unix(wall_now());
    for (const auto& h : held) {
        Use u(s.insert_held, db_, w);
        u.integer(1, to_unix(h.at)).text(2, h.locality).text(3, h.alert_id).text(4, h.event);
        u.text(5, h.reason).integer(6, h.silence_id).text(7, h.payload).integer(8, now_unix).run();
    }
    // Read inside the write transaction, so no other writer can take a seq in between.
    std::map<std::string, std::uint64_t, std::less<>> next;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const OutboxRow& r = rows[i];
        if (i % 1024 == 1023) keepalive::progress();
        auto it = next.find(r.endpoint);
        if (it == next.end()) it = next.emplace(r.endpoint, last_seq(r.endpoint) + 1).first;
        if (r.seq != it->second)
            throw StoreError(w + ": outbox seq gap on endpoint " + r.endpoint + ": expected " +
                             std::to_string(it->second) + ", got " + std::to_string(r.seq));
        if (r.seq > std::uint64_t(std::numeric_limits<std::int64_t>::max()))
            throw StoreError(w + ": outbox seq " + std::to_string(r.seq) + " on endpoint " +
                             r.endpoint + " is beyond what the store can hold");
        Use u(s.insert_outbox, db_, w);
        u.text(1, r.endpoint).integer(2, static_cast<std::int64_t>(r.seq)).text(3, r.topic);
        u.text(4, r.payload).text(5, r.alert_id).text(6, r.locality).integer(7, now_unix).run();
        ++it->second;
    }
    tx.commit();
}

std::vector<OutboxRow> Store::outbox_after(const std::string& endpoint, std::uint64_t after,
                                           std::size_t limit) {
    const std::string w = where("outbox_after");
    constexpr auto max = std::uint64_t(std::numeric_limits<std::int64_t>::max());
    std::vector<OutboxRow> out;
    if (limit == 0 || after >= max) return out;
    Use u(st_->outbox_after, db_, w);
    u.text(1, endpoint).integer(2, static_cast<std::int64_t>(after));
    u.integer(3, static_cast<std::int64_t>(std::min<std::uint64_t>(limit, max)));
    while (u.step()) {
        OutboxRow r;
        r.endpoint = u.col_text(0);
        r.seq = static_cast<std::uint64_t>(u.col_int(1));
        r.topic = u.col_text(2);
        r.payload = u.col_text(3);
        r.alert_id = u.col_text(4);
        r.locality = u.col_text(5);
        out.push_back(std::move(r));
    }
    return out;
}

std::vector<OutboxRow> Store::locality_rows() {
    const std::string w = where("locality_rows");
    std::vector<OutboxRow> out;
    Use u(st_->locality_rows, db_, w);
    while (u.step()) {
        OutboxRow r;
        r.endpoint = u.col_text(0);
        r.seq = static_cast<std::uint64_t>(u.col_int(1));
        r.topic = u.col_text(2);
        r.payload = u.col_text(3);
        r.alert_id = u.col_text(4);
        r.locality = u.col_text(5);
        out.push_back(std::move(r));
    }
    return out;
}

std::vector<OutboxRow> Store::open_alert_rows(const std::string& endpoint,
                                              const std::string& topic_prefix) {
    const std::string w = where("open_alert_rows");
    std::vector<OutboxRow> out;
    Use u(st_->open_alert_rows, db_, w);
    u.text(1, endpoint).text(2, topic_prefix);
    while (u.step()) {
        OutboxRow r;
        r.endpoint = u.col_text(0);
        r.seq = static_cast<std::uint64_t>(u.col_int(1));
        r.topic = u.col_text(2);
        r.payload = u.col_text(3);
        r.alert_id = u.col_text(4);
        r.locality = u.col_text(5);
        out.push_back(std::move(r));
    }
    return out;
}

std::optional<std::string> Store::meta(const std::string& key) {
    const std::string w = where("meta");
    Use u(st_->select_meta, db_, w);
    u.text(1, key);
    if (!u.step()) return std::nullopt;
    return std::string(u.col_text(0));
}

void Store::set_meta(const std::string& key, const std::string& value) {
    const std::string w = where("set_meta");
    auto& s = *st_;
    Transaction tx(db_, s.begin, s.commit, s.rollback, w);
    Use(s.upsert_meta, db_, w).text(1, key).text(2, value).run();
    tx.commit();
}

namespace {

HeldRow read_held(const Use& u) {
    HeldRow h;
    h.at = from_unix(u.col_int(0));
    h.locality = u.col_text(1);
    h.alert_id = u.col_text(2);
    h.event = u.col_text(3);
    h.reason = u.col_text(4);
    h.silence_id = u.col_int(5);
    h.payload = u.col_text(6);
    return h;
}

Silence read_silence(const Use& u) {
    Silence x;
    x.id = u.col_int(0);
    x.locality = u.col_text(1);
    x.region = u.col_text(2);
    x.until = from_unix(u.col_int(3));
    x.reason = u.col_text(4);
    x.by = u.col_text(5);
    x.created = from_unix(u.col_int(6));
    if (!u.col_null(7)) x.expired = from_unix(u.col_int(7));
    x.expired_by = u.col_text(8);
    x.held = u.col_int(9);
    return x;
}

Acknowledgement read_ack(const Use& u) {
    return Acknowledgement{std::string(u.col_text(0)), std::string(u.col_text(1)),
                           std::string(u.col_text(2)), std::string(u.col_text(3)),
                           from_unix(u.col_int(4))};
}

std::int64_t clamp_limit(std::size_t limit) {
    return static_cast<std::int64_t>(
        std::min<std::size_t>(limit, std::size_t(std::numeric_limits<std::int64_t>::max())));
}

std::string silence_scope(const Silence& x) {
    return x.locality.empty() ? "region " + x.region : "locality " + x.locality;
}

}  // namespace

std::vector<HeldRow> Store::held_events(std::int64_t silence_id, std::size_t limit) {
    const std::string w = where("held_events");
    std::vector<HeldRow> out;
    if (silence_id != 0) {
        Use u(st_->select_held_of, db_, w);
        u.integer(1, silence_id).integer(2, clamp_limit(limit));
        while (u.step()) out.push_back(read_held(u));
    } else {
        Use u(st_->select_held, db_, w);
        u.integer(1, clamp_limit(limit));
        while (u.step()) out.push_back(read_held(u));
    }
    return out;
}

std::int64_t Store::add_silence(const Silence& silence) {
    const std::string w = where("add_silence");
    auto& s = *st_;
    Transaction tx(db_, s.begin, s.commit, s.rollback, w);
    Use(s.insert_silence, db_, w)
        .text(1, silence.locality)
        .text(2, silence.region)
        .integer(3, to_unix(silence.until))
        .text(4, silence.reason)
        .text(5, silence.by)
        .integer(6, to_unix(silence.created))
        .run();
    const std::int64_t id = sqlite3_last_insert_rowid(db_);
    const std::string what = "silence " + std::to_string(id) + " added by " + silence.by + ": " +
                             silence_scope(silence) + " until " + format_time(silence.until) +
                             ": " + silence.reason;
    Use(s.insert_audit, db_, w).integer(1, to_unix(wall_now())).text(2, what).run();
    tx.commit();
    return id;
}

std::vector<Silence> Store::silences(TimePoint now, bool include_ended) {
    const std::string w = where("silences");
    std::vector<Silence> out;
    if (include_ended) {
        Use u(st_->select_silences, db_, w);
        while (u.step()) out.push_back(read_silence(u));
    } else {
        Use u(st_->select_active_silences, db_, w);
        u.integer(1, to_unix(now));
        while (u.step()) out.push_back(read_silence(u));
    }
    return out;
}

bool Store::expire_silence(std::int64_t id, const std::string& by, TimePoint at) {
    const std::string w = where("expire_silence");
    auto& s = *st_;
    Transaction tx(db_, s.begin, s.commit, s.rollback, w);
    Silence found;
    {
        Use u(s.select_silence, db_, w);
        u.integer(1, id);
        if (!u.step()) return false;
        found = read_silence(u);
    }
    if (!found.active(at)) return false;
    Use(s.expire_silence, db_, w).integer(1, id).integer(2, to_unix(at)).text(3, by).run();
    const std::string what = "silence " + std::to_string(id) + " expired by " + by + " (" +
                             silence_scope(found) + ")";
    Use(s.insert_audit, db_, w).integer(1, to_unix(wall_now())).text(2, what).run();
    tx.commit();
    return true;
}

void Store::commit_acknowledgement(const AlertState& state, const Acknowledgement& ack) {
    const std::string w = where("commit_acknowledgement");
    auto& s = *st_;
    Transaction tx(db_, s.begin, s.commit, s.rollback, w);
    Use(s.insert_ack, db_, w)
        .text(1, ack.alert_id)
        .text(2, ack.locality)
        .text(3, ack.by)
        .text(4, ack.note)
        .integer(5, to_unix(ack.at))
        .run();
    write_state(s.upsert_alert_state, db_, w, state);
    const std::string what = "alert " + ack.alert_id + " acknowledged by " + ack.by +
                             (ack.note.empty() ? std::string() : ": " + ack.note);
    Use(s.insert_audit, db_, w).integer(1, to_unix(wall_now())).text(2, what).run();
    tx.commit();
}

std::vector<Acknowledgement> Store::acknowledgements(const std::string& alert_id) {
    const std::string w = where("acknowledgements");
    std::vector<Acknowledgement> out;
    if (alert_id.empty()) {
        Use u(st_->select_acks, db_, w);
        while (u.step()) out.push_back(read_ack(u));
    } else {
        Use u(st_->select_acks_of, db_, w);
        u.text(1, alert_id);
        while (u.step()) out.push_back(read_ack(u));
    }
    return out;
}

void Store::audit(const std::string& what) {
    const std::string w = where("audit");
    auto& s = *st_;
    Transaction tx(db_, s.begin, s.commit, s.rollback, w);
    Use(s.insert_audit, db_, w).integer(1, to_unix(wall_now())).text(2, what).run();
    tx.commit();
}

BackupResult Store::backup(const std::filesystem::path& out) { return backup_to(db_, file_, out); }

BackupResult Store::backup_database(const std::filesystem::path& db_file,
                                    const std::filesystem::path& out) {
    ReadConnection source(db_file);
    return backup_to(source.get(), db_file, out);
}

std::vector<std::string> Store::integrity_check() { return full_check(db_, where("integrity_check")); }

std::vector<std::string> Store::integrity_check_file(const std::filesystem::path& db_file) {
    ReadConnection db(db_file);
    return full_check(db.get(), db_file.string() + ": integrity_check");
}

StoreStats Store::stats() { return collect_stats(db_, file_); }

StoreStats Store::stats_of_file(const std::filesystem::path& db_file) {
    ReadConnection db(db_file);
    return collect_stats(db.get(), db_file);
}

RetentionResult Store::apply_retention(TimePoint now, std::optional<std::chrono::days> keep_observations,
                                       std::optional<std::chrono::days> keep_alerts,
                                       std::size_t batch_rows) {
    const std::string w = where("apply_retention");
    for (auto [keep, name] : {std::pair{keep_observations, "keep_observations"},
                              std::pair{keep_alerts, "keep_alerts"}})
        if (keep && keep->count() < 1)
            throw StoreError(w + ": " + name + " must be at least 1 day, got " +
                             std::to_string(keep->count()));
    batch_rows = std::max<std::size_t>(batch_rows, 1);
    const auto batch = static_cast<std::int64_t>(
        std::min<std::size_t>(batch_rows, std::size_t(std::numeric_limits<std::int64_t>::max())));

    auto& s = *st_;
    RetentionResult out;
    std::optional<Transaction> tx;
    std::int64_t in_tx = 0;
    tx.emplace(db_, s.begin, s.commit, s.rollback, w);
    auto deleted = [&](std::int64_t n) {
        in_tx += n;
        if (in_tx >= batch) {
            tx->commit();
            tx.reset();
            tx.emplace(db_, s.begin, s.commit, s.rollback, w);
            in_tx = 0;
        }
    };

    if (keep_observations) {
        const std::int64_t cutoff = to_unix(now - *keep_observations);
        // Locality by locality: the primary key starts with locality, so each DELETE reads
        // only that locality's rows and the whole pass reads the table once.
        std::string after;
        for (;;) {
            std::string next;
            {
                Use u(s.next_observed_locality, db_, w);
                u.text(1, after);
                if (!u.step() || u.col_null(0)) break;
                next = u.col_text(0);
            }
            after = std::move(next);
            Use(s.delete_old_observations, db_, w).text(1, after).integer(2, cutoff).run();
            const auto n = sqlite3_changes64(db_);
            out.observations += n;
            deleted(n);
        }
        Use(s.delete_old_ingests, db_, w).integer(1, cutoff).run();
        out.ingests = sqlite3_changes64(db_);
        deleted(out.ingests);
    }
    if (keep_alerts) {
        const std::int64_t cutoff = to_unix(now - *keep_alerts);
        for (;;) {
            Use(s.delete_old_outbox, db_, w).integer(1, cutoff).integer(2, batch).run();
            const auto n = sqlite3_changes64(db_);
            out.outbox += n;
            deleted(n);
            if (n < batch) break;
        }
        for (;;) {
            Use(s.delete_old_held, db_, w).integer(1, cutoff).integer(2, batch).run();
            const auto n = sqlite3_changes64(db_);
            out.held += n;
            deleted(n);
            if (n < batch) break;
        }
    }
    tx->commit();
    return out;
}

void Store::set_autocheckpoint(int pages) {
    if (pages < 0) pages = 0;
    // sqlite3_wal_autocheckpoint(db, 0) turns it off; the pragma and the call are the same.
    if (sqlite3_wal_autocheckpoint(db_, pages) != SQLITE_OK)
        throw StoreError(where("setting wal_autocheckpoint") + ": " + sqlite3_errmsg(db_));
}

void Store::truncate_wal_above(int pages) {
    if (pages <= 0) {
        sqlite3_wal_hook(db_, nullptr, nullptr);
        return;
    }
    // Called by SQLite after each commit with the pages now in the WAL. A checkpoint here is
    // what SQLite's own automatic checkpoint does; BUSY (a reader or the WalCheckpointer held
    // on past busy_timeout) leaves it to a later commit.
    static constexpr auto hook = [](void* limit, sqlite3* db, const char* schema,
                                    int wal_pages) -> int {
        if (wal_pages > static_cast<int>(reinterpret_cast<std::intptr_t>(limit)))
            sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
        return SQLITE_OK;
    };
    sqlite3_wal_hook(db_, hook, reinterpret_cast<void*>(static_cast<std::intptr_t>(pages)));
}

struct WalCheckpointer::Impl {
    std::filesystem::path file;
    std::chrono::milliseconds interval;
    sqlite3* db = nullptr;
    std::mutex mutex;
    std::condition_variable wake;
    bool stop = false;
    std::atomic<std::uint64_t> runs{0};
    std::thread thread;

    void loop() {
        std::unique_lock lock(mutex);
        bool warned = false;
        while (!wake.wait_for(lock, interval, [this] { return stop; })) {
            lock.unlock();
            int wal_pages = 0, copied = 0;
            const int rc = sqlite3_wal_checkpoint_v2(db, "main", SQLITE_CHECKPOINT_PASSIVE,
                                                     &wal_pages, &copied);
            // SQLITE_BUSY: another checkpoint (a closing connection, `ewsctl backup`) is
            // running; the next interval tries again.
            if (rc != SQLITE_OK && rc != SQLITE_BUSY && !warned) {
                spdlog::warn("{}: WAL checkpoint failed: {} (tried again every {} ms)",
                             file.string(), sqlite3_errmsg(db), interval.count());
                warned = true;
            } else if (rc == SQLITE_OK && wal_pages >= 0) {
                warned = false;
                runs.fetch_add(1, std::memory_order_relaxed);
            }
            lock.lock();
        }
    }
};

WalCheckpointer::WalCheckpointer(const std::filesystem::path& file,
                                 std::chrono::milliseconds interval)
    : impl_(std::make_unique<Impl>()) {
    impl_->file = file;
    impl_->interval = std::max(interval, std::chrono::milliseconds(1));
    if (sqlite3_open_v2(file.c_str(), &impl_->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK) {
        std::string text = impl_->db ? sqlite3_errmsg(impl_->db) : "out of memory";
        sqlite3_close(impl_->db);
        throw StoreError(file.string() + ": cannot open a connection for checkpoints: " + text);
    }
    // A connection that has not read the database yet does not know it is in WAL mode, and
    // its checkpoints would do nothing: asking for the mode reads the header and opens the WAL.
    sqlite3_busy_timeout(impl_->db, 5000);
    std::string mode;
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(impl_->db, "PRAGMA journal_mode", -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
        if (const unsigned char* text = sqlite3_column_text(stmt, 0))
            mode = reinterpret_cast<const char*>(text);
    }
    sqlite3_finalize(stmt);
    if (mode != "wal") {
        std::string text = mode.empty() ? std::string(sqlite3_errmsg(impl_->db))
                                        : "the journal mode is '" + mode + "', not 'wal'";
        sqlite3_close(impl_->db);
        throw StoreError(file.string() + ": no checkpoints from a second connection: " + text);
    }
    impl_->thread = std::thread([impl = impl_.get()] { impl->loop(); });
}

WalCheckpointer::~WalCheckpointer() {
    {
        std::lock_guard lock(impl_->mutex);
        impl_->stop = true;
    }
    impl_->wake.notify_all();
    if (impl_->thread.joinable()) impl_->thread.join();
    sqlite3_close(impl_->db);
}

std::uint64_t WalCheckpointer::checkpoints() const {
    return impl_->runs.load(std::memory_order_relaxed);
}

}  // namespace ews
