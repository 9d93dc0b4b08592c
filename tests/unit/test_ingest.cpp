#include "ingest.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>

#include <poll.h>
#include <unistd.h>

using namespace ews;
namespace fs = std::filesystem;

namespace {

const std::string header = "locality,time,kind,value,weight,source\n";

ObservationRules rules() {
    ObservationRules r;
    r.known_locality = [](std::string_view id) { return id == "KE-001" || id == "KE-002"; };
    r.now = *parse_time("2026-03-01T00:00:00Z");
    r.future_tolerance = std::chrono::hours(24);
    return r;
}

ObservationParse parse(const std::string& content) {
    return parse_observations_csv(content, "obs.csv", rules());
}

// Parses `content` and returns its single error (fails the test when there is not exactly
// one error, or when any row is accepted).
RowError only_error(const std::string& content) {
    auto p = parse(content);
    INFO(content);
    CHECK(p.rows.empty());
    REQUIRE(p.errors.size() == 1);
    return p.errors.front();
}

struct TempDir {
    fs::path path;
    TempDir() {
        static int n = 0;
        path = fs::temp_directory_path() /
               ("ews_test_ingest_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    fs::path write(const std::string& name, const std::string& text) const {
        fs::path p = path / name;
        std::ofstream(p, std::ios::binary) << text;
        return p;
    }
};

std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

}  // namespace

TEST_CASE("row errors format as file:line:column: reason", "[ingest]") {
    CHECK(RowError{"a.csv", 3, 2, "bad"}.format() == "a.csv:3:2: bad");
    CHECK(RowError{"a.csv", 3, 0, "bad"}.format() == "a.csv:3: bad");
}

TEST_CASE("a BOM, CRLF line ends and RFC 4180 quoting are accepted", "[ingest]") {
    auto p = parse("\xEF\xBB\xBFlocality,time,kind,value,weight,source\r\n"
                   "KE-001,2026-01-05,school.dropouts,3,2.5,emis\r\n"
                   "\r\n"
                   "\"KE-002\",\"2026-01-06T10:00:00Z\",\"incident.abduction\",\"1\",,\"\"\r\n");
    REQUIRE(p.errors.empty());
    REQUIRE(p.rows.size() == 2);
    CHECK(p.data_rows == 2);
    CHECK(p.rows[0].locality == "KE-001");
    CHECK(format_time(p.rows[0].time) == "2026-01-05T00:00:00Z");
    CHECK(p.rows[0].kind == "school.dropouts");
    CHECK(p.rows[0].value == 3);
    CHECK(p.rows[0].weight == 2.5);
    CHECK(p.rows[0].source == "emis");
    CHECK(p.rows[1].locality == "KE-002");
    CHECK(p.rows[1].weight == 1);          // empty weight: default
    CHECK(p.rows[1].source == "unknown");  // empty source: default

    // A quoted comma stays inside its field: the row has the right field count and the
    // value itself is what is refused.
    auto e = only_error(header + "KE-001,2026-01-05,school.dropouts,\"1,5\",1,emis\n");
    CHECK(e.line == 2);
    CHECK(e.column == 4);
}

TEST_CASE("columns may come in any order and weight, source are optional", "[ingest]") {
    auto p = parse("value,kind,time,locality\n7,incident.abduction,2026-02-01,KE-002\n");
    REQUIRE(p.errors.empty());
    REQUIRE(p.rows.size() == 1);
    CHECK(p.rows[0].value == 7);
    CHECK(p.rows[0].locality == "KE-002");
    CHECK(p.rows[0].weight == 1);
    CHECK(p.rows[0].source == "unknown");
}

TEST_CASE("line numbers stay physical across quoted line breaks", "[ingest]") {
    auto p = parse(header + "\"KE-001\n\",2026-01-05,school.dropouts,1,1,emis\n" +
                   "KE-001,2026-01-05,school.dropouts,x,1,emis\n");
    REQUIRE(p.errors.size() == 2);
    CHECK(p.errors[0].line == 2);  // the row starts on line 2 (the locality holds a newline)
    CHECK(p.errors[0].column == 1);
    CHECK(p.errors[1].line == 4);
    CHECK(p.errors[1].column == 4);
}

TEST_CASE("an unknown column refuses the whole file", "[ingest]") {
    auto p = parse("locality,time,kind,value,child_name\nKE-001,2026-01-05,school.dropouts,3,X\n");
    CHECK(p.rows.empty());
    CHECK(p.data_rows == 1);
    REQUIRE(p.errors.size() == 1);
    CHECK(p.errors[0].format() ==
          "obs.csv:1:5: unknown column 'child_name' (allowed: locality,time,kind,value,weight,"
          "source); no field for a person may be ingested");

    auto dup = only_error("locality,time,kind,value,time\n");
    CHECK(dup.line == 1);
    CHECK(dup.column == 5);
    CHECK(dup.reason.find("duplicate column 'time'") != std::string::npos);

    auto missing = only_error("locality,time,kind\nKE-001,2026-01-05,school.dropouts\n");
    CHECK(missing.line == 1);
    CHECK(missing.reason.find("missing column 'value'") != std::string::npos);
}

TEST_CASE("empty and header-only files", "[ingest]") {
    auto empty = only_error("");
    CHECK(empty.format() == "obs.csv:1: empty file, expected a header line");
    auto p = parse(header);
    CHECK(p.rows.empty());
    CHECK(p.errors.empty());
    CHECK(p.data_rows == 0);
}

TEST_CASE("each bad row is refused with its line, column and reason", "[ingest]") {
    struct Case {
        std::string row;
        std::size_t column;
        std::string reason_part;
    };
    const Case cases[] = {
        {"KE-001,2026-01-05,school.dropouts", 4, "missing field"},
        {"KE-001,2026-01-05,school.dropouts,3,1,emis,extra", 7, "extra field"},
        {"KE-001,2026-01-05,school.dropouts,nan,1,emis", 4, "not a finite number"},
        {"KE-001,2026-01-05,school.dropouts,NaN,1,emis", 4, "not a finite number"},
        {"KE-001,2026-01-05,school.dropouts,inf,1,emis", 4, "not a finite number"},
        {"KE-001,2026-01-05,school.dropouts,1e999,1,emis", 4, "not a finite number"},
        {"KE-001,2026-01-05,school.dropouts,3abc,1,emis", 4, "not a finite number"},
        {"KE-001,2026-01-05,school.dropouts,,1,emis", 4, "not a finite number"},
        {"KE-001,2026-01-05,school.dropouts,-2,1,emis", 4, "negative count"},
        {"KE-001,2026-01-05,incident.abduction,-1,1,emis", 4, "negative count"},
        {"KE-001,2026-01-05,presence.report,1.5,1,emis", 4, "confidence outside 0..1"},
        {"KE-001,2026-01-05,presence.report,-0.1,1,emis", 4, "confidence outside 0..1"},
        {"KE-001,2026-03-02T00:00:01Z,school.dropouts,3,1,emis", 2,
         "is in the future beyond the tolerance"},
        {"KE-001,2027-01-01,school.dropouts,3,1,emis", 2, "is in the future beyond the tolerance"},
        {"KE-001,2026-02-30,school.dropouts,3,1,emis", 2, "not an ISO 8601 date"},
        {"KE-001,yesterday,school.dropouts,3,1,emis", 2, "not an ISO 8601 date"},
        {"KE-999,2026-01-05,school.dropouts,3,1,emis", 1, "unknown locality 'KE-999'"},
        {",2026-01-05,school.dropouts,3,1,emis", 1, "empty locality"},
        {"KE-001,2026-01-05,school,3,1,emis", 3, "kind"},
        {"KE-001,2026-01-05,School.dropouts,3,1,emis", 3, "kind"},
        {"KE-001,2026-01-05,school..dropouts,3,1,emis", 3, "kind"},
        {"KE-001,2026-01-05,school.dropouts,3,0,emis", 5, "weight"},
        {"KE-001,2026-01-05,school.dropouts,3,-1,emis", 5, "weight"},
        {"KE-001,2026-01-05,school.dropouts,3,nan,emis", 5, "weight"},
        {"KE-001,2026-01-05,school.dropouts,3,1,'); DROP TABLE observations;--", 6,
         "source does not match"},
        {"KE-001,2026-01-05,school.dropouts,3,1,monitor 12", 6, "source does not match"},
        {"KE-001,2026-01-05,school.dropouts,3,1," + std::string(65, 's'), 6,
         "source does not match"},
        // Malformed UTF-8: overlong '/', a surrogate, a lone continuation byte, a
        // truncated sequence, a code point above U+10FFFF.
        {"KE-001,2026-01-05,school.dropouts,3,1,em\xC0\xAFis", 6, "malformed UTF-8"},
        {"KE-001,2026-01-05,school.dropouts,3,1,\xED\xA0\x80", 6, "malformed UTF-8"},
        {"KE-001,\x80,school.dropouts,3,1,emis", 2, "malformed UTF-8"},
        {"KE-001,2026-01-05,school.dropouts,3,\xE2\x82,emis", 5, "malformed UTF-8"},
        {"KE-001,2026-01-05,school.dropouts,3,1,\xF4\x90\x80\x80", 6, "malformed UTF-8"},
        {std::string("KE-001,2026-01-05,school.dropouts,3,1,em") + '\0' + "is", 6,
         "control character"},
        {"KE-001,2026-01-05,school.dropouts,3,1,\"em\"is", 6, "after a closing quote"},
        {"KE-001,2026-01-05,school.dropouts,3,1,em\"is", 6, "quote inside an unquoted field"},
        {"KE-001,2026-01-05,school.dropouts,3,1,\"emis", 6, "unterminated quoted field"},
    };
    for (const auto& c : cases) {
        // A good row before and after proves the bad one is isolated and lines are exact.
        auto p = parse(header + "KE-001,2026-01-01,school.enrolled,100,1,emis\n" + c.row + "\n" +
                       "KE-002,2026-01-01,school.enrolled,90,1,emis\n");
        INFO(c.row);
        REQUIRE(p.errors.size() == 1);
        CHECK(p.errors[0].line == 3);
        CHECK(p.errors[0].column == c.column);
        CHECK_THAT(p.errors[0].reason, Catch::Contains(c.reason_part));
        CHECK(p.data_rows == (c.reason_part == "unterminated quoted field" ? 2u : 3u));
        CHECK(p.rows.size() == (c.reason_part == "unterminated quoted field" ? 1u : 2u));
    }
}

TEST_CASE("values at the edges of their ranges are accepted", "[ingest]") {
    auto p = parse(header + "KE-001,2026-03-02T00:00:00Z,school.dropouts,0,1,emis\n" +
                   "KE-001,2026-01-05,presence.report,1,0.5,monitor-12\n" +
                   "KE-001,2026-01-05,presence.report,0,1,a.b:c_d-e\n" +
                   "KE-001,2026-01-05,rain.mm_total,-3.5e1,1,met\n");
    CHECK(p.errors.empty());
    REQUIRE(p.rows.size() == 4);
    CHECK(p.rows[3].value == -35);  // kinds outside school/incident/presence may be negative
}

TEST_CASE("huge fields and binary garbage are refused, never a crash", "[ingest]") {
    auto huge = parse(header + "KE-001,2026-01-05,school.dropouts,3,1," +
                      std::string(1 << 20, 'a') + "\n" + "KE-001,2026-01-05,school.dropouts,3,1,"
                      "\"" + std::string(1 << 20, 'b') + "\"\n");
    REQUIRE(huge.errors.size() == 2);
    CHECK(huge.errors[0].line == 2);
    CHECK(huge.errors[0].column == 6);
    CHECK_THAT(huge.errors[0].reason, Catch::Contains("field longer than 4096 bytes"));
    CHECK(huge.errors[1].line == 3);
    CHECK(huge.errors[1].column == 6);

    auto wide = parse(header + std::string(100000, ','));
    REQUIRE(wide.errors.size() == 1);
    CHECK(wide.errors[0].line == 2);

    std::mt19937 rng(42);
    std::string garbage;
    for (int i = 0; i < 200000; ++i) garbage.push_back(static_cast<char>(rng() & 0xFF));
    auto g = parse(header + garbage);
    CHECK(g.rows.empty());
    CHECK(g.errors.size() == g.data_rows);
    CHECK(!g.errors.empty());
    for (const auto& e : g.errors) CHECK(e.line >= 2);

    auto only_garbage = parse(garbage);
    CHECK(only_garbage.rows.empty());
    CHECK(only_garbage.errors.size() == 1);
}

TEST_CASE("localities parse with optional population and neighbours", "[ingest]") {
    auto p = parse_localities_csv(
        "\xEF\xBB\xBFid,name,region,population,neighbours\r\n"
        "KE-001,\"Kisumu, \"\"East\"\"\",KE/KE-03/KE-030,1200,KE-002;KE-003\r\n"
        "KE-002,Nyalenda \xC3\x91,KE/KE-03,,\r\n"
        "KE-003,Manyatta,KE,0.5, KE-001 \r\n",
        "loc.csv");
    REQUIRE(p.errors.empty());
    REQUIRE(p.rows.size() == 3);
    CHECK(p.rows[0].id == "KE-001");
    CHECK(p.rows[0].name == "Kisumu, \"East\"");
    CHECK(p.rows[0].region == "KE/KE-03/KE-030");
    CHECK(p.rows[0].population == 1200);
    CHECK(p.rows[0].neighbours == std::vector<std::string>{"KE-002", "KE-003"});
    CHECK(p.rows[1].name == "Nyalenda \xC3\x91");
    CHECK_FALSE(p.rows[1].population);
    CHECK(p.rows[1].neighbours.empty());
    CHECK(p.rows[2].neighbours == std::vector<std::string>{"KE-001"});

    auto minimal = parse_localities_csv("region,id,name\nKE,A,Alpha\n", "loc.csv");
    REQUIRE(minimal.rows.size() == 1);
    CHECK(minimal.rows[0].id == "A");
    CHECK(minimal.rows[0].region == "KE");
}

TEST_CASE("bad localities are refused with line and column", "[ingest]") {
    const std::string head = "id,name,region,population,neighbours\n";
    struct Case {
        std::string row;
        std::size_t column;
        std::string reason_part;
    };
    const Case cases[] = {
        {"KE 001,Alpha,KE,,", 1, "id"},
        {",Alpha,KE,,", 1, "id"},
        {"A,Alpha,KE,,", 1, "duplicate id 'A' (first on line 2)"},
        {"B,,KE,,", 2, "empty name"},
        {"B,Beta,KE//x,,", 3, "region"},
        {"B,Beta,/KE,,", 3, "region"},
        {"B,Beta,,,", 3, "region"},
        {"B,Beta,KE,-1,", 4, "population"},
        {"B,Beta,KE,many,", 4, "population"},
        {"B,Beta,KE,inf,", 4, "population"},
        {"B,Beta,KE,,A;bad id", 5, "neighbour id"},
        {"B,Beta,KE,,A;;C", 5, "neighbour id"},
        {"B,Beta,KE,,B", 5, "own neighbour"},
        {"B,Beta \xFF,KE,,", 2, "malformed UTF-8"},
        {"B,Beta,KE,", 5, "missing field"},
    };
    for (const auto& c : cases) {
        auto p = parse_localities_csv(head + "A,Alpha,KE,,\n" + c.row + "\n", "loc.csv");
        INFO(c.row);
        REQUIRE(p.errors.size() == 1);
        CHECK(p.errors[0].line == 3);
        CHECK(p.errors[0].column == c.column);
        CHECK_THAT(p.errors[0].reason, Catch::Contains(c.reason_part));
        CHECK(p.rows.size() == 1);
    }

    auto unknown =
        parse_localities_csv("id,name,region,head_of_household\nA,Alpha,KE,X\n", "l.csv");
    CHECK(unknown.rows.empty());
    REQUIRE(unknown.errors.size() == 1);
    CHECK(unknown.errors[0].line == 1);
    CHECK(unknown.errors[0].column == 4);
    CHECK_THAT(unknown.errors[0].reason, Catch::Contains("unknown column 'head_of_household'"));
}

TEST_CASE("content digests are hex SHA-1", "[ingest]") {
    CHECK(content_digest("") == "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    CHECK(content_digest("abc") == "a9993e364706816aba3e25717850c26c9cd0d89d");
}

TEST_CASE("the spool lists ready files and moves them after ingest", "[ingest]") {
    TempDir tmp;
    const fs::path dir = tmp.path / "spool";
    Spool spool(dir);
    CHECK(fs::is_directory(dir / "done"));
    CHECK(fs::is_directory(dir / "failed"));
    REQUIRE(spool.watch_fd() >= 0);

    std::ofstream(dir / "b.csv") << header;
    pollfd pfd{spool.watch_fd(), POLLIN, 0};
    CHECK(::poll(&pfd, 1, 1000) == 1);  // closing a written file wakes the watch
    spool.drain_events();
    CHECK(::poll(&pfd, 1, 0) == 0);

    std::ofstream(dir / "a.csv") << header;
    std::ofstream(dir / ".hidden.csv") << header;
    std::ofstream(dir / "c.rejected.csv") << header;
    std::ofstream(dir / "notes.txt") << "x";
    fs::create_directory(dir / "d.csv");
    fs::create_symlink(dir / "a.csv", dir / "e.csv");
    CHECK(spool.pending() == std::vector<fs::path>{dir / "a.csv", dir / "b.csv"});

    SECTION("committed with rejected rows: done/ plus NAME.rejected.csv") {
        IngestOutcome o;
        o.file = (dir / "a.csv").string();
        o.committed = true;
        o.errors = {{o.file, 3, 4, "value 'x' is not a finite number"},
                    {o.file, 5, 0, "unknown column 'a,\"b\"'"}};
        spool.finish(o);
        CHECK_FALSE(fs::exists(dir / "a.csv"));
        CHECK(fs::exists(dir / "done" / "a.csv"));
        CHECK(read(dir / "done" / "a.rejected.csv") ==
              "line,column,reason\n3,4,value 'x' is not a finite number\n"
              "5,0,\"unknown column 'a,\"\"b\"\"'\"\n");

        // A second file of the same name never overwrites the first.
        std::ofstream(dir / "a.csv") << "again";
        IngestOutcome dup;
        dup.file = (dir / "a.csv").string();
        dup.duplicate = true;
        spool.finish(dup);
        CHECK(read(dir / "done" / "a.1.csv") == "again");
        CHECK_FALSE(fs::exists(dir / "done" / "a.1.rejected.csv"));
        CHECK(spool.pending() == std::vector<fs::path>{dir / "b.csv"});
    }
    SECTION("committed cleanly: done/ without a report") {
        IngestOutcome o;
        o.file = (dir / "b.csv").string();
        o.committed = true;
        spool.finish(o);
        CHECK(fs::exists(dir / "done" / "b.csv"));
        CHECK_FALSE(fs::exists(dir / "done" / "b.rejected.csv"));
    }
    SECTION("not committed: failed/ plus NAME.error") {
        IngestOutcome o;
        o.file = (dir / "b.csv").string();
        o.errors = {{o.file, 1, 5, "unknown column 'child_name'"}, {o.file, 2, 1, "bad"}};
        spool.finish(o);
        CHECK(fs::exists(dir / "failed" / "b.csv"));
        CHECK_FALSE(fs::exists(dir / "b.csv"));
        CHECK(read(dir / "failed" / "b.error") == o.file + ":1:5: unknown column 'child_name'\n" +
                                                      o.file + ":2:1: bad\n");
    }
}

TEST_CASE("ingest_file commits good rows, honours the policy and skips duplicates", "[ingest]") {
    TempDir tmp;
    Store store(tmp.path / "ews.db");
    store.upsert_localities({{"KE-001", "Alpha", "KE/KE-03", 100.0, {}},
                             {"KE-002", "Beta", "KE/KE-03", std::nullopt, {"KE-001"}}});
    const std::string mixed = header + "KE-001,2026-01-05,school.dropouts,3,1,emis\n" +
                              "KE-999,2026-01-05,school.dropouts,3,1,emis\n" +
                              "KE-002,2026-01-05,incident.abduction,1,1,monitor-1\n";

    SECTION("policy partial commits the good rows") {
        auto file = tmp.write("mixed.csv", mixed);
        auto o = ingest_file(file, store, rules(), RejectPolicy::partial);
        CHECK(o.committed);
        CHECK_FALSE(o.duplicate);
        CHECK(o.data_rows == 3);
        CHECK(o.rows.size() == 2);
        REQUIRE(o.errors.size() == 1);
        CHECK(o.errors[0].format() == file.string() + ":3:1: unknown locality 'KE-999'");
        CHECK(store.observation_count() == 2);
        CHECK(store.ingest_seen(content_digest(mixed)));

        auto again = ingest_file(file, store, rules(), RejectPolicy::partial);
        CHECK(again.duplicate);
        CHECK_FALSE(again.committed);
        CHECK(again.rows.empty());
        CHECK(store.observation_count() == 2);
    }
    SECTION("policy reject_file commits nothing when a row is bad") {
        auto file = tmp.write("mixed.csv", mixed);
        auto o = ingest_file(file, store, rules(), RejectPolicy::reject_file);
        CHECK_FALSE(o.committed);
        CHECK(o.errors.size() == 1);
        CHECK(store.observation_count() == 0);
        CHECK_FALSE(store.ingest_seen(content_digest(mixed)));

        // The same file is tried again later (e.g. once KE-999 is imported).
        auto retry = ingest_file(file, store, rules(), RejectPolicy::reject_file);
        CHECK_FALSE(retry.duplicate);

        auto clean =
            tmp.write("clean.csv", header + "KE-001,2026-01-05,school.dropouts,3,1,emis\n");
        auto ok = ingest_file(clean, store, rules(), RejectPolicy::reject_file);
        CHECK(ok.committed);
        CHECK(ok.errors.empty());
        CHECK(store.observation_count() == 1);
    }
    SECTION("a file refused as a whole is not committed under either policy") {
        auto file = tmp.write("person.csv", "locality,time,kind,value,child_name\n"
                                            "KE-001,2026-01-05,school.dropouts,3,X\n");
        auto o = ingest_file(file, store, rules(), RejectPolicy::partial);
        CHECK_FALSE(o.committed);
        CHECK(o.errors.size() == 1);
        CHECK(store.observation_count() == 0);
    }
    SECTION("a header-only file commits zero rows") {
        auto o = ingest_file(tmp.write("h.csv", header), store, rules(), RejectPolicy::reject_file);
        CHECK(o.committed);
        CHECK(o.rows.empty());
        CHECK(o.errors.empty());
    }
    SECTION("an unreadable file is an error, not an exception") {
        auto o = ingest_file(tmp.path / "missing.csv", store, rules(), RejectPolicy::partial);
        CHECK_FALSE(o.committed);
        REQUIRE(o.errors.size() == 1);
        CHECK_THAT(o.errors[0].format(), Catch::StartsWith((tmp.path / "missing.csv").string() +
                                                           ": cannot read the file"));
        auto dir = ingest_file(tmp.path, store, rules(), RejectPolicy::partial);
        CHECK_FALSE(dir.committed);
        REQUIRE(dir.errors.size() == 1);
        CHECK_THAT(dir.errors[0].reason, Catch::Contains("not a regular file"));
    }
    SECTION("through the spool: ingest, then move with the report beside it") {
        Spool spool(tmp.path / "spool");
        std::ofstream(tmp.path / "spool" / "week1.csv", std::ios::binary) << mixed;
        auto ready = spool.pending();
        REQUIRE(ready.size() == 1);
        auto o = ingest_file(ready[0], store, rules(), RejectPolicy::partial);
        spool.finish(o);
        CHECK(spool.pending().empty());
        CHECK(read(tmp.path / "spool" / "done" / "week1.csv") == mixed);
        CHECK(read(tmp.path / "spool" / "done" / "week1.rejected.csv") ==
              "line,column,reason\n3,1,unknown locality 'KE-999'\n");
    }
}

// ---- JSON Lines -----------------------------------------------------------------------------

namespace {

ObservationParse parse_jsonl(const std::string& content) {
    return parse_observations_jsonl(content, "obs.jsonl", rules());
}

// 1-based column of the first `needle` in the ASCII line `line`.
std::size_t column_of(const std::string& line, const std::string& needle) {
    auto at = line.find(needle);
    REQUIRE(at != std::string::npos);
    return at + 1;
}

const std::string good_jsonl =
    R"({"locality":"KE-001","time":"2026-01-01","kind":"school.enrolled","value":100})";

}  // namespace

TEST_CASE("JSON Lines rows parse with the CSV's keys, in any order", "[ingest]") {
    auto p = parse_jsonl(
        "\xEF\xBB\xBF"
        R"({"locality":"KE-001","time":"2026-01-05","kind":"school.dropouts","value":3,"weight":2.5,"source":"emis"})"
        "\r\n"
        "\r\n"
        "   \t\n"
        R"({"value":-0.5e1,"kind":"rain.mm_total","time":"2026-01-06T10:00:00Z","locality":"KE-002"})"
        "\n"
        R"({"locality":"KE\u002d001","time":"2026-01-07","kind":"incident.abduction","value":1,"weight":null,"source":null})");
    REQUIRE(p.errors.empty());
    CHECK(p.data_rows == 3);
    REQUIRE(p.rows.size() == 3);
    CHECK(p.rows[0].locality == "KE-001");
    CHECK(format_time(p.rows[0].time) == "2026-01-05T00:00:00Z");
    CHECK(p.rows[0].kind == "school.dropouts");
    CHECK(p.rows[0].value == 3);
    CHECK(p.rows[0].weight == 2.5);
    CHECK(p.rows[0].source == "emis");
    CHECK(p.rows[1].locality == "KE-002");
    CHECK(p.rows[1].value == -5);
    CHECK(p.rows[1].weight == 1);          // absent: default
    CHECK(p.rows[1].source == "unknown");  // absent: default
    CHECK(p.rows[2].locality == "KE-001"); // escapes are decoded before validation
    CHECK(p.rows[2].weight == 1);          // null: not given
    CHECK(p.rows[2].source == "unknown");
}

TEST_CASE("JSON Lines and CSV apply the same field rules with the same words", "[ingest]") {
    // locality, time, kind, value, weight, source; value and weight are JSON numbers.
    const std::vector<std::array<std::string, 6>> rows = {
        {"KE-999", "2026-01-05", "school.dropouts", "3", "1", "emis"},
        {"", "2026-01-05", "school.dropouts", "3", "1", "emis"},
        {"KE-001", "2026-02-30", "school.dropouts", "3", "1", "emis"},
        {"KE-001", "2027-01-01", "school.dropouts", "3", "1", "emis"},
        {"KE-001", "2026-01-05", "School.dropouts", "3", "1", "emis"},
        {"KE-001", "2026-01-05", "school.dropouts", "-2", "1", "emis"},
        {"KE-001", "2026-01-05", "presence.report", "1.5", "1", "emis"},
        {"KE-001", "2026-01-05", "school.dropouts", "1e999", "1", "emis"},
        {"KE-001", "2026-01-05", "school.dropouts", "3", "0", "emis"},
        {"KE-001", "2026-01-05", "school.dropouts", "3", "1", "monitor 12"},
        {"KE-001", "2026-01-05", "school.dropouts", "3", "1", std::string(65, 's')},
        {"KE-001", "2026-01-05", "school.dropouts", "3", "1", "emis"},
    };
    for (const auto& r : rows) {
        const std::string csv = header + r[0] + "," + r[1] + "," + r[2] + "," + r[3] + "," + r[4] +
                                "," + r[5] + "\n";
        const std::string json = R"({"locality":")" + r[0] + R"(","time":")" + r[1] +
                                 R"(","kind":")" + r[2] + R"(","value":)" + r[3] +
                                 R"(,"weight":)" + r[4] + R"(,"source":")" + r[5] + "\"}";
        INFO(json);
        auto c = parse(csv);
        auto j = parse_jsonl(json);
        REQUIRE(c.errors.size() == j.errors.size());
        CHECK(c.rows.size() == j.rows.size());
        if (c.errors.empty()) continue;
        CHECK(j.errors[0].reason == c.errors[0].reason);
        CHECK(j.errors[0].line == 1);
        // The column points at the offending value in the line.
        const std::size_t field = c.errors[0].column - 1;
        const std::string key = std::vector<std::string>{"locality", "time",   "kind",
                                                         "value",    "weight", "source"}[field];
        CHECK(j.errors[0].column == column_of(json, "\"" + key + "\":") + key.size() + 3);
    }
}

