// school_dropout.hpp: the school_dropout indicator. Compares a locality's latest dropout rate
// with its own usual rate for the same time of year (or its recent periods when it has too
// few years of history), both shrunk toward a prior (the neighbours' pooled rate, or a
// configured one) so that a small school's single dropout does not read as a crisis, and adds
// a CUSUM over its recent periods so that a rise spread over several periods is not missed.
// Header-only so the unit tests can use the class; school_dropout.cpp exports it.
// Pure: no I/O, no globals, no logging; assess() is const and thread-safe.
#pragma once

#include <ews/sdk/indicator.hpp>

#include "../plugin_support.hpp"

#include <boost/container/small_vector.hpp>
#include <boost/math/distributions/binomial.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace ews::plugins {

class SchoolDropout final : public sdk::Indicator {
public:
    sdk::Descriptor describe() const override {
        return {"school_dropout", "1.1.0", {"school.enrolled", "school.dropouts"}, param_specs()};
    }

    // Throws: sdk::ConfigError naming the key of an unknown, mistyped or out-of-range
    // parameter. On a throw the previous settings stay in force.
    void configure(const sdk::Params& params) override {
        const auto specs = param_specs();
        for (const auto& [key, value] : params) {
            if (std::none_of(specs.begin(), specs.end(),
                             [&](const sdk::ParamSpec& s) { return s.name == key; }))
                throw sdk::ConfigError(key, "unknown parameter '" + key + "' for school_dropout");
        }
        Settings s;
        s.baseline_days = sdk::param<std::int64_t>(params, specs, "baseline_days");
        s.season_window_days = sdk::param<std::int64_t>(params, specs, "season_window_days");
        s.season_years = sdk::param<std::int64_t>(params, specs, "season_years");
        s.min_seasonal_periods = sdk::param<std::int64_t>(params, specs, "min_seasonal_periods");
        s.prior_rate = sdk::param<double>(params, specs, "prior_rate");
        s.prior_strength = sdk::param<double>(params, specs, "prior_strength");
        s.full_ratio = sdk::param<double>(params, specs, "full_ratio");
        s.min_rate = sdk::param<double>(params, specs, "min_rate");
        s.full_decades = sdk::param<double>(params, specs, "full_decades");
        s.trend_periods = sdk::param<std::int64_t>(params, specs, "trend_periods");
        s.trend_ratio = sdk::param<double>(params, specs, "trend_ratio");
        s.trend_h = sdk::param<double>(params, specs, "trend_h");
        s.min_enrolment = sdk::param<double>(params, specs, "min_enrolment");
        s.full_baseline_periods = sdk::param<std::int64_t>(params, specs, "full_baseline_periods");
        s.max_age_days = sdk::param<std::int64_t>(params, specs, "max_age_days");
        settings_ = s;
    }

