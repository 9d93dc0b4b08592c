// backtest.hpp: `ewsctl backtest`, a replay of a data directory's history through the
// daemon's own engine, plugins, scorer and alerting, measuring how early and how truly the
// composite and each indicator warn of the verified outcomes in a ground-truth file.
//
// Two parts. The metric functions below are pure functions over plain values, inline so
// that the unit tests reach them without the tool; docs/backtest.md states each definition
// for users. run() reads the files, replays and reports. A backtest never opens the store
// and writes nothing to the state directory: its only output files are --json and --detail.
#pragma once

#include "config.hpp"
#include "model.hpp"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <numeric>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ews::backtest {

// ---- ranking ----------------------------------------------------------------------------

namespace detail {
// Returns: indices of `scores` in descending score order (ties in index order).
inline std::vector<std::size_t> descending(std::span<const double> scores) {
    std::vector<std::size_t> order(scores.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return scores[a] > scores[b]; });
    return order;
}

inline void check_sizes(std::size_t scores, std::size_t labels) {
    if (scores != labels)
        throw std::invalid_argument("scores and labels differ in length (" +
                                    std::to_string(scores) + " and " + std::to_string(labels) +
                                    ")");
}
}  // namespace detail

// Area under the ROC curve: the probability that a positive sample (label != 0) scores
// higher than a negative one, a tie counting 1/2 (Mann-Whitney U / (positives * negatives),
// with mid-ranks for ties; O(n log n)). Scores must be finite.
// Returns: nullopt when there is no positive or no negative sample.
// Throws: std::invalid_argument when the spans differ in length.
inline std::optional<double> auroc(std::span<const double> scores,
                                   std::span<const std::uint8_t> labels) {
    detail::check_sizes(scores.size(), labels.size());
    const auto order = detail::descending(scores);
    const std::size_t n = order.size();
    // Walking from the highest score down, a positive outranks every negative not yet seen;
    // a tie group's positives and negatives meet half-way.
    double positives = 0, negatives_seen = 0, wins = 0;
    for (std::size_t i = 0; i < n;) {
        std::size_t j = i;
        double group_pos = 0, group_neg = 0;
        while (j < n && scores[order[j]] == scores[order[i]]) {
            (labels[order[j]] ? group_pos : group_neg) += 1;
            ++j;
        }
        // Positives in this group beat the negatives ranked below; they are counted there.
        wins += group_neg * positives + 0.5 * group_pos * group_neg;
        positives += group_pos;
        negatives_seen += group_neg;
        i = j;
    }
    if (positives == 0 || negatives_seen == 0) return std::nullopt;
    return wins / (positives * negatives_seen);
}

// Average precision: samples sorted by score, descending, in tie groups; the sum over the
// groups that hold a positive of (the group's positives / all positives), the step in
// recall, times the precision at the end of the group (positives so far / samples so far).
// Returns: nullopt when there is no positive sample.
// Throws: std::invalid_argument when the spans differ in length.
inline std::optional<double> average_precision(std::span<const double> scores,
                                               std::span<const std::uint8_t> labels) {
    detail::check_sizes(scores.size(), labels.size());
    double total = 0;
    for (auto l : labels) total += l ? 1 : 0;
    if (total == 0) return std::nullopt;
    const auto order = detail::descending(scores);
    const std::size_t n = order.size();
    double ap = 0, tp = 0;
    for (std::size_t i = 0; i < n;) {
        std::size_t j = i;
        double group_pos = 0;
        while (j < n && scores[order[j]] == scores[order[i]]) {
            group_pos += labels[order[j]] ? 1 : 0;
            ++j;
        }
        tp += group_pos;
        if (group_pos > 0) ap += (group_pos / total) * (tp / double(j));
        i = j;
    }
    return ap;
}

struct PrecisionRecall {
    std::optional<double> precision;  // TP / (TP + FP); nullopt when nothing was alerted
    std::optional<double> recall;     // TP / (TP + FN); nullopt when there is no positive
};

// Alert positive: levels[i] >= at_least (levels as Level values 0..3).
// Throws: std::invalid_argument when the spans differ in length.
inline PrecisionRecall precision_recall(std::span<const std::uint8_t> levels,
                                        std::span<const std::uint8_t> labels, Level at_least) {
    detail::check_sizes(levels.size(), labels.size());
    std::size_t tp = 0, fp = 0, fn = 0;
    const auto threshold = static_cast<std::uint8_t>(at_least);
    for (std::size_t i = 0; i < levels.size(); ++i) {
        const bool alerted = levels[i] >= threshold;
        if (alerted && labels[i]) ++tp;
        else if (alerted) ++fp;
        else if (labels[i]) ++fn;
    }
    PrecisionRecall out;
    if (tp + fp > 0) out.precision = double(tp) / double(tp + fp);
    if (tp + fn > 0) out.recall = double(tp) / double(tp + fn);
    return out;
}

// ---- labels and onsets ------------------------------------------------------------------

// Returns: true when `sorted` (ascending outcome times of one locality) holds a time in
// (after, until]. The label of a sample at t is any_in(outcomes, t, t + horizon * step).
inline bool any_in(const std::vector<TimePoint>& sorted, TimePoint after, TimePoint until) {
    auto it = std::upper_bound(sorted.begin(), sorted.end(), after);
    return it != sorted.end() && *it <= until;
}

