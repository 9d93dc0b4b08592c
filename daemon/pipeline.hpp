// pipeline.hpp: the data path of ewsd without its sockets: store, plugins, engine, scorer,
// alerting and outbox, wired in one place. The daemon (app.hpp) drives it from its event
// loop; `ewsctl evaluate` and `ewsd --once` drive it directly.
//
// Contract: an event is written to the outbox in the same transaction as the alert state
// that caused it, and only committed rows are returned for publishing. If a commit fails,
// the in-memory alert states and sequence numbers roll back with it.
#pragma once

#include "config.hpp"
#include "engine.hpp"
#include "ingest.hpp"
#include "plugin_host.hpp"
#include "store.hpp"

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace ews {

struct EvaluationStats {
    TimePoint at{};
    std::chrono::milliseconds duration{0};
    std::size_t localities_assessed = 0;
    std::size_t events = 0;
    bool full = false;
};

class Pipeline {
public:
    // Opens the store and loads localities, observations and alert state into memory; loads
    // the plugins named by config.plugin_dir. Throws: StoreError, std::runtime_error.
    explicit Pipeline(Config config);

    // Replaces configuration and plugin set (after both were validated/loaded by the caller).
    void reconfigure(Config config, PluginSet plugins);
    // Re-reads the locality table from the store (after `ewsctl localities import`).
    void reload_localities();

    // Ingests one file and applies its committed rows to the engine.
    IngestOutcome ingest(const std::filesystem::path& file, TimePoint now);

    // Evaluates at `now` (all localities, or only those whose data changed), commits state and
    // events in one transaction, and returns the committed outbox rows to publish.
    std::vector<OutboxRow> evaluate(TimePoint now, bool full);

    const Config& config() const { return config_; }
    const PluginSet& plugins() const { return plugins_; }
    Store& store() { return *store_; }
    const Engine& engine() const { return engine_; }
    std::uint64_t last_seq(const std::string& endpoint) const;
    const EvaluationStats& last_evaluation() const { return last_eval_; }
    // Open alerts by level (index = Level).
    std::array<std::size_t, 4> open_alerts() const;
    ObservationRules rules(TimePoint now) const;

private:
    std::vector<std::string> outbox_endpoints() const;

    Config config_;
    std::unique_ptr<Store> store_;
    PluginSet plugins_;
    Engine engine_;
    std::map<std::string, AlertState> states_;  // by locality id
    std::map<std::string, std::uint64_t> seqs_; // last committed seq by endpoint
    EvaluationStats last_eval_;
};

// Returns: true when `region` lies within `scope` ("" = everywhere; "KE/KE-03" covers
// "KE/KE-03" and "KE/KE-03/KE-030", not "KE/KE-030").
bool in_scope(const std::string& region, const std::string& scope);

// Name of the outbox that `ewsctl`/`--once` use when no [[publish]] endpoint is configured.
inline constexpr const char* default_outbox = "default";

}  // namespace ews
