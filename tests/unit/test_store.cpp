#include "store.hpp"

#include <catch2/catch.hpp>
// The store's own tests look at the file through a second connection, as ewsctl or the
// sqlite3 CLI would; no other module's tests include sqlite3.h.
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>

using namespace ews;
namespace fs = std::filesystem;

namespace {

// A fresh directory per test, removed afterwards.
struct TempDir {
    fs::path path;
    TempDir() {
        static std::atomic<unsigned> counter{0};
        std::random_device rd;
        path = fs::temp_directory_path() /
               ("ews-store-test-" + std::to_string(rd()) + "-" + std::to_string(counter++));
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    fs::path db() const { return path / "ewsd.db"; }
};

TimePoint at(int y, unsigned m, unsigned d) {
    return TimePoint{std::chrono::sys_days{std::chrono::year{y} / m / d}};
}

Locality locality(const std::string& id, const std::string& region = "KE/KE-03") {
    return Locality{id, "Name of " + id, region, 1200.0, {}};
}

Observation obs(const std::string& loc, TimePoint t, const std::string& kind, double value,
                const std::string& source = "emis") {
    return Observation{loc, t, kind, value, 1.0, source};
}

IngestRecord record(const std::string& digest, std::int64_t accepted) {
    return IngestRecord{digest, digest + ".csv", accepted, 0, "done", at(2026, 1, 2)};
}

std::vector<Observation> all_observations(Store& store) {
    std::vector<Observation> out;
    store.for_each_observation([&](const Observation& o) { out.push_back(o); });
    return out;
}

OutboxRow row(const std::string& endpoint, std::uint64_t seq, const std::string& topic,
              const std::string& alert_id, const std::string& loc) {
    return OutboxRow{endpoint, seq, topic, "{\"seq\":" + std::to_string(seq) + "}", alert_id, loc};
}

AlertState open_state(const std::string& loc, const std::string& alert_id, Level level) {
    AlertState a;
    a.locality = loc;
    a.level = level;
    a.pending = level;
    a.pending_count = 2;
    a.alert_id = alert_id;
    a.opened_at = at(2026, 2, 1);
    a.changed_at = at(2026, 2, 3);
    a.score = 71.5;
    // Published as it is: what subscribers were told is the true state.
    if (level != Level::none) {
        a.notified_level = level;
        a.notified_id = alert_id;
        a.notified_opened_at = a.opened_at;
        a.notified_at = a.changed_at;
    }
    return a;
}

// A state with every lifecycle field away from its default.
AlertState busy_state() {
    AlertState a = open_state("L9", "L9@20260201T000000Z", Level::critical);
    a.evaluated_at = at(2026, 3, 1);
    a.flap_history = 0xA5A5u;
    a.flap_samples = 17;
    a.flap_last = Level::warning;
    a.reading = 0xfedcba9876543210ull;  // beyond 2^53: must survive as text
    a.flapping = true;
    a.covered = {"community_incidents", "school_dropout"};
    a.gaps = {DataGap{"school_dropout", at(2026, 2, 20), sdk::Status::no_data, std::nullopt},
              DataGap{"community_incidents", at(2026, 2, 25), sdk::Status::stale, at(2026, 1, 5)}};
    a.notified_level = Level::warning;
    a.notified_id = "L9@20260115T000000Z";
    a.notified_opened_at = at(2026, 1, 15);
    a.notified_at = at(2026, 2, 2);
    a.notified_gaps = {a.gaps[1]};
    a.notified_flapping = true;
    a.acked_id = a.notified_id;
    a.acked_by = "district officer 4";
    a.acked_at = at(2026, 2, 3);
    a.acked_level = Level::warning;
    return a;
}

// Runs one SQL statement on a second connection and returns the first column of its first row.
std::string query_text(const fs::path& file, const std::string& sql) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
        out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    sqlite3_close(db);
    return out;
}

// Runs `sql` (any number of statements) on a second connection, creating the file if needed.
void exec_sql(const fs::path& file, const std::string& sql) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                            nullptr) == SQLITE_OK);
    char* message = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
    std::string text = message ? message : "";
    sqlite3_free(message);
    sqlite3_close(db);
    INFO(sql);
    REQUIRE(text == "");
    REQUIRE(rc == SQLITE_OK);
}

// Every row of `sql`'s first column, on a second connection.
std::vector<std::string> query_column(const fs::path& file, const std::string& sql) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    std::vector<std::string> out;
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK);
    while (sqlite3_step(s) == SQLITE_ROW)
        out.emplace_back(sqlite3_column_text(s, 0)
                             ? reinterpret_cast<const char*>(sqlite3_column_text(s, 0))
                             : "NULL");
    sqlite3_finalize(s);
    sqlite3_close(db);
    return out;
}

// A database closed by its Store, with the pages after the header overwritten: quick_check
// and integrity_check fail, the header still says SQLite.
void corrupt_middle(const fs::path& file) {
    {
        Store store(file);
        std::vector<Locality> many;
        for (int i = 0; i < 2000; ++i) many.push_back(locality("L" + std::to_string(i)));
        store.upsert_localities(many);
    }
    // Overwrite the middle pages of the file (the localities b-tree), keeping the header.
    auto size = fs::file_size(file);
    REQUIRE(size > 4 * 4096);
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(2 * 4096);
    for (std::uintmax_t i = 2 * 4096; i < size - 4096; ++i) f.put(static_cast<char>(0x5a));
}

// Names of the entries in `dir`.
std::set<std::string> entries(const fs::path& dir) {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
    return out;
}

std::string error_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const StoreError& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("a new store is in WAL mode at the current schema version", "[store]") {
    TempDir dir;
    Store store(dir.db());
    CHECK(store.user_version() == Store::schema_version);
    CHECK(Store::schema_version == 3);
    CHECK(query_text(dir.db(), "PRAGMA journal_mode") == "wal");
    CHECK(query_text(dir.db(), "PRAGMA user_version") == "3");
}

TEST_CASE("localities are created and updated by id", "[store]") {
    TempDir dir;
    Store store(dir.db());
    Locality a = locality("KE-030-01");
    a.neighbours = {"KE-030-02", "KE-030-03"};
    Locality b = locality("KE-030-02");
    b.population.reset();
    store.upsert_localities({a, b});

    auto got = store.localities();
    REQUIRE(got.size() == 2);
    CHECK(got[0].id == "KE-030-01");
    CHECK(got[0].population == 1200.0);
    CHECK(got[0].neighbours == std::vector<std::string>{"KE-030-02", "KE-030-03"});
    CHECK(got[1].id == "KE-030-02");
    CHECK_FALSE(got[1].population);
    CHECK(got[1].neighbours.empty());

    a.name = "Renamed";
    a.region = "KE/KE-04";
    a.neighbours = {};
    store.upsert_localities({a});
    got = store.localities();
    REQUIRE(got.size() == 2);
    CHECK(got[0].name == "Renamed");
    CHECK(got[0].region == "KE/KE-04");
    CHECK(got[0].neighbours.empty());
    CHECK_FALSE(got[1].population);
}

