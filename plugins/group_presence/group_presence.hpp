// group_presence.hpp: the group_presence indicator. Turns monitors' reports that an armed
// or criminal group is present (each with a confidence 0..1) into a decaying exposure, adds
// a share of the neighbours' exposure (spill-over), and flags a report that ends a long
// quiet spell. Within one bucket of days, repeats from one source count once and
// independent sources corroborate each other (their sum counts more).
// Header-only so the unit tests can use the class; group_presence.cpp exports it.
// Pure: no I/O, no globals, no logging; assess() is const and thread-safe.
#pragma once

#include <ews/sdk/indicator.hpp>

#include "../plugin_support.hpp"

#include <boost/container/small_vector.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ews::plugins {

class GroupPresence final : public sdk::Indicator {
public:
    sdk::Descriptor describe() const override {
        return {"group_presence",
                "1.1.0",
                {std::string(report_kind), std::string(recruitment_kind)},
                param_specs()};
    }

    // Throws: sdk::ConfigError naming the key of an unknown, mistyped or out-of-range
    // parameter. On a throw the previous settings stay in force.
    void configure(const sdk::Params& params) override {
        const auto specs = param_specs();
        for (const auto& [key, value] : params) {
            if (std::none_of(specs.begin(), specs.end(),
                             [&](const sdk::ParamSpec& s) { return s.name == key; }))
                throw sdk::ConfigError(key, "unknown parameter '" + key + "' for group_presence");
        }
        Settings s;
        s.lookback_days = sdk::param<std::int64_t>(params, specs, "lookback_days");
        s.half_life_days = sdk::param<double>(params, specs, "half_life_days");
        s.recruitment_factor = sdk::param<double>(params, specs, "recruitment_factor");
        s.corroboration_days = sdk::param<std::int64_t>(params, specs, "corroboration_days");
        s.corroboration_bonus = sdk::param<double>(params, specs, "corroboration_bonus");
        s.spill_half_life_days = sdk::param<double>(params, specs, "spill_half_life_days");
        s.spill_factor = sdk::param<double>(params, specs, "spill_factor");
        s.scale = sdk::param<double>(params, specs, "scale");
        s.onset_days = sdk::param<std::int64_t>(params, specs, "onset_days");
        s.quiet_days = sdk::param<std::int64_t>(params, specs, "quiet_days");
        s.max_age_days = sdk::param<std::int64_t>(params, specs, "max_age_days");
        settings_ = s;
    }

