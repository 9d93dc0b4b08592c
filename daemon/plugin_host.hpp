// plugin_host.hpp: loads indicator plugins with Boost.DLL and calls them safely.
// Checks the ABI number before calling anything in a library; keeps each library loaded
// longer than every object made from it; catches every exception at each call and holds
// each call to a time budget. (A plugin that crashes the process is beyond what a call guard
// can catch; quarantine.hpp finds it at the next start.)
#pragma once

#include <ews/sdk/indicator.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ews {

// What tells one version of a file from another without reading it: a file replaced or
// rewritten gets another inode, size or modification time.
struct FileIdentity {
    std::uint64_t device = 0;
    std::uint64_t inode = 0;
    std::uint64_t size = 0;
    std::int64_t mtime_ns = 0;

    // Returns: the identity of `file` now (following symlinks), or nullopt when it cannot be
    // read (missing, no permission).
    static std::optional<FileIdentity> of(const std::filesystem::path& file);
    bool operator==(const FileIdentity&) const = default;
};

struct LoadedPlugin {
    std::filesystem::path file;
    sdk::Descriptor descriptor;
    // Owns the library too: the object is destroyed before its library is unloaded.
    std::shared_ptr<sdk::Indicator> indicator;
    // The file as it was when loaded (a quarantine names this version, not a later one).
    FileIdentity identity{};
    const std::string& name() const { return descriptor.name; }
};

struct RefusedPlugin {
    std::filesystem::path file;
    std::string reason;  // e.g. "not an ewsd plugin (no ews_sdk_abi symbol)"
    std::string name;    // the plugin's own name when it got as far as describe(), else empty
};

struct PluginSet {
    std::vector<LoadedPlugin> loaded;   // sorted by name
    std::vector<RefusedPlugin> refused;
    // Files not even opened because a quarantine holds them (reason: the quarantine's).
    std::vector<RefusedPlugin> quarantined;
    const LoadedPlugin* find(const std::string& name) const;
};

// Returns: why `file` must not be loaded (for example, it is quarantined), or nullopt to
// load it. Called before the file is opened.
using LoadVeto = std::function<std::optional<std::string>(const std::filesystem::path& file)>;

// Loads every regular file ending in ".so" in `dir` (sorted by file name). A file that
// `veto` holds back goes to `quarantined` unopened. A file that is not a plugin, has another
// ABI, throws while being created or described, duplicates an earlier plugin's name, or
// whose configure() rejects its parameters is refused with a reason; the others still load.
// `params` maps plugin name to its [plugins.<name>] table.
// Throws: std::runtime_error only when `dir` cannot be read.
PluginSet load_plugins(const std::filesystem::path& dir,
                       const std::map<std::string, sdk::Params>& params,
                       const LoadVeto& veto = {});

// Why a guarded call's result was replaced by an error.
enum class CallFault { none, exception, invalid_value, over_budget };

// No time budget: guarded_assess then never discards a result for its duration.
inline constexpr std::chrono::milliseconds unlimited_budget = std::chrono::milliseconds::max();

// Calls plugin.assess() and never throws. An exception, a score or confidence that is not
// finite or outside [0,1], or a call that took longer than `budget` (measured on the steady
// clock around the call; its result is then discarded) gives status error, score 0,
// confidence 0 and the reason as evidence text, and sets *fault (when given) to why.
// A call that runs forever is not interrupted: the systemd watchdog ends such a process,
// and the crash marker (quarantine.hpp) names the plugin at the next start.
sdk::Assessment guarded_assess(const LoadedPlugin& plugin, const sdk::LocalityView& view,
                               sdk::TimePoint now,
                               std::chrono::milliseconds budget = unlimited_budget,
                               CallFault* fault = nullptr) noexcept;

}  // namespace ews
