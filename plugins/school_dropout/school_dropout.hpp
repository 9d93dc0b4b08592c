// school_dropout.hpp: the school_dropout indicator. Compares a locality's latest dropout rate
// with its own usual rate, both shrunk toward a prior (the neighbours' pooled rate, or a
// configured one) so that a small school's single dropout does not read as a crisis.
// Header-only so the unit tests can use the class; school_dropout.cpp exports it.
// Pure: no I/O, no globals, no logging; assess() is const and thread-safe.
#pragma once

#include <ews/sdk/indicator.hpp>

#include "../plugin_support.hpp"

#include <boost/math/distributions/binomial.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace ews::plugins {

class SchoolDropout final : public sdk::Indicator {
public:
    sdk::Descriptor describe() const override {
        return {"school_dropout", "1.0.0", {"school.enrolled", "school.dropouts"}, param_specs()};
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
        s.prior_rate = sdk::param<double>(params, specs, "prior_rate");
        s.prior_strength = sdk::param<double>(params, specs, "prior_strength");
        s.full_ratio = sdk::param<double>(params, specs, "full_ratio");
        s.min_rate = sdk::param<double>(params, specs, "min_rate");
        s.full_decades = sdk::param<double>(params, specs, "full_decades");
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

        const sdk::TimePoint latest = dropouts.back().time;
        const double d = sum_at(dropouts, latest);
        const double n = enrolment_in_force(enrolled, latest);
        if (!(n > 0)) {
            a.evidence.text = "enrolment for the latest period is zero, so no dropout rate";
            return a;
        }

        const sdk::TimePoint window_start = latest - days(s.baseline_days);
        const Pool own = pool(dropouts, enrolled, window_start, latest);

        // Prior: the neighbours' pooled rate over the same window, itself shrunk toward
        // prior_rate so that one small neighbour cannot set it alone.
        Pool near;
        for (std::size_t i = 0; i < view.neighbour_count(); ++i) {
            const auto& nb = view.neighbour(i);
            const Pool p = pool(visible(nb.series("school.dropouts"), now),
                                visible(nb.series("school.enrolled"), now), window_start, latest);
            near.dropouts += p.dropouts;
            near.enrolled += p.enrolled;
            near.periods += p.periods;
        }
        const double k = s.prior_strength;
        const bool prior_from_neighbours = near.enrolled > 0;
        const double p0 = prior_from_neighbours ? shrink(near.dropouts, near.enrolled, s.prior_rate, k)
                                                : s.prior_rate;

        const double rate = d / n;
        const double rate_s = shrink(d, n, p0, k);
        const double base_s = shrink(own.dropouts, own.enrolled, p0, k);
        const double ratio = rate_s / std::max(base_s, s.min_rate);
        // The ratio says how large the rise is; the binomial tail says whether chance could
        // give it. A small school's 3 dropouts against a usual 0.6 is a large ratio but no
        // surprise, so the score is the smaller of the two.
        const double surprise = binomial_surprise(d, n, base_s, s.full_decades);
        const double score = clamp01(std::min((ratio - 1) / (s.full_ratio - 1), surprise));

        double confidence = std::min(1.0, n / s.min_enrolment) *
                            std::min(1.0, static_cast<double>(own.periods) /
                                              static_cast<double>(s.full_baseline_periods));
        a.status = sdk::Status::ok;
        if (now - latest > days(s.max_age_days)) {
            a.status = sdk::Status::stale;
            confidence *= 0.5;
        }
        a.score = score;
        a.confidence = clamp01(confidence);
        a.newest = latest;

        std::string text = "dropout " + percent(rate) + " in the period to " + date_of(latest);
        if (own.periods > 0)
            text += " against a usual " + percent(own.dropouts / own.enrolled) + " (" +
                    std::to_string(own.periods) + " earlier periods)";
        else
            text += " with no earlier periods to compare with";
        text += "; " + fixed(ratio, 1) + "x after adjusting for small numbers toward " +
                (prior_from_neighbours ? "the neighbours' " : "a prior ") + percent(p0);
        if (a.status == sdk::Status::stale) text += "; data is stale";
        a.evidence.text = std::move(text);
        auto& v = a.evidence.values;
        v.push_back({"dropouts", d, true});
        v.push_back({"enrolled", n, true});
        v.push_back({"rate", rate, false});
        v.push_back({"adjusted_rate", rate_s, false});
        if (own.periods > 0) v.push_back({"usual_rate", own.dropouts / own.enrolled, false});
        v.push_back({"adjusted_usual_rate", base_s, false});
        v.push_back({"prior_rate", p0, false});
        v.push_back({"ratio", ratio, false});
        v.push_back({"surprise", surprise, false});
        v.push_back({"baseline_periods", static_cast<double>(own.periods), false});
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
        double prior_rate = 0.01;
        double prior_strength = 200;
        double full_ratio = 3;
        double min_rate = 0.001;
        double full_decades = 3;
        double min_enrolment = 100;
        std::int64_t full_baseline_periods = 6;
        std::int64_t max_age_days = 62;
    };