    sdk::Assessment assess(const sdk::LocalityView& view, sdk::TimePoint now) const override {
        const Settings& s = settings_;
        sdk::Assessment a;
        const auto dropouts = visible(view.series("school.dropouts"), now);
        const auto enrolled = visible(view.series("school.enrolled"), now);
        if (dropouts.empty() && enrolled.empty()) {
            a.evidence.text = "no school data";
            return a;
        }
        if (dropouts.empty() || enrolled.empty()) {
            a.evidence.text = dropouts.empty() ? "no dropout counts reported"
                                               : "no enrolment reported, so no dropout rate";
            return a;
        }

        // The locality's own periods, read once: its usual rate is pooled over them for the
        // latest period and again for each period of the CUSUM.
        Periods own_periods;
        periods_of(dropouts, enrolled, dropouts.front().time, own_periods);
        const std::span<const Period> periods(own_periods.data(), own_periods.size());
        const sdk::TimePoint latest = periods.back().time;
        const double d = periods.back().dropouts;
        const double n = periods.back().enrolled;
        if (!(n > 0)) {
            a.evidence.text = "enrolment for the latest period is zero, so no dropout rate";
            return a;
        }

        // The usual rate: the same time of year in earlier years when there are enough such
        // periods, else the trailing window.
        const Baseline own = baseline_at(periods, latest, s);

        // Prior: the neighbours' pooled rate over the same baseline periods, itself shrunk
        // toward prior_rate so that one small neighbour cannot set it alone. The neighbours
        // are the region as a plugin sees it.
        // A neighbour's periods are read from the start of the oldest window the pool can
        // reach (its enrolment in force from any time).
        const sdk::TimePoint reach =
            own.seasonal ? latest - s.season_years * year_length - days(s.season_window_days)
                         : latest - days(s.baseline_days);
        Pool near;
        Periods theirs;
        for (std::size_t i = 0; i < view.neighbour_count(); ++i) {
            const auto& nb = view.neighbour(i);
            const auto nb_dropouts = visible(nb.series("school.dropouts"), now);
            const auto nb_enrolled = visible(nb.series("school.enrolled"), now);
            if (nb_dropouts.empty() || nb_enrolled.empty()) continue;  // an empty pool
            periods_of(nb_dropouts, nb_enrolled, reach, theirs);
            near.add(baseline_pool({theirs.data(), theirs.size()}, latest, own.seasonal, s));
        }
        const double k = s.prior_strength;
        const bool prior_from_neighbours = near.enrolled > 0;
        const double p0 = prior_from_neighbours ? shrink(near.dropouts, near.enrolled, s.prior_rate, k)
                                                : s.prior_rate;

        const double rate = d / n;
        const double rate_s = shrink(d, n, p0, k);
        const double base_s = shrink(own.pool.dropouts, own.pool.enrolled, p0, k);
        const double ratio = rate_s / std::max(base_s, s.min_rate);
        // The ratio says how large the rise is; the binomial tail says whether chance could
        // give it. A small school's 3 dropouts against a usual 0.6 is a large ratio but no
        // surprise, so the level is the smaller of the two.
        const double surprise = binomial_surprise(d, n, base_s, s.full_decades);
        const double level = std::min((ratio - 1) / (s.full_ratio - 1), surprise);
        // The level misses a rise spread over several periods (each one raises the usual rate
        // of the next, and none alone is surprising); the CUSUM adds those periods up.
        const Cusum cusum = trend_cusum(periods, p0, base_s, s);
        const double trend = std::min(1.0, cusum.sum / s.trend_h);
        const double score = clamp01(std::max(level, trend));

        const double baseline_factor =
            own.seasonal ? 1.0
                         : std::min(1.0, static_cast<double>(own.pool.periods) /
                                             static_cast<double>(s.full_baseline_periods));
        double confidence = std::min(1.0, n / s.min_enrolment) * baseline_factor;
        a.status = sdk::Status::ok;
        if (now - latest > days(s.max_age_days)) {
            a.status = sdk::Status::stale;
            confidence *= 0.5;
        }
        a.score = score;
        a.confidence = clamp01(confidence);
        a.newest = latest;
        if (!view.wants_evidence()) return a;

        const std::int64_t m = own.pool.periods;
        const double usual = m > 0 ? own.pool.dropouts / own.pool.enrolled : 0.0;
        std::string text = "dropout " + percent(rate) + " in the period to " + date_of(latest);
        if (own.seasonal)
            text += " against the usual " + percent(usual) + " for this time of year (" +
                    std::to_string(m) + " periods in earlier years)";
        else if (m > 0)
            text += " against a usual " + percent(usual) + " (" + std::to_string(m) +
                    " earlier periods)";
        else
            text += " with no earlier periods to compare with";
        text += "; " + fixed(ratio, 1) + "x after adjusting for small numbers toward " +
                (prior_from_neighbours ? "the neighbours' " : "a prior ") + percent(p0);
        if (trend > 0 && trend > level) {
            text += cusum.periods > 1 ? "; rising for " + std::to_string(cusum.periods) + " periods"
                                      : std::string("; a jump in the latest period");
            text += ": CUSUM S = " + fixed(cusum.sum, 1);
        }
        if (a.status == sdk::Status::stale) text += "; data is stale";
        a.evidence.text = std::move(text);
        auto& v = a.evidence.values;
        v.reserve(16);
        v.push_back({"dropouts", d, true});
        v.push_back({"enrolled", n, true});
        v.push_back({"rate", rate, false});
        v.push_back({"adjusted_rate", rate_s, false});
        if (m > 0) v.push_back({"usual_rate", usual, false});
        v.push_back({"adjusted_usual_rate", base_s, false});
        v.push_back({"prior_rate", p0, false});
        v.push_back({"ratio", ratio, false});
        v.push_back({"surprise", surprise, false});
        v.push_back({"level", level, false});
        v.push_back({"baseline_periods", static_cast<double>(m), false});
        v.push_back({"seasonal", own.seasonal ? 1.0 : 0.0, false});
        v.push_back({"cusum", cusum.sum, false});
        v.push_back({"cusum_periods", static_cast<double>(cusum.periods), false});
        v.push_back({"trend", trend, false});
        return a;
    }

private:
    // Returns: min(1, -log10(P(X >= d)) / decades) for X ~ Binomial(round(n), p); 0 when d
    // does not exceed the expected n * p.
    static double binomial_surprise(double d, double n, double p, double decades) {
        const double trials = std::max(1.0, std::round(n));
        const double k = std::min(std::floor(d), trials);
        if (!(k > trials * p) || k < 1) return 0;
        if (!(p > 0)) return 1;
        if (p >= 1) return 0;
        using Policy = boost::math::policies::policy<boost::math::policies::promote_double<false>>;
        const double tail = boost::math::cdf(boost::math::complement(
            boost::math::binomial_distribution<double, Policy>(trials, p), k - 1));
        if (!(tail > 0)) return 1;
        return std::min(1.0, -std::log10(tail) / decades);
    }

