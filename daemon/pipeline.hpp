// pipeline.hpp: the data path of ewsd without its sockets: store, plugins, engine, scorer,
// alerting and outbox, wired in one place. The daemon (app.hpp) drives it from its event
// loop; `ewsctl evaluate` and `ewsd --once` drive it directly.
//
// Contract: an event is written to the outbox in the same transaction as the alert state
// that caused it, and only committed rows are returned for publishing. If a commit fails,
// the in-memory alert states and sequence numbers roll back with it.
//
// Fault containment of plugins: every call is guarded (plugin_host.hpp) and held to
// config.plugin_budget; a failed assessment is logged with plugin and locality and counted,
// and the evaluation goes on. A plugin that fails more than half of its calls in
// config.quarantine_after evaluations in a row, or that crashed the previous process (the
// crash marker, quarantine.hpp), is quarantined until its file changes, leaves the running
// set, and a "plugin_quarantined" event on topic ops/plugin/ goes to every endpoint's outbox.
#pragma once

#include "alerting.hpp"
#include "config.hpp"
#include "engine.hpp"
#include "ingest.hpp"
#include "plugin_host.hpp"
#include "quarantine.hpp"
#include "scorer.hpp"
#include "store.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ews {

struct EvaluationStats {
    TimePoint at{};
    std::chrono::milliseconds duration{0};
    std::size_t localities_assessed = 0;
    std::size_t events = 0;
    bool full = false;
    std::size_t failed_assessments = 0;  // over all plugins
};

// A plugin's calls since this process loaded it (for status).
struct PluginCallTotals {
    std::uint64_t calls = 0;
    std::uint64_t errors = 0;
    std::uint64_t slow = 0;
};

// Topic of operational events about plugins.
inline constexpr const char* plugin_ops_topic = "ops/plugin/";

class Pipeline {
public:
    // Opens the store and loads localities, observations and alert state into memory; loads
    // the plugins named by config.plugin_dir. A crash marker left by an earlier process
    // quarantines the plugin it names first (logged; its ops event goes out with the first
    // evaluation). Throws: StoreError, std::runtime_error.
    explicit Pipeline(Config config);

    // Loads the plugin set `config` names, holding back quarantined files; first lifts (and
    // logs) the quarantine of files that changed. For reload: pass the result to
    // reconfigure(). Throws: std::runtime_error when the plugin directory cannot be read.
    PluginSet load_plugin_set(const Config& config);

    // Replaces configuration and plugin set (after both were validated/loaded by the caller).
    void reconfigure(Config config, PluginSet plugins);
    // Re-reads the locality table from the store (after `ewsctl localities import`).
    void reload_localities();

    // Ingests one file (format by extension, config.policy) and applies its committed rows to
    // the engine, marking their localities dirty. Throws: StoreError (nothing committed).
    IngestOutcome ingest(const std::filesystem::path& file, TimePoint now);
    // The same for a batch pushed through the ingest endpoint: `name` labels it in errors and
    // in the ingest record. Throws: StoreError (nothing committed).
    IngestOutcome ingest_bytes(std::string_view content, const std::string& name,
                               IngestFormat format, RejectPolicy policy, TimePoint now);

    // Evaluates at `now` (all localities, or only those whose data changed), commits state and
    // events in one transaction, and returns the committed outbox rows to publish. Plugins
    // found failing are quarantined once that transaction has committed.
    std::vector<OutboxRow> evaluate(TimePoint now, bool full);

    // Silences and acknowledgements, for the control socket (a running daemon) and ewsctl
    // (no daemon). Each is stored and audited in one transaction; an active silence holds
    // the events of the localities it covers from the next evaluation on.
    // Throws: std::invalid_argument (bad request: no or both of locality/region, unknown
    // locality, until not after `now`, empty reason or by), StoreError.
    std::int64_t add_silence(Silence silence, TimePoint now);
    // Marks the localities it covered dirty, so the next incremental evaluation publishes what
    // it held. Returns: false when no silence `id` is in force.
    bool expire_silence(std::int64_t id, const std::string& by, TimePoint at);
    // Acknowledges the open alert `alert_id`: reminders stop until it escalates.
    // Throws: std::invalid_argument (no open alert with that id; empty by), StoreError.
    Acknowledgement acknowledge(const std::string& alert_id, const std::string& by,
                                const std::string& note, TimePoint at);

