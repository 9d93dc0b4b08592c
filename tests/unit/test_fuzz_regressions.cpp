// Regression inputs for the parsers of hostile input: every file under
// tests/data/fuzz-regressions/<target>/ (reproducers of bugs the fuzz targets found, minimised,
// and hand-made nasty inputs) goes through the same entry point and the same contract checks
// as fuzz/fuzz_<target>.cpp (fuzz/checks.hpp): the parser must return a located error or a
// valid result, never crash, and never break its documented contract.
#include "../../fuzz/checks.hpp"

// ews-sub's output functions are not part of ews_core; the subscriber checks need them.
#include "../../tools/ews-sub/output.cpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

struct Input {
    std::string name;
    std::string bytes;
};

// Returns: the files of `dir` (relative to the source tree), by name.
std::vector<Input> inputs_in(const fs::path& relative) {
    const fs::path dir = fs::path(EWS_SOURCE_DIR) / relative;
    std::vector<Input> out;
    for (const auto& entry : fs::directory_iterator(dir)) {
        if (!entry.is_regular_file()) continue;
        std::ifstream in(entry.path(), std::ios::binary);
        out.push_back({entry.path().filename().string(),
                       std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>())});
    }
    std::sort(out.begin(), out.end(), [](const Input& a, const Input& b) { return a.name < b.name; });
    return out;
}

template <class Check>
void check_all(const std::string& target, Check check) {
    const auto inputs = inputs_in(fs::path("tests") / "data" / "fuzz-regressions" / target);
    REQUIRE(inputs.size() >= 3);  // the directory is there and holds its inputs
    for (const auto& input : inputs) {
        INFO("tests/data/fuzz-regressions/" << target << "/" << input.name);
        CHECK(check(input.bytes) == "");
    }
}

}  // namespace

TEST_CASE("fuzz regressions: CSV observation parser", "[fuzz]") {
    check_all("csv", [](const std::string& bytes) { return ews::fuzz::check_observations_csv(bytes); });
}

TEST_CASE("fuzz regressions: JSON Lines observation parser", "[fuzz]") {
    check_all("jsonl", [](const std::string& bytes) { return ews::fuzz::check_observations_jsonl(bytes); });
}

TEST_CASE("fuzz regressions: TOML configuration loader", "[fuzz]") {
    ews::fuzz::ScratchDir dir;
    check_all("config", [&](const std::string& bytes) { return ews::fuzz::check_config(bytes, dir.path()); });
}

TEST_CASE("fuzz regressions: query request parser", "[fuzz]") {
    ews::fuzz::QueryFixture fixture;
    check_all("query", [&](const std::string& bytes) { return ews::fuzz::check_query(bytes, fixture); });
}

TEST_CASE("fuzz regressions: subscriber message handling", "[fuzz]") {
    check_all("sub_message", [](const std::string& bytes) { return ews::fuzz::check_sub_message(bytes); });
}

TEST_CASE("fuzz regressions: ingest endpoint header frame", "[fuzz]") {
    check_all("ingest_header", [](const std::string& bytes) { return ews::fuzz::check_ingest_header(bytes); });
    // The seeds too: valid headers among them must be accepted as the contract reads them.
    for (const auto& input : inputs_in(fs::path("fuzz") / "corpus" / "ingest_header")) {
        INFO("fuzz/corpus/ingest_header/" << input.name);
        CHECK(ews::fuzz::check_ingest_header(input.bytes) == "");
    }
}

TEST_CASE("fuzz contract checks reject what breaks the contract", "[fuzz]") {
    // The checks themselves can fail: a parse that claims a row it did not validate, a
    // printed control character, a configuration error without a location.
    const auto rules = ews::fuzz::observation_rules();
    ews::ObservationParse forged;
    forged.data_rows = 1;
    ews::Observation o;
    o.locality = "KE-1";
    o.time = rules.now;
    o.kind = "presence.report";
    o.value = 2;  // a confidence outside 0..1
    o.source = "emis";
    forged.rows.push_back(o);
    CHECK(ews::fuzz::check_observation_parse("h\nrow\n", forged, rules, false) != "");
    forged.rows.front().value = 0.5;
    CHECK(ews::fuzz::check_observation_parse("h\nrow\n", forged, rules, false) == "");
    forged.errors.push_back({"input", 9, 1, "bad"});  // line 9 of a 3-line input
    forged.rows.clear();
    CHECK(ews::fuzz::check_observation_parse("h\nrow\n", forged, rules, false) != "");

    CHECK(ews::fuzz::check_printed("ok\n", "x", false) == "");
    CHECK(ews::fuzz::check_printed("bell\a\n", "x", false) != "");
    CHECK(ews::fuzz::check_printed("del\x7f\n", "x", false) != "");
    CHECK(ews::fuzz::csv_fields("a,\"b,\"\"c\",d\n") == std::vector<std::string>{"a", "b,\"c", "d"});
    CHECK(!ews::fuzz::csv_fields("a,\"b\n"));

    ews::fuzz::ScratchDir dir;
    CHECK(ews::fuzz::check_config("[daemon]\nstate_dir = 's'\nplugin_dir = 'p'\n", dir.path()) == "");
    CHECK(ews::fuzz::check_config("[daemon]\nstate_dir = 's'\n", dir.path()) == "");  // missing key: named
}