    struct Settings {
        std::int64_t baseline_days = 365;
        std::int64_t season_window_days = 45;
        std::int64_t season_years = 3;
        std::int64_t min_seasonal_periods = 3;
        double prior_rate = 0.01;
        double prior_strength = 200;
        double full_ratio = 3;
        double min_rate = 0.001;
        double full_decades = 3;
        std::int64_t trend_periods = 6;
        double trend_ratio = 2;
        double trend_h = 8;
        double min_enrolment = 100;
        std::int64_t full_baseline_periods = 6;
        std::int64_t max_age_days = 62;
    };

    // Summed dropouts and the enrolment in force over a run of periods.
    struct Pool {
        double dropouts = 0;
        double enrolled = 0;
        std::int64_t periods = 0;

        void add(const Pool& o) {
            dropouts += o.dropouts;
            enrolled += o.enrolled;
            periods += o.periods;
        }
    };

    // The periods a rate is compared with: the same time of year in earlier years
    // (seasonal) or the trailing window.
    struct Baseline {
        Pool pool;
        bool seasonal = false;
    };

    struct Cusum {
        double sum = 0;            // S after the latest period
        std::int64_t periods = 0;  // periods since S was last 0 (0 when S is 0)
    };

    // One dropout period: the dropouts reported at one time (several sources at one time
    // summed in order, being parts of the locality) and the enrolment in force then.
    struct Period {
        sdk::TimePoint time;
        double dropouts = 0;
        double enrolled = 0;
    };
    // A year of monthly periods and more fit without an allocation.
    using Periods = boost::container::small_vector<Period, 40>;

    // The mean length of the Gregorian year, 365.2425 days, in seconds: a period one year back
    // stays at the same point of the school year over decades of leap days.
    static constexpr std::chrono::seconds year_length{31'556'952};

    static std::vector<sdk::ParamSpec> param_specs() {
        const Settings d;
        using T = sdk::ParamType;
        return {
            {"baseline_days", T::integer, d.baseline_days, 28, 3660,
             "days before the latest period whose periods form the usual rate when too few "
             "periods from the same time of year exist"},
            {"season_window_days", T::integer, d.season_window_days, 0, 182,
             "days either side of the same date in an earlier year whose periods count as the "
             "same time of year"},
            {"season_years", T::integer, d.season_years, 1, 20,
             "earlier years searched for periods at the same time of year"},
            {"min_seasonal_periods", T::integer, d.min_seasonal_periods, 1, 120,
             "periods at the same time of year needed to use them as the usual rate"},
            {"prior_rate", T::number, d.prior_rate, 0, 1,
             "dropout rate per period assumed when neighbours have no data"},
            {"prior_strength", T::number, d.prior_strength, 0, 1e6,
             "children's worth of weight given to the prior when shrinking rates"},
            {"full_ratio", T::number, d.full_ratio, 1.1, 100,
             "latest/usual rate ratio that scores 1"},
            {"full_decades", T::number, d.full_decades, 0.5, 20,
             "the surprise term is 1 when chance gives this many dropouts once in 10^full_decades"},
            {"min_rate", T::number, d.min_rate, 1e-6, 1,
             "lower bound of the usual rate, so a near-zero baseline cannot explode the ratio"},
            {"trend_periods", T::integer, d.trend_periods, 1, 60,
             "dropout periods, up to the latest, that the CUSUM trend term adds up"},
            {"trend_ratio", T::number, d.trend_ratio, 1.1, 20,
             "rise over the usual rate the CUSUM is tuned to detect"},
            {"trend_h", T::number, d.trend_h, 0.1, 100,
             "CUSUM value (log likelihood ratio) at which the trend term is 1"},
            {"min_enrolment", T::number, d.min_enrolment, 1, 1e7,
             "enrolment at which the latest rate earns full confidence"},
            {"full_baseline_periods", T::integer, d.full_baseline_periods, 1, 120,
             "earlier periods in the trailing window needed for full confidence in the usual rate"},
            {"max_age_days", T::integer, d.max_age_days, 1, 3660,
             "age of the latest dropout count beyond which the assessment is stale"},
        };
    }