TEST_CASE("each bad JSON Lines row is refused with its line, character column and reason",
          "[ingest]") {
    const std::string base_head = R"({"locality":"KE-001","time":"2026-01-05","kind":"school.dropouts")";
    struct Case {
        std::string line;
        std::string at;  // the column is where this first occurs ("" = column given below)
        std::size_t column;
        std::string reason_part;
    };
    const Case cases[] = {
        {base_head + R"(,"value":3,"child_name":"x"})", "\"child_name\"", 0,
         "unknown key 'child_name' (allowed: locality,time,kind,value,weight,source); no field "
         "for a person may be ingested"},
        {base_head + R"(,"value":3,"time":"2026-01-06"})", "\"time\":\"2026-01-06", 0,
         "duplicate key 'time' (first at column 22)"},
        {base_head + "}", "", 1, "missing key 'value'"},
        {R"(  {"time":"2026-01-05","kind":"school.dropouts","value":3})", "", 3,
         "missing key 'locality'"},
        {base_head + R"(,"value":"3"})", "\"3\"", 0,
         "value must be a JSON number, got '\"3\"' (a number in quotes is not accepted)"},
        {base_head + R"(,"value":true})", "true", 0, "value must be a JSON number, got 'true'"},
        {base_head + R"(,"value":null})", "null", 0, "value must be a JSON number"},
        {base_head + R"(,"value":3,"weight":"2"})", "\"2\"", 0, "weight must be a JSON number"},
        {R"({"locality":12,"time":"2026-01-05","kind":"school.dropouts","value":3})", "12", 0,
         "locality must be a JSON string, got '12'"},
        {base_head + R"(,"value":3,"source":["emis"]})", "[", 0, "source must be a JSON string"},
        {base_head + R"(,"value":3,"source":"em\u0000is"})", "\"em", 0,
         "source: control character 0x00"},
        {base_head + R"(,"value":-2})", "-2", 0, "negative count -2 for kind school.dropouts"},
        {base_head + R"(,"value":1e999})", "1e999", 0, "value '1e999' is not a finite number"},
        // Malformed JSON: located where the parser stopped.
        {base_head + R"(,"value":3,})", "}", 0, "invalid JSON: syntax error while parsing object key"},
        {base_head + R"(,"value":3)", "", base_head.size() + 11,
         "invalid JSON: syntax error while parsing object - unexpected end of input"},
        {base_head + R"(,"value":3} {})", " {}", 0, "invalid JSON"},
        {"{'locality':'KE-001'}", "'", 0, "invalid JSON"},
        {"  [1,2]", "[", 0, "expected a JSON object with the keys locality,time,kind,value,weight,"
                            "source, got an array"},
        {"3", "3", 0, "expected a JSON object"},
    };
    for (const auto& c : cases) {
        INFO(c.line);
        auto p = parse_jsonl(good_jsonl + "\n" + c.line + "\n" + good_jsonl + "\n");
        REQUIRE(p.errors.size() == 1);
        CHECK(p.errors[0].file == "obs.jsonl");
        CHECK(p.errors[0].line == 2);
        const std::size_t column = c.at.empty() ? c.column : column_of(c.line, c.at) + (c.at == " {}");
        CHECK(p.errors[0].column == column);
        CHECK_THAT(p.errors[0].reason, Catch::Contains(c.reason_part));
        CHECK(p.data_rows == 3);
        CHECK(p.rows.size() == 2);
    }
}

