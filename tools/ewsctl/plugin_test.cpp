#include "plugin_test.hpp"

#include "engine.hpp"
#include "ingest.hpp"
#include "plugin_checks.hpp"
#include "scorer.hpp"

#include <nlohmann/json.hpp>

#include <stdlib.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <ostream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace ews::tools {
namespace {

namespace fs = std::filesystem;

// A private directory (mode 0700) under the system temp dir, removed with its contents.
class PrivateDir {
public:
    PrivateDir() {
        std::string pattern = (fs::temp_directory_path() / "ewsctl-plugin-XXXXXX").string();
        if (!::mkdtemp(pattern.data()))
            throw std::runtime_error("cannot make a private directory under " +
                                     fs::temp_directory_path().string() + ": " +
                                     std::strerror(errno));
        path_ = pattern;
    }
    ~PrivateDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    PrivateDir(const PrivateDir&) = delete;
    PrivateDir& operator=(const PrivateDir&) = delete;
    const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

std::string read_text(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw std::runtime_error(p.string() + ": cannot read: " + std::strerror(errno));
    return {std::istreambuf_iterator<char>(in), {}};
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
    std::string out;
    for (const auto& s : items) {
        if (!out.empty()) out += sep;
        out += s;
    }
    return out;
}

// Shortest text that reads back as the same double, with a decimal point so that it reads
// as a TOML float: 0.5, 1.0, 1e-09.
std::string float_text(double v) {
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    std::string s = ec == std::errc() ? std::string(buf, end) : std::to_string(v);
    if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
    return s;
}

std::string number_text(double v, int precision) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    return buf;
}

std::string quoted(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

std::string_view type_text(sdk::ParamType t) {
    switch (t) {
        case sdk::ParamType::boolean: return "boolean";
        case sdk::ParamType::integer: return "integer";
        case sdk::ParamType::number: return "number";
        case sdk::ParamType::string: return "string";
        case sdk::ParamType::string_list: return "string list";
        case sdk::ParamType::number_table: return "number table";
    }
    return "value";
}

std::string range_text(const sdk::ParamSpec& s) {
    auto bound = [](double v) { return number_text(v, 15); };
    if (s.min && s.max) return bound(*s.min) + ".." + bound(*s.max);
    if (s.min) return ">= " + bound(*s.min);
    if (s.max) return "<= " + bound(*s.max);
    return "";
}

std::string_view floor_text(sdk::Floor f) {
    switch (f) {
        case sdk::Floor::none: return "none";
        case sdk::Floor::watch: return "watch";
        case sdk::Floor::warning: return "warning";
        case sdk::Floor::critical: return "critical";
    }
    return "none";
}

// Writes `rows` (the first is the header) as columns separated by two spaces, each line
// indented by `indent`; the last column is not padded.
void write_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows,
                 const std::string& indent) {
    std::vector<std::size_t> width;
    for (const auto& r : rows) {
        width.resize(std::max(width.size(), r.size()), 0);
        for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
    }
    for (const auto& r : rows) {
        std::string line = indent;
        for (std::size_t i = 0; i < r.size(); ++i) {
            line += r[i];
            if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
        }
        while (!line.empty() && line.back() == ' ') line.pop_back();
        out << line << "\n";
    }
}

// Splits "parameter '<key>' rest" into key and rest; nullopt for any other message.
std::optional<std::pair<std::string, std::string>> split_parameter_message(const std::string& m) {
    static constexpr std::string_view prefix = "parameter '";
    if (!m.starts_with(prefix)) return std::nullopt;
    const auto close = m.find('\'', prefix.size());
    if (close == std::string::npos) return std::nullopt;
    const auto rest = m.find_first_not_of(": ", close + 1);
    return std::pair{m.substr(prefix.size(), close - prefix.size()),
                     rest == std::string::npos ? std::string() : m.substr(rest)};
}

void write_parameters(std::ostream& out, const sdk::Descriptor& d, const sdk::Params* configured) {
    if (d.params.empty()) {
        out << "  no parameters\n";
        return;
    }
    const bool any_configured = configured && !configured->empty();
    std::vector<std::vector<std::string>> rows;
    rows.push_back({"parameter", "type", "default", "range"});
    if (any_configured) rows.back().push_back("configured");
    rows.back().push_back("help");
    // A value too long for a column (a table of weights) is shown in full below the table.
    constexpr std::size_t widest = 24;
    std::vector<std::string> below;
    auto cell = [&](const std::string& what, const std::string& key, const sdk::ParamValue& v) {
        std::string text = format_param_value(v);
        if (text.size() <= widest) return text;
        below.push_back(what + " " + key + " = " + text);
        return std::string("(below)");
    };
    for (const auto& s : d.params) {
        rows.push_back({s.name, std::string(type_text(s.type)),
                        cell("default", s.name, s.default_value), range_text(s)});
        if (any_configured) {
            auto it = configured->find(s.name);
            rows.back().push_back(it == configured->end() ? ""
                                                          : cell("configured", s.name, it->second));
        }
        rows.back().push_back(s.help);
    }
    write_table(out, rows, "  ");
    for (const auto& line : below) out << "  " << line << "\n";
}

}  // namespace

