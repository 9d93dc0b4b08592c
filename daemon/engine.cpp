#include "engine.hpp"

#include "keepalive.hpp"

#include <boost/container/small_vector.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>

// Layout, chosen for evaluation speed and memory close to the raw observation bytes:
// - what evaluation reads of a locality (its series and neighbour indices) is kept apart from
//   its description (id, name, region, dependents), so that walking the localities in order
//   streams through little memory;
// - a locality's points are one contiguous vector, series after series, in kind name order,
//   with a small inline table of (kind id, begin, size) in front: one allocation per
//   locality instead of one per series, so a plugin reading its series touches one block
//   of memory and the allocator's overhead stays small (resident memory 1.60x the raw
//   columns; it was 1.73x with a vector per series);
// - kinds are interned to small integer ids, and a locality rarely has more than a handful
//   of kinds, so a linear scan of its table beats any map; kinds() needs no sort;
// - a view remembers the kind names a plugin asked for (by address, confirmed by content),
//   so the name is hashed once per worker rather than on every series() call;
// - sources are interned in a node-stable set, so sdk::Point::source is a string_view that
//   stays valid for the engine's lifetime and costs no allocation per point;
// - every series is sorted by (time, source), so a view cut at `now` is one upper_bound and
//   the span handed to a plugin is the vector's own storage.
// The engine is not internally synchronised: apply, set_localities and evaluate are called
// from one thread; evaluate fans out over worker threads that only read.

namespace ews {

namespace {

struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
        return std::hash<std::string_view>{}(s);
    }
};

using KindId = std::uint32_t;

// One series of a locality: points[begin, begin + size) of its LocalityData.
struct SeriesRef {
    KindId kind = 0;
    std::uint32_t begin = 0;
    std::uint32_t size = 0;
};

// What evaluation reads of one locality.
struct LocalityData {
    boost::container::small_vector<SeriesRef, 10> series;  // in kind name order
    std::vector<sdk::Point> points;  // each series ascending by (time, source), in `series` order
    std::vector<std::uint32_t> neighbours;  // indices of known neighbours, no self, no repeats

    std::span<const sdk::Point> points_of(const SeriesRef& s) const {
        return {points.data() + s.begin, s.size};
    }
};

// The rest of a locality.
struct LocalityMeta {
    Locality meta;
    sdk::LocalityInfo info;                 // views into `meta`; set once `meta` has its final place
    std::vector<std::uint32_t> dependents;  // localities that list this one as a neighbour
    bool touched = false;  // scratch mark of Engine::apply, false between calls
};

bool point_before(const sdk::Point& a, sdk::TimePoint time, std::string_view source) {
    return a.time < time || (a.time == time && a.source < source);
}

// Evaluation below this many localities stays on the calling thread: starting workers would
// cost more than it saves.
constexpr std::size_t parallel_threshold = 256;
constexpr unsigned max_workers = 8;

// Makes room for one more point with a growth of 1/4 instead of the vector's doubling: spare
// capacity stays within a quarter of the points held (doubling could leave resident memory
// near twice the points, over the memory budget), and appends stay amortised O(1).
void grow_for_one_more(std::vector<sdk::Point>& points) {
    const std::size_t n = points.size();
    if (n < points.capacity()) return;
    points.reserve(n + n / 4 + 4);
}

// Engine's state. At namespace scope (Engine::Impl derives from it) so the view and the
// workers below can name it.
struct Windows {
    std::vector<LocalityData> localities;  // by locality index
    std::vector<LocalityMeta> metas;       // by locality index
    std::unordered_map<std::string_view, std::uint32_t> by_id;  // views into metas[i].meta.id

    std::unordered_map<std::string, KindId, StringHash, std::equal_to<>> kind_ids;
    std::vector<const std::string*> kind_names;  // by id; keys of kind_ids (node-stable)
    std::unordered_set<std::string, StringHash, std::equal_to<>> sources;

    std::vector<std::uint8_t> dirty_flag;  // by locality index
    std::vector<std::uint32_t> dirty_list;  // indices with dirty_flag set, unordered
    std::size_t points = 0;

    std::optional<KindId> find_kind(std::string_view kind) const {
        auto it = kind_ids.find(kind);
        if (it == kind_ids.end()) return std::nullopt;
        return it->second;
    }

