#include "plugin_host.hpp"

#include <ews/sdk/testing.hpp>

#include <catch2/catch.hpp>

#include "temp_dir.hpp"

#include <dlfcn.h>
#include <stdlib.h>

#include <fstream>
#include <optional>
#include <stdexcept>

using namespace ews;
namespace fs = std::filesystem;
using sdk::testing::MemoryLocality;
using sdk::testing::day;

namespace {

using ews::testing::TempDir;

// Copies (never links: each copy must be a distinct file to the loader) fixture_<stem>.so.
fs::path add_fixture(const TempDir& dir, const std::string& stem) {
    const std::string name = "fixture_" + stem + ".so";
    fs::path to = dir.path() / name;
    fs::copy_file(fs::path(EWS_FIXTURE_DIR) / name, to);
    return to;
}

std::optional<RefusedPlugin> refusal_of(const PluginSet& set, const std::string& file_name) {
    for (const auto& r : set.refused)
        if (r.file.filename() == file_name) return r;
    return std::nullopt;
}

// Returns: whether the dynamic loader still has `file` mapped (without loading it).
bool library_mapped(const fs::path& file) {
    void* handle = ::dlopen(file.c_str(), RTLD_NOW | RTLD_NOLOAD);
    if (!handle) return false;
    ::dlclose(handle);
    return true;
}

const auto now = day(2026, 3, 1);

sdk::Assessment assess_signal(const LoadedPlugin& plugin, double value) {
    MemoryLocality loc{"L1", "Village", "KE/KE-03", 1200.0};
    loc.add("test.signal", day(2026, 2, 20), value);
    return guarded_assess(plugin, loc.view(now), now);
}

}  // namespace

TEST_CASE("a good plugin loads and assesses through guarded_assess", "[plugin_host]") {
    TempDir dir;
    add_fixture(dir, "good");
    auto set = load_plugins(dir.path(), {});
    REQUIRE(set.refused.empty());
    REQUIRE(set.loaded.size() == 1);
    const LoadedPlugin* good = set.find("fixture_good");
    REQUIRE(good);
    CHECK(good->file == dir.path() / "fixture_good.so");
    CHECK(good->descriptor.version == "1.0.0");
    CHECK(good->descriptor.kinds == std::vector<std::string>{"test.signal"});
    CHECK_FALSE(set.find("fixture_missing"));

    auto a = assess_signal(*good, 4);
    CHECK(a.status == sdk::Status::ok);
    CHECK(a.score == Approx(0.4));
    CHECK(a.confidence == 1);
    CHECK(a.newest == day(2026, 2, 20));
    CHECK(assess_signal(*good, 25).score == 1);

    MemoryLocality empty{"L2", "Empty", "KE/KE-03"};
    CHECK(guarded_assess(*good, empty.view(now), now).status == sdk::Status::no_data);
}

TEST_CASE("parameters from the config reach configure()", "[plugin_host]") {
    TempDir dir;
    add_fixture(dir, "good");

    SECTION("a valid value changes the score") {
        auto set = load_plugins(dir.path(), {{"fixture_good", {{"scale", 2.0}}}});
        REQUIRE(set.find("fixture_good"));
        CHECK(assess_signal(*set.find("fixture_good"), 1).score == Approx(0.5));
    }
    SECTION("an integer is accepted for a number") {
        auto set = load_plugins(dir.path(), {{"fixture_good", {{"scale", std::int64_t{4}}}}});
        REQUIRE(set.find("fixture_good"));
        CHECK(assess_signal(*set.find("fixture_good"), 1).score == Approx(0.25));
    }
    SECTION("another plugin's table is not passed") {
        auto set = load_plugins(dir.path(), {{"other", {{"scale", 2.0}}}});
        REQUIRE(set.find("fixture_good"));
        CHECK(assess_signal(*set.find("fixture_good"), 1).score == Approx(0.1));
    }
    SECTION("a rejected value refuses the plugin, naming the key") {
        auto set = load_plugins(dir.path(), {{"fixture_good", {{"scale", 0.0}}}});
        CHECK(set.loaded.empty());
        auto r = refusal_of(set, "fixture_good.so");
        REQUIRE(r);
        CHECK(r->reason == "parameter 'scale': must be greater than 0");
    }
    SECTION("a value of the wrong type refuses the plugin, naming the key once") {
        auto set = load_plugins(dir.path(), {{"fixture_good", {{"scale", std::string("big")}}}});
        CHECK(set.loaded.empty());
        auto r = refusal_of(set, "fixture_good.so");
        REQUIRE(r);
        // The host checks the table against the plugin's ParamSpecs before configure().
        CHECK(r->reason == "parameter 'scale' expects a number, got a string ('big')");
        CHECK(r->name == "fixture_good");
    }
}