TEST_CASE("committing the same observations again changes nothing", "[store]") {
    TempDir dir;
    Store store(dir.db());
    store.upsert_localities({locality("L1"), locality("L2")});
    std::vector<Observation> rows{obs("L2", at(2026, 1, 1), "school.enrolled", 400),
                                  obs("L1", at(2026, 1, 8), "school.dropouts", 7),
                                  obs("L1", at(2026, 1, 1), "school.dropouts", 3),
                                  obs("L1", at(2026, 1, 1), "school.dropouts", 5, "monitor-12")};

    CHECK_FALSE(store.ingest_seen("d1"));
    CHECK(store.commit_observations(rows, record("d1", 4)) == 4);
    CHECK(store.ingest_seen("d1"));
    CHECK_FALSE(store.ingest_seen("d2"));
    CHECK(store.observation_count() == 4);
    auto first = all_observations(store);

    // Same file again: same digest, same rows.
    CHECK_NOTHROW(store.commit_observations(rows, record("d1", 4)));
    CHECK(store.observation_count() == 4);
    CHECK(query_text(dir.db(), "SELECT count(*) FROM ingests") == "1");

    auto again = all_observations(store);
    REQUIRE(again.size() == first.size());
    for (std::size_t i = 0; i < again.size(); ++i) {
        CHECK(again[i].locality == first[i].locality);
        CHECK(again[i].value == first[i].value);
    }

    // Ordered by locality, kind, time, source.
    CHECK(again[0].locality == "L1");
    CHECK(again[0].time == at(2026, 1, 1));
    CHECK(again[0].source == "emis");
    CHECK(again[1].source == "monitor-12");
    CHECK(again[2].time == at(2026, 1, 8));
    CHECK(again[3].locality == "L2");

    // Same natural key, new value: replaced, not added.
    Observation corrected = obs("L1", at(2026, 1, 8), "school.dropouts", 9);
    corrected.weight = 0.5;
    store.commit_observations({corrected}, record("d2", 1));
    CHECK(store.observation_count() == 4);
    auto last = all_observations(store);
    CHECK(last[2].value == 9);
    CHECK(last[2].weight == 0.5);
}

TEST_CASE("an observation for an unknown locality fails the whole transaction", "[store]") {
    TempDir dir;
    Store store(dir.db());
    store.upsert_localities({locality("L1")});
    std::vector<Observation> rows{obs("L1", at(2026, 1, 1), "incident.abduction", 1),
                                  obs("NOPE", at(2026, 1, 1), "incident.abduction", 2)};
    auto message = error_of([&] { store.commit_observations(rows, record("bad", 2)); });
    CHECK_THAT(message, Catch::Contains("NOPE") && Catch::Contains(dir.db().string()));
    CHECK(store.observation_count() == 0);
    CHECK_FALSE(store.ingest_seen("bad"));

    // The store is usable afterwards.
    CHECK(store.commit_observations({rows[0]}, record("good", 1)) == 1);
    CHECK(store.observation_count() == 1);
}

TEST_CASE("alert states round-trip, including empty optionals", "[store]") {
    TempDir dir;
    Store store(dir.db());
    AlertState open = open_state("L1", "a-1", Level::warning);
    AlertState quiet;
    quiet.locality = "L2";
    quiet.pending = Level::watch;
    quiet.pending_count = 1;
    quiet.score = 33.25;
    store.commit_evaluation({open, quiet}, {});
    auto got = store.alert_states();
    REQUIRE(got.size() == 2);
    CHECK(got[0] == open);
    CHECK(got[1] == quiet);

    open.level = Level::critical;
    open.changed_at = at(2026, 2, 9);
    store.commit_evaluation({open}, {});
    got = store.alert_states();
    REQUIRE(got.size() == 2);
    CHECK(got[0] == open);
}

TEST_CASE("every lifecycle field of an alert state survives the store", "[store]") {
    TempDir dir;
    const AlertState busy = busy_state();
    {
        Store store(dir.db());
        store.commit_evaluation({busy}, {});
    }
    Store reopened(dir.db());
    auto got = reopened.alert_states();
    REQUIRE(got.size() == 1);
    CHECK(got[0] == busy);

    SECTION("a lifecycle the store cannot read falls back to defaults, not a failed start") {
        exec_sql(dir.db(), "UPDATE alert_state SET lifecycle='{\"flap_samples\":\"x\",'");
        Store again(dir.db());
        auto states = again.alert_states();
        REQUIRE(states.size() == 1);
        CHECK(states[0].level == Level::critical);
        CHECK(states[0].flap_samples == 0);
        CHECK(states[0].notified_id.empty());
    }
}

TEST_CASE("held events are stored with their silence, never numbered", "[store]") {
    TempDir dir;
    Store store(dir.db());
    HeldRow h{at(2026, 3, 1), "L1", "L1@20260301T000000Z", "raised", "silence 4", 4, "{\"seq\":0}"};
    HeldRow f{at(2026, 3, 2), "L2", "L2@20260302T000000Z", "resolved", "flapping", 0, "{}"};
    store.commit_evaluation({}, {}, {h, f});
    CHECK(store.last_seq("pub") == 0);
    auto all = store.held_events(0, 10);
    REQUIRE(all.size() == 2);
    CHECK(all[0].event == "resolved");  // newest first
    CHECK(all[1].locality == "L1");
    CHECK(all[1].payload == "{\"seq\":0}");
    auto of4 = store.held_events(4, 10);
    REQUIRE(of4.size() == 1);
    CHECK(of4[0].reason == "silence 4");
    CHECK(of4[0].at == at(2026, 3, 1));
    CHECK(store.held_events(0, 1).size() == 1);
}

