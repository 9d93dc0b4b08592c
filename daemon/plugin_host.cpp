#include "plugin_host.hpp"

#include "plugin_checks.hpp"

#include <boost/dll/import.hpp>
#include <boost/dll/shared_library.hpp>

#include <dlfcn.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <variant>

namespace ews {

const LoadedPlugin* PluginSet::find(const std::string& name) const {
    for (const auto& p : loaded)
        if (p.name() == name) return &p;
    return nullptr;
}

std::optional<FileIdentity> FileIdentity::of(const std::filesystem::path& file) {
    struct ::stat st {};
    if (::stat(file.c_str(), &st) != 0) return std::nullopt;
    FileIdentity id;
    id.device = static_cast<std::uint64_t>(st.st_dev);
    id.inode = static_cast<std::uint64_t>(st.st_ino);
    id.size = static_cast<std::uint64_t>(st.st_size);
    id.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 +
                  static_cast<std::int64_t>(st.st_mtim.tv_nsec);
    return id;
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

// Returns: the result of guarded_assess, with `fault` set; may throw std::bad_alloc only
// while building an error text.
sdk::Assessment guarded(const LoadedPlugin& plugin, const sdk::LocalityView& view,
                        sdk::TimePoint now, std::chrono::milliseconds budget, CallFault& fault) {
    using Clock = std::chrono::steady_clock;
    const auto started = Clock::now();
    sdk::Assessment a;
    try {
        a = plugin.indicator->assess(view, now);
    } catch (const std::exception& e) {
        fault = CallFault::exception;
        return failed(std::string("plugin threw: ") + e.what());
    } catch (...) {
        fault = CallFault::exception;
        return failed("plugin threw a non-standard exception");
    }
    // Compared as fractional milliseconds: converting unlimited_budget to the clock's
    // nanoseconds would overflow.
    const auto took = Clock::now() - started;
    if (std::chrono::duration<double, std::milli>(took) > budget) {
        fault = CallFault::over_budget;
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(took);
        return failed("took " + std::to_string(ms.count()) + " ms, over its budget of " +
                      std::to_string(budget.count()) + " ms");
    }
    if (!unit_interval(a.score)) {
        fault = CallFault::invalid_value;
        return failed("plugin returned a score outside [0,1]");
    }
    if (!unit_interval(a.confidence)) {
        fault = CallFault::invalid_value;
        return failed("plugin returned a confidence outside [0,1]");
    }
    fault = CallFault::none;
    return a;
}
}  // namespace

sdk::Assessment guarded_assess(const LoadedPlugin& plugin, const sdk::LocalityView& view,
                               sdk::TimePoint now, std::chrono::milliseconds budget,
                               CallFault* fault) noexcept {
    CallFault why = CallFault::none;
    sdk::Assessment a;
    try {
        a = guarded(plugin, view, now, budget, why);
    } catch (...) {
        // Out of memory while copying a result or writing an error text: an error without one.
        why = why == CallFault::none ? CallFault::exception : why;
        a = sdk::Assessment{};  // may not allocate: default members only
        a.status = sdk::Status::error;
        a.score = 0;
        a.confidence = 0;
    }
    if (fault) *fault = why;
    return a;
}

namespace {

namespace fs = std::filesystem;

// Deletes an object made by a plugin, then lets its library go. The library handle is a
// member, so it is released only when this deleter is destroyed; std::shared_ptr destroys
// its deleter after calling it (when the control block goes), so the object's destructor,
// whose code lives in the library, always runs while the library is still mapped.
struct LibraryBoundDeleter {
    boost::dll::shared_library library;
    void operator()(sdk::Indicator* p) const noexcept { delete p; }
};

struct Refusal {
    std::string reason;
    std::string name;  // the plugin's name when describe() ran, else empty
};

// Returns: the regular files ending in ".so" directly in `dir`, sorted by file name.
// Throws: std::runtime_error naming `dir` when it cannot be listed.
std::vector<fs::path> plugin_files(const fs::path& dir) {
    auto fail = [&](const std::error_code& ec) {
        return std::runtime_error("plugin directory '" + dir.string() +
                                  "' cannot be read: " + ec.message());
    };
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec) throw fail(ec);
    std::vector<fs::path> files;
    for (; it != fs::directory_iterator(); it.increment(ec)) {
        if (ec) throw fail(ec);
        std::error_code type_ec;  // a dangling symlink is simply not a regular file
        if (it->path().extension() == ".so" && it->is_regular_file(type_ec))
            files.push_back(it->path());
    }
    if (ec) throw fail(ec);
    std::sort(files.begin(), files.end(),
              [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });
    return files;
}

bool valid_name(const std::string& name) {
    return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    });
}

std::string version_text(std::uint32_t major, std::uint32_t minor) {
    return std::to_string(major) + "." + std::to_string(minor);
}

// Returns: why dlopen refused `file`, without the file name dlerror() puts first.
std::string load_error(const fs::path& file, const std::error_code& ec) {
    const char* text = ::dlerror();
    if (!text) return ec.message();
    std::string why = text;
    const std::string prefix = file.string() + ": ";
    if (why.starts_with(prefix)) why.erase(0, prefix.size());
    return why;
}

