#include "logging.hpp"

#include <catch2/catch.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sys/stat.h>

#include <cstdlib>
#include <sstream>
#include <vector>

using namespace ews;

namespace {

// A logger whose rate limit reads a clock the test moves.
struct Fixture {
    std::ostringstream out;
    std::chrono::steady_clock::time_point now{};
    std::shared_ptr<spdlog::logger> logger;

    explicit Fixture(std::size_t burst = 2) {
        auto target = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
        target->set_pattern("%l %v");
        auto limited = std::make_shared<RateLimitSink>(target, burst, std::chrono::seconds(60),
                                                       spdlog::level::warn, [this] { return now; });
        logger = std::make_shared<spdlog::logger>("test", limited);
        logger->set_level(spdlog::level::trace);
    }
    std::vector<std::string> lines() const {
        std::vector<std::string> v;
        std::istringstream in(out.str());
        for (std::string line; std::getline(in, line);) v.push_back(line);
        return v;
    }
};

}  // namespace

TEST_CASE("parse_log_level knows the configuration's names only", "[logging]") {
    CHECK(parse_log_level("trace") == spdlog::level::trace);
    CHECK(parse_log_level("warn") == spdlog::level::warn);
    CHECK(parse_log_level("error") == spdlog::level::err);
    CHECK(parse_log_level("off") == spdlog::level::off);
    CHECK_FALSE(parse_log_level("verbose"));
    CHECK_FALSE(parse_log_level("err"));  // spdlog's own short name is not a configuration name
    CHECK_FALSE(parse_log_level(""));
}

TEST_CASE("message_pattern folds each run of digits", "[logging]") {
    CHECK(message_pattern("rejected: a.csv:12:3: bad count '1250'") == "rejected: a.csv:#:#: bad count '#'");
    CHECK(message_pattern("no digits") == "no digits");
    CHECK(message_pattern(std::string(400, 'x')).size() == 160);
}

TEST_CASE("repeated warnings are limited per pattern and the suppressed ones counted", "[logging]") {
    Fixture f(2);
    // Five rows of one hostile file: the pattern "rejected: h.csv:#:#: bad value" is the same.
    for (int row = 1; row <= 5; ++row) f.logger->warn("rejected: h.csv:{}:3: bad value", row);
    f.logger->info("info is never limited {}", 1);
    f.logger->info("info is never limited {}", 2);
    f.logger->info("info is never limited {}", 3);
    f.logger->error("rejected: h.csv:9:3: bad value");  // another level, another window
    auto lines = f.lines();
    REQUIRE(lines.size() == 6);  // 2 warnings + 3 info + 1 error
    CHECK(lines[0] == "warning rejected: h.csv:1:3: bad value");
    CHECK(lines[1] == "warning rejected: h.csv:2:3: bad value");
    CHECK(lines[2] == "info info is never limited 1");
    CHECK(lines[5] == "error rejected: h.csv:9:3: bad value");

    // Within the window nothing more; after it, one line says 3 were suppressed (rows 3..5),
    // and the next message of that pattern passes again.
    f.now += std::chrono::seconds(59);
    f.logger->warn("rejected: h.csv:6:3: bad value");
    CHECK(f.lines().size() == 6);
    f.now += std::chrono::seconds(2);
    f.logger->warn("rejected: h.csv:7:3: bad value");
    lines = f.lines();
    REQUIRE(lines.size() == 8);
    CHECK(lines[6] == "warning 4 similar messages suppressed in the last 60 s: \"rejected: h.csv:#:#: bad value\"");
    CHECK(lines[7] == "warning rejected: h.csv:7:3: bad value");
}

TEST_CASE("a flush reports a window that has passed", "[logging]") {
    Fixture f(1);
    f.logger->error("store failed: disk I/O error");
    f.logger->error("store failed: disk I/O error");
    f.now += std::chrono::seconds(61);
    f.logger->flush();
    auto lines = f.lines();
    REQUIRE(lines.size() == 2);
    CHECK(lines[1] == "error 1 similar messages suppressed in the last 60 s: \"store failed: disk I/O error\"");
}

TEST_CASE("distinct messages beyond the window table share one window", "[logging]") {
    Fixture f(1);
    // 1005 distinct patterns (letters, not digits, differ): the first 1000 fill the table and
    // each passes once; the last 5 share one window, whose first passes and 4 are counted.
    for (int i = 0; i < 1005; ++i) {
        std::string word;
        for (int n = i; n > 0 || word.empty(); n /= 26) word.push_back(char('a' + n % 26));
        f.logger->warn("bad value {}", word);
    }
    CHECK(f.lines().size() == 1001);
    f.now += std::chrono::seconds(61);
    f.logger->flush();
    auto lines = f.lines();
    REQUIRE(lines.size() == 1002);
    CHECK(lines.back() == "warning 4 similar messages suppressed in the last 60 s: \"(other messages)\"");
}

TEST_CASE("stderr_is_journal compares JOURNAL_STREAM with stderr's device and inode", "[logging]") {
    struct stat st {};
    REQUIRE(::fstat(2, &st) == 0);
    const char* saved = std::getenv("JOURNAL_STREAM");
    const std::string before = saved ? saved : "";
    ::setenv("JOURNAL_STREAM", (std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino)).c_str(), 1);
    CHECK(stderr_is_journal());
    // A stream inherited by a process whose stderr was redirected elsewhere.
    ::setenv("JOURNAL_STREAM", (std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1)).c_str(), 1);
    CHECK_FALSE(stderr_is_journal());
    ::setenv("JOURNAL_STREAM", "garbage", 1);
    CHECK_FALSE(stderr_is_journal());
    ::unsetenv("JOURNAL_STREAM");
    CHECK_FALSE(stderr_is_journal());
    if (saved) ::setenv("JOURNAL_STREAM", before.c_str(), 1);
}