TEST_CASE("silences are added, listed, expired and audited", "[store]") {
    TempDir dir;
    Store store(dir.db());
    Silence s;
    s.region = "KE/KE-03";
    s.until = at(2026, 4, 1);
    s.reason = "committee already visiting";
    s.by = "officer A";
    s.created = at(2026, 3, 1);
    const auto first = store.add_silence(s);
    Silence l;
    l.locality = "L7";
    l.until = at(2026, 3, 10);
    l.reason = "data review";
    l.by = "officer B";
    l.created = at(2026, 3, 1);
    const auto second = store.add_silence(l);
    CHECK(second > first);

    auto active = store.silences(at(2026, 3, 5), false);
    REQUIRE(active.size() == 2);
    CHECK(active[0].id == first);
    CHECK(active[0].region == "KE/KE-03");
    CHECK(active[1].locality == "L7");
    CHECK(store.silences(at(2026, 3, 10), false).size() == 1);  // until is exclusive

    store.commit_evaluation({}, {}, {HeldRow{at(2026, 3, 2), "L7", "", "data_gap", "silence 2",
                                             second, "{}"}});
    CHECK(store.silences(at(2026, 3, 5), false)[1].held == 1);

    CHECK(store.expire_silence(first, "officer C", at(2026, 3, 6)));
    CHECK_FALSE(store.expire_silence(first, "officer C", at(2026, 3, 7)));   // already ended
    CHECK_FALSE(store.expire_silence(second, "officer C", at(2026, 3, 11)));  // past its until
    CHECK_FALSE(store.expire_silence(999, "officer C", at(2026, 3, 7)));
    auto all = store.silences(at(2026, 3, 7), true);
    REQUIRE(all.size() == 2);
    CHECK(all[1].id == first);  // newest first
    REQUIRE(all[1].expired);
    CHECK(*all[1].expired == at(2026, 3, 6));
    CHECK(all[1].expired_by == "officer C");
    CHECK_FALSE(all[1].active(at(2026, 3, 7)));

    auto audit = query_column(dir.db(), "SELECT what FROM audit ORDER BY id");
    REQUIRE(audit.size() == 3);
    CHECK_THAT(audit[0], Catch::Contains("silence 1 added by officer A") &&
                             Catch::Contains("region KE/KE-03") &&
                             Catch::Contains("committee already visiting"));
    CHECK_THAT(audit[2], Catch::Contains("silence 1 expired by officer C"));
}

TEST_CASE("an acknowledgement is stored with the state and audited in one transaction", "[store]") {
    TempDir dir;
    Store store(dir.db());
    AlertState a = open_state("L1", "L1@20260201T000000Z", Level::warning);
    store.commit_evaluation({a}, {});
    a.acked_id = a.alert_id;
    a.acked_by = "officer A";
    a.acked_at = at(2026, 2, 4);
    a.acked_level = Level::warning;
    store.commit_acknowledgement(a, Acknowledgement{a.alert_id, "L1", "officer A",
                                                    "visited with the committee", at(2026, 2, 4)});
    CHECK(store.alert_states().at(0) == a);
    auto acks = store.acknowledgements(a.alert_id);
    REQUIRE(acks.size() == 1);
    CHECK(acks[0].note == "visited with the committee");
    CHECK(acks[0].at == at(2026, 2, 4));
    CHECK(store.acknowledgements("").size() == 1);
    CHECK(store.acknowledgements("other").empty());
    auto audit = query_column(dir.db(), "SELECT what FROM audit");
    REQUIRE(audit.size() == 1);
    CHECK_THAT(audit[0], Catch::Contains("alert L1@20260201T000000Z acknowledged by officer A"));
}

TEST_CASE("commit_evaluation numbers the outbox without gaps per endpoint", "[store]") {
    TempDir dir;
    Store store(dir.db());
    CHECK(store.last_seq("pub-a") == 0);
    store.commit_evaluation({open_state("L1", "a-1", Level::watch)},
                            {row("pub-a", 1, "alert/KE/L1/", "a-1", "L1"),
                             row("pub-b", 1, "alert/KE/L1/", "a-1", "L1"),
                             row("pub-a", 2, "ops/", "", "")});
    CHECK(store.last_seq("pub-a") == 2);
    CHECK(store.last_seq("pub-b") == 1);

    // seq 4 where 3 is due: nothing of this evaluation may be written.
    AlertState escalated = open_state("L1", "a-1", Level::critical);
    auto message = error_of([&] {
        store.commit_evaluation({escalated}, {row("pub-b", 2, "alert/KE/L1/", "a-1", "L1"),
                                              row("pub-a", 4, "alert/KE/L1/", "a-1", "L1")});
    });
    CHECK_THAT(message, Catch::Contains("outbox seq gap on endpoint pub-a: expected 3, got 4"));
    CHECK(store.last_seq("pub-a") == 2);
    CHECK(store.last_seq("pub-b") == 1);
    REQUIRE(store.alert_states().size() == 1);
    CHECK(store.alert_states()[0].level == Level::watch);

    // A seq reused is refused too.
    CHECK_THROWS_AS(store.commit_evaluation({}, {row("pub-a", 2, "ops/", "", "")}), StoreError);

    store.commit_evaluation({escalated}, {row("pub-a", 3, "alert/KE/L1/", "a-1", "L1")});
    CHECK(store.last_seq("pub-a") == 3);
    CHECK(store.alert_states()[0].level == Level::critical);
}

TEST_CASE("outbox_after pages through one endpoint in order", "[store]") {
    TempDir dir;
    Store store(dir.db());
    std::vector<OutboxRow> rows;
    for (std::uint64_t s = 1; s <= 7; ++s) rows.push_back(row("pub", s, "ops/", "", ""));
    rows.push_back(row("other", 1, "ops/", "", ""));
    store.commit_evaluation({}, rows);

    auto page = store.outbox_after("pub", 0, 3);
    REQUIRE(page.size() == 3);
    CHECK(page[0].seq == 1);
    CHECK(page[2].seq == 3);
    CHECK(page[0].payload == "{\"seq\":1}");
    page = store.outbox_after("pub", page.back().seq, 3);
    REQUIRE(page.size() == 3);
    CHECK(page[0].seq == 4);
    page = store.outbox_after("pub", page.back().seq, 3);
    REQUIRE(page.size() == 1);
    CHECK(page[0].seq == 7);
    CHECK(page[0].endpoint == "pub");
    CHECK(store.outbox_after("pub", 7, 3).empty());
    CHECK(store.outbox_after("pub", 0, 0).empty());
    CHECK(store.outbox_after("nobody", 0, 10).empty());
}

