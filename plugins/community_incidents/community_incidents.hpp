// community_incidents.hpp: the community_incidents indicator. Scores how unusual the
// severity-weighted incident count of the recent window is against the locality's own
// history (a Poisson tail), and holds the locality at `watch` at once when a sentinel
// category (e.g. a recruitment attempt) is reported, for verification.
// Header-only so the unit tests can use the class; community_incidents.cpp exports it.
// Pure: no I/O, no globals, no logging; assess() is const and thread-safe.
#pragma once

#include <ews/sdk/indicator.hpp>

#include "../plugin_support.hpp"

#include <boost/math/distributions/poisson.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ews::plugins {

class CommunityIncidents final : public sdk::Indicator {
public:
    sdk::Descriptor describe() const override {
        return {"community_incidents", "1.0.0", {"incident.*"}, param_specs()};
    }

    // Throws: sdk::ConfigError naming the key of an unknown, mistyped or out-of-range
    // parameter. On a throw the previous settings stay in force.
    void configure(const sdk::Params& params) override {
        const auto specs = param_specs();
        for (const auto& [key, value] : params) {
            if (std::none_of(specs.begin(), specs.end(),
                             [&](const sdk::ParamSpec& s) { return s.name == key; }))
                throw sdk::ConfigError(key,
                                       "unknown parameter '" + key + "' for community_incidents");
        }
        Settings s;
        for (const auto& [category, w] : sdk::param<std::map<std::string, double>>(params, specs, "weights")) {
            if (category.empty())
                throw sdk::ConfigError("weights", "parameter 'weights' has an empty category name");
            s.weights.emplace(category, w);
        }
        s.default_weight = sdk::param<double>(params, specs, "default_weight");
        s.window_days = sdk::param<std::int64_t>(params, specs, "window_days");
        s.baseline_days = sdk::param<std::int64_t>(params, specs, "baseline_days");
        s.expected_floor = sdk::param<double>(params, specs, "expected_floor");
        s.sentinels = sdk::param<std::vector<std::string>>(params, specs, "sentinels");
        for (const auto& name : s.sentinels)
            if (name.empty())
                throw sdk::ConfigError("sentinels",
                                       "parameter 'sentinels' has an empty category name");
        s.min_count = sdk::param<double>(params, specs, "min_count");
        s.full_decades = sdk::param<double>(params, specs, "full_decades");
        s.history_full_days = sdk::param<std::int64_t>(params, specs, "history_full_days");
        s.max_age_days = sdk::param<std::int64_t>(params, specs, "max_age_days");
        settings_ = std::move(s);
    }

    sdk::Assessment assess(const sdk::LocalityView& view, sdk::TimePoint now) const override {
        const Settings& s = settings_;
        sdk::Assessment a;
        const sdk::TimePoint window_start = now - days(s.window_days);
        const sdk::TimePoint baseline_start = window_start - days(s.baseline_days);

        double observed = 0;       // severity-weighted, in the window
        double baseline = 0;       // severity-weighted, in the baseline
        double squared = 0;        // sum of weight^2 x count, window and baseline
        double window_count = 0;   // raw counts
        double baseline_count = 0;
        std::vector<double> sentinel_counts(s.sentinels.size(), 0.0);
        std::optional<sdk::TimePoint> oldest, newest;

        for (std::string_view kind : view.kinds(prefix)) {
            const auto points = visible(view.series(kind), now);
            if (points.empty()) continue;
            const std::string_view category = kind.substr(prefix.size());
            const auto w_it = s.weights.find(category);
            const double w = w_it == s.weights.end() ? s.default_weight : w_it->second;
            const auto sentinel = std::find(s.sentinels.begin(), s.sentinels.end(), category);

            if (!oldest || points.front().time < *oldest) oldest = points.front().time;
            if (!newest || points.back().time > *newest) newest = points.back().time;
            // Points at or before baseline_start take no part; skip them in O(log n).
            auto first = std::upper_bound(
                points.begin(), points.end(), baseline_start,
                [](sdk::TimePoint t, const sdk::Point& p) { return t < p.time; });
            for (const auto& p : std::span(first, points.end())) {
                if (p.time > baseline_start) squared += w * w * p.value;
                if (p.time > window_start) {
                    observed += w * p.value;
                    window_count += p.value;
                    if (sentinel != s.sentinels.end())
                        sentinel_counts[static_cast<std::size_t>(sentinel - s.sentinels.begin())] +=
                            p.value;
                } else if (p.time > baseline_start) {
                    baseline += w * p.value;
                    baseline_count += p.value;
                }
            }
        }
        if (!newest) {
            a.evidence.text = "no incident reports";
            return a;
        }

        const double scale = static_cast<double>(s.window_days) / static_cast<double>(s.baseline_days);
        const double expected = baseline * scale + s.expected_floor;
        // A severity-weighted count is over-dispersed: one abduction adds 3 at once. Scaled as
        // quasi-Poisson by the dispersion phi = sum(w^2 n) / sum(w n), the count O/phi is
        // compared with Poisson(E/phi); with a single category this is the raw count.
        const double weighted_total = observed + baseline;
        const double phi = weighted_total > 0 ? std::max(1.0, squared / weighted_total) : 1.0;
        const double exceedance = poisson_surprise(observed / phi, expected / phi, s.full_decades);
        const bool any_sentinel = std::any_of(sentinel_counts.begin(), sentinel_counts.end(),
                                              [](double c) { return c > 0; });
        const bool few = observed < s.min_count && !any_sentinel;
        const double score = clamp01(few ? 0.5 * exceedance : exceedance);

        const double history_days = days_between(now, *oldest);
        double confidence = std::min(1.0, history_days / static_cast<double>(s.history_full_days));
        a.status = sdk::Status::ok;
        if (now - *newest > days(s.max_age_days)) {
            a.status = sdk::Status::stale;
            confidence *= 0.5;
        }
        a.score = score;
        a.confidence = clamp01(confidence);
        a.newest = *newest;
        if (any_sentinel) a.floor = sdk::Floor::watch;

        const double ratio = observed / expected;
        std::string text = "severity-weighted incidents in the " + std::to_string(s.window_days) +
                           " days to " + date_of(now) + " at " + fixed(ratio, 1) +
                           "x the usual level";
        if (few) text += "; few reports, score halved";
        for (std::size_t i = 0; i < s.sentinels.size(); ++i)
            if (sentinel_counts[i] > 0) text += "; " + spaced(s.sentinels[i]) + " reported, verify";
        if (a.status == sdk::Status::stale)
            text += "; no incident rows in the last " + std::to_string(s.max_age_days) + " days";
        a.evidence.text = std::move(text);

        auto& v = a.evidence.values;
        v.reserve(8 + s.sentinels.size());
        v.push_back({"incidents", window_count, true});
        v.push_back({"weighted_observed", observed, true});
        v.push_back({"weighted_expected", expected, false});
        v.push_back({"ratio", ratio, false});
        v.push_back({"exceedance", exceedance, false});
        for (std::size_t i = 0; i < s.sentinels.size(); ++i)
            if (sentinel_counts[i] > 0) v.push_back({s.sentinels[i], sentinel_counts[i], true});
        const auto population = view.info().population;
        if (population && *population > 0) {
            v.push_back({"incidents_per_10k", window_count / *population * 10000, false});
            v.push_back({"usual_per_10k", baseline_count * scale / *population * 10000, false});
        }
        v.push_back({"history_days", history_days, false});
        return a;
    }

private:
    static constexpr std::string_view prefix = "incident.";