    const Config& config() const { return config_; }
    const PluginSet& plugins() const { return plugins_; }
    Store& store() { return *store_; }
    const Engine& engine() const { return engine_; }
    std::uint64_t last_seq(const std::string& endpoint) const;
    const EvaluationStats& last_evaluation() const { return last_eval_; }
    // Calls of each loaded plugin so far, by name.
    const std::map<std::string, PluginCallTotals>& plugin_calls() const { return calls_; }
    const Quarantine& quarantine() const { return quarantine_; }
    // Open alerts by level (index = Level).
    std::array<std::size_t, 4> open_alerts() const;
    // Localities flapping now, and open data gaps (locality x indicator), for status.
    struct LifecycleCounts {
        std::size_t flapping = 0;
        std::size_t data_gaps = 0;
    };
    LifecycleCounts lifecycle_counts() const;
    ObservationRules rules(TimePoint now) const;

private:
    // A plugin_quarantined event not yet committed to the outboxes.
    struct QuarantineNotice {
        std::string plugin;
        std::filesystem::path file;
        std::string reason;
    };

    // A locality whose evaluation has events: its composite, made without evidence, waits
    // for add_evidence().
    struct Eventful {
        std::size_t locality = 0;  // engine index
        Composite composite;
        AdvanceResult result;
        AlertState* state = nullptr;  // in states_, whose nodes do not move
    };
    // Assesses the localities of `eventful` again, asking for evidence, and moves it into
    // their composites; warns of a plugin that answers differently the second time.
    void add_evidence(std::vector<Eventful>& eventful, TimePoint now);

    std::vector<std::string> outbox_endpoints() const;
    void quarantine_crashed_plugin();
    // Applies an ingest's committed rows to the engine. Returns: `out`.
    IngestOutcome applied(IngestOutcome out);
    EvaluationOptions evaluation_options();
    // A plugin of plugins_.loaded to quarantine once the evaluation has committed.
    struct Failing {
        std::size_t index = 0;
        std::string reason;
    };
    // Counts and logs the failed assessments of the last engine evaluation (the first few
    // with their locality, then a summary per plugin) and advances each plugin's streak of
    // failing evaluations. Returns: the plugins whose streak reached config_.quarantine_after.
    std::vector<Failing> review_plugin_faults(const std::vector<PluginCallStats>& stats);
    void quarantine_failing(const std::vector<Failing>& failing);

    Config config_;
    std::unique_ptr<Store> store_;
    Quarantine quarantine_;
    PluginCallMarker marker_;
    PluginSet plugins_;
    std::map<std::string, int> failing_streak_;  // by plugin name: failing evaluations in a row
    std::map<std::string, PluginCallTotals> calls_;  // by plugin name
    std::vector<QuarantineNotice> notices_;  // to publish with the next evaluation
    bool marker_failed_ = false;             // the marker could not be written (logged once)
    Engine engine_;
    std::map<std::string, AlertState> states_;  // by locality id
    std::map<std::string, std::uint64_t> seqs_; // last committed seq by endpoint
    std::vector<Silence> silences_;             // not expired by hand, by id (see the constructor)
    EvaluationStats last_eval_;
};

// Returns: the alerting parameters (levels, raise_after, clear_after, reminders, flapping) that
// `config` sets; every evaluation of the daemon, and `ewsctl backtest`, alerts with these.
AlertingParams alerting_params(const Config& config);

// Returns: true when `region` lies within `scope` ("" = everywhere; "KE/KE-03" covers
// "KE/KE-03" and "KE/KE-03/KE-030", not "KE/KE-030").
bool in_scope(const std::string& region, const std::string& scope);

// Returns: true for a region path: codes of [A-Za-z0-9_.-] separated by single '/', none
// empty. One trailing '/' is allowed, as topics spell prefixes ("KE/KE-03/"); in_scope()
// ignores it.
bool valid_region(std::string_view region);

// Returns: the playbook attached to event `e`: for an open alert, the steps configured for
// the indicator that drives its score (c.dominant) at this level, then the level's own
// steps; the resolved or data_gap steps for those events; nothing for data_restored.
std::vector<std::string> playbook(const Config& config, const AlertEvent& e, const Composite& c);

// Checks a silence before it is stored. Throws: std::invalid_argument naming the field:
// neither or both of locality and region, a locality `known_locality` does not know, a
// malformed region, until not after `now`, an empty or over-long reason or by.
void validate_silence(const Silence& silence, TimePoint now,
                      const std::function<bool(std::string_view)>& known_locality);

// Checks an acknowledgement's author and note. Throws: std::invalid_argument naming the key.
void validate_acknowledgement(const std::string& by, const std::string& note);

// Name of the outbox that `ewsctl`/`--once` use when no [[publish]] endpoint is configured.
inline constexpr const char* default_outbox = "default";

}  // namespace ews
