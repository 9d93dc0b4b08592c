// test_hostile_inputs.cpp: every file of the hostile corpus tests/data/bad/ (CSV and JSON
// Lines) goes through the observation parser of its format, which must return exactly the located errors listed in its sibling
// NAME.expected (see tests/data/bad/make_corpus.py for the format), accept exactly the
// rows it promises, and never crash, also on any prefix of the file (a file cut short).
#include "ingest.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <unordered_set>
#include <vector>

using namespace ews;
namespace fs = std::filesystem;

namespace {

const fs::path corpus_dir = fs::path(EWS_SOURCE_DIR) / "tests" / "data" / "bad";

std::string read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

struct ExpectedError {
    std::size_t line = 0;
    std::size_t column = 0;
    std::string text;
};

struct Expected {
    std::size_t accepted = 0;
    bool more_allowed = false;
    std::vector<ExpectedError> errors;
};

// Reads NAME.expected; a line it cannot read fails the test (a typo must not weaken it).
Expected read_expected(const fs::path& p) {
    Expected e;
    bool have_accepted = false;
    std::ifstream in(p);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        if (line == "...") {
            e.more_allowed = true;
            continue;
        }
        if (line.rfind("accepted: ", 0) == 0) {
            e.accepted = std::stoul(line.substr(10));
            have_accepted = true;
            continue;
        }
        auto c1 = line.find(':');
        auto c2 = c1 == std::string::npos ? c1 : line.find(':', c1 + 1);
        INFO(p.string() << ": " << line);
        REQUIRE(c2 != std::string::npos);
        REQUIRE(c2 + 2 < line.size());
        REQUIRE(line[c2 + 1] == ' ');
        ExpectedError err;
        err.line = std::stoul(line.substr(0, c1));
        err.column = std::stoul(line.substr(c1 + 1, c2 - c1 - 1));
        err.text = line.substr(c2 + 2);
        e.errors.push_back(std::move(err));
    }
    INFO(p.string());
    REQUIRE(have_accepted);
    return e;
}

// The corpus' known localities, read with the locality parser itself.
std::unordered_set<std::string> corpus_localities() {
    auto parsed = parse_localities_csv(read_bytes(corpus_dir / "localities.csv"), "localities.csv");
    REQUIRE(parsed.errors.empty());
    REQUIRE(parsed.rows.size() == 3);
    std::unordered_set<std::string> ids;
    for (const auto& l : parsed.rows) ids.insert(l.id);
    return ids;
}

ObservationRules corpus_rules(const std::unordered_set<std::string>& ids) {
    ObservationRules r;
    r.known_locality = [&ids](std::string_view id) { return ids.count(std::string(id)) > 0; };
    r.now = *parse_time("2026-03-01T00:00:00Z");
    r.future_tolerance = std::chrono::hours(24);
    return r;
}

