// plugin_test.hpp: ewsctl's plugin commands. `ewsctl plugins` shows what the host makes of
// plugin_dir (and what a running daemon reports); `ewsctl plugin-test` runs one plugin
// offline on CSV files, the way the daemon would, so an author or operator can see its
// scores and evidence before deploying it. Neither touches the store.
#pragma once

#include "config.hpp"
#include "plugin_host.hpp"

#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace ews::tools {

// Returns: `v` as an operator would write it in TOML: true, 3, 0.5, "text", ["a", "b"],
// {a = 1, b = 2}.
std::string format_param_value(const sdk::ParamValue& v);

// Loads the one plugin `file` through load_plugins, from a private directory that holds
// only a symlink to it, so the host's checks (trust, ABI, descriptor, configure) apply
// exactly as in the daemon. `params` maps plugin name to parameters, as for load_plugins.
// Throws: std::runtime_error when the private directory cannot be made.
PluginSet load_single_plugin(const std::filesystem::path& file,
                             const std::map<std::string, sdk::Params>& params);

// Returns: `text` from `--param key=text` as a parameter value: true/false -> boolean, an
// integer -> integer, a number -> number, otherwise a string. When `spec` is known its type
// decides where the text is ambiguous: a string stays text, a string_list splits at ',' and
// a number_table reads "a=1,b=2".
sdk::ParamValue parse_param_text(const std::string& text, const sdk::ParamSpec* spec);

// `ewsctl plugins` without the daemon: every plugin in plugin_dir with its kinds and
// parameters (type, default, range, configured value, help), then the refused ones with
// reasons; a refusal for its parameters lists each problem at its line in the config file.
// Returns: 0, or 1 when any plugin is refused.
int list_plugins(const Config& config, std::ostream& out);

struct PluginTestOptions {
    std::string plugin;                // a path to a .so, or a plugin name (needs config)
    std::filesystem::path localities;  // CSV: id,name,region,population,neighbours
    std::filesystem::path data;        // CSV: locality,time,kind,value,weight,source
    std::string at;                    // RFC 3339; empty: the newest observation, or now
    std::vector<std::string> params;   // "key=value", later ones win
    std::string format = "table";      // table | json
    const Config* config = nullptr;    // optional: plugin_dir, [plugins.<name>], tolerance
};

// `ewsctl plugin-test`: results on `out`, rejected rows and refusals on `err`.
// Returns: 0 ok; 1 when the plugin was refused or a row was rejected (the remaining rows
// are still assessed); 2 for a usage error.
int run_plugin_test(const PluginTestOptions& options, std::ostream& out, std::ostream& err);

}  // namespace ews::tools