// Returns: the onsets among `sorted` (ascending outcome times of one locality, repeats
// allowed): each time T with no outcome in [T - quiet, T), once.
inline std::vector<TimePoint> onsets(const std::vector<TimePoint>& sorted,
                                     std::chrono::seconds quiet) {
    std::vector<TimePoint> out;
    for (std::size_t i = 0; i < sorted.size(); ++i) {
        if (i > 0 && sorted[i - 1] == sorted[i]) continue;
        if (i > 0 && sorted[i - 1] >= sorted[i] - quiet) continue;
        out.push_back(sorted[i]);
    }
    return out;
}

// ---- alert episodes and lead time -------------------------------------------------------

// One notified alert of one locality, from the evaluation that published `raised` to the
// last evaluation at which it was still notified (level >= watch).
struct Episode {
    TimePoint raised_at;
    TimePoint last_open;
    bool operator==(const Episode&) const = default;
};

// Follows the notified alert of one locality (or of one indicator there) through the
// evaluations, fed in time order.
struct EpisodeTracker {
    std::vector<Episode> episodes;  // ascending by raised_at
    bool open = false;

    // `raised`: advance() published a raised event at `t`; `notified`: the notified level
    // after it. A resolution and a new raise in one evaluation start a new episode.
    void observe(TimePoint t, bool raised, Level notified) {
        if (notified == Level::none) {
            open = false;
            return;
        }
        if (raised) {
            episodes.push_back({t, t});
            open = true;
        } else if (open) {
            episodes.back().last_open = t;
        }
    }
};

// Returns: the lead of the warning of `onset`, in periods of `step`: (onset - raised_at) /
// step for the earliest-raised episode whose open span [raised_at, last_open] meets the
// window [onset - horizon * step, onset] (with evaluations every step, that is: it was open
// at some evaluation in the window); nullopt when none did (the onset was missed).
inline std::optional<double> lead_periods(TimePoint onset, const std::vector<Episode>& episodes,
                                          std::chrono::seconds step, int horizon) {
    const TimePoint window_start = onset - horizon * step;
    for (const auto& e : episodes) {
        if (e.raised_at > onset) break;
        if (e.last_open >= window_start)
            return std::chrono::duration<double>(onset - e.raised_at).count() /
                   std::chrono::duration<double>(step).count();
    }
    return std::nullopt;
}

// Returns: the median of `values` (the mean of the middle two for an even count); nullopt
// when empty.
inline std::optional<double> median(std::vector<double> values) {
    if (values.empty()) return std::nullopt;
    const std::size_t mid = values.size() / 2;
    std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(mid),
                     values.end());
    const double upper = values[mid];
    if (values.size() % 2 == 1) return upper;
    const double lower =
        *std::max_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(mid));
    return (lower + upper) / 2;
}

struct LeadSummary {
    std::optional<double> median_periods;  // over detected onsets
    std::size_t detected = 0;
    std::size_t missed = 0;
};

// ---- churn --------------------------------------------------------------------------------

// Returns: true for the events that change a notified level: raised, escalated,
// deescalated, resolved (not reminders, flapping or data events).
inline bool changes_level(std::string_view event_type) {
    return event_type == "raised" || event_type == "escalated" ||
           event_type == "deescalated" || event_type == "resolved";
}

inline constexpr double days_per_year = 365.2425;

// Returns: level changes per locality per year: changes / (localities * years), years =
// (to - from) in days / 365.2425; nullopt when there is no locality or to <= from.
inline std::optional<double> churn_per_locality_year(std::size_t changes, std::size_t localities,
                                                     TimePoint from, TimePoint to) {
    if (localities == 0 || to <= from) return std::nullopt;
    const double years =
        std::chrono::duration<double, std::ratio<86400>>(to - from).count() / days_per_year;
    return double(changes) / (double(localities) * years);
}

// Returns: from, from + step, ... up to and including `to` (empty when to < from).
inline std::vector<TimePoint> evaluation_times(TimePoint from, TimePoint to,
                                               std::chrono::seconds step) {
    std::vector<TimePoint> out;
    if (step.count() <= 0) throw std::invalid_argument("step must be positive");
    for (TimePoint t = from; t <= to; t += step) out.push_back(t);
    return out;
}

// ---- the command ----------------------------------------------------------------------------

struct Options {
    std::filesystem::path data;   // localities.csv and observation files (*.csv, *.jsonl, any depth)
    std::filesystem::path truth;  // CSV: locality,time,outcomes
    std::string from;             // RFC 3339; empty: earliest observation + 365 days
    std::string to;               // RFC 3339; empty: newest observation
    int step_days = 7;            // one period
    int horizon = 3;              // periods after a sample in which an outcome labels it
    std::filesystem::path json;   // also write the JSON report here; empty: no file
    // Also write every sample here as CSV (locality,time,label, then score and level of the
    // composite and of each indicator, then the naive score); empty: no file.
    std::filesystem::path detail;
    std::string format = "table"; // what goes to `out`: table | json
    bool progress = false;        // show progress and time left on `err`
};

// Quiet periods before an outcome that make it an onset.
inline constexpr int onset_quiet_periods = 13;

// `ewsctl backtest`: the report on `out` (and in options.json), problems on `err`. Plugins
// come from config.plugin_dir with config's [plugins.*] tables; weights, levels and
// alerting parameters from config, as in the daemon.
// Returns: 0 success; 2 bad input or usage (a missing file, a rejected row, a bad option),
// naming the file, line and column; 1 any other failure (no plugin loaded, --json not
// writable).
int run(const Options& options, const Config& config, std::ostream& out, std::ostream& err);

}  // namespace ews::backtest