    KindId intern_kind(const std::string& kind) {
        auto it = kind_ids.find(kind);
        if (it != kind_ids.end()) return it->second;
        auto id = static_cast<KindId>(kind_names.size());
        auto [pos, inserted] = kind_ids.emplace(kind, id);
        kind_names.push_back(&pos->first);
        return id;
    }

    std::string_view intern_source(const std::string& source) {
        auto it = sources.find(source);
        if (it == sources.end()) it = sources.insert(source).first;
        return *it;
    }

    void mark_dirty(std::uint32_t index) {
        if (dirty_flag[index]) return;
        dirty_flag[index] = 1;
        dirty_list.push_back(index);
    }

    void mark_all_dirty() {
        dirty_flag.assign(localities.size(), 1);
        dirty_list.resize(localities.size());
        for (std::uint32_t i = 0; i < dirty_list.size(); ++i) dirty_list[i] = i;
    }

    // Returns: the points of `kind` in locality `index` with time <= now.
    std::span<const sdk::Point> visible(std::uint32_t index, KindId kind,
                                        sdk::TimePoint now) const {
        const LocalityData& d = localities[index];
        for (const auto& s : d.series) {
            if (s.kind != kind) continue;
            const auto points = d.points_of(s);
            // Usually every point is at or before `now` (an evaluation at the current time):
            // then no search, whose unpredictable branches cost more than the check.
            if (points.empty() || points.back().time <= now) return points;
            auto end = std::upper_bound(
                points.begin(), points.end(), now,
                [](sdk::TimePoint t, const sdk::Point& p) { return t < p.time; });
            return points.first(static_cast<std::size_t>(end - points.begin()));
        }
        return {};
    }

    // Inserts or replaces point `p` of series `kind` in `d`.
    // Returns: true when a point was added, false when one with the same key was replaced.
    bool upsert(LocalityData& d, KindId kind, const sdk::Point& p) {
        auto s = std::find_if(d.series.begin(), d.series.end(),
                              [kind](const SeriesRef& x) { return x.kind == kind; });
        if (s == d.series.end()) {
            const std::string& name = *kind_names[kind];
            s = std::find_if(d.series.begin(), d.series.end(),
                             [&](const SeriesRef& x) { return name < *kind_names[x.kind]; });
            const auto begin = static_cast<std::uint32_t>(
                s == d.series.end() ? d.points.size() : s->begin);
            s = d.series.insert(s, SeriesRef{kind, begin, 0});
        }
        const auto first = d.points.begin() + s->begin;
        const auto last = first + s->size;
        auto at = last;  // in time order the new point goes last
        if (first != last && !point_before(*(last - 1), p.time, p.source)) {
            at = std::lower_bound(first, last, p, [](const sdk::Point& a, const sdk::Point& b) {
                return point_before(a, b.time, b.source);
            });
            if (at != last && at->time == p.time && at->source == p.source) {
                at->value = p.value;
                at->weight = p.weight;
                return false;
            }
        }
        const auto offset = at - d.points.begin();
        grow_for_one_more(d.points);
        d.points.insert(d.points.begin() + offset, p);
        ++s->size;
        for (auto later = s + 1; later != d.series.end(); ++later) ++later->begin;
        return true;
    }
};

// Kind names a worker's plugin asked for, with their ids (or none, for a kind the engine
// has never seen): a plugin passes the same few names (mostly string literals) for every
// locality, so the address of the name finds its entry, and a compare with the entry's
// copy of the name confirms it (a plugin may reuse one buffer for several names). A miss
// hashes the name once. Lives for one evaluation, during which no kind is
// added.
class KindCache {
public:
    explicit KindCache(const Windows& impl) : impl_(impl) {}

    std::optional<KindId> find(std::string_view kind) {
        // Direct-mapped by the name's address: one entry to look at.
        const auto slot = (reinterpret_cast<std::uintptr_t>(kind.data()) >> 3 ^ kind.size()) %
                          entries_.size();
        Entry& e = entries_[slot];
        if (e.data == kind.data() && e.name == kind) return e.id;
        e.data = kind.data();
        e.name.assign(kind);
        e.id = impl_.find_kind(kind);
        return e.id;
    }

private:
    struct Entry {
        const char* data = nullptr;
        std::string name;
        std::optional<KindId> id;
    };
    const Windows& impl_;
    std::array<Entry, 64> entries_{};
};