TEST_CASE("JSON Lines columns count characters, and malformed UTF-8 is refused", "[ingest]") {
    // "ñ" is two bytes, one character: the column of "3" is one less than its byte offset.
    const std::string line =
        "{\"locality\":\"KE-001\",\"time\":\"2026-01-05\",\"kind\":\"\xC3\xB1\",\"value\":\"3\"}";
    auto p = parse_jsonl(line);
    REQUIRE(p.errors.size() == 1);
    CHECK(p.errors[0].column == line.find("\"3\"") + 1 - 1);

    const std::string cases[] = {
        "{\"kind\":\"\xC3\xB1\xFF\"}",          // a byte that never starts a character
        "{\"kind\":\"\xC3\xB1\xC0\xAF\"}",      // overlong '/'
        "{\"kind\":\"\xC3\xB1\xED\xA0\x80\"}",  // a UTF-16 surrogate
        "{\"kind\":\"\xC3\xB1\xE2\x82\"}",      // a truncated sequence
    };
    for (const auto& c : cases) {
        INFO(c);
        auto u = parse_jsonl(c + "\n");
        REQUIRE(u.errors.size() == 1);
        CHECK(u.errors[0].line == 1);
        CHECK(u.errors[0].column == 11);  // after `{"kind":"ñ`, 10 characters
        CHECK_THAT(u.errors[0].reason, Catch::StartsWith("malformed UTF-8 (byte 0x"));
    }
}

