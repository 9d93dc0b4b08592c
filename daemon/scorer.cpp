#include "scorer.hpp"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <utility>

namespace ews {

Level floor_level(sdk::Floor floor) {
    switch (floor) {
        case sdk::Floor::none: return Level::none;
        case sdk::Floor::watch: return Level::watch;
        case sdk::Floor::warning: return Level::warning;
        case sdk::Floor::critical: return Level::critical;
    }
    return Level::none;
}

namespace {

// A value that cannot be trusted counts as nothing rather than poisoning the sums.
double unit_or_zero(double x) { return std::isfinite(x) ? std::clamp(x, 0.0, 1.0) : 0.0; }

double finite_or_zero(double x) { return std::isfinite(x) ? x : 0.0; }

bool scored(sdk::Status status) {
    return status == sdk::Status::ok || status == sdk::Status::stale;
}

}  // namespace

namespace {

template <class Assessments>
Composite compose_from(const std::vector<std::string>& indicators, Assessments& assessments,
                       const std::map<std::string, double>& weights) {
    Composite out;
    out.contributions.reserve(indicators.size());
    double weighted_score = 0;  // sum(w * c * s) over scored indicators
    double weighted_conf = 0;   // sum(w * c) over scored indicators
    double weight_total = 0;    // sum(w) over all indicators
    double largest_share = 0;
    for (std::size_t i = 0; i < indicators.size(); ++i) {
        Contribution c;
        c.indicator = indicators[i];
        auto w = weights.find(indicators[i]);
        c.weight = w == weights.end() ? 1.0 : w->second;
        const double weight = std::isfinite(c.weight) && c.weight > 0 ? c.weight : 0.0;
        if (i < assessments.size()) {
            if constexpr (std::is_const_v<Assessments>)
                c.assessment = assessments[i];
            else
                c.assessment = std::move(assessments[i]);
            out.floor = std::max(out.floor, floor_level(c.assessment.floor));
        }
        // A missing assessment stays the default one: status no_data, confidence 0.
        const sdk::Assessment& a = c.assessment;
        weight_total += weight;
        if (scored(a.status)) {
            const double conf = unit_or_zero(a.confidence);
            weighted_conf += weight * conf;
            const double share = weight * conf * unit_or_zero(a.score);
            weighted_score += share;
            if (share > largest_share) {
                largest_share = share;
                out.dominant = static_cast<int>(i);
            }
        }
        out.contributions.push_back(std::move(c));
    }
    // Sums can still overflow with absurd weights; the result then falls back to 0.
    out.evidence = weighted_conf > 0;
    if (weighted_conf > 0)
        out.score =
            std::clamp(finite_or_zero(100.0 * (weighted_score / weighted_conf)), 0.0, 100.0);
    if (weight_total > 0)
        out.confidence = std::clamp(finite_or_zero(weighted_conf / weight_total), 0.0, 1.0);
    return out;
}

}  // namespace

Composite compose(const std::vector<std::string>& indicators,
                  const std::vector<sdk::Assessment>& assessments,
                  const std::map<std::string, double>& weights) {
    return compose_from(indicators, assessments, weights);
}

Composite compose(const std::vector<std::string>& indicators,
                  std::vector<sdk::Assessment>&& assessments,
                  const std::map<std::string, double>& weights) {
    return compose_from(indicators, assessments, weights);
}

namespace {

// Equal, counting two NaNs as equal: a plugin returning NaN twice answered the same.
bool same_number(double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); }

}  // namespace

bool same_but_evidence(const sdk::Assessment& a, const sdk::Assessment& b) {
    return a.status == b.status && same_number(a.score, b.score) &&
           same_number(a.confidence, b.confidence) && a.newest == b.newest && a.floor == b.floor;
}

std::vector<std::size_t> add_evidence(Composite& composite,
                                      std::vector<sdk::Assessment>&& explained) {
    std::vector<std::size_t> differed;
    const std::size_t n = std::min(composite.contributions.size(), explained.size());
    for (std::size_t i = 0; i < n; ++i) {
        sdk::Assessment& to = composite.contributions[i].assessment;
        if (!same_but_evidence(to, explained[i])) {
            differed.push_back(i);
            continue;
        }
        to.evidence = std::move(explained[i].evidence);
    }
    return differed;
}

}  // namespace ews