TEST_CASE("open_alert_rows gives the newest row of each open alert under a prefix", "[store]") {
    TempDir dir;
    Store store(dir.db());
    store.commit_evaluation(
        {open_state("L1", "a-1", Level::watch), open_state("L2", "a-2", Level::warning),
         open_state("L_3", "a-3", Level::watch)},
        {row("pub", 1, "alert/KE/KE-03/L1/", "a-1", "L1"),
         row("pub", 2, "alert/KE/KE-04/L2/", "a-2", "L2"),
         row("pub", 3, "alert/KE/KE-03/L1/", "a-1", "L1"),
         row("pub", 4, "alert/KEX/L_3/", "a-3", "L_3"),
         row("scoped", 1, "alert/KE/KE-04/L2/", "a-2", "L2")});

    auto rows = store.open_alert_rows("pub", "alert/KE/");
    REQUIRE(rows.size() == 2);
    CHECK(rows[0].seq == 2);
    CHECK(rows[0].alert_id == "a-2");
    CHECK(rows[1].seq == 3);  // newest row of a-1, not seq 1
    CHECK(rows[1].alert_id == "a-1");

    rows = store.open_alert_rows("pub", "alert/KE/KE-03/");
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].locality == "L1");

    // LIKE wildcards in the prefix are plain characters.
    CHECK(store.open_alert_rows("pub", "alert/KE_").empty());
    CHECK(store.open_alert_rows("pub", "alert/%").empty());
    CHECK(store.open_alert_rows("pub", "ALERT/").empty());
    CHECK(store.open_alert_rows("pub", "").size() == 3);

    rows = store.open_alert_rows("scoped", "alert/");
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].endpoint == "scoped");
    CHECK(rows[0].alert_id == "a-2");

    // A resolved alert is not open any more.
    AlertState resolved = open_state("L2", "", Level::none);
    resolved.opened_at.reset();
    store.commit_evaluation({resolved}, {row("pub", 5, "alert/KE/KE-04/L2/", "a-2", "L2")});
    rows = store.open_alert_rows("pub", "alert/KE/");
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].alert_id == "a-1");
}

TEST_CASE("data survives closing and reopening the store", "[store]") {
    TempDir dir;
    {
        Store store(dir.db());
        store.upsert_localities({locality("L1")});
        store.commit_observations({obs("L1", at(2026, 3, 1), "presence.report", 0.8)},
                                  record("d1", 1));
        store.commit_evaluation({open_state("L1", "a-1", Level::warning)},
                                {row("pub", 1, "alert/KE/L1/", "a-1", "L1")});
        store.set_meta("last_evaluation", "2026-03-01T00:00:00Z");
        store.audit("plugin loaded: group_presence 1.0.0");
    }
    Store store(dir.db());
    CHECK(store.user_version() == Store::schema_version);
    CHECK(store.localities().size() == 1);
    CHECK(store.observation_count() == 1);
    CHECK(all_observations(store).at(0).value == 0.8);
    CHECK(store.ingest_seen("d1"));
    CHECK(store.last_seq("pub") == 1);
    CHECK(store.alert_states().at(0) == open_state("L1", "a-1", Level::warning));
    CHECK(store.meta("last_evaluation") == "2026-03-01T00:00:00Z");
    CHECK_FALSE(store.meta("absent"));
    store.set_meta("last_evaluation", "2026-03-02T00:00:00Z");
    CHECK(store.meta("last_evaluation") == "2026-03-02T00:00:00Z");
    CHECK(query_text(dir.db(), "SELECT what FROM audit") == "plugin loaded: group_presence 1.0.0");
}

TEST_CASE("a file that is not a database is refused, naming the file", "[store]") {
    TempDir dir;
    {
        std::ofstream out(dir.db(), std::ios::binary);
        std::mt19937 rng(7);
        for (int i = 0; i < 8192; ++i) out.put(static_cast<char>(rng() & 0xff));
    }
    auto message = error_of([&] { Store store(dir.db()); });
    CHECK_THAT(message, Catch::Contains(dir.db().string()) &&
                            Catch::Contains("not an SQLite database"));
}

TEST_CASE("a database from a newer ewsd is refused", "[store]") {
    TempDir dir;
    { Store store(dir.db()); }
    query_text(dir.db(), "PRAGMA user_version=99");
    auto message = error_of([&] { Store store(dir.db()); });
    CHECK_THAT(message, Catch::Contains(dir.db().string()) && Catch::Contains("99") &&
                            Catch::Contains("newer"));
}

TEST_CASE("a corrupt database is refused with how to restore it", "[store]") {
    TempDir dir;
    corrupt_middle(dir.db());
    auto message = error_of([&] { Store store(dir.db()); });
    CHECK_THAT(message, Catch::Contains(dir.db().string()) && Catch::Contains("corrupt") &&
                            Catch::Contains("ewsctl backup") && Catch::Contains("stop ewsd"));
}

// ---- migrations ------------------------------------------------------------------------

namespace {

// The schema each version added, as that version's code created it: schema_sql[v] takes a
// database from version v to v + 1. Keep these verbatim when a version ships; a new
// version appends its own step here as well as in store.cpp, and the tests below build a
// database of every earlier version from these and upgrade it.
const char* const schema_sql[] = {
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
    // 1 -> 2
    R"sql(
ALTER TABLE outbox ADD COLUMN at INTEGER;
CREATE INDEX outbox_by_time ON outbox(at);
)sql",
    // 2 -> 3
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
)sql",
};
static_assert(std::size(schema_sql) == Store::schema_version,
              "a new schema version adds its step to schema_sql");

// Rows a version-1 database holds, written the way version 1 wrote them.
constexpr const char* v1_rows = R"sql(
INSERT INTO localities VALUES('L1', 'Name of L1', 'KE/KE-03', 1200.0, 'L2');
INSERT INTO localities VALUES('L2', 'Name of L2', 'KE/KE-04', NULL, '');
INSERT INTO observations VALUES('L1', 'school.dropouts', 1767225600, 'emis', 3.0, 1.0);
INSERT INTO observations VALUES('L2', 'incident.abduction', 1767830400, 'monitor', 1.0, 0.5);
INSERT INTO ingests(digest, name, accepted, rejected, status, at)
    VALUES('d1', 'd1.csv', 2, 0, 'done', 1767312000);
INSERT INTO alert_state VALUES('L1', 2, 2, 2, 'a-1', 1769904000, 1770076800, 71.5);
INSERT INTO outbox VALUES('pub', 1, 'alert/KE/KE-03/L1/',
    '{"schema":"ews.alert/1","seq":1,"at":"2026-02-01T00:00:00Z"}', 'a-1', 'L1');
INSERT INTO outbox VALUES('pub', 2, 'ops/', 'not json', '', '');
INSERT INTO meta VALUES('last_evaluation', '2026-02-03T00:00:00Z');
INSERT INTO audit(at, what) VALUES(1770076800, 'plugin loaded: group_presence 1.0.0');
)sql";