// A locality's data cut at `now`. Neighbours' views carry no neighbours of their own (one
// hop), so a plugin can never walk a cycle of the neighbour graph.
class EngineView final : public sdk::LocalityView {
public:
    EngineView(const Windows& impl, sdk::TimePoint now, KindCache& kinds, bool evidence)
        : impl_(impl), now_(now), kinds_(kinds), evidence_(evidence) {}

    // Points this view at locality `index`; with_neighbours builds the one-hop neighbours.
    // Reuses the neighbour storage, so one view per worker serves every locality.
    void reset(std::uint32_t index, bool with_neighbours) {
        index_ = index;
        neighbour_count_ = 0;
        if (!with_neighbours) return;
        const auto& list = impl_.localities[index].neighbours;
        while (neighbours_.size() < list.size())
            neighbours_.emplace_back(impl_, now_, kinds_, evidence_);
        for (std::uint32_t n : list) neighbours_[neighbour_count_++].reset(n, false);
    }

    const sdk::LocalityInfo& info() const override { return impl_.metas[index_].info; }
    sdk::TimePoint now() const override { return now_; }

    std::span<const sdk::Point> series(std::string_view kind) const override {
        auto id = kinds_.find(kind);
        if (!id) return {};
        return impl_.visible(index_, *id, now_);
    }

    std::vector<std::string_view> kinds(std::string_view prefix) const override {
        // A locality's series are in kind name order, so `out` is sorted as it is built.
        const LocalityData& d = impl_.localities[index_];
        std::vector<std::string_view> out;
        out.reserve(d.series.size());
        for (const auto& s : d.series) {
            const std::string& name = *impl_.kind_names[s.kind];
            if (s.size > 0 && d.points[s.begin].time <= now_ && name.starts_with(prefix))
                out.push_back(name);
        }
        return out;
    }

    std::size_t neighbour_count() const override { return neighbour_count_; }
    const sdk::LocalityView& neighbour(std::size_t i) const override {
        if (i >= neighbour_count_) throw std::out_of_range("no such neighbour");
        return neighbours_[i];
    }
    bool wants_evidence() const override { return evidence_; }

private:
    const Windows& impl_;
    sdk::TimePoint now_;
    KindCache& kinds_;
    bool evidence_ = true;
    std::uint32_t index_ = 0;
    std::vector<EngineView> neighbours_;  // the first neighbour_count_ are in use
    std::size_t neighbour_count_ = 0;
};

// Assesses selected[begin, end) with one plugin into column `column` of `out`, counting
// faults into `stats` (this worker's own).
void assess_range(const Windows& impl, const LoadedPlugin& plugin, std::size_t column,
                  sdk::TimePoint now, std::chrono::milliseconds budget, bool evidence,
                  const std::vector<std::uint32_t>& selected, std::size_t begin, std::size_t end,
                  std::vector<LocalityResult>& out, PluginCallStats& stats) {
    KindCache kinds(impl);
    EngineView view(impl, now, kinds, evidence);
    for (std::size_t k = begin; k < end; ++k) {
        view.reset(selected[k], true);
        CallFault fault = CallFault::none;
        sdk::Assessment& a = out[k].assessments[column];
        a = guarded_assess(plugin, view, now, budget, &fault);
        ++stats.calls;
        if (fault == CallFault::none) continue;
        ++stats.errors;
        if (fault == CallFault::over_budget) ++stats.slow;
        if (stats.first_failures.size() < PluginCallStats::failure_samples)
            stats.first_failures.emplace_back(selected[k], a.evidence.text);
    }
}

// Adds a later chunk's counts to `into`; chunks are merged in locality order, so the
// samples kept stay the first ones.
void merge(PluginCallStats& into, const PluginCallStats& chunk) {
    into.calls += chunk.calls;
    into.errors += chunk.errors;
    into.slow += chunk.slow;
    for (const auto& f : chunk.first_failures) {
        if (into.first_failures.size() >= PluginCallStats::failure_samples) break;
        into.first_failures.push_back(f);
    }
}

}  // namespace

struct Engine::Impl : Windows {
    std::vector<PluginCallStats> call_stats;  // of the last evaluate()

