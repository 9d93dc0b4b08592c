// plugin_support.hpp: small helpers the shipped plugins share (time arithmetic, clamping,
// the cut at `now`, and number and date formatting for evidence text). Header-only and
// built on the SDK alone, like the plugins themselves; not part of the installed SDK.
#pragma once

#include <ews/sdk/indicator.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>

namespace ews::plugins {

inline std::chrono::seconds days(std::int64_t n) { return std::chrono::seconds{n * 86400}; }

inline double days_between(sdk::TimePoint later, sdk::TimePoint earlier) {
    return std::chrono::duration<double, std::ratio<86400>>(later - earlier).count();
}

// Returns: v within [0, 1]; 0 when v is not finite.
inline double clamp01(double v) { return std::isfinite(v) ? std::clamp(v, 0.0, 1.0) : 0.0; }

// The points at or before `now` (the view is already cut; this keeps assess() honest when
// called with an earlier `now`).
inline std::span<const sdk::Point> visible(std::span<const sdk::Point> s, sdk::TimePoint now) {
    if (s.empty() || s.back().time <= now) return s;  // the usual case, without a search
    auto end = std::upper_bound(s.begin(), s.end(), now,
                                [](sdk::TimePoint t, const sdk::Point& p) { return t < p.time; });
    return s.first(static_cast<std::size_t>(end - s.begin()));
}

// Returns: v with `decimals` digits after the point, as printf's "%.*f" writes it (through
// std::to_chars: evidence is formatted for every locality at every evaluation, and printf's
// locale handling made it a visible share of the evaluation's time).
inline std::string fixed(double v, int decimals) {
    char buf[400];  // the longest double in fixed notation is 309 digits and a sign
    const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, decimals);
    if (r.ec != std::errc()) return std::isnan(v) ? "nan" : v < 0 ? "-inf" : "inf";
    return std::string(buf, r.ptr);
}

// Returns: "YYYY-MM-DD" of t (UTC); the year as printf's "%04d" writes it.
inline std::string date_of(sdk::TimePoint t) {
    const std::chrono::year_month_day ymd{std::chrono::floor<std::chrono::days>(t)};
    const int year = static_cast<int>(ymd.year());
    std::string out;
    if (year < 0 || year > 9999) {
        char buf[16];
        std::snprintf(buf, sizeof buf, "%04d", year);
        out = buf;
    } else {
        out = {char('0' + year / 1000), char('0' + year / 100 % 10), char('0' + year / 10 % 10),
               char('0' + year % 10)};
    }
    const auto two = [&](unsigned n) {
        out += '-';
        out += char('0' + n / 10);
        out += char('0' + n % 10);
    };
    two(static_cast<unsigned>(ymd.month()));
    two(static_cast<unsigned>(ymd.day()));
    return out;
}

}  // namespace ews::plugins
