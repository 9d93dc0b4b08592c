// ews/sdk/testing.hpp: an in-memory LocalityView for testing plugins without the daemon.
//
//   ews::sdk::testing::MemoryLocality loc{"L1", "Village", "KE/KE-03", 1200.0};
//   loc.add("school.enrolled", ews::sdk::testing::day(2026, 1, 10), 300);
//   auto a = indicator.assess(loc.view(now), now);
#pragma once

#include <ews/sdk/indicator.hpp>

#include <algorithm>
#include <deque>

namespace ews::sdk::testing {

// Returns: midnight UTC of the given civil date.
inline TimePoint day(int y, unsigned m, unsigned d) {
    return TimePoint{std::chrono::sys_days{std::chrono::year{y} / std::chrono::month{m} /
                                           std::chrono::day{d}}};
}

class MemoryLocality {
public:
    MemoryLocality(std::string id, std::string name, std::string region,
                   std::optional<double> population = std::nullopt)
        : id_(std::move(id)), name_(std::move(name)), region_(std::move(region)),
          population_(population) {}

    MemoryLocality& add(const std::string& kind, TimePoint t, double value, double weight = 1,
                        const std::string& source = "test") {
        sources_.push_back(source);
        auto& s = series_[kind];
        Point p{t, value, weight, sources_.back()};
        auto at = std::upper_bound(s.begin(), s.end(), p, [](const Point& a, const Point& b) {
            return a.time < b.time || (a.time == b.time && a.source < b.source);
        });
        s.insert(at, p);
        return *this;
    }
    MemoryLocality& add_neighbour(const MemoryLocality& n) {
        neighbours_.push_back(&n);
        return *this;
    }

    class View final : public LocalityView {
    public:
        // Neighbours' own views show no neighbours (one hop, as the daemon's spill-over needs).
        // With `evidence` false the view asks for no evidence (wants_evidence()), as the
        // daemon does when it assesses every locality.
        View(const MemoryLocality& loc, TimePoint now, bool with_neighbours = true,
             bool evidence = true)
            : loc_(loc), now_(now), evidence_(evidence) {
            info_ = {loc.id_, loc.name_, loc.region_, loc.population_};
            if (with_neighbours)
                for (auto* n : loc.neighbours_)
                    neighbours_.push_back(std::make_unique<View>(*n, now, false, evidence));
        }
        const LocalityInfo& info() const override { return info_; }
        TimePoint now() const override { return now_; }
        std::span<const Point> series(std::string_view kind) const override {
            auto it = loc_.series_.find(std::string(kind));
            if (it == loc_.series_.end()) return {};
            const auto& v = it->second;
            auto end = std::upper_bound(v.begin(), v.end(), now_,
                                        [](TimePoint t, const Point& p) { return t < p.time; });
            return {v.data(), static_cast<std::size_t>(end - v.begin())};
        }
        std::vector<std::string_view> kinds(std::string_view prefix) const override {
            std::vector<std::string_view> out;
            for (const auto& [k, v] : loc_.series_)
                if (k.starts_with(prefix) && !series(k).empty()) out.push_back(k);
            return out;
        }
        std::size_t neighbour_count() const override { return neighbours_.size(); }
        const LocalityView& neighbour(std::size_t i) const override { return *neighbours_.at(i); }
        bool wants_evidence() const override { return evidence_; }

    private:
        const MemoryLocality& loc_;
        TimePoint now_;
        bool evidence_ = true;
        LocalityInfo info_;
        std::vector<std::unique_ptr<View>> neighbours_;
    };

    // Returns: a view cut at `now`; it refers to this object, which must outlive it. With
    // `evidence` false the view asks for no evidence (see LocalityView::wants_evidence).
    View view(TimePoint now, bool evidence = true) const {
        return View(*this, now, true, evidence);
    }

private:
    std::string id_, name_, region_;
    std::optional<double> population_;
    std::map<std::string, std::vector<Point>> series_;
    std::deque<std::string> sources_;
    std::vector<const MemoryLocality*> neighbours_;
};

}  // namespace ews::sdk::testing
