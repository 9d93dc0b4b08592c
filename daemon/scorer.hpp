// scorer.hpp: the composite risk of a locality from its indicators' assessments.
// Pure functions over values.
#pragma once

#include "model.hpp"

#include <map>
#include <string>
#include <vector>

namespace ews {

struct Contribution {
    std::string indicator;
    double weight = 0;  // configured weight (default 1)
    sdk::Assessment assessment;
};

struct Composite {
    double score = 0;       // 0..100
    double confidence = 0;  // 0..1
    Level floor = Level::none;  // the highest floor any indicator asked for
    bool evidence = false;      // some indicator was scored with confidence > 0
    // Index into `contributions` of the indicator with the largest share w*c*s of the score;
    // -1 when no indicator contributes anything.
    int dominant = -1;
    std::vector<Contribution> contributions;  // in the order of `indicators`
};

// The level a plugin's floor asks for.
Level floor_level(sdk::Floor floor);

// score = 100 * sum(w_i * c_i * s_i) / sum(w_i * c_i) over indicators with status ok or
// stale and c_i > 0 (0 when there are none); confidence = sum(w_i * c_i) / sum(w_i) over all
// indicators (missing, no_data and error count as c_i = 0). Weights default to 1.
Composite compose(const std::vector<std::string>& indicators,
                  const std::vector<sdk::Assessment>& assessments,
                  const std::map<std::string, double>& weights);
// The same, moving the assessments (evidence text and values) into the contributions
// instead of copying them: the evaluation's hot path.
Composite compose(const std::vector<std::string>& indicators,
                  std::vector<sdk::Assessment>&& assessments,
                  const std::map<std::string, double>& weights);

// Returns: true when `a` and `b` agree on everything but their evidence: status, score,
// confidence, newest and floor (two NaNs count as the same number). A plugin must answer
// the same whether or not it is asked for evidence (LocalityView::wants_evidence).
bool same_but_evidence(const sdk::Assessment& a, const sdk::Assessment& b);

// Moves the evidence of `explained` (the same plugins' assessments of the same locality,
// asked for evidence) into the contributions of `composite`, composed from assessments made
// without it. An assessment that is not same_but_evidence() as its contribution (a plugin
// whose result depends on being asked, or one that failed the second time) leaves that
// contribution as it was.
// Returns: the indices of the contributions that differed.
std::vector<std::size_t> add_evidence(Composite& composite,
                                      std::vector<sdk::Assessment>&& explained);

}  // namespace ews
