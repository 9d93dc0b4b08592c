// engine.hpp: the in-memory windows of every locality's observations, and evaluation
// through the plugins. Loaded from the store at start, updated on ingest. Marks localities
// whose data changed (and their neighbours, for spill-over) dirty for incremental runs.
#pragma once

#include "model.hpp"
#include "plugin_host.hpp"

#include <memory>
#include <optional>
#include <string_view>
#include <vector>

namespace ews {

struct LocalityResult {
    std::size_t locality = 0;                   // index into Engine::locality()
    std::vector<sdk::Assessment> assessments;   // one per plugin, in the order given
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

    // Assesses localities (all, or only dirty ones) with each plugin at `now`, through
    // guarded_assess. Clears the dirty marks of those assessed. Results ordered by index.
    std::vector<LocalityResult> evaluate(const std::vector<LoadedPlugin>& plugins, TimePoint now,
                                         bool only_dirty);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ews
