// ews/sdk/indicator.hpp: the whole plugin API of ewsd.
//
// An indicator plugin is one class derived from ews::sdk::Indicator, exported by
// EWS_INDICATOR(Class) on the last line of its source file. The host checks the ABI number
// before it calls anything, keeps the library loaded longer than every object made from it,
// and catches every exception at each call.
//
// A plugin is a pure function of the data it is shown: no SQLite, no sockets, no global
// logger, no threads of its own, no file I/O. assess() is const and must be thread-safe:
// the host may call it for many localities at once.
#pragma once

#include <boost/config.hpp>
#include <boost/dll/alias.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace ews::sdk {

// Bumped whenever a type in this header changes layout or a virtual function changes.
// The host refuses a plugin whose ews_sdk_abi differs from its own.
inline constexpr std::uint32_t abi_version = 1;
// Semantic version of the SDK the plugin was built against.
inline constexpr std::uint32_t version_major = 1;
inline constexpr std::uint32_t version_minor = 1;

using TimePoint = std::chrono::sys_seconds;  // UTC, one-second resolution

// One observation as a plugin sees it. `source` stays valid as long as the view does.
struct Point {
    TimePoint time;
    double value = 0;
    double weight = 1;
    std::string_view source;
};

struct LocalityInfo {
    std::string_view id;
    std::string_view name;
    std::string_view region;             // region path, e.g. "KE/KE-03/KE-030"
    std::optional<double> population;    // children living there, when known
};

// Read-only view of one locality's data, cut at now(): no point later than now() is ever
// visible, so a backtest can replay history without peeking ahead.
class BOOST_SYMBOL_VISIBLE LocalityView {
public:
    virtual ~LocalityView() = default;
    virtual const LocalityInfo& info() const = 0;
    // The evaluation time; every series is cut at it.
    virtual TimePoint now() const = 0;
    // Points of one kind, ascending by time (ties ordered by source). Empty when none.
    virtual std::span<const Point> series(std::string_view kind) const = 0;
    // Kinds that start with `prefix` and have at least one visible point, sorted.
    virtual std::vector<std::string_view> kinds(std::string_view prefix) const = 0;
    virtual std::size_t neighbour_count() const = 0;
    // Returns: the i-th neighbour's view, cut at the same now(). i < neighbour_count().
    virtual const LocalityView& neighbour(std::size_t i) const = 0;
    // SDK 1.1. False when the host will not use the evidence of this assessment: the daemon
    // assesses every locality at every evaluation but publishes few, and asks again, with
    // true, for the localities whose alerts produce an event. A plugin may then leave
    // `evidence` empty and skip formatting it; everything else it returns (score,
    // confidence, status, newest, floor) must be the same either way. A plugin that ignores
    // this stays correct. (Added at the end of the class: plugins built against SDK 1.0 keep
    // working; a plugin that calls it needs a 1.1 host, which the version check ensures.)
    virtual bool wants_evidence() const { return true; }
};

enum class Status { ok, stale, no_data, error };

// Level a plugin may ask the locality to be held at, at least (e.g. a sentinel incident).
enum class Floor { none, watch, warning, critical };

struct EvidenceValue {
    std::string name;
    double value = 0;
    bool is_count = false;  // counts below privacy.min_cell are suppressed when published
};

struct Evidence {
    std::string text;  // short, human readable, contains no ingested free text
    std::vector<EvidenceValue> values;
};

struct Assessment {
    double score = 0;        // [0,1]: 0 = nothing unusual, 1 = as alarming as this indicator gets
    double confidence = 0;   // [0,1]: how much the data supports the score
    Status status = Status::no_data;
    std::optional<TimePoint> newest;  // newest data point used
    Evidence evidence;
    Floor floor = Floor::none;
};

// A configuration value from the plugin's [plugins.<name>] table.
using ParamValue = std::variant<bool, std::int64_t, double, std::string, std::vector<std::string>,
                                std::map<std::string, double>>;
using Params = std::map<std::string, ParamValue>;

enum class ParamType { boolean, integer, number, string, string_list, number_table };

struct ParamSpec {
    std::string name;
    ParamType type = ParamType::number;
    ParamValue default_value;
    std::optional<double> min;  // for integer and number (and each value of number_table)
    std::optional<double> max;
    std::string help;           // one line
};

