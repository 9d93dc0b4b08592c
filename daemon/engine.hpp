// engine.hpp: the in-memory windows of every locality's observations, and evaluation
// through the plugins. Loaded from the store at start, updated on ingest. Marks localities
// whose data changed (and their neighbours, for spill-over) dirty for incremental runs.
#pragma once

#include "model.hpp"
#include "plugin_host.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ews {

struct LocalityResult {
    std::size_t locality = 0;                   // index into Engine::locality()
    std::vector<sdk::Assessment> assessments;   // one per plugin, in the order given
};

// How one plugin's calls went in one evaluation. Only faults the host detected count
// (CallFault: exception, invalid value, over budget); a plugin that itself returns status
// error is reporting on the data, not failing.
struct PluginCallStats {
    std::size_t calls = 0;
    std::size_t errors = 0;  // calls whose result was replaced by an error, slow ones included
    std::size_t slow = 0;    // calls over the time budget
    // The first failures in locality order, at most `failure_samples`: (locality index, reason).
    std::vector<std::pair<std::size_t, std::string>> first_failures;
    static constexpr std::size_t failure_samples = 5;
};

struct EvaluationOptions {
    std::chrono::milliseconds budget = unlimited_budget;  // per assess() call
    // What the views answer to LocalityView::wants_evidence(): false lets plugins skip
    // formatting evidence that will not be published.
    bool evidence = true;
    // Called on the evaluating thread before any call into `plugin` (plugins are assessed
    // one after the other), and once after the last plugin. A crash marker uses them to name
    // the plugin whose code is running. Either may be empty.
    std::function<void(const LoadedPlugin& plugin)> before_plugin;
    std::function<void()> after_plugins;
};

class Engine {
public:
    Engine();
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // Sets the locality table. Keeps the data of localities that stay; marks all dirty.
    void set_localities(const std::vector<Locality>& localities);
    std::size_t locality_count() const;
    const Locality& locality(std::size_t index) const;
    std::optional<std::size_t> find(std::string_view id) const;

    // Upserts observations by natural key (locality, kind, time, source); rows naming an
    // unknown locality are ignored. Marks their localities and those localities' neighbours
    // dirty.
    void apply(const std::vector<Observation>& rows);
    std::size_t observation_count() const;
    std::size_t dirty_count() const;
    void mark_all_dirty();
    // Clears every dirty mark (a caller that then marks the localities it wants assessed).
    void clear_dirty();
    // Marks locality `index` dirty (its state must be looked at again, e.g. a silence ended).
    void mark_dirty(std::size_t index);
    // Indices of the localities marked dirty, in no order.
    std::vector<std::uint32_t> dirty() const;

    // Assesses localities (all, or only dirty ones) with each plugin at `now`, through
    // guarded_assess with options.budget. Plugin-major: every selected locality is assessed
    // with one plugin (fanned out over worker threads) before the next plugin starts, with
    // options.before_plugin called first. Clears the dirty marks of those assessed. Results
    // ordered by index. A hook's exception propagates; the dirty marks then stay.
    std::vector<LocalityResult> evaluate(const std::vector<LoadedPlugin>& plugins, TimePoint now,
                                         bool only_dirty, const EvaluationOptions& options = {});
    // Assesses exactly `localities` (indices, ascending), as evaluate() does, leaving the
    // dirty marks alone: for the evidence of the few localities an evaluation without it
    // found something to publish about.
    std::vector<LocalityResult> assess(const std::vector<LoadedPlugin>& plugins, TimePoint now,
                                       const std::vector<std::uint32_t>& localities,
                                       const EvaluationOptions& options = {});
    // Returns: how each plugin's calls went in the last evaluate() or assess(), in the order
    // given there.
    const std::vector<PluginCallStats>& last_call_stats() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ews
