#include "plugin_host.hpp"

#include <cmath>
#include <exception>

namespace ews {

const LoadedPlugin* PluginSet::find(const std::string& name) const {
    for (const auto& p : loaded)
        if (p.name() == name) return &p;
    return nullptr;
}

namespace {
sdk::Assessment failed(std::string why) {
    sdk::Assessment a;
    a.status = sdk::Status::error;
    a.score = 0;
    a.confidence = 0;
    a.evidence.text = std::move(why);
    return a;
}
bool unit_interval(double x) { return std::isfinite(x) && x >= 0.0 && x <= 1.0; }
}  // namespace

sdk::Assessment guarded_assess(const LoadedPlugin& plugin, const sdk::LocalityView& view,
                               sdk::TimePoint now) noexcept {
    try {
        sdk::Assessment a = plugin.indicator->assess(view, now);
        if (!unit_interval(a.score)) return failed("plugin returned a score outside [0,1]");
        if (!unit_interval(a.confidence))
            return failed("plugin returned a confidence outside [0,1]");
        return a;
    } catch (const std::exception& e) {
        try {
            return failed(std::string("plugin threw: ") + e.what());
        } catch (...) {
        }
    } catch (...) {
    }
    try {
        return failed("plugin threw a non-standard exception");
    } catch (...) {
        return sdk::Assessment{.score = 0, .confidence = 0, .status = sdk::Status::error};
    }
}

// load_plugins: see below.

}  // namespace ews
