// plugin_host.hpp: loads indicator plugins with Boost.DLL and calls them safely.
// Checks the ABI number before calling anything in a library; keeps each library loaded
// longer than every object made from it; catches every exception at each call.
#pragma once

#include <ews/sdk/indicator.hpp>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace ews {

struct LoadedPlugin {
    std::filesystem::path file;
    sdk::Descriptor descriptor;
    // Owns the library too: the object is destroyed before its library is unloaded.
    std::shared_ptr<sdk::Indicator> indicator;
    const std::string& name() const { return descriptor.name; }
};

struct RefusedPlugin {
    std::filesystem::path file;
    std::string reason;  // e.g. "not an ewsd plugin (no ews_sdk_abi symbol)"
};

struct PluginSet {
    std::vector<LoadedPlugin> loaded;   // sorted by name
    std::vector<RefusedPlugin> refused;
    const LoadedPlugin* find(const std::string& name) const;
};

// Loads every regular file ending in ".so" in `dir` (sorted by file name). A file that is
// not a plugin, has another ABI, throws while being created or described, duplicates an
// earlier plugin's name, or whose configure() rejects its parameters is refused with a
// reason; the others still load. `params` maps plugin name to its [plugins.<name>] table.
// Throws: std::runtime_error only when `dir` cannot be read.
PluginSet load_plugins(const std::filesystem::path& dir,
                       const std::map<std::string, sdk::Params>& params);

// Calls plugin.assess() and never throws. An exception, or a score or confidence that is
// not finite or outside [0,1], gives status error, score 0, confidence 0 and the reason as
// evidence text.
sdk::Assessment guarded_assess(const LoadedPlugin& plugin, const sdk::LocalityView& view,
                               sdk::TimePoint now) noexcept;

}  // namespace ews
