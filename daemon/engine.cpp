#include "engine.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>

// Layout, chosen for evaluation speed and memory close to the raw observation bytes:
// - kinds are interned to small integer ids; each locality holds a short list of
//   (kind id, points) pairs, and a locality rarely has more than a handful of kinds, so a
//   linear scan of that list beats any map; the list is kept in kind name order, so
//   LocalityView::kinds() needs no sort;
// - sources are interned in a node-stable set, so sdk::Point::source is a string_view that
//   stays valid for the engine's lifetime and costs no allocation per point;
// - every series is a contiguous vector sorted by (time, source), so a view cut at `now` is
//   one upper_bound and the span handed to a plugin is the vector's own storage.
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

// Kinds are few, and a kind name is hashed every time a plugin opens a series (tens of times
// per locality), so this hash reads the length and at most the first and last 8 bytes,
// which tell kind names apart ("incident.abduction", "incident.armed_violence") at a
// fraction of the cost of hashing every byte. Names agreeing there only share a bucket: the
// map still compares whole keys.
struct KindHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
        std::uint64_t head = 0, tail = 0;
        if (s.size() >= 8) {
            std::memcpy(&head, s.data(), 8);
            std::memcpy(&tail, s.data() + s.size() - 8, 8);
        } else if (!s.empty()) {  // an empty view's data() may be null
            std::memcpy(&head, s.data(), s.size());
        }
        std::uint64_t h = (head ^ (tail * 0x9e3779b97f4a7c15ULL)) + s.size();
        h ^= h >> 29;
        h *= 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 32;
        return static_cast<std::size_t>(h);
    }
};

using KindId = std::uint32_t;

struct Series {
    KindId kind = 0;
    std::vector<sdk::Point> points;  // ascending by (time, source)
};

struct LocalityData {
    Locality meta;
    sdk::LocalityInfo info;              // views into `meta`; set once `meta` has its final place
    std::vector<std::uint32_t> neighbours;  // indices of known neighbours, no self, no repeats
    std::vector<std::uint32_t> dependents;  // localities that list this one as a neighbour
    std::vector<Series> series;             // in kind name order (kinds() relies on it)
    bool touched = false;  // scratch mark of Engine::apply, false between calls
};

bool point_before(const sdk::Point& a, sdk::TimePoint time, std::string_view source) {
    return a.time < time || (a.time == time && a.source < source);
}

// Evaluation below this many localities stays on the calling thread: starting workers would
// cost more than it saves.
constexpr std::size_t parallel_threshold = 256;
constexpr unsigned max_workers = 8;

// Appends with a growth of 1/4 instead of the vector's doubling: spare capacity stays within
// a quarter of the points held (doubling could leave resident memory near twice the points,
// over the memory budget), and appends stay amortised O(1).
void grow_for_one_more(std::vector<sdk::Point>& points) {
    const std::size_t n = points.size();
    if (n < points.capacity()) return;
    points.reserve(n + n / 4 + 4);
}

// Engine's state. At namespace scope (Engine::Impl derives from it) so the view and the
// workers below can name it.
struct Windows {
    std::vector<LocalityData> localities;
    std::unordered_map<std::string_view, std::uint32_t> by_id;  // views into localities[i].meta.id

    std::unordered_map<std::string, KindId, KindHash, std::equal_to<>> kind_ids;
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
        for (const auto& s : localities[index].series) {
            if (s.kind != kind) continue;
            auto end = std::upper_bound(
                s.points.begin(), s.points.end(), now,
                [](sdk::TimePoint t, const sdk::Point& p) { return t < p.time; });
            return {s.points.data(), static_cast<std::size_t>(end - s.points.begin())};
        }
        return {};
    }

    // Returns: true when a point was added, false when one with the same key was replaced.
    bool upsert(std::vector<sdk::Point>& points, const sdk::Point& p) {
        if (points.empty() || point_before(points.back(), p.time, p.source)) {
            grow_for_one_more(points);
            points.push_back(p);
            return true;
        }
        auto it = std::lower_bound(points.begin(), points.end(), p,
                                   [](const sdk::Point& a, const sdk::Point& b) {
                                       return point_before(a, b.time, b.source);
                                   });
        if (it != points.end() && it->time == p.time && it->source == p.source) {
            it->value = p.value;
            it->weight = p.weight;
            return false;
        }
        const auto at = it - points.begin();
        grow_for_one_more(points);
        points.insert(points.begin() + at, p);
        return true;
    }
};

// A locality's data cut at `now`. Neighbours' views carry no neighbours of their own (one
// hop), so a plugin can never walk a cycle of the neighbour graph.
class EngineView final : public sdk::LocalityView {
public:
    EngineView(const Windows& impl, sdk::TimePoint now) : impl_(impl), now_(now) {}

    // Points this view at locality `index`; with_neighbours builds the one-hop neighbours.
    // Reuses the neighbour storage, so one view per worker serves every locality.
    void reset(std::uint32_t index, bool with_neighbours) {
        index_ = index;
        neighbours_.clear();
        if (!with_neighbours) return;
        for (std::uint32_t n : impl_.localities[index].neighbours) {
            neighbours_.emplace_back(impl_, now_);
            neighbours_.back().reset(n, false);
        }
    }

    const sdk::LocalityInfo& info() const override { return impl_.localities[index_].info; }
    sdk::TimePoint now() const override { return now_; }