    // Assesses `selected` (locality indices) with every plugin into results ordered as
    // `selected`; records the calls in call_stats.
    std::vector<LocalityResult> run(const std::vector<LoadedPlugin>& plugins, TimePoint now,
                                    const std::vector<std::uint32_t>& selected,
                                    const EvaluationOptions& options);
};

Engine::Engine() : impl_(std::make_unique<Impl>()) {}
Engine::~Engine() = default;

void Engine::set_localities(const std::vector<Locality>& localities) {
    Impl& impl = *impl_;
    std::vector<LocalityData> next(localities.size());
    std::vector<LocalityMeta> next_meta(localities.size());
    std::unordered_map<std::string_view, std::uint32_t> next_by_id;
    next_by_id.reserve(localities.size());
    std::size_t points = 0;
    for (std::uint32_t i = 0; i < localities.size(); ++i) {
        LocalityMeta& m = next_meta[i];
        m.meta = localities[i];
        // A repeated id keeps its first entry in the index; later entries are unreachable by id.
        auto [pos, fresh] = next_by_id.emplace(m.meta.id, i);
        if (!fresh) continue;
        if (auto old = impl.by_id.find(m.meta.id); old != impl.by_id.end()) {
            LocalityData& from = impl.localities[old->second];
            next[i].series = std::move(from.series);
            next[i].points = std::move(from.points);
            points += next[i].points.size();
        }
    }
    for (auto& m : next_meta) {
        m.info = {m.meta.id, m.meta.name, m.meta.region, m.meta.population};
    }
    // next_by_id's keys view next_meta[i].meta.id, whose storage does not move with the vector.
    for (std::uint32_t i = 0; i < next.size(); ++i) {
        for (const auto& n : next_meta[i].meta.neighbours) {
            auto it = next_by_id.find(n);
            if (it == next_by_id.end() || it->second == i) continue;
            auto& list = next[i].neighbours;
            if (std::find(list.begin(), list.end(), it->second) == list.end()) {
                list.push_back(it->second);
                next_meta[it->second].dependents.push_back(i);
            }
        }
    }
    impl.localities = std::move(next);
    impl.metas = std::move(next_meta);
    impl.by_id = std::move(next_by_id);
    impl.points = points;
    impl.mark_all_dirty();
}

std::size_t Engine::locality_count() const { return impl_->localities.size(); }

const Locality& Engine::locality(std::size_t index) const { return impl_->metas.at(index).meta; }

std::optional<std::size_t> Engine::find(std::string_view id) const {
    auto it = impl_->by_id.find(id);
    if (it == impl_->by_id.end()) return std::nullopt;
    return it->second;
}

void Engine::apply(const std::vector<Observation>& rows) {
    Impl& impl = *impl_;
    // Rows usually come grouped (a file per locality, the store in key order), so the last
    // locality, kind and source are remembered to skip their hash look-ups.
    const std::string* last_locality = nullptr;
    std::uint32_t index = 0;
    const std::string* last_kind = nullptr;
    KindId kind = 0;
    const std::string* last_source = nullptr;
    std::string_view source;
    std::vector<std::uint32_t> touched;  // each locality once, through LocalityMeta::touched
    std::size_t seen = 0;
    for (const auto& row : rows) {
        if (++seen % 65536 == 0) keepalive::progress();  // a file of millions of rows
        if (!last_locality || row.locality != *last_locality) {
            auto loc = impl.by_id.find(row.locality);
            if (loc == impl.by_id.end()) continue;
            last_locality = &row.locality;
            index = loc->second;
        }
        if (!last_kind || row.kind != *last_kind) {
            kind = impl.intern_kind(row.kind);
            last_kind = &row.kind;
        }
        if (!last_source || row.source != *last_source) {
            source = impl.intern_source(row.source);
            last_source = &row.source;
        }
        if (impl.upsert(impl.localities[index], kind,
                        sdk::Point{row.time, row.value, row.weight, source}))
            ++impl.points;
        LocalityMeta& m = impl.metas[index];
        if (m.touched) continue;
        m.touched = true;
        touched.push_back(index);
        // Spill-over both ways: a neighbour's assessment may read this locality's data.
        impl.mark_dirty(index);
        for (std::uint32_t n : impl.localities[index].neighbours) impl.mark_dirty(n);
        for (std::uint32_t n : m.dependents) impl.mark_dirty(n);
    }
    for (std::uint32_t i : touched) impl.metas[i].touched = false;
}