// A database at `version` built from schema_sql, in WAL mode as ewsd leaves it, holding
// v1_rows from version 1 on.
void make_database(const fs::path& file, int version) {
    std::string sql = "PRAGMA journal_mode=WAL; BEGIN;";
    for (int v = 0; v < version; ++v) {
        sql += schema_sql[v];
        if (v == 0) sql += v1_rows;  // written as version 1 wrote them, then upgraded
    }
    sql += "PRAGMA user_version=" + std::to_string(version) + "; COMMIT;";
    exec_sql(file, sql);
}

std::vector<std::string> schema_of(const fs::path& file) {
    return query_column(file, "SELECT type || ' ' || name || ': ' || coalesce(sql, '') "
                              "FROM sqlite_schema ORDER BY name");
}

}  // namespace

TEST_CASE("a database of every earlier version is upgraded to the current schema", "[store]") {
    TempDir dir;
    const fs::path fresh = dir.path / "fresh.db";
    { Store store(fresh); }
    const auto current = schema_of(fresh);
    REQUIRE(current.size() > 5);

    for (int version = 0; version < Store::schema_version; ++version) {
        INFO("from version " << version);
        const fs::path file = dir.path / ("v" + std::to_string(version) + ".db");
        make_database(file, version);
        REQUIRE(query_text(file, "PRAGMA user_version") == std::to_string(version));
        {
            Store store(file);
            CHECK(store.user_version() == Store::schema_version);
        }
        CHECK(schema_of(file) == current);
        CHECK(Store::integrity_check_file(file).empty());
    }

    SECTION("an empty file is version 0") {
        const fs::path file = dir.path / "empty.db";
        std::ofstream(file).close();
        REQUIRE(fs::file_size(file) == 0);
        { Store store(file); }
        CHECK(query_text(file, "PRAGMA user_version") == std::to_string(Store::schema_version));
        CHECK(schema_of(file) == current);
    }
}

TEST_CASE("upgrading a version-1 database keeps its data and dates its outbox", "[store]") {
    TempDir dir;
    make_database(dir.db(), 1);
    const auto before = wall_now();
    Store store(dir.db());
    const auto after = wall_now();
    CHECK(store.user_version() == Store::schema_version);

    auto locs = store.localities();
    REQUIRE(locs.size() == 2);
    CHECK(locs[0].neighbours == std::vector<std::string>{"L2"});
    CHECK_FALSE(locs[1].population);
    auto rows = all_observations(store);
    REQUIRE(rows.size() == 2);
    CHECK(rows[0].time == at(2026, 1, 1));
    CHECK(rows[1].weight == 0.5);
    CHECK(store.ingest_seen("d1"));
    CHECK(store.alert_states().at(0).alert_id == "a-1");
    CHECK(store.meta("last_evaluation") == "2026-02-03T00:00:00Z");
    CHECK(store.last_seq("pub") == 2);
    auto outbox = store.outbox_after("pub", 0, 10);
    REQUIRE(outbox.size() == 2);
    CHECK(outbox[1].payload == "not json");

    // A row's time comes from its payload's "at"; a row without one is dated at the upgrade.
    CHECK(query_text(dir.db(), "SELECT at FROM outbox WHERE seq=1") ==
          std::to_string(at(2026, 2, 1).time_since_epoch().count()));
    const auto dated = std::stoll(query_text(dir.db(), "SELECT at FROM outbox WHERE seq=2"));
    CHECK(dated >= before.time_since_epoch().count());
    CHECK(dated <= after.time_since_epoch().count());

    // The numbering continues, and new rows are dated when committed.
    store.commit_evaluation({}, {row("pub", 3, "ops/", "", "")});
    const auto stamped = std::stoll(query_text(dir.db(), "SELECT at FROM outbox WHERE seq=3"));
    CHECK(stamped >= before.time_since_epoch().count());
    CHECK(stamped <= wall_now().time_since_epoch().count());
}

TEST_CASE("upgrading a version-2 database marks its open alerts as notified", "[store]") {
    TempDir dir;
    make_database(dir.db(), 2);
    Store store(dir.db());
    auto states = store.alert_states();
    REQUIRE(states.size() == 1);
    const AlertState& a = states[0];
    CHECK(a.level == Level::warning);
    // What subscribers were told is what the version-2 daemon published: the open alert.
    CHECK(a.notified_id == "a-1");
    CHECK(a.notified_level == Level::warning);
    CHECK(a.notified_opened_at == a.opened_at);
    CHECK(a.notified_at == a.changed_at);
    CHECK_FALSE(a.flapping);
    CHECK(a.gaps.empty());
    CHECK_FALSE(a.evaluated_at);
}

TEST_CASE("a migration step that fails leaves the database at its old version", "[store]") {
    TempDir dir;
    make_database(dir.db(), 1);
    // Step 1 -> 2 creates this index; here it is already taken, so the step fails half-way.
    exec_sql(dir.db(), "CREATE INDEX outbox_by_time ON outbox(topic)");
    auto message = error_of([&] { Store store(dir.db()); });
    CHECK_THAT(message, Catch::Contains(dir.db().string()) &&
                            Catch::Contains("migrating schema from version 1 to 2"));
    CHECK(query_text(dir.db(), "PRAGMA user_version") == "1");
    // The ALTER TABLE that ran before the failure was rolled back with it.
    CHECK(query_column(dir.db(), "SELECT name FROM pragma_table_info('outbox') WHERE name='at'").empty());
    CHECK(query_text(dir.db(), "SELECT count(*) FROM outbox") == "2");
}

// ---- retention -------------------------------------------------------------------------