std::string format_param_value(const sdk::ParamValue& v) {
    return std::visit(
        [](const auto& x) -> std::string {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, bool>) {
                return x ? "true" : "false";
            } else if constexpr (std::is_same_v<T, std::int64_t>) {
                return std::to_string(x);
            } else if constexpr (std::is_same_v<T, double>) {
                return float_text(x);
            } else if constexpr (std::is_same_v<T, std::string>) {
                return quoted(x);
            } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
                std::vector<std::string> items;
                for (const auto& s : x) items.push_back(quoted(s));
                return "[" + join(items, ", ") + "]";
            } else {
                std::vector<std::string> items;
                for (const auto& [k, n] : x) items.push_back(k + " = " + float_text(n));
                return "{" + join(items, ", ") + "}";
            }
        },
        v);
}

PluginSet load_single_plugin(const fs::path& file,
                             const std::map<std::string, sdk::Params>& params) {
    PrivateDir dir;
    const fs::path target = fs::absolute(file);
    std::string name = target.filename().string();
    if (!name.ends_with(".so")) name += ".so";
    fs::create_symlink(target, dir.path() / name);
    // The library stays mapped through the loaded plugin's handle after the link is gone.
    PluginSet set = load_plugins(dir.path(), params);
    for (auto& p : set.loaded) p.file = file;
    for (auto& r : set.refused) r.file = file;
    return set;
}

sdk::ParamValue parse_param_text(const std::string& text, const sdk::ParamSpec* spec) {
    auto trimmed = [](std::string s) {
        const auto b = s.find_first_not_of(" \t");
        const auto e = s.find_last_not_of(" \t");
        return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
    };
    auto as_double = [](const std::string& s) -> std::optional<double> {
        double d = 0;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
        if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
        return d;
    };
    if (spec && spec->type == sdk::ParamType::string) return text;
    if (spec && spec->type == sdk::ParamType::string_list) {
        std::vector<std::string> items;
        std::size_t start = 0;
        while (!text.empty() && start <= text.size()) {
            auto comma = text.find(',', start);
            if (comma == std::string::npos) comma = text.size();
            items.push_back(trimmed(text.substr(start, comma - start)));
            start = comma + 1;
        }
        return items;
    }
    if (spec && spec->type == sdk::ParamType::number_table) {
        std::map<std::string, double> table;
        std::size_t start = 0;
        bool ok = true;
        while (ok && !text.empty() && start <= text.size()) {
            auto comma = text.find(',', start);
            if (comma == std::string::npos) comma = text.size();
            const std::string item = text.substr(start, comma - start);
            const auto eq = item.find('=');
            auto value = eq == std::string::npos ? std::nullopt
                                                 : as_double(trimmed(item.substr(eq + 1)));
            if (value && !trimmed(item.substr(0, eq)).empty())
                table[trimmed(item.substr(0, eq))] = *value;
            else
                ok = false;
            start = comma + 1;
        }
        if (ok) return table;
        return text;
    }
    if (text == "true") return true;
    if (text == "false") return false;
    std::int64_t i = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), i);
    if (ec == std::errc() && end == text.data() + text.size() && !text.empty()) return i;
    if (auto d = as_double(text)) return *d;
    return text;
}

int list_plugins(const Config& config, std::ostream& out) {
    const PluginSet set = load_plugins(config.plugin_dir, config.plugin_params);
    out << "plugin_dir " << config.plugin_dir.string() << ": " << set.loaded.size()
        << " loaded, " << set.refused.size() << " refused\n";
    for (const auto& p : set.loaded) {
        const auto& d = p.descriptor;
        out << "\n" << d.name << " " << d.version << "  " << p.file.string() << "\n";
        out << "  kinds: " << (d.kinds.empty() ? std::string("(none)") : join(d.kinds, ", "))
            << "\n";
        auto configured = config.plugin_params.find(d.name);
        write_parameters(out, d,
                         configured == config.plugin_params.end() ? nullptr : &configured->second);
    }
    for (const auto& r : set.refused) {
        out << "\nrefused " << r.file.string() << ": " << r.reason << "\n";
        if (!r.reason.starts_with("parameter '")) continue;
        // Refused for its parameters: load it again with none to learn its name and specs,
        // then name every problem at its line in the config file.
        const PluginSet alone = load_single_plugin(r.file, {});
        if (alone.loaded.empty()) continue;
        const auto& d = alone.loaded.front().descriptor;
        auto params = config.plugin_params.find(d.name);
        std::vector<std::string> problems =
            params == config.plugin_params.end() ? std::vector<std::string>{}
                                                 : validate_params(d, params->second);
        if (problems.empty()) problems.push_back(r.reason);
        for (const auto& problem : problems) out << "  " << locate(config, d.name, problem) << "\n";
    }
    return set.refused.empty() ? 0 : 1;
}