TEST_CASE("a missing required parameter refuses the plugin with the key", "[plugin_host]") {
    TempDir dir;
    add_fixture(dir, "bad_config");
    add_fixture(dir, "good");
    auto set = load_plugins(dir.path(), {});
    auto r = refusal_of(set, "fixture_bad_config.so");
    REQUIRE(r);
    CHECK(r->file == dir.path() / "fixture_bad_config.so");
    CHECK(r->reason == "parameter 'threshold': is required and has no default");
    CHECK(set.find("fixture_good"));  // the others still load

    auto fixed = load_plugins(dir.path(), {{"fixture_bad_config", {{"threshold", 3.0}}}});
    CHECK(fixed.refused.empty());
    CHECK(fixed.find("fixture_bad_config"));
}

TEST_CASE("a plugin with another ABI is refused before any of its code runs", "[plugin_host]") {
    // fixture_wrong_abi's factory calls abort(): reaching the checks below proves it was
    // never called.
    TempDir dir;
    add_fixture(dir, "wrong_abi");
    auto set = load_plugins(dir.path(), {});
    CHECK(set.loaded.empty());
    auto r = refusal_of(set, "fixture_wrong_abi.so");
    REQUIRE(r);
    CHECK(r->reason == "ABI " + std::to_string(sdk::abi_version + 100) +
                           " does not match the host's ABI " + std::to_string(sdk::abi_version));
}

TEST_CASE("a plugin built against a newer SDK minor version is refused", "[plugin_host]") {
    TempDir dir;
    add_fixture(dir, "newer_sdk");
    auto set = load_plugins(dir.path(), {});
    CHECK(set.loaded.empty());
    auto r = refusal_of(set, "fixture_newer_sdk.so");
    REQUIRE(r);
    const std::string host = std::to_string(sdk::version_major) + "." +
                             std::to_string(sdk::version_minor);
    const std::string plugin = std::to_string(sdk::version_major) + "." +
                               std::to_string(sdk::version_minor + 1);
    CHECK_THAT(r->reason, Catch::Contains("SDK " + plugin) && Catch::Contains("SDK " + host));
}

TEST_CASE("a plugin built against another SDK major version is refused", "[plugin_host]") {
    TempDir dir;
    add_fixture(dir, "wrong_major");
    auto set = load_plugins(dir.path(), {});
    CHECK(set.loaded.empty());  // its factory aborts: being refused proves it was never called
    auto r = refusal_of(set, "fixture_wrong_major.so");
    REQUIRE(r);
    const std::string plugin = std::to_string(sdk::version_major + 1) + ".0";
    CHECK_THAT(r->reason, Catch::Contains("SDK " + plugin) && Catch::Contains("same major"));
}

TEST_CASE("an unknown parameter or one out of range is refused before configure()",
          "[plugin_host]") {
    TempDir dir;
    add_fixture(dir, "good");
    auto unknown = load_plugins(dir.path(), {{"fixture_good", {{"scael", 2.0}}}});
    REQUIRE(refusal_of(unknown, "fixture_good.so"));
    CHECK_THAT(refusal_of(unknown, "fixture_good.so")->reason, Catch::StartsWith("parameter 'scael'"));
}

TEST_CASE("a world-writable plugin file is refused before it is opened", "[plugin_host]") {
    TempDir dir;
    add_fixture(dir, "good");
    std::filesystem::permissions(dir.path() / "fixture_good.so", std::filesystem::perms::others_write,
                                 std::filesystem::perm_options::add);
    auto set = load_plugins(dir.path(), {});
    CHECK(set.loaded.empty());
    auto r = refusal_of(set, "fixture_good.so");
    REQUIRE(r);
    CHECK_THAT(r->reason, Catch::Contains("world-writable") && Catch::Contains("chmod o-w"));
}

TEST_CASE("files that are not plugins are refused with a reason", "[plugin_host]") {
    TempDir dir;
    add_fixture(dir, "not_a_plugin");
    {
        std::ofstream garbage(dir.path() / "garbage.so");
        for (int i = 0; i < 20; ++i) garbage << "this is a text file, not a shared library\n";
    }
    auto set = load_plugins(dir.path(), {});
    CHECK(set.loaded.empty());
    REQUIRE(set.refused.size() == 2);

    auto other = refusal_of(set, "fixture_not_a_plugin.so");
    REQUIRE(other);
    CHECK(other->reason == "not an ewsd plugin (no ews_sdk_abi symbol)");

    auto garbage = refusal_of(set, "garbage.so");
    REQUIRE(garbage);
    CHECK(garbage->file == dir.path() / "garbage.so");
    CHECK_THAT(garbage->reason, Catch::StartsWith("cannot load: ") &&
                                    Catch::Contains("ELF") &&
                                    !Catch::Contains(dir.path().string()));
}