// Every observation file of the corpus (*.csv, *.jsonl), by name.
std::vector<fs::path> corpus_files() {
    std::vector<fs::path> out;
    for (const auto& entry : fs::directory_iterator(corpus_dir)) {
        const auto name = entry.path().filename().string();
        if (format_of(entry.path()) && name != "localities.csv") out.push_back(entry.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::string describe(const std::vector<RowError>& errors) {
    std::string out;
    for (const auto& e : errors) out += "\n  " + e.format().substr(0, 300);
    return out;
}

// Invariants of any parse, whatever the bytes: every error is located on a line of the input
// and says why; each data row gives one row or one error.
void check_invariants(const ObservationParse& p, std::string_view content, const std::string& name) {
    const auto lines = std::size_t(std::count(content.begin(), content.end(), '\n')) +
                       std::size_t(std::count(content.begin(), content.end(), '\r')) + 1;
    for (const auto& e : p.errors) {
        INFO(e.format().substr(0, 300));
        CHECK(e.file == name);
        CHECK(e.line >= 1);
        CHECK(e.line <= lines);
        CHECK(!e.reason.empty());
        CHECK(e.reason.size() < 600);  // a reason is logged and reported: it quotes, never copies
    }
    CHECK(p.rows.size() + p.errors.size() <= p.data_rows + 1);
    for (const auto& o : p.rows) {
        CHECK(!o.locality.empty());
        CHECK(!o.source.empty());
        CHECK(std::isfinite(o.value));
        CHECK(o.weight > 0);
    }
}

}  // namespace

TEST_CASE("every hostile corpus file yields exactly its expected located errors", "[hostile]") {
    const auto ids = corpus_localities();
    const auto rules = corpus_rules(ids);
    const auto files = corpus_files();
    // The corpus is all there: a wrong path or a lost file must fail, not pass vacuously.
    REQUIRE(files.size() >= 34);
    REQUIRE(std::any_of(files.begin(), files.end(),
                        [](const fs::path& f) { return f.extension() == ".jsonl"; }));

    for (const auto& file : files) {
        const std::string name = file.filename().string();
        const fs::path expected_path = file.string() + ".expected";
        INFO(name);
        REQUIRE(fs::exists(expected_path));
        const Expected expected = read_expected(expected_path);
        const std::string content = read_bytes(file);

        const ObservationParse p = parse_observations(content, name, *format_of(file), rules);
        INFO("errors:" << describe(p.errors));
        check_invariants(p, content, name);
        CHECK(p.rows.size() == expected.accepted);

        std::vector<bool> used(p.errors.size(), false);
        for (const auto& want : expected.errors) {
            auto it = std::find_if(p.errors.begin(), p.errors.end(), [&](const RowError& e) {
                return !used[std::size_t(&e - p.errors.data())] && e.line == want.line &&
                       e.column == want.column && e.reason.find(want.text) != std::string::npos;
            });
            INFO("expected " << want.line << ":" << want.column << ": " << want.text);
            CHECK(it != p.errors.end());
            if (it != p.errors.end()) used[std::size_t(it - p.errors.begin())] = true;
        }
        if (!expected.more_allowed) CHECK(p.errors.size() == expected.errors.size());
        else CHECK(p.errors.size() >= expected.errors.size());
    }
}

TEST_CASE("a hostile file cut short anywhere is parsed without a crash", "[hostile]") {
    const auto ids = corpus_localities();
    const auto rules = corpus_rules(ids);
    for (const auto& file : corpus_files()) {
        const std::string name = file.filename().string();
        const std::string content = read_bytes(file);
        INFO(name);
        // 32 cut points spread over the file, plus every cut in its first 300 bytes, where
        // the header, a BOM and multi-byte sequences get split.
        std::vector<std::size_t> cuts;
        for (std::size_t k = 0; k <= 32; ++k) cuts.push_back(content.size() * k / 32);
        for (std::size_t k = 0; k < std::min<std::size_t>(content.size(), 300); ++k) cuts.push_back(k);
        for (std::size_t cut : cuts) {
            const std::string_view prefix(content.data(), cut);
            INFO("cut at byte " << cut);
            const ObservationParse p = parse_observations(prefix, name, *format_of(file), rules);
            check_invariants(p, prefix, name);
            if (cut == 0) {
                REQUIRE(p.errors.size() == 1);
                CHECK(p.errors[0].reason.find("empty file") != std::string::npos);
            }
        }
    }
}

TEST_CASE("the rows a hostile file keeps are stored as their text says", "[hostile]") {
    const auto ids = corpus_localities();
    const auto rules = corpus_rules(ids);
    SECTION("a padded number and a padded locality are trimmed") {
        auto p = parse_observations_csv(read_bytes(corpus_dir / "wrong_types.csv"), "w", rules);
        REQUIRE(p.rows.size() == 1);
        CHECK(p.rows[0].value == 12);
        auto q = parse_observations_csv(read_bytes(corpus_dir / "unknown_localities.csv"), "u", rules);
        REQUIRE(q.rows.size() == 1);
        CHECK(q.rows[0].locality == "DM-001");
    }
    SECTION("SQL-looking text that fits a field's pattern is kept verbatim") {
        auto p = parse_observations_csv(read_bytes(corpus_dir / "sql_fragments.csv"), "s", rules);
        REQUIRE(p.rows.size() == 1);
        CHECK(p.rows[0].source == "monitor-1--");
    }
    SECTION("rows around binary garbage survive intact") {
        auto p = parse_observations_csv(read_bytes(corpus_dir / "binary_after_header.csv"), "b", rules);
        REQUIRE(p.rows.size() == 2);
        CHECK(p.rows[0].locality == "DM-001");
        CHECK(p.rows[1].locality == "DM-002");
        CHECK(p.rows[1].kind == "incident.abduction");
    }
}
