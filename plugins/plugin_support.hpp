// plugin_support.hpp: small helpers the shipped plugins share (time arithmetic, clamping,
// the cut at `now`, and number and date formatting for evidence text). Header-only and
// built on the SDK alone, like the plugins themselves; not part of the installed SDK.
#pragma once

#include <ews/sdk/indicator.hpp>

#include <algorithm>
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
    auto end = std::upper_bound(s.begin(), s.end(), now,
                                [](sdk::TimePoint t, const sdk::Point& p) { return t < p.time; });
    return s.first(static_cast<std::size_t>(end - s.begin()));
}

inline std::string fixed(double v, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

// Returns: "YYYY-MM-DD" of t (UTC).
inline std::string date_of(sdk::TimePoint t) {
    const std::chrono::year_month_day ymd{std::chrono::floor<std::chrono::days>(t)};
    char buf[32];
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                  static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
    return buf;
}

}  // namespace ews::plugins
