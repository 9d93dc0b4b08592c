#include "store.hpp"

#include <catch2/catch.hpp>
// The store's own tests look at the file through a second connection, as ewsctl or the
// sqlite3 CLI would; no other module's tests include sqlite3.h.
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

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
    CHECK(Store::schema_version == 1);
    CHECK(query_text(dir.db(), "PRAGMA journal_mode") == "wal");
    CHECK(query_text(dir.db(), "PRAGMA user_version") == "1");
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
    CHECK(store.user_version() == 1);
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
    {
        Store store(dir.db());
        std::vector<Locality> many;
        for (int i = 0; i < 2000; ++i) many.push_back(locality("L" + std::to_string(i)));
        store.upsert_localities(many);
    }
    // Overwrite the middle pages of the file (the localities b-tree), keeping the header.
    auto size = fs::file_size(dir.db());
    REQUIRE(size > 4 * 4096);
    {
        std::fstream f(dir.db(), std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(2 * 4096);
        for (std::uintmax_t i = 2 * 4096; i < size - 4096; ++i) f.put(static_cast<char>(0x5a));
    }
    auto message = error_of([&] { Store store(dir.db()); });
    CHECK_THAT(message, Catch::Contains(dir.db().string()) && Catch::Contains("corrupt") &&
                            Catch::Contains("ewsctl backup") && Catch::Contains("stop ewsd"));
}