    sdk::Assessment assess(const sdk::LocalityView& view, sdk::TimePoint now) const override {
        const Settings& s = settings_;
        sdk::Assessment a;
        const sdk::TimePoint lookback_start = now - days(s.lookback_days);

        const Series own_series = series_of(view, now);
        const Exposure own = exposure(own_series, now, s.half_life_days);
        Exposure spill_sum;
        for (std::size_t i = 0; i < view.neighbour_count(); ++i) {
            const Exposure e =
                exposure(series_of(view.neighbour(i), now), now, s.spill_half_life_days);
            spill_sum.value += e.value;
            spill_sum.reports += e.reports;
            if (e.newest && (!spill_sum.newest || *e.newest > *spill_sum.newest))
                spill_sum.newest = e.newest;
        }
        const double spill = s.spill_factor * spill_sum.value;
        const double total = own.value + spill;

        // The locality's own newest point at any age, for the no-report-in-lookback case.
        std::optional<sdk::TimePoint> own_newest_ever;
        for (const auto& points : own_series) {
            if (!points.empty() && (!own_newest_ever || points.back().time > *own_newest_ever))
                own_newest_ever = points.back().time;
        }

        if (own.reports > 0) {
            a.status = sdk::Status::ok;
            a.newest = own.newest;
            double confidence = std::min(1.0, 0.5 + 0.1 * static_cast<double>(own.sources));
            if (now - *own.newest > days(s.max_age_days)) {
                a.status = sdk::Status::stale;
                confidence *= 0.5;
            }
            a.confidence = clamp01(confidence);
        } else if (spill_sum.reports > 0) {
            // Nothing reported here, but next door: the spill-over is all there is to go on.
            a.status = sdk::Status::ok;
            a.newest = spill_sum.newest;
            a.confidence = absence_confidence;
        } else if (own_newest_ever && *own_newest_ever > lookback_start - days(s.lookback_days)) {
            // Monitored here before and nothing since: absence of reports is information.
            a.status = sdk::Status::ok;
            a.newest = own_newest_ever;
            a.confidence = absence_confidence;
        } else {
            a.evidence.text = "no group presence reports";
            return a;
        }
        a.score = clamp01(1 - std::exp(-total / s.scale));
        if (!view.wants_evidence()) return a;  // the onset below only explains

        const Onset onset = find_onset(view, now, s);

        std::string text = "presence exposure " + fixed(total, 2) + " (own " + fixed(own.value, 2) +
                           " from " + std::to_string(own.sources) +
                           (own.sources == 1 ? " source" : " sources") + ", neighbours " +
                           fixed(spill, 2) + ") over " + std::to_string(s.lookback_days) +
                           " days to " + date_of(now);
        if (own.reports == 0) text += "; no reports here in that time";
        if (own.corroborated_buckets > 0)
            text += "; two or more sources in " + std::to_string(own.corroborated_buckets) +
                    (own.corroborated_buckets == 1 ? " period" : " periods") + " of " +
                    std::to_string(s.corroboration_days) + " days";
        if (onset.quiet_days)
            text += "; presence reported after " +
                    std::to_string(static_cast<std::int64_t>(*onset.quiet_days)) + " quiet days";
        if (a.status == sdk::Status::stale)
            text += "; newest report older than " + std::to_string(s.max_age_days) + " days";
        a.evidence.text = std::move(text);

        auto& v = a.evidence.values;
        v.reserve(8);
        v.push_back({"exposure", total, false});
        v.push_back({"own_exposure", own.value, false});
        v.push_back({"spill_exposure", spill, false});
        v.push_back({"reports", static_cast<double>(own.reports), true});
        v.push_back({"sources", static_cast<double>(own.sources), false});
        v.push_back({"corroborated_buckets", static_cast<double>(own.corroborated_buckets), false});
        v.push_back({"onset", onset.quiet_days ? 1.0 : 0.0, false});
        if (onset.quiet_days) v.push_back({"quiet_days", *onset.quiet_days, false});
        return a;
    }

private:
    static constexpr std::string_view report_kind = "presence.report";
    static constexpr std::string_view recruitment_kind = "presence.recruitment_activity";
    static constexpr double absence_confidence = 0.3;

    struct Settings {
        std::int64_t lookback_days = 180;
        double half_life_days = 30;
        double recruitment_factor = 1.5;
        std::int64_t corroboration_days = 7;
        double corroboration_bonus = 0.5;
        double spill_half_life_days = 45;
        double spill_factor = 0.3;
        double scale = 1.5;
        std::int64_t onset_days = 30;
        std::int64_t quiet_days = 90;
        std::int64_t max_age_days = 120;
    };

    struct Exposure {
        double value = 0;
        std::int64_t reports = 0;  // points in the lookback after merging repeats
        std::int64_t sources = 0;  // distinct sources in the lookback
        std::int64_t corroborated_buckets = 0;  // buckets with two or more positive sources
        std::optional<sdk::TimePoint> newest;
    };

    struct Onset {
        std::optional<double> quiet_days;  // set when the latest reports end a quiet spell
    };