TEST_CASE("JSON Lines: CRLF, BOM, blank lines, long lines and empty files", "[ingest]") {
    // CRLF line ends and a BOM leave line numbers and columns as an editor shows them.
    auto crlf = parse_jsonl("\xEF\xBB\xBF" "{\"locality\":\"KE-999\",\"time\":\"2026-01-05\","
                            "\"kind\":\"school.dropouts\",\"value\":3}\r\n\r\n" +
                            good_jsonl + "\r\n" + R"({"locality":"KE-001"})" + "\r\n");
    REQUIRE(crlf.errors.size() == 2);
    CHECK(crlf.errors[0].format() == "obs.jsonl:1:13: unknown locality 'KE-999'");
    CHECK(crlf.errors[1].line == 4);
    CHECK(crlf.data_rows == 3);
    CHECK(crlf.rows.size() == 1);

    // A BOM at the start of a later line (files joined with cat): the JSON parser skips it,
    // and so does the walk that locates members (it read past the line's end before; found
    // by fuzzing, tests/data/fuzz-regressions/jsonl/crash_bom_in_line). It counts as one character.
    auto joined = parse_jsonl(good_jsonl + "\n\xEF\xBB\xBF" +
                              R"({"locality":"KE-999","time":"2026-01-05","kind":"school.dropouts","value":3})" +
                              "\n\xEF\xBB\xBF" +
                              R"({"kind":"school.enrolled","value":90,"time":"2026-02-01","locality":"KE-001"})" +
                              "\n\xEF\xBB\xBF" + R"({"locality":)");
    REQUIRE(joined.errors.size() == 2);
    CHECK(joined.errors[0].format() == "obs.jsonl:2:14: unknown locality 'KE-999'");
    CHECK(joined.errors[1].line == 4);
    REQUIRE(joined.rows.size() == 2);
    CHECK(joined.rows[1].value == 90);
    CHECK(joined.rows[1].time == *parse_time("2026-02-01"));

    auto longer = parse_jsonl(good_jsonl + "\n{\"source\":\"" +
                              std::string(max_jsonl_line_bytes, 'x') + "\"}\n" + good_jsonl);
    REQUIRE(longer.errors.size() == 1);
    CHECK(longer.errors[0].line == 2);
    CHECK(longer.errors[0].column == 0);
    CHECK_THAT(longer.errors[0].reason, Catch::Contains("line longer than 65536 bytes"));
    CHECK(longer.rows.size() == 2);

    for (const std::string empty : {"", "\n\n", "\xEF\xBB\xBF", "  \r\n\t\n"}) {
        auto e = parse_jsonl(empty);
        CHECK(e.rows.empty());
        CHECK(e.data_rows == 0);
        REQUIRE(e.errors.size() == 1);
        CHECK(e.errors[0].format() == "obs.jsonl:1: empty file, expected one JSON object per line");
    }

    std::mt19937 rng(7);
    std::string garbage;
    for (int i = 0; i < 100000; ++i) garbage.push_back(static_cast<char>(rng() & 0xFF));
    auto g = parse_jsonl(garbage);
    CHECK(g.rows.empty());
    CHECK(g.errors.size() == g.data_rows);
}

