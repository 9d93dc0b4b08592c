#include "logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <sys/stat.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>

namespace ews {

namespace {

constexpr std::size_t pattern_length = 160;
constexpr std::size_t max_windows = 1000;

// "%*": the syslog priority of the message's level (sd-daemon(3) prefixes "<N>").
class PriorityFlag : public spdlog::custom_flag_formatter {
public:
    void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
        char digit = '6';  // info
        switch (msg.level) {
            case spdlog::level::trace:
            case spdlog::level::debug: digit = '7'; break;
            case spdlog::level::info: digit = '6'; break;
            case spdlog::level::warn: digit = '4'; break;
            case spdlog::level::err: digit = '3'; break;
            case spdlog::level::critical: digit = '2'; break;
            default: break;
        }
        dest.push_back(digit);
    }
    std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<PriorityFlag>(); }
};

}  // namespace

std::optional<spdlog::level::level_enum> parse_log_level(std::string_view name) {
    static const std::pair<std::string_view, spdlog::level::level_enum> names[] = {
        {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug},
        {"info", spdlog::level::info},   {"warn", spdlog::level::warn},
        {"error", spdlog::level::err},   {"critical", spdlog::level::critical},
        {"off", spdlog::level::off}};
    for (const auto& [n, level] : names)
        if (n == name) return level;
    return std::nullopt;
}

bool stderr_is_journal() {
    const char* stream = std::getenv("JOURNAL_STREAM");
    if (!stream) return false;
    unsigned long long dev = 0, ino = 0;
    if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2) return false;
    struct stat st {};
    if (::fstat(2, &st) != 0) return false;
    return static_cast<unsigned long long>(st.st_dev) == dev && static_cast<unsigned long long>(st.st_ino) == ino;
}

std::string message_pattern(std::string_view message) {
    std::string out;
    out.reserve(std::min(message.size(), pattern_length));
    for (std::size_t i = 0; i < message.size() && out.size() < pattern_length; ++i) {
        if (std::isdigit(static_cast<unsigned char>(message[i]))) {
            if (out.empty() || out.back() != '#') out.push_back('#');
        } else {
            out.push_back(message[i]);
        }
    }
    return out;
}

RateLimitSink::RateLimitSink(spdlog::sink_ptr target, std::size_t burst, std::chrono::seconds window,
                             spdlog::level::level_enum from_level, std::function<Clock::time_point()> now)
    : target_(std::move(target)), burst_(burst), window_(window), from_level_(from_level), now_(std::move(now)) {}

void RateLimitSink::report_expired(Clock::time_point now) {
    for (auto it = windows_.begin(); it != windows_.end();) {
        if (now - it->second.started < window_) {
            ++it;
            continue;
        }
        if (it->second.suppressed > 0) {
            const std::string text =
                std::to_string(it->second.suppressed) + " similar messages suppressed in the last " +
                std::to_string(window_.count()) + " s: \"" + it->first.substr(it->first.find(' ') + 1) + "\"";
            spdlog::details::log_msg summary(it->second.logger, it->second.level, text);
            target_->log(summary);
        }
        it = windows_.erase(it);
    }
}

void RateLimitSink::sink_it_(const spdlog::details::log_msg& msg) {
    const auto now = now_();
    report_expired(now);
    if (msg.level < from_level_) {
        target_->log(msg);
        return;
    }
    std::string key = std::to_string(static_cast<int>(msg.level)) + " " +
                      message_pattern(std::string_view(msg.payload.data(), msg.payload.size()));
    // Thousands of distinct messages within one window (a hostile file's rows, each with its
    // own reason) share one window beyond this many, so memory stays bounded.
    if (windows_.size() >= max_windows && !windows_.count(key))
        key = std::to_string(static_cast<int>(msg.level)) + " (other messages)";
    auto [it, fresh] = windows_.try_emplace(key);
    Window& w = it->second;
    if (fresh) {
        w.started = now;
        w.level = msg.level;
        w.logger = std::string(msg.logger_name.data(), msg.logger_name.size());
    }
    if (w.passed < burst_) {
        ++w.passed;
        target_->log(msg);
    } else {
        ++w.suppressed;
    }
}

void RateLimitSink::flush_() {
    report_expired(now_());
    target_->flush();
}

void setup_logging(bool journal) {
    auto out = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    if (journal)
        formatter->add_flag<PriorityFlag>('*').set_pattern("<%*>%l: %v");
    else
        formatter->set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %v");
    out->set_formatter(std::move(formatter));
    auto limited = std::make_shared<RateLimitSink>(out, 10, std::chrono::seconds(60));
    auto logger = std::make_shared<spdlog::logger>("ewsd", limited);
    spdlog::set_default_logger(std::move(logger));
}

}  // namespace ews