    std::span<const sdk::Point> series(std::string_view kind) const override {
        auto id = impl_.find_kind(kind);
        if (!id) return {};
        return impl_.visible(index_, *id, now_);
    }

    std::vector<std::string_view> kinds(std::string_view prefix) const override {
        // A locality's series are in kind name order, so `out` is sorted as it is built.
        const auto& series = impl_.localities[index_].series;
        std::vector<std::string_view> out;
        out.reserve(series.size());
        for (const auto& s : series) {
            const std::string& name = *impl_.kind_names[s.kind];
            if (name.starts_with(prefix) && !s.points.empty() && s.points.front().time <= now_)
                out.push_back(name);
        }
        return out;
    }

    std::size_t neighbour_count() const override { return neighbours_.size(); }
    const sdk::LocalityView& neighbour(std::size_t i) const override { return neighbours_.at(i); }

private:
    const Windows& impl_;
    sdk::TimePoint now_;
    std::uint32_t index_ = 0;
    std::vector<EngineView> neighbours_;
};

// Assesses selected[begin, end) with one plugin into column `column` of `out`, counting
// faults into `stats` (this worker's own).
void assess_range(const Windows& impl, const LoadedPlugin& plugin, std::size_t column,
                  sdk::TimePoint now, std::chrono::milliseconds budget,
                  const std::vector<std::uint32_t>& selected, std::size_t begin, std::size_t end,
                  std::vector<LocalityResult>& out, PluginCallStats& stats) {
    EngineView view(impl, now);
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
};

Engine::Engine() : impl_(std::make_unique<Impl>()) {}
Engine::~Engine() = default;

void Engine::set_localities(const std::vector<Locality>& localities) {
    Impl& impl = *impl_;
    std::vector<LocalityData> next(localities.size());
    std::unordered_map<std::string_view, std::uint32_t> next_by_id;
    next_by_id.reserve(localities.size());
    std::size_t points = 0;
    for (std::uint32_t i = 0; i < localities.size(); ++i) {
        LocalityData& d = next[i];
        d.meta = localities[i];
        // A repeated id keeps its first entry in the index; later entries are unreachable by id.
        auto [pos, fresh] = next_by_id.emplace(d.meta.id, i);
        if (!fresh) continue;
        if (auto old = impl.by_id.find(d.meta.id); old != impl.by_id.end()) {
            d.series = std::move(impl.localities[old->second].series);
            for (const auto& s : d.series) points += s.points.size();
        }
    }
    for (auto& d : next) {
        d.info = {d.meta.id, d.meta.name, d.meta.region, d.meta.population};
    }
    // next_by_id's keys view next[i].meta.id, whose storage does not move with the vector.
    for (std::uint32_t i = 0; i < next.size(); ++i) {
        for (const auto& n : next[i].meta.neighbours) {
            auto it = next_by_id.find(n);
            if (it == next_by_id.end() || it->second == i) continue;
            auto& list = next[i].neighbours;
            if (std::find(list.begin(), list.end(), it->second) == list.end()) {
                list.push_back(it->second);
                next[it->second].dependents.push_back(i);
            }
        }
    }
    impl.localities = std::move(next);
    impl.by_id = std::move(next_by_id);
    impl.points = points;
    impl.mark_all_dirty();
}

std::size_t Engine::locality_count() const { return impl_->localities.size(); }

const Locality& Engine::locality(std::size_t index) const {
    return impl_->localities.at(index).meta;
}

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
    std::vector<std::uint32_t> touched;  // each locality once, through LocalityData::touched
    for (const auto& row : rows) {
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
        LocalityData& d = impl.localities[index];
        auto s = std::find_if(d.series.begin(), d.series.end(),
                              [kind](const Series& x) { return x.kind == kind; });
        if (s == d.series.end()) {
            const std::string& name = *impl.kind_names[kind];
            s = std::find_if(d.series.begin(), d.series.end(), [&](const Series& x) {
                return name < *impl.kind_names[x.kind];
            });
            s = d.series.insert(s, Series{kind, {}});
        }
        if (impl.upsert(s->points, sdk::Point{row.time, row.value, row.weight, source}))
            ++impl.points;
        if (d.touched) continue;
        d.touched = true;
        touched.push_back(index);
        // Spill-over both ways: a neighbour's assessment may read this locality's data.
        impl.mark_dirty(index);
        for (std::uint32_t n : d.neighbours) impl.mark_dirty(n);
        for (std::uint32_t n : d.dependents) impl.mark_dirty(n);
    }
    for (std::uint32_t i : touched) impl.localities[i].touched = false;
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
                    assess_range(impl, plugin, column, now, options.budget, selected, begin, end,
                                 out, per_worker[w]);
                });
            }
            assess_range(impl, plugin, column, now, options.budget, selected, 0,
                         std::min(chunk, selected.size()), out, per_worker[0]);
        }  // jthreads join here
        for (const auto& s : per_worker) merge(stats[column], s);
    }
    if (columns > 0 && options.after_plugins) options.after_plugins();
    impl.call_stats = std::move(stats);

    if (only_dirty) {
        for (std::uint32_t i : selected) impl.dirty_flag[i] = 0;
        impl.dirty_list.clear();
    } else {
        std::fill(impl.dirty_flag.begin(), impl.dirty_flag.end(), 0);
        impl.dirty_list.clear();
    }
    return out;
}

}  // namespace ews
