// community_incidents.hpp: the community_incidents indicator. Scores how unusual the
// severity-weighted incident count of the recent window is against the locality's own
// history: the windows just before it (EARS C2-style, behind a guard band) while the history
// is short, the same time of year in earlier years (historical limits) once it spans two
// years; the score is a quasi-Poisson exceedance on a log scale. Holds the locality at
// `watch` at once when a sentinel category (e.g. a recruitment attempt) is reported, for
// verification.
// Header-only so the unit tests can use the class; community_incidents.cpp exports it.
// Pure: no I/O, no globals, no logging; assess() is const and thread-safe.
#pragma once

#include <ews/sdk/indicator.hpp>

#include "../plugin_support.hpp"

#include <boost/container/small_vector.hpp>
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
        return {"community_incidents", "1.1.0", {"incident.*"}, param_specs()};
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
        s.guard_days = sdk::param<std::int64_t>(params, specs, "guard_days");
        s.season_years = sdk::param<std::int64_t>(params, specs, "season_years");
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

        // The incident series with their weights and sentinel slots, and the oldest and
        // newest rows across them: the oldest decides which baseline applies.
        boost::container::small_vector<Series, 8> series;
        std::optional<sdk::TimePoint> oldest, newest;
        for (std::string_view kind : view.kinds(prefix)) {
            const auto points = visible(view.series(kind), now);
            if (points.empty()) continue;
            const std::string_view category = kind.substr(prefix.size());
            const auto w_it = s.weights.find(category);
            const auto sentinel = std::find(s.sentinels.begin(), s.sentinels.end(), category);
            series.push_back({points, w_it == s.weights.end() ? s.default_weight : w_it->second,
                              static_cast<std::size_t>(sentinel - s.sentinels.begin())});
            if (!oldest || points.front().time < *oldest) oldest = points.front().time;
            if (!newest || points.back().time > *newest) newest = points.back().time;
        }
        if (!newest) {
            a.evidence.text = "no incident reports";
            return a;
        }

        const Baseline base = plan_baseline(s, now, *oldest);
        boost::container::small_vector<Bin, 64> bins(base.bins);
        boost::container::small_vector<double, 4> sentinel_counts(s.sentinels.size(), 0.0);
        double observed = 0;      // severity-weighted, in the window
        double window_count = 0;  // raw count, in the window
        double squared = 0;       // sum of weight^2 x count, window and bins
        for (const Series& x : series) {
            // Points at or before the start of the oldest bin take no part; skip them in
            // O(log n).
            auto first = std::upper_bound(
                x.points.begin(), x.points.end(), base.earliest,
                [](sdk::TimePoint t, const sdk::Point& p) { return t < p.time; });
            for (const auto& p : std::span(first, x.points.end())) {
                const double weighted = x.weight * p.value;
                if (p.time > window_start) {
                    observed += weighted;
                    window_count += p.value;
                    squared += x.weight * weighted;
                    if (x.sentinel < sentinel_counts.size()) sentinel_counts[x.sentinel] += p.value;
                } else if (const auto i = base.bin_of(p.time)) {
                    bins[*i].weighted += weighted;
                    bins[*i].count += p.value;
                    squared += x.weight * weighted;
                }
            }
        }

        // A bin that ends before the oldest row lies outside the locality's history: its
        // count is unknown, not zero, so it is left out. Bin ends fall as the index rises,
        // so the bins kept are the first `used`.
        std::size_t used = 0;
        double bin_weighted = 0, bin_count = 0;
        for (; used < bins.size() && base.bin_end(used) >= *oldest; ++used) {
            bin_weighted += bins[used].weighted;
            bin_count += bins[used].count;
        }
        const double usual = used > 0 ? bin_weighted / static_cast<double>(used) : 0.0;
        const double usual_count = used > 0 ? bin_count / static_cast<double>(used) : 0.0;
        double variance = 0;
        if (used >= 2) {
            for (std::size_t i = 0; i < used; ++i)
                variance += (bins[i].weighted - usual) * (bins[i].weighted - usual);
            variance /= static_cast<double>(used - 1);
        }
        const double expected = usual + s.expected_floor;
        // Weighted counts are over-dispersed twice over: one abduction adds 3 at once (the
        // severity part, sum(w^2 n) / sum(w n)), and incidents cluster in time (the bins'
        // variance over their mean). Scaled as quasi-Poisson by the larger, O/phi is compared
        // with Poisson(E/phi); a single category of weight 1 at a steady level gives phi = 1.
        const double weighted_total = observed + bin_weighted;
        const double severity_phi = weighted_total > 0 ? squared / weighted_total : 1.0;
        const double bin_phi = used >= 2 && usual > 0 ? variance / usual : 1.0;
        const double phi = std::max({1.0, severity_phi, bin_phi});
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
        if (!view.wants_evidence()) return a;

        const double ratio = observed / expected;
        std::string text = "severity-weighted incidents in the " + std::to_string(s.window_days) +
                           " days to " + date_of(now) + " at " + fixed(ratio, 1) + "x ";
        if (base.seasonal)
            text += "the usual level for this time of year (" + std::to_string(base.years) +
                    " earlier years)";
        else if (used > 0)
            text += "the usual level of the preceding " +
                    span_of(static_cast<std::int64_t>(used) * s.window_days);
        else
            text += "the minimum expected level (no earlier history yet)";
        if (few) text += "; few reports, score halved";
        for (std::size_t i = 0; i < s.sentinels.size(); ++i)
            if (sentinel_counts[i] > 0) text += "; " + spaced(s.sentinels[i]) + " reported, verify";
        if (a.status == sdk::Status::stale)
            text += "; no incident rows in the last " + std::to_string(s.max_age_days) + " days";
        a.evidence.text = std::move(text);

        auto& v = a.evidence.values;
        v.reserve(11 + s.sentinels.size());
        v.push_back({"incidents", window_count, true});
        v.push_back({"weighted_observed", observed, true});
        v.push_back({"weighted_expected", expected, false});
        v.push_back({"ratio", ratio, false});
        v.push_back({"exceedance", exceedance, false});
        v.push_back({"dispersion", phi, false});
        v.push_back({"seasonal", base.seasonal ? 1.0 : 0.0, false});
        v.push_back({"baseline_bins", static_cast<double>(used), false});
        for (std::size_t i = 0; i < s.sentinels.size(); ++i)
            if (sentinel_counts[i] > 0) v.push_back({s.sentinels[i], sentinel_counts[i], true});
        const auto population = view.info().population;
        if (population && *population > 0) {
            v.push_back({"incidents_per_10k", window_count / *population * 10000, false});
            v.push_back({"usual_per_10k", usual_count / *population * 10000, false});
        }
        v.push_back({"history_days", history_days, false});
        return a;
    }

