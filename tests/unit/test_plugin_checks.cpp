#include "plugin_checks.hpp"

#include <catch2/catch.hpp>

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

using namespace ews;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

// A fresh directory (mode 0700) under the system temp dir, removed with everything in it.
class TempDir {
public:
    TempDir() {
        std::string pattern = (fs::temp_directory_path() / "ews_plugin_checks_XXXXXX").string();
        if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ec;
        fs::permissions(path_, fs::perms::owner_all, ec);
        fs::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const fs::path& path() const { return path_; }

    // Returns: a new file `name` with mode `mode`, whatever the umask.
    fs::path file(const std::string& name, mode_t mode = 0755) const {
        fs::path p = path_ / name;
        std::ofstream(p, std::ios::binary) << "not really a library";
        if (::chmod(p.c_str(), mode) != 0) throw std::runtime_error("chmod failed");
        return p;
    }
    fs::path subdir(const std::string& name, mode_t mode) const {
        fs::path p = path_ / name;
        fs::create_directory(p);
        if (::chmod(p.c_str(), mode) != 0) throw std::runtime_error("chmod failed");
        return p;
    }

private:
    fs::path path_;
};

sdk::Descriptor demo_descriptor() {
    using T = sdk::ParamType;
    sdk::Descriptor d;
    d.name = "demo";
    d.version = "1.0.0";
    d.params = {
        {"flag", T::boolean, false, std::nullopt, std::nullopt, "switch"},
        {"count", T::integer, std::int64_t{3}, 1, 10, "how many"},
        {"rate", T::number, 0.5, 0, 1, "a share"},
        {"label", T::string, std::string("x"), std::nullopt, std::nullopt, "a name"},
        {"tags", T::string_list, std::vector<std::string>{}, std::nullopt, std::nullopt, "names"},
        {"weights", T::number_table, std::map<std::string, double>{}, 0, 5, "per kind"},
    };
    return d;
}

}  // namespace

TEST_CASE("plugin_checks: a plugin only root or the service user can change is trusted",
          "[plugin_checks]") {
    TempDir dir;
    CHECK_FALSE(untrusted_reason(dir.file("ok.so", 0755)).has_value());
    CHECK_FALSE(untrusted_reason(dir.file("read_only.so", 0444)).has_value());
}

TEST_CASE("plugin_checks: a group- or world-writable plugin file is refused with the fix",
          "[plugin_checks]") {
    TempDir dir;
    SECTION("group and world") {
        const auto f = dir.file("both.so", 0666);
        const auto why = untrusted_reason(f);
        REQUIRE(why.has_value());
        CHECK_THAT(*why, StartsWith("group- and world-writable (mode 0666)"));
        CHECK_THAT(*why, Contains("run code in ewsd"));
        CHECK_THAT(*why, Contains("chmod go-w " + f.string()));
    }
    SECTION("world only") {
        const auto f = dir.file("world.so", 0646);
        const auto why = untrusted_reason(f);
        REQUIRE(why.has_value());
        CHECK_THAT(*why, StartsWith("world-writable (mode 0646)"));
        CHECK_THAT(*why, Contains("chmod o-w " + f.string()));
    }
    SECTION("group only") {
        const auto f = dir.file("group.so", 0775);
        const auto why = untrusted_reason(f);
        REQUIRE(why.has_value());
        CHECK_THAT(*why, StartsWith("group-writable (mode 0775)"));
        CHECK_THAT(*why, Contains("chmod g-w " + f.string()));
    }
}

TEST_CASE("plugin_checks: a plugin in a writable directory is refused", "[plugin_checks]") {
    TempDir dir;
    const auto open_dir = dir.subdir("open", 0777);
    const auto f = open_dir / "ok.so";
    std::ofstream(f) << "x";
    ::chmod(f.c_str(), 0755);
    const auto why = untrusted_reason(f);
    REQUIRE(why.has_value());
    CHECK_THAT(*why, StartsWith("its directory " + open_dir.string() +
                                " is group- and world-writable (mode 0777)"));
    CHECK_THAT(*why, Contains("chmod go-w " + open_dir.string()));
}