TEST_CASE("formats are named by extension, and ingest dispatches on it", "[ingest]") {
    CHECK(format_of("a/week1.csv") == IngestFormat::csv);
    CHECK(format_of("week1.jsonl") == IngestFormat::jsonl);
    CHECK_FALSE(format_of("week1.json"));
    CHECK(parse_ingest_format("jsonl") == IngestFormat::jsonl);
    CHECK_FALSE(parse_ingest_format("JSONL"));
    CHECK(to_string(IngestFormat::csv) == "csv");

    TempDir tmp;
    Store store(tmp.path / "ews.db");
    store.upsert_localities({{"KE-001", "Alpha", "KE/KE-03", 100.0, {}},
                             {"KE-002", "Beta", "KE/KE-03", std::nullopt, {}}});
    const std::string jsonl = good_jsonl + "\n" +
                              R"({"locality":"KE-999","time":"2026-01-05","kind":"school.dropouts","value":3})" +
                              "\n";

    SECTION("a .jsonl file in the spool is listed, ingested as JSON Lines, reported as CSV") {
        Spool spool(tmp.path / "spool");
        std::ofstream(tmp.path / "spool" / "feed.jsonl", std::ios::binary) << jsonl;
        std::ofstream(tmp.path / "spool" / "feed.json", std::ios::binary) << jsonl;
        auto ready = spool.pending();
        REQUIRE(ready == std::vector<fs::path>{tmp.path / "spool" / "feed.jsonl"});
        auto o = ingest_file(ready[0], store, rules(), RejectPolicy::partial);
        CHECK(o.committed);
        CHECK(o.rows.size() == 1);
        REQUIRE(o.errors.size() == 1);
        CHECK(o.errors[0].format() == ready[0].string() + ":2:13: unknown locality 'KE-999'");
        spool.finish(o);
        CHECK(read(tmp.path / "spool" / "done" / "feed.jsonl") == jsonl);
        CHECK(read(tmp.path / "spool" / "done" / "feed.rejected.csv") ==
              "line,column,reason\n2,13,unknown locality 'KE-999'\n");
        CHECK(store.observation_count() == 1);
    }
    SECTION("bytes with a name: the endpoint's path, with the policy it asks for") {
        auto refused = ingest_content(jsonl, "push-1", IngestFormat::jsonl, store, rules(),
                                      RejectPolicy::reject_file);
        CHECK_FALSE(refused.committed);
        CHECK(refused.file == "push-1");
        REQUIRE(refused.errors.size() == 1);
        CHECK(refused.errors[0].format() == "push-1:2:13: unknown locality 'KE-999'");
        CHECK(store.observation_count() == 0);

        auto partial = ingest_content(jsonl, "push-1", IngestFormat::jsonl, store, rules(),
                                      RejectPolicy::partial);
        CHECK(partial.committed);
        CHECK(partial.rows.size() == 1);
        CHECK(store.observation_count() == 1);

        auto again = ingest_content(jsonl, "push-2", IngestFormat::jsonl, store, rules(),
                                    RejectPolicy::partial);
        CHECK(again.duplicate);
        CHECK_FALSE(again.committed);

        // The same bytes read as CSV are a different (refused) file, not a crash.
        auto as_csv = ingest_content(jsonl + " ", "push-3", IngestFormat::csv, store, rules(),
                                     RejectPolicy::partial);
        CHECK_FALSE(as_csv.committed);
        CHECK_FALSE(as_csv.errors.empty());
    }
}

