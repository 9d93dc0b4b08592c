// logging.hpp: the daemon's log lines. On a terminal or in a file: a timestamp, the level and
// the message. Under systemd (stderr connected to the journal): no timestamp (the journal
// adds its own) and a "<N>" syslog priority prefix, so `journalctl -p warning` works.
// Warnings and errors that repeat (a hostile file rejected row after row, an endpoint that
// keeps failing) are rate-limited per message pattern, with a line saying how many were
// suppressed. Messages name files, keys, localities and plugins, never a person.
#pragma once

#include <spdlog/common.h>
#include <spdlog/sinks/base_sink.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace ews {

// Returns: the level `name` spells (trace, debug, info, warn, error, critical, off), or
// nullopt for anything else (spdlog's own parser turns unknown names into "off").
std::optional<spdlog::level::level_enum> parse_log_level(std::string_view name);

// Returns: whether stderr is the journal's stream (systemd sets JOURNAL_STREAM to the
// device:inode of the stream it connected; a redirected stderr no longer matches).
bool stderr_is_journal();

// The "similar message" a rate limit counts: the message with each run of digits replaced by
// one '#', cut at 160 characters ("rejected: a.csv:12:3: ..." and "...:13:3: ..." match).
std::string message_pattern(std::string_view message);

// Passes messages below `from_level` through; of those at or above it, passes at most `burst`
// per pattern (message_pattern, and level) in each `window`; the rest are counted and, when
// the window of their pattern has passed (checked at each later message and at flush), one
// line at the same level says how many were suppressed.
class RateLimitSink : public spdlog::sinks::base_sink<std::mutex> {
public:
    using Clock = std::chrono::steady_clock;
    RateLimitSink(spdlog::sink_ptr target, std::size_t burst, std::chrono::seconds window,
                  spdlog::level::level_enum from_level = spdlog::level::warn,
                  std::function<Clock::time_point()> now = [] { return Clock::now(); });

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override;
    void flush_() override;

private:
    struct Window {
        Clock::time_point started;
        std::size_t passed = 0;
        std::size_t suppressed = 0;
        spdlog::level::level_enum level = spdlog::level::warn;
        std::string logger;
    };
    void report_expired(Clock::time_point now);

    spdlog::sink_ptr target_;
    std::size_t burst_;
    std::chrono::seconds window_;
    spdlog::level::level_enum from_level_;
    std::function<Clock::time_point()> now_;
    std::map<std::string, Window> windows_;  // key: level and pattern
};

// Installs the default logger "ewsd" on stderr: journal format when `journal`, and repeated
// warnings and errors limited to 10 per pattern per minute.
void setup_logging(bool journal);

}  // namespace ews