TEST_CASE("plugin_checks: a symlink is judged by its target and the target's directory",
          "[plugin_checks]") {
    TempDir dir;
    const auto plugins = dir.subdir("plugins", 0755);
    SECTION("to a trusted file") {
        const auto target = dir.file("real.so", 0755);
        fs::create_symlink(target, plugins / "link.so");
        CHECK_FALSE(untrusted_reason(plugins / "link.so").has_value());
    }
    SECTION("to a world-writable file") {
        const auto target = dir.file("open.so", 0666);
        fs::create_symlink(target, plugins / "link.so");
        const auto why = untrusted_reason(plugins / "link.so");
        REQUIRE(why.has_value());
        CHECK_THAT(*why, StartsWith("is a symlink to " + fs::canonical(target).string() +
                                    ", which is group- and world-writable (mode 0666)"));
        CHECK_THAT(*why, Contains("chmod go-w " + fs::canonical(target).string()));
    }
    SECTION("to a file in a world-writable directory") {
        const auto open_dir = dir.subdir("open", 0777);
        std::ofstream(open_dir / "real.so") << "x";
        ::chmod((open_dir / "real.so").c_str(), 0755);
        fs::create_symlink(open_dir / "real.so", plugins / "link.so");
        const auto why = untrusted_reason(plugins / "link.so");
        REQUIRE(why.has_value());
        CHECK_THAT(*why, Contains("whose directory " + fs::canonical(open_dir).string() +
                                  " is group- and world-writable"));
    }
    SECTION("dangling") {
        fs::create_symlink(dir.path() / "gone.so", plugins / "link.so");
        const auto why = untrusted_reason(plugins / "link.so");
        REQUIRE(why.has_value());
        CHECK_THAT(*why, Contains("cannot be resolved"));
    }
}

TEST_CASE("plugin_checks: a plugin owned by another user is refused", "[plugin_checks]") {
    TempDir dir;
    const auto f = dir.file("theirs.so", 0755);
    constexpr uid_t other = 65534;
    if (::geteuid() == other || ::chown(f.c_str(), other, static_cast<gid_t>(-1)) != 0) {
        WARN("cannot chown to uid 65534 here; the ownership check is not exercised");
        return;
    }
    const auto why = untrusted_reason(f);
    REQUIRE(why.has_value());
    CHECK_THAT(*why, StartsWith("owned by uid 65534"));
    CHECK_THAT(*why, Contains("neither root nor the user ewsd runs as"));
    CHECK_THAT(*why, Contains("chown root " + f.string()));
}

TEST_CASE("plugin_checks: a missing plugin file cannot be trusted", "[plugin_checks]") {
    TempDir dir;
    const auto why = untrusted_reason(dir.path() / "absent.so");
    REQUIRE(why.has_value());
    CHECK_THAT(*why, StartsWith("cannot be examined"));
}

TEST_CASE("plugin_checks: parameters that match the plugin's specs pass", "[plugin_checks]") {
    const sdk::Params params{
        {"flag", true},
        {"count", std::int64_t{10}},
        {"rate", std::int64_t{1}},  // an integer is accepted where a number is expected
        {"label", std::string("north")},
        {"tags", std::vector<std::string>{"a", "b"}},
        {"weights", std::map<std::string, double>{{"a", 0}, {"b", 5}}},
    };
    CHECK(validate_params(demo_descriptor(), params).empty());
    CHECK(validate_params(demo_descriptor(), {}).empty());
}

TEST_CASE("plugin_checks: an unknown parameter is named with the known ones", "[plugin_checks]") {
    const auto problems = validate_params(demo_descriptor(), {{"colour", std::string("red")}});
    REQUIRE(problems.size() == 1);
    CHECK(problems[0] ==
          "parameter 'colour' is unknown to demo (known: flag, count, rate, label, tags, weights)");
}