    struct Settings {
        std::map<std::string, double, std::less<>> weights;
        double default_weight = 1;
        std::int64_t window_days = 28;
        std::int64_t baseline_days = 364;
        double expected_floor = 0.5;
        std::vector<std::string> sentinels;
        double min_count = 3;
        double full_decades = 3;
        std::int64_t history_full_days = 180;
        std::int64_t max_age_days = 60;
    };

    static std::vector<sdk::ParamSpec> param_specs() {
        const Settings d;
        using T = sdk::ParamType;
        return {
            {"weights", T::number_table,
             std::map<std::string, double>{{"recruitment_attempt", 3},
                                           {"abduction", 3},
                                           {"child_exploitation", 2.5},
                                           {"violence_against_children", 2},
                                           {"armed_violence", 1.5},
                                           {"drug_trafficking", 1}},
             0, 100, "severity weight per incident category"},
            {"default_weight", T::number, d.default_weight, 0, 100,
             "severity weight of a category missing from weights"},
            {"window_days", T::integer, d.window_days, 1, 366,
             "days up to now whose incidents are compared with the usual level"},
            {"baseline_days", T::integer, d.baseline_days, 7, 3660,
             "days before the window that set the usual level"},
            {"expected_floor", T::number, d.expected_floor, 0.01, 1000,
             "added to the expected weighted count so an empty history cannot explode"},
            {"sentinels", T::string_list,
             std::vector<std::string>{"recruitment_attempt", "abduction"}, std::nullopt,
             std::nullopt, "categories of which one report holds the locality at watch"},
            {"min_count", T::number, d.min_count, 0, 1e6,
             "weighted count below which, without a sentinel, the score is halved"},
            {"full_decades", T::number, d.full_decades, 0.5, 20,
             "score 1 when a count this high has chance 10^-full_decades under the usual level"},
            {"history_full_days", T::integer, d.history_full_days, 1, 3660,
             "days of incident history needed for full confidence"},
            {"max_age_days", T::integer, d.max_age_days, 1, 3660,
             "age of the newest incident row (zero counts included) beyond which it is stale"},
        };
    }

    // Returns: how surprising a count this high is under the usual level, on a log scale:
    // min(1, -log10(P(X >= floor(observed))) / full_decades) for X ~ Poisson(expected);
    // 0 when observed does not exceed expected. expected > 0.
    // The log scale matters: the plain probability P(X < k) spreads quiet localities evenly
    // over 0..1 (it is uniform under the null), while the tail's order of magnitude stays
    // near 0 for chance and reaches 1 only for counts chance would give once in 10^decades.
    static double poisson_surprise(double observed, double expected, double full_decades) {
        if (!(observed > expected)) return 0;
        const double k = std::floor(observed);
        if (k < 1) return 0;
        // Plain double arithmetic: promotion to long double buys nothing at this precision
        // and costs a third of the evaluation time.
        using Policy = boost::math::policies::policy<boost::math::policies::promote_double<false>>;
        const double tail = boost::math::cdf(
            boost::math::complement(boost::math::poisson_distribution<double, Policy>(expected), k - 1));
        if (!(tail > 0)) return 1;
        return std::min(1.0, -std::log10(tail) / full_decades);
    }

    // A configured category name for people: "recruitment_attempt" -> "recruitment attempt".
    static std::string spaced(std::string name) {
        std::replace(name.begin(), name.end(), '_', ' ');
        return name;
    }

    Settings settings_ = defaults();

    static Settings defaults() {
        Settings s;
        const auto specs = param_specs();
        for (const auto& [category, w] : sdk::param<std::map<std::string, double>>({}, specs, "weights"))
            s.weights.emplace(category, w);
        s.sentinels = sdk::param<std::vector<std::string>>({}, specs, "sentinels");
        return s;
    }
};

}  // namespace ews::plugins