struct Descriptor {
    std::string name;     // [a-z0-9_]+, unique among loaded plugins
    std::string version;  // the plugin's own version, e.g. "1.0.0"
    std::vector<std::string> kinds;  // kinds read; a trailing '*' means a prefix ("incident.*")
    std::vector<ParamSpec> params;
};

// Thrown by configure() for a bad parameter; key() names it.
class ConfigError : public std::runtime_error {
public:
    ConfigError(std::string key, const std::string& what)
        : std::runtime_error(what), key_(std::move(key)) {}
    const std::string& key() const noexcept { return key_; }

private:
    std::string key_;
};

class BOOST_SYMBOL_VISIBLE Indicator {
public:
    virtual ~Indicator() = default;
    virtual Descriptor describe() const = 0;
    // Called once after construction and again on reload, before any assess().
    // Parameters absent from `params` take their defaults. Throws: ConfigError.
    virtual void configure(const Params& params) = 0;
    virtual Assessment assess(const LocalityView& view, TimePoint now) const = 0;
};

// Returns: params[key] converted to T, or `fallback` when absent.
// Throws: ConfigError when present with another type (an integer is accepted for a double).
template <class T>
T param_or(const Params& params, const std::string& key, T fallback) {
    auto it = params.find(key);
    if (it == params.end()) return fallback;
    if constexpr (std::is_same_v<T, double>) {
        if (auto* i = std::get_if<std::int64_t>(&it->second)) return static_cast<double>(*i);
    }
    if (auto* v = std::get_if<T>(&it->second)) return *v;
    throw ConfigError(key, "parameter '" + key + "' has the wrong type");
}

// Returns: parameter `name` from `params` converted to T (bool, std::int64_t, double,
// std::string, std::vector<std::string> or std::map<std::string, double>), or the default of
// its ParamSpec in `specs` when absent; numbers (and each value of a number table) checked
// against the spec's min and max. The host checks a configuration against describe() before
// configure() too; this keeps a plugin correct on its own (tests, plugin-test).
// Throws: ConfigError naming the key for a wrong type or a value out of range;
// std::logic_error when `specs` has no spec called `name` (a bug in the plugin).
template <class T>
T param(const Params& params, const std::vector<ParamSpec>& specs, const std::string& name) {
    const ParamSpec* spec = nullptr;
    for (const auto& s : specs)
        if (s.name == name) spec = &s;
    if (!spec) throw std::logic_error("no ParamSpec named '" + name + "'");
    const T* fallback = std::get_if<T>(&spec->default_value);
    if (!fallback) throw std::logic_error("ParamSpec '" + name + "' has a default of another type");
    T value = param_or<T>(params, name, *fallback);
    auto in_range = [&](double v, const std::string& entry = {}) {
        if (std::isfinite(v) && (!spec->min || v >= *spec->min) && (!spec->max || v <= *spec->max))
            return;
        auto show = [](double x) {
            char buf[32];
            std::snprintf(buf, sizeof buf, "%g", x);
            return std::string(buf);
        };
        const std::string what = entry.empty() ? "" : ": value of '" + entry + "'";
        throw ConfigError(name, "parameter '" + name + "'" + what + " must be between " +
                                    (spec->min ? show(*spec->min) : "-inf") + " and " +
                                    (spec->max ? show(*spec->max) : "inf") + ", got " + show(v));
    };
    if constexpr (std::is_same_v<T, double> || std::is_same_v<T, std::int64_t>)
        in_range(static_cast<double>(value));
    if constexpr (std::is_same_v<T, std::map<std::string, double>>)
        for (const auto& [key, v] : value) in_range(v, key);
    return value;
}

}  // namespace ews::sdk

// Export `Class` as this library's indicator. Put it once, on the last line of the plugin.
#define EWS_INDICATOR(Class)                                                                    \
    extern "C" BOOST_SYMBOL_EXPORT const std::uint32_t ews_sdk_abi = ::ews::sdk::abi_version;   \
    extern "C" BOOST_SYMBOL_EXPORT const std::uint32_t ews_sdk_version_major =                  \
        ::ews::sdk::version_major;                                                              \
    extern "C" BOOST_SYMBOL_EXPORT const std::uint32_t ews_sdk_version_minor =                  \
        ::ews::sdk::version_minor;                                                              \
    namespace {                                                                                 \
    std::unique_ptr<::ews::sdk::Indicator> ews_make_indicator_() {                              \
        return std::make_unique<Class>();                                                       \
    }                                                                                           \
    }                                                                                           \
    BOOST_DLL_ALIAS(ews_make_indicator_, ews_create_indicator)
