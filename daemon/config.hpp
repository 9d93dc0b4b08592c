// config.hpp: the one TOML configuration file, loaded and validated into plain values.
// The only module that includes toml++. Every error names the file, line, column and key.
#pragma once

#include "model.hpp"

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ews {

// Message format: "FILE:LINE:COLUMN: KEY: what is wrong, what was expected"
// (LINE:COLUMN omitted when the key is missing altogether: "FILE: KEY: ...").
class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct LevelThresholds {
    double raise = 0;  // score (0..100) at or above which the level is raised
    double clear = 0;  // score below which an open alert at this level clears (clear < raise)
};

// CURVE on one server endpoint (docs/protocol.md, Security): both paths or neither.
struct CurveKeys {
    std::filesystem::path secret_key_file;      // key curve_secret_key_file: the server's NAME.key_secret
    std::filesystem::path authorized_keys_dir;  // key authorized_keys_dir: one NAME.key per client
    bool enabled() const { return !secret_key_file.empty(); }
    bool operator==(const CurveKeys&) const = default;
};

struct PublishEndpoint {
    std::string name;   // unique; defaults to "publish<N>" (N from 1)
    std::string bind;   // ZeroMQ endpoint, e.g. "tcp://127.0.0.1:7601"
    std::string scope;  // region prefix; empty = everything
    CurveKeys curve;    // not enabled = no CURVE (plain TCP)
    // Key query: a request endpoint (ROUTER; clients use REQ) answering replay, snapshot and status for this endpoint's
    // outbox only, so a scoped endpoint's subscribers replay within its scope; it has the
    // same CURVE keys and ZAP domain (the same authorized subscribers). Empty = none.
    std::string query_bind;
};

enum class RejectPolicy { partial, reject_file };

// "partial" or "reject_file", as the configuration and the ingest endpoint spell them.
std::string_view to_string(RejectPolicy policy);
// Returns: the policy `name` spells, or nullopt.
std::optional<RejectPolicy> parse_reject_policy(std::string_view name);

struct Config {
    std::filesystem::path file;  // the file this was loaded from (absolute)

    // [daemon]
    std::filesystem::path state_dir;   // required
    std::filesystem::path plugin_dir;  // required
    std::chrono::seconds evaluate_every{60};
    std::chrono::seconds heartbeat{5};  // key heartbeat_s
    std::string log_level = "info";     // trace, debug, info, warn, error, critical, off
    // Longest one assess() call may take; a slower call's result is discarded as an error.
    std::chrono::milliseconds plugin_budget{250};  // key plugin_budget_ms, 1..60000
    // Consecutive evaluations in which more than half of a plugin's calls fail before the
    // plugin is quarantined (until its file changes).
    int quarantine_after = 3;  // 1..1000

    // [ingest]
    std::filesystem::path spool_dir;    // default: <state_dir>/spool
    RejectPolicy policy = RejectPolicy::partial;  // for spool files and `ewsctl ingest`
    std::chrono::seconds future_tolerance{86400};  // key future_tolerance_s
    std::string ingest_bind;  // key bind: ZeroMQ ROUTER endpoint for pushed batches; empty = none
    // Policy of a pushed batch whose request names none: all-or-nothing by default, since
    // the pushing tool gets every rejected row in the reply and can resend the batch fixed.
    RejectPolicy endpoint_policy = RejectPolicy::reject_file;  // key endpoint_policy

    // [[publish]]
    std::vector<PublishEndpoint> publish;

    // [query]
    std::string query_bind;      // key bind; empty = no query endpoint
    std::string query_endpoint;  // key endpoint: the [[publish]] name whose outbox it serves
                                 // (default: the first endpoint)
    CurveKeys query_curve;       // ZAP domain "query"

    // [scoring]
    std::map<std::string, double> weights;  // [scoring.weights] indicator = weight (> 0)
    std::array<LevelThresholds, 3> levels{{{40, 30}, {60, 50}, {80, 70}}};  // watch, warning, critical
    int raise_after = 2;
    int clear_after = 3;
    // An open alert is notified again (event "reminder") this long after its last
    // notification; 0 = never. Key repeat_every_s.
    std::chrono::seconds repeat_every{7 * 86400};
    // [scoring.flapping]: window (3..32 samples), high and low (percent, low < high);
    // high = 0 turns flap detection off.
    int flap_window = 21;
    double flap_high = 30;
    double flap_low = 15;

    // [privacy]
    int min_cell = 5;

    // [metrics]: key bind, "IPV4:PORT" or "[IPV6]:PORT" of the Prometheus text endpoint
    // (plain HTTP, GET /metrics); empty = none. Metrics hold counts, never a locality or person.
    std::string metrics_bind;

    // [retention]: unset = keep for ever; applied daily by the daemon
    std::optional<std::chrono::days> keep_observations;  // key observations_days, >= 1
    std::optional<std::chrono::days> keep_alerts;        // key alerts_days, >= 1

    // [plugins.<name>]: parameters passed to the plugin's configure()
    std::map<std::string, sdk::Params> plugin_params;
    // "FILE:LINE:COLUMN" of each plugin parameter, keyed "<plugin>.<key>", for error messages
    std::map<std::string, std::string> plugin_param_where;

    // [actions]: watch/warning/critical = ["playbook step", ...]; resolved and data_gap for
    // those events; [actions.<indicator>] the same level keys, attached first when that
    // indicator contributes most to the score.
    std::map<Level, std::vector<std::string>> actions;
    std::vector<std::string> resolved_actions;
    std::vector<std::string> data_gap_actions;
    std::map<std::string, std::map<Level, std::vector<std::string>>> indicator_actions;

    const LevelThresholds& thresholds(Level l) const { return levels.at(int(l) - 1); }
};

// What load_config checks beyond the file itself.
struct LoadOptions {
    // Read the CURVE key files the configuration names (secret key parses and is not open to
    // every user, authorized-keys directory lists): the daemon and --check-config do. Tools
    // that never serve CURVE (ewsctl) skip it, since an operator in the daemon's group need
    // not be able to read the server's secret key.
    bool read_key_files = true;
};

// Reads and validates `file`. Relative paths are resolved against the file's directory.
// Throws: ConfigError with the location and key of the first problem.
Config load_config(const std::filesystem::path& file, const LoadOptions& options = {});

}  // namespace ews