TEST_CASE("only regular files ending in .so are considered", "[plugin_host]") {
    TempDir dir;
    fs::path good = add_fixture(dir, "good");
    fs::rename(good, dir.path() / "fixture_good.so.disabled");
    std::ofstream(dir.path() / "README.txt") << "notes\n";
    fs::create_directory(dir.path() / "sub.so");
    auto set = load_plugins(dir.path(), {});
    CHECK(set.loaded.empty());
    CHECK(set.refused.empty());
}

TEST_CASE("a plugin whose constructor throws is refused with the message", "[plugin_host]") {
    TempDir dir;
    add_fixture(dir, "throws_on_create");
    add_fixture(dir, "good");
    auto set = load_plugins(dir.path(), {});
    auto r = refusal_of(set, "fixture_throws_on_create.so");
    REQUIRE(r);
    CHECK_THAT(r->reason, Catch::Contains("cannot construct"));
    CHECK(set.find("fixture_good"));
}

TEST_CASE("a plugin name outside [a-z0-9_]+ is refused", "[plugin_host]") {
    TempDir dir;
    add_fixture(dir, "bad_name");
    auto set = load_plugins(dir.path(), {});
    CHECK(set.loaded.empty());
    auto r = refusal_of(set, "fixture_bad_name.so");
    REQUIRE(r);
    CHECK_THAT(r->reason, Catch::Contains("invalid plugin name 'Fixture-Bad Name'"));
}

TEST_CASE("a second plugin with the same name is refused and the first kept", "[plugin_host]") {
    TempDir dir;
    add_fixture(dir, "good_twin");
    add_fixture(dir, "good");  // sorts first by file name, whatever the copy order
    auto set = load_plugins(dir.path(), {});
    REQUIRE(set.loaded.size() == 1);
    CHECK(set.loaded[0].file.filename() == "fixture_good.so");
    CHECK(set.loaded[0].descriptor.version == "1.0.0");
    auto r = refusal_of(set, "fixture_good_twin.so");
    REQUIRE(r);
    CHECK(r->reason == "duplicate plugin name 'fixture_good' (already loaded from fixture_good.so)");
}

TEST_CASE("exceptions and NaN from assess() become status error", "[plugin_host]") {
    TempDir dir;
    add_fixture(dir, "throws");
    add_fixture(dir, "nan");
    auto set = load_plugins(dir.path(), {});
    REQUIRE(set.refused.empty());

    const LoadedPlugin* throws = set.find("fixture_assess_throws");
    REQUIRE(throws);
    sdk::Assessment a;
    CHECK_NOTHROW(a = assess_signal(*throws, 4));
    CHECK(a.status == sdk::Status::error);
    CHECK(a.score == 0);
    CHECK(a.confidence == 0);
    CHECK_THAT(a.evidence.text, Catch::Contains("boom"));

    const LoadedPlugin* nan = set.find("fixture_nan_score");
    REQUIRE(nan);
    auto b = assess_signal(*nan, 4);
    CHECK(b.status == sdk::Status::error);
    CHECK(b.score == 0);
    CHECK(b.confidence == 0);
    CHECK_THAT(b.evidence.text, Catch::Contains("score outside [0,1]"));
}

TEST_CASE("loaded plugins are sorted by name, not by file", "[plugin_host]") {
    // Files sort good < nan < throws; names sort assess_throws < good < nan_score.
    TempDir dir;
    add_fixture(dir, "nan");
    add_fixture(dir, "throws");
    add_fixture(dir, "good");
    auto set = load_plugins(dir.path(), {});
    REQUIRE(set.loaded.size() == 3);
    CHECK(set.loaded[0].name() == "fixture_assess_throws");
    CHECK(set.loaded[1].name() == "fixture_good");
    CHECK(set.loaded[2].name() == "fixture_nan_score");
}

TEST_CASE("a loaded plugin outlives the PluginSet that loaded it", "[plugin_host]") {
    TempDir dir;
    add_fixture(dir, "good");
    auto original = std::make_unique<PluginSet>(load_plugins(dir.path(), {}));
    REQUIRE(original->find("fixture_good"));
    PluginSet copy = *original;
    original.reset();
    const LoadedPlugin* good = copy.find("fixture_good");
    REQUIRE(good);
    CHECK(assess_signal(*good, 5).score == Approx(0.5));
    CHECK(good->indicator->describe().name == "fixture_good");
}