    static std::vector<sdk::ParamSpec> param_specs() {
        const Settings d;
        using T = sdk::ParamType;
        return {
            {"lookback_days", T::integer, d.lookback_days, 1, 3660,
             "days of reports that count toward exposure"},
            {"half_life_days", T::number, d.half_life_days, 1, 3660,
             "days after which a report's weight halves"},
            {"recruitment_factor", T::number, d.recruitment_factor, 0, 10,
             "multiplier of presence.recruitment_activity reports"},
            {"corroboration_days", T::integer, d.corroboration_days, 1, 366,
             "bucket length (days, from a Monday) in which one source's repeats count once"},
            {"corroboration_bonus", T::number, d.corroboration_bonus, 0, 5,
             "extra share of a bucket's sum per independent source beyond the first"},
            {"spill_half_life_days", T::number, d.spill_half_life_days, 1, 3660,
             "half-life of neighbours' reports in the spill-over"},
            {"spill_factor", T::number, d.spill_factor, 0, 1,
             "share of the neighbours' summed exposure added to the locality's"},
            {"scale", T::number, d.scale, 0.01, 1000,
             "exposure at which the score reaches 1 - 1/e"},
            {"onset_days", T::integer, d.onset_days, 1, 366,
             "recent days in which a report can mark an onset"},
            {"quiet_days", T::integer, d.quiet_days, 1, 3660,
             "report-free days before it that make the report an onset"},
            {"max_age_days", T::integer, d.max_age_days, 1, 3660,
             "age of the newest own report beyond which the assessment is stale"},
        };
    }

    // A locality's presence.report and presence.recruitment_activity points up to now, in
    // that order.
    using Series = std::array<std::span<const sdk::Point>, 2>;

    static Series series_of(const sdk::LocalityView& view, sdk::TimePoint now) {
        return {visible(view.series(report_kind), now), visible(view.series(recruitment_kind), now)};
    }

    // Exposure of one locality. Reports in the lookback are grouped into buckets of
    // corroboration_days. In a bucket, one source's reports of one kind count once, with the
    // largest contribution c = factor * value * weight * 2^(-age / half_life); the bucket's
    // sum of them is multiplied by 1 + corroboration_bonus * (s - 1), where s is the number
    // of distinct sources in the bucket (either kind) with c > 0. The exposure is the sum
    // over buckets.
    Exposure exposure(const Series& series, sdk::TimePoint now, double half_life) const {
        const Settings& s = settings_;
        const sdk::TimePoint lookback_start = now - days(s.lookback_days);
        // Run 0 is presence.report, run 1 presence.recruitment_activity; each is ordered by
        // time, so a bucket is one contiguous stretch of each, and the two are walked together.
        struct Run {
            std::span<const sdk::Point> points;  // those in the lookback
            double factor;
            std::size_t at = 0;       // the next point
            std::int64_t bucket = 0;  // the next point's bucket, when there is one
        };
        std::array<Run, 2> runs{Run{{}, 1.0}, Run{{}, s.recruitment_factor}};
        for (std::size_t r = 0; r < runs.size(); ++r) {
            auto first = std::upper_bound(
                series[r].begin(), series[r].end(), lookback_start,
                [](sdk::TimePoint t, const sdk::Point& p) { return t < p.time; });
            runs[r].points = std::span<const sdk::Point>(first, series[r].end());
            if (!runs[r].points.empty())
                runs[r].bucket = bucket_of(runs[r].points.front().time, s.corroboration_days);
        }

        struct Merged {
            std::string_view source;
            std::size_t run;
            double contribution;
        };
        Exposure e;
        boost::container::small_vector<std::string_view, 8> sources;
        boost::container::small_vector<Merged, 8> bucket;
        for (;;) {
            std::optional<std::int64_t> b;
            for (const Run& run : runs)
                if (run.at < run.points.size() && (!b || run.bucket < *b)) b = run.bucket;
            if (!b) break;
            bucket.clear();
            for (std::size_t r = 0; r < runs.size(); ++r) {
                Run& run = runs[r];
                for (; run.at < run.points.size() && run.bucket == *b;) {
                    const sdk::Point& p = run.points[run.at];
                    if (++run.at < run.points.size())
                        run.bucket = bucket_of(run.points[run.at].time, s.corroboration_days);
                    const double age = days_between(now, p.time);
                    const double c = run.factor * std::clamp(p.value, 0.0, 1.0) *
                                     std::max(p.weight, 0.0) * std::exp2(-age / half_life);
                    auto m = std::find_if(bucket.begin(), bucket.end(), [&](const Merged& x) {
                        return x.run == r && same_source(x.source, p.source);
                    });
                    if (m == bucket.end())
                        bucket.push_back({p.source, r, c});
                    else
                        m->contribution = std::max(m->contribution, c);
                    if (std::none_of(sources.begin(), sources.end(), [&](std::string_view x) {
                            return same_source(x, p.source);
                        }))
                        sources.push_back(p.source);
                    if (!e.newest || p.time > *e.newest) e.newest = p.time;
                }
            }
            double sum = 0;
            std::int64_t independent = 0;  // distinct sources with a positive contribution
            for (auto m = bucket.begin(); m != bucket.end(); ++m) {
                sum += m->contribution;
                if (m->contribution > 0 &&
                    std::none_of(bucket.begin(), m, [&](const Merged& x) {
                        return x.contribution > 0 && same_source(x.source, m->source);
                    }))
                    ++independent;
            }
            if (independent > 1) {
                sum *= 1 + s.corroboration_bonus * static_cast<double>(independent - 1);
                ++e.corroborated_buckets;
            }
            e.value += sum;
            e.reports += static_cast<std::int64_t>(bucket.size());
        }
        e.sources = static_cast<std::int64_t>(sources.size());
        return e;
    }