    // Sets `out` to the periods of `dropouts` at or after `from`, in time order, each with
    // its enrolment in force (`enrolled` is not empty).
    static void periods_of(std::span<const sdk::Point> dropouts,
                           std::span<const sdk::Point> enrolled, sdk::TimePoint from,
                           Periods& out) {
        out.clear();
        auto it = std::lower_bound(dropouts.begin(), dropouts.end(), from,
                                   [](const sdk::Point& p, sdk::TimePoint x) { return p.time < x; });
        EnrolmentCursor in_force(enrolled);
        while (it != dropouts.end()) {
            const sdk::TimePoint t = it->time;
            double d = 0;
            for (; it != dropouts.end() && it->time == t; ++it) d += it->value;
            out.push_back({t, d, in_force.at(t)});
        }
    }

    // Returns: the baseline of the period at t: the seasonal pool when it holds at least
    // min_seasonal_periods periods, else the trailing pool. Periods at or after t never count.
    static Baseline baseline_at(std::span<const Period> periods, sdk::TimePoint t,
                                const Settings& s) {
        Baseline b{seasonal_pool(periods, t, s), true};
        if (b.pool.periods >= s.min_seasonal_periods) return b;
        return {trailing_pool(periods, t, s), false};
    }

    // Returns: the pool over the seasonal windows of t, or over its trailing window: the
    // neighbours are pooled over the periods the locality's own baseline uses.
    static Pool baseline_pool(std::span<const Period> periods, sdk::TimePoint t, bool seasonal,
                              const Settings& s) {
        return seasonal ? seasonal_pool(periods, t, s) : trailing_pool(periods, t, s);
    }

    // The periods with t - baseline_days <= time < t.
    static Pool trailing_pool(std::span<const Period> periods, sdk::TimePoint t,
                              const Settings& s) {
        return pool(from_to(periods, t - days(s.baseline_days), t));
    }

    // The periods within season_window_days (inclusive) of t - y * 365.2425 days for
    // y = 1..season_years. The windows do not overlap (2 * 182 days < one year) and all end
    // before t.
    static Pool seasonal_pool(std::span<const Period> periods, sdk::TimePoint t,
                              const Settings& s) {
        Pool p;
        if (periods.empty()) return p;
        const auto half = days(s.season_window_days);
        for (std::int64_t y = 1; y <= s.season_years; ++y) {
            const sdk::TimePoint centre = t - y * year_length;
            if (centre + half < periods.front().time) break;  // earlier years hold nothing
            p.add(pool(from_through(periods, centre - half, centre + half)));
        }
        return p;
    }

    // Returns: the Poisson-approximated binomial CUSUM over the last trend_periods dropout
    // periods up to the latest, in time order: S_j = max(0, S_{j-1} + d_j ln K -
    // (K - 1) n_j e_j), S = 0 before the first, K = trend_ratio. e_j is the shrunk usual rate
    // period j itself gets (baseline_at(t_j) shrunk toward p0, the latest period's prior, so
    // that neighbours are pooled once); `latest_expected` is the latest period's, already
    // computed. Periods with zero enrolment carry no rate and are skipped.
    static Cusum trend_cusum(std::span<const Period> periods, double p0, double latest_expected,
                             const Settings& s) {
        const std::size_t count =
            std::min(periods.size(), static_cast<std::size_t>(s.trend_periods));
        const double log_k = std::log(s.trend_ratio);
        Cusum c;
        for (std::size_t j = periods.size() - count; j < periods.size(); ++j) {
            const Period& x = periods[j];
            if (!(x.enrolled > 0)) continue;
            double expected = latest_expected;
            if (j + 1 < periods.size()) {
                const Pool b = baseline_at(periods, x.time, s).pool;
                expected = shrink(b.dropouts, b.enrolled, p0, s.prior_strength);
            }
            c.sum = std::max(0.0, c.sum + x.dropouts * log_k - (s.trend_ratio - 1) * x.enrolled * expected);
            c.periods = c.sum > 0 ? c.periods + 1 : 0;
        }
        return c;
    }