namespace {

// A CSV of `rows` rows over KE-001 and KE-002 (rules()' known localities), over 1 MiB from
// about 20k rows, so that ingest_content parses it on another thread and writes it in parts.
// In key order (locality, kind, time, source) unless `shuffled`; values are the row number.
std::string large_csv(std::size_t rows, bool shuffled) {
    std::vector<std::string> lines;
    lines.reserve(rows);
    const TimePoint start = *parse_time("2020-01-01T00:00:00Z");
    for (std::size_t i = 0; i < rows; ++i) {
        const char* locality = i < rows / 2 ? "KE-001" : "KE-002";
        const std::size_t j = i % (rows / 2);
        const TimePoint t = start + std::chrono::hours(1) * static_cast<long>(j);
        lines.push_back(std::string(locality) + "," + format_time(t) +
                        ",incident.armed_violence," + std::to_string(i % 97) +
                        ",1,monitor-with-a-long-source-name\n");
    }
    if (shuffled) std::shuffle(lines.begin(), lines.end(), std::mt19937(7));
    std::string out = header;
    for (const auto& l : lines) out += l;
    return out;
}

std::vector<Observation> stored(Store& store) {
    std::vector<Observation> out;
    store.for_each_observation([&](const Observation& o) { out.push_back(o); });
    return out;
}

}  // namespace