int run_plugin_test(const PluginTestOptions& o, std::ostream& out, std::ostream& err) {
    const std::string me = "ewsctl plugin-test: ";
    if (o.format != "table" && o.format != "json") {
        err << me << "--format '" << o.format << "': expected table or json\n";
        return 2;
    }
    std::vector<std::pair<std::string, std::string>> overrides;
    for (const auto& p : o.params) {
        const auto eq = p.find('=');
        if (eq == std::string::npos || eq == 0) {
            err << me << "--param '" << p << "': expected key=value\n";
            return 2;
        }
        overrides.emplace_back(p.substr(0, eq), p.substr(eq + 1));
    }
    std::optional<TimePoint> at;
    if (!o.at.empty()) {
        at = parse_time(o.at);
        if (!at) {
            err << me << "--at '" << o.at << "': expected an RFC 3339 date or UTC date-time\n";
            return 2;
        }
    }

    // PLUGIN is a file when it looks like one, else a plugin name looked up in plugin_dir.
    fs::path file;
    if (o.plugin.find('/') != std::string::npos || o.plugin.ends_with(".so")) {
        file = o.plugin;
        std::error_code ec;
        if (!fs::is_regular_file(file, ec)) {
            err << me << o.plugin << ": no such plugin file\n";
            return 2;
        }
    } else {
        if (!o.config) {
            err << me << "'" << o.plugin
                << "' is a plugin name: give --config to find it in plugin_dir, or the path to "
                   "its .so file\n";
            return 2;
        }
        std::error_code ec;
        if (fs::is_regular_file(o.config->plugin_dir / (o.plugin + ".so"), ec)) {
            file = o.config->plugin_dir / (o.plugin + ".so");
        } else {
            const PluginSet all = load_plugins(o.config->plugin_dir, {});
            const LoadedPlugin* found = all.find(o.plugin);
            if (!found) {
                std::vector<std::string> names;
                for (const auto& p : all.loaded) names.push_back(p.name());
                err << me << "no plugin named '" << o.plugin << "' in "
                    << o.config->plugin_dir.string() << " (found: "
                    << (names.empty() ? std::string("none") : join(names, ", ")) << ")\n";
                return 2;
            }
            file = found->file;
        }
    }

    auto report_refused = [&](const PluginSet& set) {
        for (const auto& r : set.refused)
            err << "refused " << r.file.string() << ": " << r.reason << "\n";
    };
    // First load with no parameters, to learn the plugin's name and parameter specs.
    PluginSet set = load_single_plugin(file, {});
    if (set.loaded.empty()) {
        report_refused(set);
        return 1;
    }
    const sdk::Descriptor descriptor = set.loaded.front().descriptor;
    const std::string& name = descriptor.name;

    sdk::Params params;
    if (o.config)
        if (auto it = o.config->plugin_params.find(name); it != o.config->plugin_params.end())
            params = it->second;
    std::set<std::string> from_command_line;
    for (const auto& [key, text] : overrides) {
        const sdk::ParamSpec* spec = nullptr;
        for (const auto& s : descriptor.params)
            if (s.name == key) spec = &s;
        params[key] = parse_param_text(text, spec);
        from_command_line.insert(key);
    }
    auto where = [&](const std::string& problem) {
        auto split = split_parameter_message(problem);
        if (split && from_command_line.contains(split->first))
            return "--param " + split->first + ": " + split->second;
        return o.config ? locate(*o.config, name, problem) : problem;
    };
    if (const auto problems = validate_params(descriptor, params); !problems.empty()) {
        for (const auto& p : problems)
            err << "refused " << file.string() << ": " << where(p) << "\n";
        return 1;
    }
    if (!params.empty()) {
        set = load_single_plugin(file, {{name, params}});
        if (set.loaded.empty()) {
            for (const auto& r : set.refused)
                err << "refused " << r.file.string() << ": " << where(r.reason) << "\n";
            return 1;
        }
    }

    bool rejected = false;
    const auto localities = parse_localities_csv(read_text(o.localities), o.localities.string());
    for (const auto& e : localities.errors) err << e.format() << "\n";
    rejected |= !localities.errors.empty();

    std::set<std::string> known;
    for (const auto& l : localities.rows) known.insert(l.id);
    ObservationRules rules{[&](std::string_view id) { return known.contains(std::string(id)); },
                           std::max(wall_now(), at.value_or(TimePoint{})),
                           o.config ? o.config->future_tolerance : std::chrono::seconds{86400}};
    const auto observations = parse_observations_csv(read_text(o.data), o.data.string(), rules);
    for (const auto& e : observations.errors) err << e.format() << "\n";
    rejected |= !observations.errors.empty();

    Engine engine;
    engine.set_localities(localities.rows);
    engine.apply(observations.rows);
    TimePoint now = wall_now();
    if (at) {
        now = *at;
    } else if (!observations.rows.empty()) {
        now = std::max_element(observations.rows.begin(), observations.rows.end(),
                               [](const Observation& a, const Observation& b) {
                                   return a.time < b.time;
                               })->time;
    }
    const auto results = engine.evaluate(set.loaded, now, false);
    // The daemon assesses every locality without asking for evidence and asks again, with
    // it, for what it publishes (LocalityView::wants_evidence): a plugin must give the same
    // assessment either way.
    EvaluationOptions unexplained;
    unexplained.evidence = false;
    const auto quiet = engine.evaluate(set.loaded, now, false, unexplained);
    for (std::size_t k = 0; k < results.size() && k < quiet.size(); ++k) {
        if (same_but_evidence(results[k].assessments.front(), quiet[k].assessments.front()))
            continue;
        err << "plugin " << name << " assesses locality "
            << engine.locality(results[k].locality).id
            << " differently when not asked for its evidence (wants_evidence() false): score, "
               "confidence, status, newest and floor must not depend on it\n";
        rejected = true;
    }

    if (o.format == "json") {
        nlohmann::json j;
        j["plugin"] = name;
        j["version"] = descriptor.version;
        j["file"] = file.string();
        j["at"] = format_time(now);
        auto& list = j["assessments"] = nlohmann::json::array();
        for (const auto& r : results) {
            const Locality& l = engine.locality(r.locality);
            const sdk::Assessment& a = r.assessments.front();
            auto values = nlohmann::json::array();
            for (const auto& v : a.evidence.values)
                values.push_back({{"name", v.name}, {"value", v.value}, {"is_count", v.is_count}});
            list.push_back({{"locality", l.id},
                            {"name", l.name},
                            {"region", l.region},
                            {"status", to_string(a.status)},
                            {"score", a.score},
                            {"confidence", a.confidence},
                            {"newest", a.newest ? nlohmann::json(format_time(*a.newest))
                                                : nlohmann::json(nullptr)},
                            {"floor", floor_text(a.floor)},
                            {"evidence", {{"text", a.evidence.text}, {"values", values}}}});
        }
        out << j.dump(2) << "\n";
        return rejected ? 1 : 0;
    }

    out << name << " " << descriptor.version << " (" << file.string() << ") at "
        << format_time(now) << ": " << engine.locality_count() << " localities, "
        << engine.observation_count() << " observations\n";
    std::vector<std::vector<std::string>> rows{
        {"locality", "status", "score", "confidence", "newest", "evidence"}};
    std::vector<std::string> details;  // values and floor, shown under each row
    for (const auto& r : results) {
        const sdk::Assessment& a = r.assessments.front();
        rows.push_back({engine.locality(r.locality).id, std::string(to_string(a.status)),
                        number_text(a.score, 3), number_text(a.confidence, 3),
                        a.newest ? format_time(*a.newest) : "-", a.evidence.text});
        std::vector<std::string> parts;
        for (const auto& v : a.evidence.values)
            parts.push_back(v.name + "=" + number_text(v.value, 6));
        std::string detail = parts.empty() ? "" : "values: " + join(parts, ", ");
        if (a.floor != sdk::Floor::none)
            detail += std::string(detail.empty() ? "" : "; ") + "floor: " +
                      std::string(floor_text(a.floor));
        details.push_back(detail);
    }
    // The table's columns are aligned over the rows; each row's details follow it.
    std::ostringstream table;
    write_table(table, rows, "");
    std::istringstream lines(table.str());
    std::string line;
    std::getline(lines, line);
    out << line << "\n";
    for (const auto& detail : details) {
        std::getline(lines, line);
        out << line << "\n";
        if (!detail.empty()) out << "    " << detail << "\n";
    }
    return rejected ? 1 : 0;
}

}  // namespace ews::tools