private:
    static constexpr std::string_view prefix = "incident.";
    // A "year" of the seasonal baseline: 52 whole weeks, so weekdays align year on year.
    static constexpr std::int64_t season_days = 364;

    struct Settings {
        std::map<std::string, double, std::less<>> weights;
        double default_weight = 1;
        std::int64_t window_days = 28;
        std::int64_t baseline_days = 364;
        std::int64_t guard_days = 14;
        std::int64_t season_years = 3;
        double expected_floor = 0.5;
        std::vector<std::string> sentinels;
        double min_count = 3;
        double full_decades = 3;
        std::int64_t history_full_days = 180;
        std::int64_t max_age_days = 60;
    };

    // One incident series as assess() reads it.
    struct Series {
        std::span<const sdk::Point> points;
        double weight;
        std::size_t sentinel;  // index into Settings::sentinels; past its end when none
    };

    // Sums over one baseline bin.
    struct Bin {
        double weighted = 0;  // severity-weighted count
        double count = 0;     // raw count
    };

    // Where the bins that set the usual level lie. All bins are window_days long and
    // half-open, (start, end], like the window.
    //   C2-style: `bins` consecutive bins ending at `end` = now - window_days - guard_days,
    //     bin i = (end - (i + 1) W, end - i W].
    //   Seasonal: for each earlier year k = 1..years, with c = now - 364 k, the bins
    //     (c, c + W], (c - W, c] and (c - 2W, c - W] get indices 3(k-1), 3(k-1)+1, 3(k-1)+2;
    //     `end` = now.
    // Either way a bin's end falls as its index rises.
    struct Baseline {
        bool seasonal = false;
        std::int64_t years = 0;      // earlier years used (seasonal)
        std::size_t bins = 0;
        sdk::TimePoint end;
        sdk::TimePoint earliest;     // start of the oldest bin (exclusive)
        std::chrono::seconds width{};

        // Returns: the index of the bin holding t, or nullopt when t is in none.
        std::optional<std::size_t> bin_of(sdk::TimePoint t) const {
            if (t > end || t <= earliest) return std::nullopt;
            const std::chrono::seconds back = end - t;
            if (!seasonal) return static_cast<std::size_t>(back / width);
            const std::chrono::seconds year = days(season_days);
            const std::int64_t k = (back + width) / year;
            const std::chrono::seconds offset = back + width - k * year;
            if (k < 1 || k > years || offset >= 3 * width) return std::nullopt;
            return static_cast<std::size_t>(3 * (k - 1) + offset / width);
        }

        sdk::TimePoint bin_end(std::size_t i) const {
            const auto n = static_cast<std::int64_t>(i);
            if (!seasonal) return end - n * width;
            return end - (n / 3 + 1) * days(season_days) + width - (n % 3) * width;
        }
    };

    // Seasonal once the oldest row is at least two 364-day years before now, and the three
    // windows of a year stay apart from each other (3W <= 364) and from the current window
    // and its guard band (2W + guard <= 364); C2-style otherwise.
    static Baseline plan_baseline(const Settings& s, sdk::TimePoint now, sdk::TimePoint oldest) {
        Baseline b;
        b.width = days(s.window_days);
        const std::int64_t history_years = (now - oldest) / days(season_days);
        if (history_years >= 2 && 3 * s.window_days <= season_days &&
            2 * s.window_days + s.guard_days <= season_days) {
            b.seasonal = true;
            b.years = std::min(s.season_years, history_years);
            b.bins = static_cast<std::size_t>(3 * b.years);
            b.end = now;
            b.earliest = now - b.years * days(season_days) - 2 * b.width;
        } else {
            b.bins = static_cast<std::size_t>(std::max<std::int64_t>(1, s.baseline_days / s.window_days));
            b.end = now - b.width - days(s.guard_days);
            b.earliest = b.end - static_cast<std::int64_t>(b.bins) * b.width;
        }
        return b;
    }

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
             "days before the guard band cut into window-long bins while history is short"},
            {"guard_days", T::integer, d.guard_days, 0, 365,
             "days between the window and the short-history baseline, kept out of both"},
            {"season_years", T::integer, d.season_years, 2, 20,
             "earlier years at most whose same time of year sets the usual level"},
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
        // O/phi is a quotient of sums: a count that is whole in exact arithmetic may come out
        // a rounding error below it (1 / 1.0000000000000002), which must not lose a whole event.
        const double k = std::floor(observed * (1 + 1e-12));
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

    // "52 weeks" when n days are whole weeks, else "30 days".
    static std::string span_of(std::int64_t n) {
        if (n % 7 == 0) return std::to_string(n / 7) + (n == 7 ? " week" : " weeks");
        return std::to_string(n) + (n == 1 ? " day" : " days");
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