TEST_CASE("retention removes exactly the observations and ingests older than the keep", "[store]") {
    TempDir dir;
    Store store(dir.db());
    store.upsert_localities({locality("L1"), locality("L2"), locality("L3")});
    const TimePoint now = at(2026, 6, 1);
    const TimePoint cutoff = now - std::chrono::days{90};  // 2026-03-03
    auto ingest_at = [](const std::string& digest, TimePoint t) {
        IngestRecord r = record(digest, 1);
        r.at = t;
        return r;
    };
    store.commit_observations({obs("L1", at(2025, 1, 1), "school.dropouts", 1),
                               obs("L2", cutoff - std::chrono::seconds{1}, "presence.report", 2),
                               obs("L3", at(2026, 1, 1), "school.dropouts", 3, "other")},
                              ingest_at("old", at(2026, 1, 2)));
    store.commit_observations({obs("L1", cutoff, "school.dropouts", 4),
                               obs("L2", at(2026, 5, 1), "presence.report", 5),
                               obs("L3", at(2026, 5, 31), "school.dropouts", 6)},
                              ingest_at("new", cutoff));

    SECTION("in one transaction or in batches, the same rows go") {
        const std::size_t batch = GENERATE(std::size_t{20000}, std::size_t{1});
        auto removed = store.apply_retention(now, std::chrono::days{90}, std::nullopt, batch);
        CHECK(removed.observations == 3);
        CHECK(removed.ingests == 1);
        CHECK(removed.outbox == 0);
        auto left = all_observations(store);
        REQUIRE(left.size() == 3);
        CHECK(left[0].value == 4);  // exactly at the cutoff: kept
        CHECK(left[1].value == 5);
        CHECK(left[2].value == 6);
        CHECK_FALSE(store.ingest_seen("old"));
        CHECK(store.ingest_seen("new"));

        // Nothing more is old: a second pass removes nothing.
        removed = store.apply_retention(now, std::chrono::days{90}, std::chrono::days{30});
        CHECK(removed.observations == 0);
        CHECK(removed.ingests == 0);
    }
    SECTION("without a keep, nothing is removed") {
        auto removed = store.apply_retention(now, std::nullopt, std::nullopt);
        CHECK(removed.observations == 0);
        CHECK(store.observation_count() == 6);
    }
    SECTION("a keep under one day is refused") {
        auto message = error_of([&] { store.apply_retention(now, std::chrono::days{0}, std::nullopt); });
        CHECK_THAT(message, Catch::Contains("keep_observations must be at least 1 day"));
        CHECK(store.observation_count() == 6);
    }
}

TEST_CASE("retention purges old outbox rows but the seq continues and open alerts stay", "[store]") {
    TempDir dir;
    Store store(dir.db());
    store.commit_evaluation(
        {open_state("L1", "a-1", Level::watch), open_state("L2", "a-2", Level::warning)},
        {row("pub", 1, "alert/KE/L1/", "a-1", "L1"), row("pub", 2, "ops/", "", ""),
         row("pub", 3, "alert/KE/L2/", "a-2", "L2"), row("pub", 4, "alert/KE/L1/", "a-1", "L1"),
         row("scoped", 1, "alert/KE/L1/", "a-1", "L1")});
    AlertState resolved = open_state("L2", "", Level::none);
    resolved.opened_at.reset();
    store.commit_evaluation({resolved}, {row("pub", 5, "ops/", "", "")});

    // Rows committed just now are not old.
    auto removed = store.apply_retention(wall_now(), std::nullopt, std::chrono::days{30});
    CHECK(removed.outbox == 0);

    // Everything but pub 5 was committed 40 days ago.
    const auto old = (wall_now() - std::chrono::days{40}).time_since_epoch().count();
    exec_sql(dir.db(), "UPDATE outbox SET at=" + std::to_string(old) +
                           " WHERE NOT (endpoint='pub' AND seq=5)");
    removed = store.apply_retention(wall_now(), std::chrono::days{365}, std::chrono::days{30});
    CHECK(removed.outbox == 3);  // pub 1, 2, 3
    CHECK(removed.observations == 0);
    auto seqs = [&](const std::string& endpoint) {
        std::vector<std::uint64_t> out;
        for (const auto& r : store.outbox_after(endpoint, 0, 100)) out.push_back(r.seq);
        return out;
    };
    // pub 4 is the newest row of open alert a-1; scoped 1 is its endpoint's newest row.
    CHECK(seqs("pub") == std::vector<std::uint64_t>{4, 5});
    CHECK(seqs("scoped") == std::vector<std::uint64_t>{1});
    auto open = store.open_alert_rows("pub", "alert/");
    REQUIRE(open.size() == 1);
    CHECK(open[0].seq == 4);

    // All old, alert closed: only each endpoint's newest row stays, and numbering goes on.
    AlertState closed = open_state("L1", "", Level::none);
    closed.opened_at.reset();
    store.commit_evaluation({closed}, {row("pub", 6, "alert/KE/L1/", "a-1", "L1")});
    exec_sql(dir.db(), "UPDATE outbox SET at=" + std::to_string(old));
    removed = store.apply_retention(wall_now(), std::nullopt, std::chrono::days{30}, 1);
    CHECK(removed.outbox == 2);  // pub 4, 5
    CHECK(seqs("pub") == std::vector<std::uint64_t>{6});
    CHECK(store.last_seq("pub") == 6);
    CHECK(store.last_seq("scoped") == 1);
    CHECK_THROWS_AS(store.commit_evaluation({}, {row("pub", 1, "ops/", "", "")}), StoreError);
    store.commit_evaluation({}, {row("pub", 7, "ops/", "", ""), row("scoped", 2, "ops/", "", "")});
    CHECK(seqs("pub") == std::vector<std::uint64_t>{6, 7});
    CHECK(seqs("scoped") == std::vector<std::uint64_t>{1, 2});
}

// ---- backup ----------------------------------------------------------------------------

TEST_CASE("a backup is a verified single-file copy that opens as a store", "[store]") {
    TempDir dir;
    const fs::path out_dir = dir.path / "backups";
    fs::create_directories(out_dir);
    const fs::path out = out_dir / "ewsd-backup.db";
    {
        Store store(dir.db());
        store.upsert_localities({locality("L1"), locality("L2")});
        store.commit_observations({obs("L1", at(2026, 1, 1), "school.dropouts", 3),
                                   obs("L2", at(2026, 1, 1), "school.dropouts", 4)},
                                  record("d1", 2));
        store.commit_evaluation({open_state("L1", "a-1", Level::watch)},
                                {row("pub", 1, "alert/KE/L1/", "a-1", "L1")});
        std::ofstream(out) << "an older backup";

        auto result = store.backup(out);
        CHECK(result.file == out);
        CHECK(result.bytes == fs::file_size(out));
        CHECK(result.schema_version == Store::schema_version);
        auto count_of = [&](const std::string& table) {
            for (const auto& t : result.tables)
                if (t.table == table) return t.rows;
            return std::int64_t{-1};
        };
        CHECK(count_of("localities") == 2);
        CHECK(count_of("observations") == 2);
        CHECK(count_of("outbox") == 1);
        CHECK(count_of("audit") == 0);

        // Written after the backup: not in it.
        store.commit_evaluation({}, {row("pub", 2, "ops/", "", "")});
    }
    // One file, no journal, no temporary left beside it; it is not in WAL mode.
    CHECK(entries(out_dir) == std::set<std::string>{"ewsd-backup.db"});
    CHECK(query_text(out, "PRAGMA journal_mode") == "delete");

    Store restored(out);
    CHECK(restored.localities().size() == 2);
    CHECK(restored.observation_count() == 2);
    CHECK(restored.ingest_seen("d1"));
    CHECK(restored.last_seq("pub") == 1);
    CHECK(restored.alert_states().at(0).alert_id == "a-1");
}