    // Returns: a == b. The daemon interns source names, so equal names usually share their
    // storage and the characters need no compare.
    static bool same_source(std::string_view a, std::string_view b) {
        return a.size() == b.size() && (a.data() == b.data() || a == b);
    }

    // Onset: the earliest positive own report within onset_days follows at least quiet_days
    // without a positive report. With no earlier report, the quiet spell is counted from the
    // locality's oldest presence point (zero-valued ones included); with no earlier point at
    // all there is no history to call the spell quiet, so no onset is claimed.
    static Onset find_onset(const sdk::LocalityView& view, sdk::TimePoint now, const Settings& s) {
        const sdk::TimePoint recent_start = now - days(s.onset_days);
        std::optional<sdk::TimePoint> first_recent, last_before, oldest;
        for (auto kind : {report_kind, recruitment_kind}) {
            for (const auto& p : visible(view.series(kind), now)) {
                if (!oldest || p.time < *oldest) oldest = p.time;
                if (!(p.value > 0)) continue;
                if (p.time > recent_start) {
                    if (!first_recent || p.time < *first_recent) first_recent = p.time;
                } else if (!last_before || p.time > *last_before) {
                    last_before = p.time;
                }
            }
        }
        Onset o;
        if (!first_recent) return o;
        const sdk::TimePoint quiet_from = last_before ? *last_before : *oldest;
        const double quiet = std::floor(days_between(*first_recent, quiet_from));
        if (quiet >= static_cast<double>(s.quiet_days)) o.quiet_days = quiet;
        return o;
    }

    // Buckets of `length` days counted from Monday 1970-01-05, so a 7-day bucket is a
    // calendar week (Monday to Sunday, UTC) and a report's bucket never changes with `now`.
    static std::int64_t bucket_of(sdk::TimePoint t, std::int64_t length) {
        const auto day = std::chrono::floor<std::chrono::days>(t).time_since_epoch().count();
        const std::int64_t since_monday = static_cast<std::int64_t>(day) - 4;
        const std::int64_t q = since_monday / length;
        return since_monday % length < 0 ? q - 1 : q;
    }

    Settings settings_;
};

}  // namespace ews::plugins