    // Summed dropouts and the enrolment in force over a run of periods.
    struct Pool {
        double dropouts = 0;
        double enrolled = 0;
        std::int64_t periods = 0;
    };

    static std::vector<sdk::ParamSpec> param_specs() {
        const Settings d;
        using T = sdk::ParamType;
        return {
            {"baseline_days", T::integer, d.baseline_days, 28, 3660,
             "days before the latest period whose periods form the locality's usual rate"},
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
            {"min_enrolment", T::number, d.min_enrolment, 1, 1e7,
             "enrolment at which the latest rate earns full confidence"},
            {"full_baseline_periods", T::integer, d.full_baseline_periods, 1, 120,
             "earlier periods needed for full confidence in the usual rate"},
            {"max_age_days", T::integer, d.max_age_days, 1, 3660,
             "age of the latest dropout count beyond which the assessment is stale"},
        };
    }

    // (x + k*prior) / (n + k): the empirical-Bayes posterior mean of a rate.
    static double shrink(double x, double n, double prior, double k) {
        return n + k > 0 ? (x + k * prior) / (n + k) : prior;
    }

    // Sum of the values at exactly time t: several sources reporting one period are parts of
    // the locality (e.g. one row per school).
    static double sum_at(std::span<const sdk::Point> s, sdk::TimePoint t) {
        auto lo = std::lower_bound(s.begin(), s.end(), t,
                                   [](const sdk::Point& p, sdk::TimePoint x) { return p.time < x; });
        double sum = 0;
        for (auto it = lo; it != s.end() && it->time == t; ++it) sum += it->value;
        return sum;
    }

    // Returns: the enrolment at the newest enrolment time at or before t; when there is none,
    // at the earliest enrolment time (the nearest one after t). `enrolled` is not empty.
    static double enrolment_in_force(std::span<const sdk::Point> enrolled, sdk::TimePoint t) {
        auto after = std::upper_bound(enrolled.begin(), enrolled.end(), t,
                                      [](sdk::TimePoint x, const sdk::Point& p) { return x < p.time; });
        const sdk::TimePoint at = after == enrolled.begin() ? enrolled.front().time
                                                            : std::prev(after)->time;
        return sum_at(enrolled, at);
    }

    // Pools the dropout periods with from <= time < to, each with its enrolment in force;
    // periods whose enrolment is zero carry no rate and are skipped.
    static Pool pool(std::span<const sdk::Point> dropouts, std::span<const sdk::Point> enrolled,
                     sdk::TimePoint from, sdk::TimePoint to) {
        Pool p;
        if (dropouts.empty() || enrolled.empty()) return p;
        auto it = std::lower_bound(dropouts.begin(), dropouts.end(), from,
                                   [](const sdk::Point& x, sdk::TimePoint t) { return x.time < t; });
        while (it != dropouts.end() && it->time < to) {
            const sdk::TimePoint t = it->time;
            double d = 0;
            for (; it != dropouts.end() && it->time == t; ++it) d += it->value;
            const double n = enrolment_in_force(enrolled, t);
            if (!(n > 0)) continue;
            p.dropouts += d;
            p.enrolled += n;
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