TEST_CASE("a backup taken while another connection writes is a consistent snapshot", "[store]") {
    TempDir dir;
    constexpr int batch = 100;
    Store daemon(dir.db());
    std::vector<Locality> locs;
    for (int i = 0; i < 50; ++i) locs.push_back(locality("L" + std::to_string(i)));
    daemon.upsert_localities(locs);
    auto batch_rows = [&](int n) {
        std::vector<Observation> rows;
        for (int i = 0; i < batch; ++i)
            rows.push_back(obs("L" + std::to_string(i % 50), at(2026, 1, 1) + std::chrono::hours{n},
                               "k" + std::to_string(i / 50), i));
        return rows;
    };
    for (int n = 0; n < 100; ++n)
        daemon.commit_observations(batch_rows(n), record("pre" + std::to_string(n), batch));

    // The daemon's writer: batches of `batch` rows, each with its ingest record, until told
    // to stop. The backups below read the same file through their own connection.
    std::atomic<bool> stop{false};
    std::atomic<int> written{0};
    std::exception_ptr failure;
    std::thread writer([&] {
        try {
            for (int n = 100; !stop; ++n) {
                daemon.commit_observations(batch_rows(n), record("w" + std::to_string(n), batch));
                ++written;
            }
        } catch (...) {
            failure = std::current_exception();
        }
    });

    const fs::path out = dir.path / "backup.db";
    int backups = 0;
    const int before = written.load();
    std::string problem;
    while ((backups < 3 || written.load() < before + 5) && backups < 500) {
        try {
            auto result = Store::backup_database(dir.db(), out);
            ++backups;
            // Each commit adds `batch` observations and one ingest: a snapshot taken between
            // commits holds exactly `batch` observations per ingest.
            std::int64_t observations = -1, ingests = -1;
            for (const auto& t : result.tables) {
                if (t.table == "observations") observations = t.rows;
                if (t.table == "ingests") ingests = t.rows;
            }
            if (ingests < 100 || observations != ingests * batch)
                problem = "backup " + std::to_string(backups) + ": " + std::to_string(observations) +
                          " observations for " + std::to_string(ingests) + " ingests";
            if (query_text(out, "PRAGMA integrity_check") != "ok") problem = "integrity_check";
        } catch (const StoreError& e) {
            problem = e.what();
        }
        if (!problem.empty()) break;
    }
    stop = true;
    writer.join();
    if (failure) std::rethrow_exception(failure);
    CHECK(problem == "");
    CHECK(backups >= 3);
    CHECK(written.load() >= before + 5);  // the writer really ran alongside
    CHECK(entries(dir.path).count("backup.db") == 1);
    for (const auto& name : entries(dir.path)) CHECK_FALSE(name.starts_with(".backup.db"));
}

TEST_CASE("a backup that cannot be completed leaves nothing under its name", "[store]") {
    TempDir dir;
    SECTION("the target directory does not exist") {
        { Store store(dir.db()); }
        const fs::path out = dir.path / "missing" / "backup.db";
        auto message = error_of([&] { Store::backup_database(dir.db(), out); });
        CHECK_THAT(message, Catch::Contains(out.string()) && Catch::Contains("does not exist"));
        CHECK_FALSE(fs::exists(dir.path / "missing"));
    }
    SECTION("the target is a directory") {
        { Store store(dir.db()); }
        auto message = error_of([&] { Store::backup_database(dir.db(), dir.path); });
        CHECK_THAT(message, Catch::Contains("is a directory"));
    }
    SECTION("there is no database") {
        auto message = error_of([&] { Store::backup_database(dir.path / "nothing.db", dir.path / "b.db"); });
        CHECK_THAT(message, Catch::Contains("nothing.db") && Catch::Contains("no database file"));
        CHECK_FALSE(fs::exists(dir.path / "nothing.db"));
        CHECK_FALSE(fs::exists(dir.path / "b.db"));
    }
    SECTION("the database is damaged: the copy fails its check, the previous backup stays") {
        corrupt_middle(dir.db());
        const fs::path out_dir = dir.path / "backups";
        fs::create_directories(out_dir);
        const fs::path out = out_dir / "backup.db";
        std::ofstream(out) << "the previous backup";
        auto message = error_of([&] { Store::backup_database(dir.db(), out); });
        CHECK_THAT(message, Catch::Contains(out.string()) && Catch::Contains("integrity_check"));
        CHECK(entries(out_dir) == std::set<std::string>{"backup.db"});
        std::ifstream in(out);
        std::string content((std::istreambuf_iterator<char>(in)), {});
        CHECK(content == "the previous backup");
    }
}

// ---- checks and statistics -------------------------------------------------------------

TEST_CASE("integrity_check reports a sound database as clean and a damaged one with problems",
          "[store]") {
    TempDir dir;
    {
        Store store(dir.db());
        store.upsert_localities({locality("L1")});
        CHECK(store.integrity_check().empty());
        // Through its own connection while the Store is open, as `ewsctl db check` does.
        CHECK(Store::integrity_check_file(dir.db()).empty());
    }
    corrupt_middle(dir.db());
    CHECK_FALSE(Store::integrity_check_file(dir.db()).empty());
    auto message = error_of([&] { Store::integrity_check_file(dir.path / "absent.db"); });
    CHECK_THAT(message, Catch::Contains("absent.db") && Catch::Contains("no database file"));
}