TEST_CASE("plugin_checks: a parameter of the wrong type is refused", "[plugin_checks]") {
    CHECK(validate_params(demo_descriptor(), {{"rate", std::string("high")}}) ==
          std::vector<std::string>{"parameter 'rate' expects a number, got a string ('high')"});
    CHECK(validate_params(demo_descriptor(), {{"count", 2.5}}) ==
          std::vector<std::string>{"parameter 'count' expects an integer, got a number (2.5)"});
    CHECK(validate_params(demo_descriptor(), {{"flag", std::int64_t{1}}}) ==
          std::vector<std::string>{"parameter 'flag' expects a boolean, got an integer (1)"});
    CHECK(validate_params(demo_descriptor(), {{"tags", std::string("a")}}) ==
          std::vector<std::string>{
              "parameter 'tags' expects a list of strings, got a string ('a')"});
}

TEST_CASE("plugin_checks: a number outside its range is refused", "[plugin_checks]") {
    const auto d = demo_descriptor();
    CHECK(validate_params(d, {{"count", std::int64_t{0}}}) ==
          std::vector<std::string>{"parameter 'count' must be between 1 and 10, got 0"});
    CHECK(validate_params(d, {{"count", std::int64_t{11}}}) ==
          std::vector<std::string>{"parameter 'count' must be between 1 and 10, got 11"});
    CHECK(validate_params(d, {{"rate", 1.5}}) ==
          std::vector<std::string>{"parameter 'rate' must be between 0 and 1, got 1.5"});
    CHECK(validate_params(d, {{"rate", std::nan("")}}).size() == 1);
    CHECK(validate_params(d, {{"weights", std::map<std::string, double>{{"a", 1}, {"b", 7}}}}) ==
          std::vector<std::string>{"parameter 'weights' entry 'b' must be between 0 and 5, got 7"});

    sdk::Descriptor one_sided = d;
    one_sided.params[2].max.reset();
    CHECK(validate_params(one_sided, {{"rate", -1.0}}) ==
          std::vector<std::string>{"parameter 'rate' must be at least 0, got -1"});
}

TEST_CASE("plugin_checks: every problem is reported at once, each starting with its key",
          "[plugin_checks]") {
    const auto problems = validate_params(demo_descriptor(), {{"colour", true},
                                                              {"count", std::int64_t{99}},
                                                              {"rate", std::string("x")}});
    REQUIRE(problems.size() == 3);
    for (const auto& p : problems) CHECK_THAT(p, StartsWith("parameter '"));
}

TEST_CASE("plugin_checks: a parameter problem is located at its line and key in the config",
          "[plugin_checks]") {
    TempDir dir;
    const fs::path file = dir.path() / "ewsd.toml";
    std::ofstream(file) << "[daemon]\n"
                           "state_dir = \"state\"\n"
                           "plugin_dir = \"plugins\"\n"
                           "\n"
                           "[plugins.demo]\n"
                           "count = 99\n"
                           "  rate = 0.5\n";
    const Config config = load_config(file);

    CHECK(locate(config, "demo", "parameter 'count' must be between 1 and 10, got 99") ==
          file.string() + ":6:1: plugins.demo.count: must be between 1 and 10, got 99");
    CHECK(locate(config, "demo", "parameter 'rate': unknown parameter 'rate' for demo") ==
          file.string() + ":7:3: plugins.demo.rate: unknown parameter 'rate' for demo");
    // A key absent from the file, or a message about no key, names the file and the table.
    CHECK(locate(config, "demo", "parameter 'label' must not be empty") ==
          config.file.string() + ": plugins.demo: parameter 'label' must not be empty");
    CHECK(locate(config, "demo", "threw in configure(): boom") ==
          config.file.string() + ": plugins.demo: threw in configure(): boom");
}
