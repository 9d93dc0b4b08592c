// my_indicator: scores a rise in "example.count" (a count per period) above its earlier mean.
// Rename the class, name and kind, then change assess(); docs/plugin-guide.md has the contract.
#include <ews/sdk/indicator.hpp>

#include <algorithm>
#include <cmath>

namespace sdk = ews::sdk;

class MyIndicator final : public sdk::Indicator {
    double scale_ = 2.0;  // set only by configure(); assess() only reads it
public:
    sdk::Descriptor describe() const override {
        return {"my_indicator", "0.1.0", {"example.count"},
                {{"scale", sdk::ParamType::number, 2.0, 0.01, 1e6,
                  "rise above the usual count at which the score reaches 1 - 1/e"}}};
    }

    // Before any assess(), and again on reload: refuse a bad value by naming its key.
    void configure(const sdk::Params& params) override {
        for (const auto& [key, value] : params)
            if (key != "scale") throw sdk::ConfigError(key, "unknown parameter '" + key + "'");
        scale_ = sdk::param<double>(params, describe().params, "scale");  // type and range checked
    }

    // const and pure: reads only the view and scale_, so many localities may run at once.
    sdk::Assessment assess(const sdk::LocalityView& view, sdk::TimePoint now) const override {
        sdk::Assessment a;  // status no_data, score 0, confidence 0: missing data is not safety
        a.evidence.text = "no example.count data";
        const auto points = view.series("example.count");  // ascending by time, cut at now
        if (points.empty()) return a;
        const auto earlier = points.first(points.size() - 1);  // none: the usual count is 0
        double usual = 0;
        for (const auto& p : earlier) usual += p.value / static_cast<double>(earlier.size());
        a.score = 1 - std::exp(-std::max(0.0, points.back().value - usual) / scale_);
        a.confidence = earlier.size() >= 4 ? 0.9 : 0.5;  // a short history is weaker evidence
        a.newest = points.back().time;
        a.status = now - *a.newest > std::chrono::days{30} ? sdk::Status::stale : sdk::Status::ok;
        if (!view.wants_evidence()) return a;  // SDK 1.1: skip what will not be published
        a.evidence.text = "example.count in the latest period against its earlier mean";
        a.evidence.values = {{"count", points.back().value, true},  // is_count: <min_cell hidden
                             {"usual", usual, true}};
        return a;
    }
};

EWS_INDICATOR(MyIndicator)