    // (x + k*prior) / (n + k): the empirical-Bayes posterior mean of a rate.
    static double shrink(double x, double n, double prior, double k) {
        return n + k > 0 ? (x + k * prior) / (n + k) : prior;
    }

    // The enrolment in force at times that do not decrease: the sum of the enrolment at the
    // newest enrolment time at or before t; when there is none, at the earliest enrolment
    // time (the nearest one after t). Walks `enrolled` forward once instead of searching it
    // for every period.
    class EnrolmentCursor {
    public:
        explicit EnrolmentCursor(std::span<const sdk::Point> enrolled) : enrolled_(enrolled) {}

        // Returns: the enrolment in force at t. `enrolled` is not empty; t is not earlier
        // than at the previous call.
        double at(sdk::TimePoint t) {
            if (!started_) {  // one search to the first period, then forward steps
                next_ = static_cast<std::size_t>(
                    std::upper_bound(enrolled_.begin(), enrolled_.end(), t,
                                     [](sdk::TimePoint x, const sdk::Point& p) { return x < p.time; }) -
                    enrolled_.begin());
                started_ = true;
            }
            while (next_ < enrolled_.size() && enrolled_[next_].time <= t) ++next_;
            // In force: the newest time at or before t, else the earliest.
            const sdk::TimePoint at = next_ == 0 ? enrolled_.front().time : enrolled_[next_ - 1].time;
            if (!has_sum_ || at != sum_time_) {
                // The points at `at` end just before next_ (or start the series): find their
                // first and add them up in order.
                std::size_t first = next_ == 0 ? 0 : next_ - 1;
                while (first > 0 && enrolled_[first - 1].time == at) --first;
                sum_ = 0;
                for (std::size_t i = first; i < enrolled_.size() && enrolled_[i].time == at; ++i)
                    sum_ += enrolled_[i].value;
                sum_time_ = at;
                has_sum_ = true;
            }
            return sum_;
        }

    private:
        std::span<const sdk::Point> enrolled_;
        std::size_t next_ = 0;  // the first point after the last t
        bool started_ = false;
        bool has_sum_ = false;
        sdk::TimePoint sum_time_{};
        double sum_ = 0;
    };

    // The periods with from <= time < to.
    static std::span<const Period> from_to(std::span<const Period> s, sdk::TimePoint from,
                                           sdk::TimePoint to) {
        auto lo = std::lower_bound(s.begin(), s.end(), from,
                                   [](const Period& p, sdk::TimePoint x) { return p.time < x; });
        auto hi = std::lower_bound(lo, s.end(), to,
                                   [](const Period& p, sdk::TimePoint x) { return p.time < x; });
        return {lo, hi};
    }

    // The periods with from <= time <= through.
    static std::span<const Period> from_through(std::span<const Period> s, sdk::TimePoint from,
                                                sdk::TimePoint through) {
        auto lo = std::lower_bound(s.begin(), s.end(), from,
                                   [](const Period& p, sdk::TimePoint x) { return p.time < x; });
        auto hi = std::upper_bound(lo, s.end(), through,
                                   [](sdk::TimePoint x, const Period& p) { return x < p.time; });
        return {lo, hi};
    }

    // Pools a run of periods; periods whose enrolment is zero carry no rate and are skipped.
    static Pool pool(std::span<const Period> run) {
        Pool p;
        for (const Period& x : run) {
            if (!(x.enrolled > 0)) continue;
            p.dropouts += x.dropouts;
            p.enrolled += x.enrolled;
            ++p.periods;
        }
        return p;
    }

    static std::string percent(double rate) {
        const double pct = rate * 100;
        return fixed(pct, std::abs(pct) >= 10 ? 0 : std::abs(pct) >= 1 ? 1 : 2) + "%";
    }

    Settings settings_;
};

}  // namespace ews::plugins