// Returns: why the SDK version `lib` was built against cannot run here, or nullopt when it
// can (same major, minor not newer than the host's) or when the library does not say.
std::optional<std::string> version_mismatch(const boost::dll::shared_library& lib) {
    if (!lib.has("ews_sdk_version_major") || !lib.has("ews_sdk_version_minor"))
        return std::nullopt;
    const std::uint32_t major = lib.get<const std::uint32_t>("ews_sdk_version_major");
    const std::uint32_t minor = lib.get<const std::uint32_t>("ews_sdk_version_minor");
    if (major == sdk::version_major && minor <= sdk::version_minor) return std::nullopt;
    return "built against SDK " + version_text(major, minor) +
           ", which the host's SDK " + version_text(sdk::version_major, sdk::version_minor) +
           " cannot run (needs the same major version and a minor version not newer)";
}

// Loads one plugin file. Nothing in the library is called before its ABI number matches.
// Every exception from the plugin is caught, and its text copied, while the library is
// still loaded: `lib` is declared first, so it is destroyed last.
std::variant<LoadedPlugin, Refusal> load_one(const fs::path& file,
                                             const std::map<std::string, sdk::Params>& params,
                                             const std::map<std::string, fs::path>& loaded_from) {
    // Whoever can write the file or its directory could run code in ewsd: refuse before dlopen.
    if (auto why = untrusted_reason(file)) return Refusal{*why, {}};
    // Taken before the file is opened, so a later rewrite cannot be mistaken for this version.
    const FileIdentity identity = FileIdentity::of(file).value_or(FileIdentity{});
    boost::dll::shared_library lib;
    std::error_code ec;
    lib.load(file, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, ec);
    if (ec || !lib.is_loaded()) return Refusal{"cannot load: " + load_error(file, ec)};

    if (!lib.has("ews_sdk_abi")) return Refusal{"not an ewsd plugin (no ews_sdk_abi symbol)"};
    const std::uint32_t abi = lib.get<const std::uint32_t>("ews_sdk_abi");
    if (abi != sdk::abi_version)
        return Refusal{"ABI " + std::to_string(abi) + " does not match the host's ABI " +
                       std::to_string(sdk::abi_version)};
    if (auto why = version_mismatch(lib)) return Refusal{*why};
    if (!lib.has("ews_create_indicator"))
        return Refusal{"not an ewsd plugin (no ews_create_indicator factory; use EWS_INDICATOR)"};

    LoadedPlugin plugin;
    plugin.file = file;
    plugin.identity = identity;
    std::string stage = "while being created";
    try {
        auto create =
            boost::dll::import_alias<std::unique_ptr<sdk::Indicator>()>(lib, "ews_create_indicator");
        std::unique_ptr<sdk::Indicator> made = create();
        if (!made) return Refusal{"its factory returned no object"};
        LibraryBoundDeleter deleter{lib};  // may throw; made still owns the object then
        plugin.indicator = std::shared_ptr<sdk::Indicator>(made.release(), std::move(deleter));

        stage = "in describe()";
        plugin.descriptor = plugin.indicator->describe();
        const std::string& name = plugin.descriptor.name;
        if (!valid_name(name))
            return Refusal{"invalid plugin name '" + name + "' (expected [a-z0-9_]+)"};
        if (auto seen = loaded_from.find(name); seen != loaded_from.end())
            return Refusal{"duplicate plugin name '" + name + "' (already loaded from " +
                           seen->second.filename().string() + ")"};

        // The host checks the table against the descriptor first, so every plugin gets the
        // same clear errors for unknown keys, wrong types and values out of range.
        stage = "in configure()";
        const sdk::Params no_params;
        auto own = params.find(name);
        const sdk::Params& mine = own == params.end() ? no_params : own->second;
        if (auto problems = validate_params(plugin.descriptor, mine); !problems.empty()) {
            std::string reason;
            for (const auto& p : problems) reason += (reason.empty() ? "" : "; ") + p;
            return Refusal{reason, name};
        }
        plugin.indicator->configure(mine);
    } catch (const sdk::ConfigError& e) {
        const std::string lead = "parameter '" + e.key() + "'";
        const std::string what = e.what();
        return Refusal{what.starts_with(lead) ? what : lead + ": " + what, plugin.descriptor.name};
    } catch (const std::exception& e) {
        return Refusal{"threw " + stage + ": " + e.what(), plugin.descriptor.name};
    } catch (...) {
        return Refusal{"threw a non-standard exception " + stage, plugin.descriptor.name};
    }
    return plugin;
}

}  // namespace

PluginSet load_plugins(const std::filesystem::path& dir,
                       const std::map<std::string, sdk::Params>& params, const LoadVeto& veto) {
    PluginSet set;
    std::map<std::string, fs::path> loaded_from;  // plugin name -> its file
    for (const auto& file : plugin_files(dir)) {
        if (veto) {
            if (auto why = veto(file)) {
                set.quarantined.push_back({file, std::move(*why)});
                continue;
            }
        }
        auto outcome = load_one(file, params, loaded_from);
        if (auto* refusal = std::get_if<Refusal>(&outcome)) {
            set.refused.push_back({file, std::move(refusal->reason), std::move(refusal->name)});
            continue;
        }
        auto& plugin = std::get<LoadedPlugin>(outcome);
        loaded_from.emplace(plugin.name(), file);
        set.loaded.push_back(std::move(plugin));
    }
    std::sort(set.loaded.begin(), set.loaded.end(),
              [](const LoadedPlugin& a, const LoadedPlugin& b) { return a.name() < b.name(); });
    return set;
}

}  // namespace ews