TEST_CASE("a large file is parsed beside its writing and stores what a small one would",
          "[ingest]") {
    TempDir tmp;
    Store store(tmp.path / "ews.db");
    store.upsert_localities({{"KE-001", "Alpha", "KE/KE-03", 100.0, {}},
                             {"KE-002", "Beta", "KE/KE-03", std::nullopt, {"KE-001"}}});
    const std::size_t n = 30000;

    SECTION("in key order, then the same bytes again") {
        const std::string csv = large_csv(n, false);
        REQUIRE(csv.size() > (1u << 20));
        auto o = ingest_content(csv, "big.csv", IngestFormat::csv, store, rules(),
                                RejectPolicy::partial);
        CHECK(o.committed);
        CHECK(o.errors.empty());
        CHECK(o.data_rows == n);
        REQUIRE(o.rows.size() == n);
        CHECK(store.observation_count() == static_cast<std::int64_t>(n));
        // Rows come back in file order, as a small file's do.
        const auto expected = parse_observations_csv(csv, "big.csv", rules()).rows;
        REQUIRE(expected.size() == n);
        for (std::size_t i = 0; i < n; i += 997) {
            CHECK(o.rows[i].locality == expected[i].locality);
            CHECK(o.rows[i].time == expected[i].time);
            CHECK(o.rows[i].value == expected[i].value);
        }
        auto again = ingest_content(csv, "big-again.csv", IngestFormat::csv, store, rules(),
                                    RejectPolicy::partial);
        CHECK(again.duplicate);
        CHECK_FALSE(again.committed);
        CHECK(store.observation_count() == static_cast<std::int64_t>(n));
    }

    SECTION("out of order, with a key repeated: the later row wins") {
        std::string csv = large_csv(n, true);
        csv += "KE-001,2020-01-01T00:00:00Z,incident.armed_violence,555,1,"
               "monitor-with-a-long-source-name\n";
        auto o = ingest_content(csv, "shuffled.csv", IngestFormat::csv, store, rules(),
                                RejectPolicy::partial);
        CHECK(o.committed);
        CHECK(o.rows.size() == n + 1);
        const auto rows = stored(store);
        REQUIRE(rows.size() == n);
        CHECK(rows.front().locality == "KE-001");
        CHECK(rows.front().time == *parse_time("2020-01-01T00:00:00Z"));
        CHECK(rows.front().value == 555);
        CHECK(std::is_sorted(rows.begin(), rows.end(), key_less));
    }

    SECTION("in key order with a bad row at the end: reject_file writes nothing") {
        std::string csv = large_csv(n, false) + "KE-002,not-a-time,incident.abduction,1,1,m\n";
        auto refused = ingest_content(csv, "bad.csv", IngestFormat::csv, store, rules(),
                                      RejectPolicy::reject_file);
        CHECK_FALSE(refused.committed);
        REQUIRE(refused.errors.size() == 1);
        CHECK(refused.errors[0].line == n + 2);
        CHECK(store.observation_count() == 0);
        CHECK_FALSE(store.ingest_seen(content_digest(csv)));
        // The same file under partial: every good row, and the refusal recorded.
        auto partial = ingest_content(csv, "bad.csv", IngestFormat::csv, store, rules(),
                                      RejectPolicy::partial);
        CHECK(partial.committed);
        CHECK(partial.errors.size() == 1);
        CHECK(store.observation_count() == static_cast<std::int64_t>(n));
    }

    SECTION("JSON Lines take the same path") {
        std::string jsonl;
        for (std::size_t i = 0; i < n; ++i)
            jsonl += "{\"locality\":\"KE-00" + std::to_string(1 + i * 2 / n) +
                     "\",\"time\":\"" +
                     format_time(*parse_time("2020-01-01T00:00:00Z") +
                                 std::chrono::hours(1) * static_cast<long>(i % (n / 2))) +
                     "\",\"kind\":\"incident.armed_violence\",\"value\":" + std::to_string(i % 7) +
                     ",\"source\":\"monitor-with-a-long-source-name\"}\n";
        REQUIRE(jsonl.size() > (1u << 20));
        auto o = ingest_content(jsonl, "big.jsonl", IngestFormat::jsonl, store, rules(),
                                RejectPolicy::partial);
        CHECK(o.committed);
        CHECK(o.errors.empty());
        CHECK(o.rows.size() == n);
        CHECK(store.observation_count() == static_cast<std::int64_t>(n));
    }
}