TEST_CASE("stats count what the store holds", "[store]") {
    TempDir dir;
    Store store(dir.db());
    store.upsert_localities({locality("L1"), locality("L2")});
    // Kind kNN has NN + 1 rows: 25 kinds, 325 rows.
    std::vector<Observation> rows;
    for (int k = 0; k < 25; ++k)
        for (int i = 0; i <= k; ++i)
            rows.push_back(obs(i % 2 ? "L2" : "L1", at(2025, 1, 1) + std::chrono::days{7 * i},
                               (k < 10 ? "k0" : "k") + std::to_string(k), i));
    rows.push_back(obs("L1", at(2024, 12, 30), "k00", 0, "late"));
    store.commit_observations(rows, record("d1", std::int64_t(rows.size())));
    store.commit_evaluation({}, {row("pub", 1, "ops/", "", ""), row("pub", 2, "ops/", "", ""),
                                 row("other", 1, "ops/", "", "")});

    auto s = store.stats();
    CHECK(s.schema_version == Store::schema_version);
    CHECK(s.observations == 326);
    CHECK(s.oldest_observation == at(2024, 12, 30));
    CHECK(s.newest_observation == at(2025, 1, 1) + std::chrono::days{7 * 24});
    REQUIRE(s.kinds.size() == 20);
    CHECK(s.kinds[0] == std::pair<std::string, std::int64_t>{"k24", 25});
    CHECK(s.kinds[19] == std::pair<std::string, std::int64_t>{"k05", 6});
    CHECK(s.last_seq == std::vector<std::pair<std::string, std::uint64_t>>{{"other", 1}, {"pub", 2}});
    std::vector<std::string> names;
    for (const auto& t : s.tables) {
        names.push_back(t.table);
        CHECK(std::to_string(t.rows) == query_text(dir.db(), "SELECT count(*) FROM " + t.table));
    }
    CHECK(names == std::vector<std::string>{"acknowledgements", "alert_state", "audit",
                                            "held_events", "ingests", "localities", "meta",
                                            "observations", "outbox", "silences"});
    const auto page_size = std::stoull(query_text(dir.db(), "PRAGMA page_size"));
    CHECK(s.file_bytes == page_size * std::stoull(query_text(dir.db(), "PRAGMA page_count")));
    CHECK(s.file_bytes > 0);
    CHECK(s.wal_bytes == fs::file_size(dir.db().string() + "-wal"));
    CHECK(s.wal_bytes > 0);

    // Through its own read-only connection while the Store is open: the same numbers.
    auto f = Store::stats_of_file(dir.db());
    CHECK(f.observations == s.observations);
    CHECK(f.kinds == s.kinds);
    CHECK(f.last_seq == s.last_seq);
    CHECK(f.file_bytes == s.file_bytes);
    CHECK(f.tables.size() == s.tables.size());
}

TEST_CASE("reading a closed database for stats, check or backup leaves no files beside it",
          "[store]") {
    TempDir dir;
    {
        Store store(dir.db());
        store.upsert_localities({locality("L1")});
    }
    REQUIRE(entries(dir.path) == std::set<std::string>{"ewsd.db"});
    CHECK(Store::stats_of_file(dir.db()).tables.size() == 10);
    CHECK(Store::integrity_check_file(dir.db()).empty());
    Store::backup_database(dir.db(), dir.path / "copy.db");
    CHECK(entries(dir.path) == std::set<std::string>{"copy.db", "ewsd.db"});
}

TEST_CASE("a WalCheckpointer copies the WAL into the database from its own thread", "[store]") {
    TempDir tmp;
    const fs::path file = tmp.path / "ewsd.db";
    Store store(file);
    store.set_autocheckpoint(0);
    std::vector<Locality> localities;
    for (int i = 0; i < 200; ++i) localities.push_back({"L" + std::to_string(i), "x", "R/R1", std::nullopt, {}});
    store.upsert_localities(localities);
    std::vector<Observation> rows;
    const auto t0 = *parse_time("2026-01-01");
    for (int i = 0; i < 200; ++i)
        for (int d = 0; d < 100; ++d)
            rows.push_back({"L" + std::to_string(i), t0 + std::chrono::days(d), "school.enrolled",
                            double(d), 1.0, "emis"});
    store.commit_observations(rows, IngestRecord{"digest-1", "rows.csv", std::int64_t(rows.size()), 0, "done", t0});
    // With the automatic checkpoint off, the rows are in the WAL only.
    const auto before = fs::file_size(file);
    REQUIRE(fs::file_size(file.string() + "-wal") > before);

    {
        WalCheckpointer checkpointer(file, std::chrono::milliseconds(20));
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (checkpointer.checkpoints() == 0 && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        CHECK(checkpointer.checkpoints() > 0);
    }
    CHECK(fs::file_size(file) > before + 100000);  // 20k rows copied into the database file

    // It stops promptly whatever its interval.
    const auto started = std::chrono::steady_clock::now();
    { WalCheckpointer idle(file, std::chrono::hours(1)); }
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(5));

    // A file that does not exist is refused, not created.
    CHECK_THROWS_AS(WalCheckpointer(tmp.path / "none.db", std::chrono::seconds(1)), StoreError);
    CHECK_FALSE(fs::exists(tmp.path / "none.db"));
}

TEST_CASE("a WalCheckpointer empties a WAL that a steady writer keeps growing", "[store]") {
    TempDir tmp;
    const fs::path file = tmp.path / "ewsd.db";
    const fs::path wal = file.string() + "-wal";
    Store store(file);
    store.set_autocheckpoint(0);
    std::vector<Locality> localities;
    for (int i = 0; i < 50; ++i) localities.push_back({"L" + std::to_string(i), "x", "R/R1", std::nullopt, {}});
    store.upsert_localities(localities);
    const auto t0 = *parse_time("2026-01-01");
    constexpr int truncate_pages = 64;  // 256 KiB
    store.truncate_wal_above(truncate_pages);
    std::uintmax_t largest = 0;
    std::uintmax_t emptied = 0;  // commits after which the WAL file was shorter than before
    {
        WalCheckpointer checkpointer(file, std::chrono::milliseconds(10));
        // Commits back to back, as a daemon under a steady ingest does: about 6 MiB in all.
        for (int c = 0; c < 400; ++c) {
            std::vector<Observation> rows;
            for (int i = 0; i < 50; ++i)
                for (int k = 0; k < 4; ++k)
                    rows.push_back({"L" + std::to_string(i), t0 + std::chrono::hours(c),
                                    "incident.k" + std::to_string(k), double(c), 1.0, "m"});
            const auto before = fs::exists(wal) ? fs::file_size(wal) : 0;
            store.commit_observations(
                rows, IngestRecord{"d" + std::to_string(c), "b", 200, 0, "done", t0});
            const auto after = fs::exists(wal) ? fs::file_size(wal) : 0;
            if (after < before) ++emptied;
            largest = std::max(largest, after);
        }
    }
    INFO("largest WAL " << largest << " bytes, emptied " << emptied << " times");
    CHECK(emptied > 0);
    // Bounded: the threshold plus one commit's pages (about 1 MiB here) for each commit whose
    // TRUNCATE found the WalCheckpointer mid-checkpoint (SQLite then gives up at once and the
    // next commit tries again), where the checkpointer alone let it grow past 200 MiB.
    CHECK(largest < 16u * 1024 * 1024);
    CHECK(store.observation_count() == 400 * 200);
    CHECK(store.integrity_check().empty());
}