TEST_CASE("a library stays loaded exactly as long as an object made from it", "[plugin_host]") {
    // fixture_good_twin (alone, so not a duplicate) has no GNU unique symbols, so the loader
    // really unmaps it when its last reference goes.
    TempDir dir;
    fs::path file = add_fixture(dir, "good_twin");
    add_fixture(dir, "wrong_abi");
    std::optional<LoadedPlugin> kept;
    {
        auto set = load_plugins(dir.path(), {});
        REQUIRE(set.loaded.size() == 1);
        kept = set.loaded[0];
    }
    CHECK(library_mapped(file));
    CHECK(assess_signal(*kept, 1).score == 1);
    CHECK_FALSE(library_mapped(dir.path() / "fixture_wrong_abi.so"));  // refused: released
    kept.reset();
    CHECK_FALSE(library_mapped(file));
}

TEST_CASE("a plugin directory that cannot be read is an error naming it", "[plugin_host]") {
    TempDir dir;
    const fs::path missing = dir.path() / "no_such_dir";
    CHECK_THROWS_WITH(load_plugins(missing, {}), Catch::Contains(missing.string()));
    std::ofstream(dir.path() / "file") << "x";
    CHECK_THROWS_AS(load_plugins(dir.path() / "file", {}), std::runtime_error);
}

TEST_CASE("a call over its time budget is an error and its result is discarded",
          "[plugin_host]") {
    // fixture_sleeps takes 50 ms per call and would score 0.5.
    TempDir dir;
    add_fixture(dir, "sleeps");
    auto set = load_plugins(dir.path(), {});
    const LoadedPlugin* sleeps = set.find("fixture_sleeps");
    REQUIRE(sleeps);
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};

    CallFault fault = CallFault::none;
    auto slow = guarded_assess(*sleeps, loc.view(now), now, std::chrono::milliseconds(10), &fault);
    CHECK(fault == CallFault::over_budget);
    CHECK(slow.status == sdk::Status::error);
    CHECK(slow.score == 0);
    CHECK(slow.confidence == 0);
    CHECK_THAT(slow.evidence.text, Catch::StartsWith("took ") &&
                                       Catch::EndsWith(" ms, over its budget of 10 ms"));

    auto in_time = guarded_assess(*sleeps, loc.view(now), now, std::chrono::milliseconds(1000), &fault);
    CHECK(fault == CallFault::none);
    CHECK(in_time.status == sdk::Status::ok);
    CHECK(in_time.score == 0.5);
    // No budget given: never discarded for its duration.
    CHECK(guarded_assess(*sleeps, loc.view(now), now).score == 0.5);
}

TEST_CASE("guarded_assess says why a result was replaced", "[plugin_host]") {
    TempDir dir;
    add_fixture(dir, "throws");
    add_fixture(dir, "nan");
    add_fixture(dir, "good");
    auto set = load_plugins(dir.path(), {});
    MemoryLocality loc{"L1", "Village", "KE/KE-03"};
    loc.add("test.signal", day(2026, 2, 20), 4);
    auto fault_of = [&](const std::string& name) {
        CallFault fault = CallFault::none;
        guarded_assess(*set.find(name), loc.view(now), now, std::chrono::milliseconds(1000), &fault);
        return fault;
    };
    CHECK(fault_of("fixture_assess_throws") == CallFault::exception);
    CHECK(fault_of("fixture_nan_score") == CallFault::invalid_value);
    CHECK(fault_of("fixture_good") == CallFault::none);
}

TEST_CASE("a vetoed file is listed as quarantined and never opened", "[plugin_host]") {
    // The veto runs before dlopen: the vetoed library is never mapped into this process.
    TempDir dir;
    fs::path held = add_fixture(dir, "segfaults");
    add_fixture(dir, "good");
    std::vector<fs::path> asked;
    auto set = load_plugins(dir.path(), {}, [&](const fs::path& file) -> std::optional<std::string> {
        asked.push_back(file);
        if (file == held) return "crashed the daemon";
        return std::nullopt;
    });
    CHECK(asked.size() == 2);
    REQUIRE(set.quarantined.size() == 1);
    CHECK(set.quarantined[0].file == held);
    CHECK(set.quarantined[0].reason == "crashed the daemon");
    CHECK(set.refused.empty());
    REQUIRE(set.loaded.size() == 1);
    CHECK(set.loaded[0].name() == "fixture_good");
    CHECK_FALSE(library_mapped(held));
}

TEST_CASE("a loaded plugin records the identity of its file", "[plugin_host]") {
    TempDir dir;
    fs::path file = add_fixture(dir, "good");
    auto set = load_plugins(dir.path(), {});
    REQUIRE(set.loaded.size() == 1);
    auto now_id = FileIdentity::of(file);
    REQUIRE(now_id);
    CHECK(set.loaded[0].identity == *now_id);
    CHECK(now_id->size == fs::file_size(file));
    CHECK_FALSE(FileIdentity::of(dir.path() / "missing.so"));
}
