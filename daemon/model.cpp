#include "model.hpp"

#include <charconv>
#include <chrono>
#include <cstdio>

namespace ews {

std::string_view to_string(Level level) {
    switch (level) {
        case Level::none: return "none";
        case Level::watch: return "watch";
        case Level::warning: return "warning";
        case Level::critical: return "critical";
    }
    return "none";
}

std::optional<Level> parse_level(std::string_view name) {
    for (Level l : {Level::none, Level::watch, Level::warning, Level::critical})
        if (to_string(l) == name) return l;
    return std::nullopt;
}

std::string_view to_string(sdk::Status status) {
    switch (status) {
        case sdk::Status::ok: return "ok";
        case sdk::Status::stale: return "stale";
        case sdk::Status::no_data: return "no_data";
        case sdk::Status::error: return "error";
    }
    return "error";
}

std::string format_time(TimePoint t) {
    using namespace std::chrono;
    auto days = floor<std::chrono::days>(t);
    year_month_day ymd{days};
    hh_mm_ss hms{t - days};
    char buf[32];
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02dZ", int(ymd.year()),
                  unsigned(ymd.month()), unsigned(ymd.day()), int(hms.hours().count()),
                  int(hms.minutes().count()), int(hms.seconds().count()));
    return buf;
}

namespace {
bool take_int(std::string_view& s, std::size_t digits, int& out) {
    if (s.size() < digits) return false;
    for (std::size_t i = 0; i < digits; ++i)
        if (s[i] < '0' || s[i] > '9') return false;
    std::from_chars(s.data(), s.data() + digits, out);
    s.remove_prefix(digits);
    return true;
}
bool take_char(std::string_view& s, char c) {
    if (s.empty() || s.front() != c) return false;
    s.remove_prefix(1);
    return true;
}
}  // namespace

std::optional<TimePoint> parse_time(std::string_view s) {
    using namespace std::chrono;
    int y, mo, d, h = 0, mi = 0, se = 0;
    if (!take_int(s, 4, y) || !take_char(s, '-') || !take_int(s, 2, mo) || !take_char(s, '-') ||
        !take_int(s, 2, d))
        return std::nullopt;
    year_month_day ymd{year{y}, month{unsigned(mo)}, day{unsigned(d)}};
    if (!ymd.ok() || y < 1900) return std::nullopt;
    if (!s.empty()) {
        if (s.front() != 'T' && s.front() != 't' && s.front() != ' ') return std::nullopt;
        s.remove_prefix(1);
        if (!take_int(s, 2, h) || !take_char(s, ':') || !take_int(s, 2, mi)) return std::nullopt;
        if (take_char(s, ':') && !take_int(s, 2, se)) return std::nullopt;
        if (take_char(s, '.')) {
            if (s.empty() || s.front() < '0' || s.front() > '9') return std::nullopt;
            while (!s.empty() && s.front() >= '0' && s.front() <= '9') s.remove_prefix(1);
        }
        if (h > 23 || mi > 59 || se > 60) return std::nullopt;
        if (s == "Z" || s == "z" || s == "+00:00" || s == "+0000" || s.empty())
            s = {};
        else
            return std::nullopt;  // only UTC is accepted
    }
    return TimePoint{sys_days{ymd}} + hours{h} + minutes{mi} + seconds{se};
}

TimePoint wall_now() {
    return std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
}

}  // namespace ews
