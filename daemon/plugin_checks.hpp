// plugin_checks.hpp: checks the host makes before it trusts a plugin file or calls
// configure(), and the wording that sends an operator to the line to fix.
// A plugin runs with the daemon's rights, so whoever can write its file or directory can run
// code in ewsd; parameters are checked against the plugin's own ParamSpecs so that every
// problem is reported at once, each naming its key. Nothing here loads a library.
#pragma once

#include "config.hpp"
#include "plugin_host.hpp"

#include <ews/sdk/indicator.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace ews {

// Returns: why `file` must not be loaded, or nullopt when it may. Refused: a file, or the
// directory holding it, that is group- or world-writable or owned by a user other than root
// or the effective user of this process; a symlink owned by such a user, or whose target (or
// the target's directory) is refused by the same rules; a path that cannot be examined.
// The reason says what is wrong and the command that fixes it, e.g.
// "group- and world-writable (mode 0666): anyone who can write it can run code in ewsd;
// chmod go-w /srv/plugins/x.so".
std::optional<std::string> untrusted_reason(const std::filesystem::path& file);

// Returns: every problem of `params` against `d.params`, empty when there is none. Each
// message starts with "parameter '<key>'": an unknown key (listing the known ones), a value
// of the wrong type (an integer is accepted where a number is expected), or a number outside
// [min, max] (integer, number, and each value of a number_table).
std::vector<std::string> validate_params(const sdk::Descriptor& d, const sdk::Params& params);

// Returns: `message` located in the configuration file. A message starting with
// "parameter '<key>'" whose key has a recorded position becomes
// "FILE:LINE:COLUMN: plugins.<plugin>.<key>: <the rest of the message>"; any other becomes
// "FILE: plugins.<plugin>: <message>".
std::string locate(const Config& config, const std::string& plugin, const std::string& message);

// Returns: one line saying why `refused` was not loaded: located in the configuration file
// (see locate) when it was refused for a parameter, else "FILE: plugin refused: REASON".
std::string refusal_text(const Config& config, const RefusedPlugin& refused);

}  // namespace ews