std::size_t Engine::observation_count() const { return impl_->points; }

const std::vector<PluginCallStats>& Engine::last_call_stats() const { return impl_->call_stats; }

std::size_t Engine::dirty_count() const { return impl_->dirty_list.size(); }

void Engine::mark_all_dirty() { impl_->mark_all_dirty(); }

void Engine::clear_dirty() {
    for (std::uint32_t i : impl_->dirty_list) impl_->dirty_flag[i] = 0;
    impl_->dirty_list.clear();
}

std::vector<std::uint32_t> Engine::dirty() const { return impl_->dirty_list; }

void Engine::mark_dirty(std::size_t index) {
    if (index < impl_->localities.size()) impl_->mark_dirty(static_cast<std::uint32_t>(index));
}

std::vector<LocalityResult> Engine::Impl::run(const std::vector<LoadedPlugin>& plugins,
                                              TimePoint now,
                                              const std::vector<std::uint32_t>& selected,
                                              const EvaluationOptions& options) {
    std::vector<LocalityResult> out(selected.size());
    for (std::size_t k = 0; k < selected.size(); ++k) {
        out[k].locality = selected[k];
        out[k].assessments.resize(plugins.size());
    }
    unsigned workers = 1;
    if (selected.size() >= parallel_threshold)
        workers = std::clamp(std::thread::hardware_concurrency(), 1u, max_workers);
    // Static contiguous chunks: each worker writes only its own slots of `out` and its own
    // stats, merged in chunk order after the join.
    const std::size_t chunk = (selected.size() + workers - 1) / workers;
    std::vector<PluginCallStats> stats(plugins.size());
    // With nothing selected no plugin code runs, so the hooks are not called either.
    const std::size_t columns = selected.empty() ? 0 : plugins.size();
    for (std::size_t column = 0; column < columns; ++column) {
        const LoadedPlugin& plugin = plugins[column];
        if (options.before_plugin) options.before_plugin(plugin);
        std::vector<PluginCallStats> per_worker(workers);
        {
            std::vector<std::jthread> pool;
            pool.reserve(workers - 1);
            for (unsigned w = 1; w < workers; ++w) {
                std::size_t begin = std::min(selected.size(), w * chunk);
                std::size_t end = std::min(selected.size(), begin + chunk);
                if (begin == end) break;
                pool.emplace_back([&, begin, end, w] {
                    assess_range(*this, plugin, column, now, options.budget, options.evidence,
                                 selected, begin, end, out, per_worker[w]);
                });
            }
            assess_range(*this, plugin, column, now, options.budget, options.evidence, selected,
                         0, std::min(chunk, selected.size()), out, per_worker[0]);
        }  // jthreads join here
        for (const auto& s : per_worker) merge(stats[column], s);
    }
    if (columns > 0 && options.after_plugins) options.after_plugins();
    call_stats = std::move(stats);
    return out;
}

std::vector<LocalityResult> Engine::evaluate(const std::vector<LoadedPlugin>& plugins,
                                             TimePoint now, bool only_dirty,
                                             const EvaluationOptions& options) {
    Impl& impl = *impl_;
    std::vector<std::uint32_t> selected;
    if (only_dirty) {
        selected = impl.dirty_list;
        std::sort(selected.begin(), selected.end());
    } else {
        selected.resize(impl.localities.size());
        for (std::uint32_t i = 0; i < selected.size(); ++i) selected[i] = i;
    }
    auto out = impl.run(plugins, now, selected, options);
    if (only_dirty) {
        for (std::uint32_t i : selected) impl.dirty_flag[i] = 0;
        impl.dirty_list.clear();
    } else {
        std::fill(impl.dirty_flag.begin(), impl.dirty_flag.end(), 0);
        impl.dirty_list.clear();
    }
    return out;
}

std::vector<LocalityResult> Engine::assess(const std::vector<LoadedPlugin>& plugins,
                                           TimePoint now,
                                           const std::vector<std::uint32_t>& localities,
                                           const EvaluationOptions& options) {
    for (std::uint32_t i : localities)
        if (i >= impl_->localities.size())
            throw std::out_of_range("Engine::assess: no locality " + std::to_string(i));
    return impl_->run(plugins, now, localities, options);
}

}  // namespace ews
