// relay.hpp: `ewsctl relay`, a forwarder that serves many subscribers from one connection to
// the daemon's alert stream (docs/relay.md).
//
// An XSUB socket connects to the daemon's PUB endpoint (optionally as a CURVE client) and an
// XPUB socket binds for subscribers (optionally as a CURVE server whose ZAP handler admits
// only the keys of an authorized-keys directory). Messages flow downstream unchanged, frame
// for frame; subscriptions flow upstream, so the daemon sends the relay only what its
// subscribers asked for. With a region scope, subscriptions outside it are never forwarded
// and those wider than it are narrowed to it, so the relay never receives, and never emits,
// an alert outside its scope. It never touches the daemon's store or configuration, and it
// does not relay the query endpoint.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace ews::relay {

struct Options {
    std::string upstream;             // the daemon's PUB endpoint (connect)
    std::string bind;                 // the endpoint subscribers connect to
    std::string upstream_server_key;  // the daemon endpoint's public key: a file or Z85 text
    std::string key_file;             // the relay's own secret certificate (CURVE client)
    std::string server_secret_file;   // the relay's server secret certificate (CURVE server)
    std::string authorized_keys_dir;  // subscribers admitted by the relay's ZAP handler
    std::string scope;                // region prefix, e.g. "KE/KE-03"; empty = everything
};

// Adds the `relay` subcommand and its options to `cli`, filling `options` when parsed.
// Returns: the subcommand.
CLI::App* add_subcommand(CLI::App& cli, Options& options);

// Returns: what to subscribe upstream for a downstream subscription to `topic` within region
// `scope` (no trailing '/'; empty = everything):
//   - without a scope, `topic` itself;
//   - a topic inside the scope ("alert/<scope>/..."), or inside "hb/" or "ops/": itself;
//   - a topic that is a prefix of "alert/<scope>/", "hb/" or "ops/" (such as "" or
//     "alert/"): each of those three that it covers, narrowed to it;
//   - anything else (another region, an unknown prefix): nothing.
std::vector<std::string> upstream_topics(std::string_view topic, std::string_view scope);

// Returns: whether a message with topic `topic` may leave a relay with region `scope`.
bool in_scope(std::string_view topic, std::string_view scope);

// Runs the relay until SIGINT or SIGTERM. Returns: the exit status (0 after a signal; 1 when
// a key cannot be read or the bind fails, with the reason on stderr).
int run(const Options& options);

}  // namespace ews::relay
