#include "engine.hpp"

#include <ews/sdk/testing.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <tuple>
#include <string>
#include <thread>

using namespace ews;
using sdk::testing::day;

namespace {

using AssessFn = std::function<sdk::Assessment(const sdk::LocalityView&, sdk::TimePoint)>;

// An indicator whose assess() is the given function; the function must be thread-safe.
class FnIndicator final : public sdk::Indicator {
public:
    explicit FnIndicator(AssessFn fn) : fn_(std::move(fn)) {}
    sdk::Descriptor describe() const override { return {"fn", "1.0.0", {}, {}}; }
    void configure(const sdk::Params&) override {}
    sdk::Assessment assess(const sdk::LocalityView& view, sdk::TimePoint now) const override {
        return fn_(view, now);
    }

private:
    AssessFn fn_;
};

LoadedPlugin make_plugin(const std::string& name, AssessFn fn) {
    sdk::Descriptor d{name, "1.0.0", {}, {}};
    return LoadedPlugin{name + ".so", d, std::make_shared<FnIndicator>(std::move(fn))};
}

Locality place(std::string id, std::vector<std::string> neighbours = {}) {
    Locality l;
    l.id = id;
    l.name = "Name of " + id;
    l.region = "KE/KE-03";
    l.population = 1000;
    l.neighbours = std::move(neighbours);
    return l;
}

Observation obs(std::string locality, sdk::TimePoint t, std::string kind, double value,
                std::string source = "emis", double weight = 1) {
    return Observation{std::move(locality), t, std::move(kind), value, weight, std::move(source)};
}

// Runs `probe` on every locality's view at `now` (single-threaded: few localities).
void inspect(Engine& engine, sdk::TimePoint now,
             const std::function<void(const sdk::LocalityView&)>& probe) {
    auto p = make_plugin("probe", [&](const sdk::LocalityView& v, sdk::TimePoint) {
        probe(v);
        return sdk::Assessment{};
    });
    engine.evaluate({p}, now, false);
}

std::vector<std::string> ids_of(const Engine& engine, const std::vector<LocalityResult>& rs) {
    std::vector<std::string> out;
    for (const auto& r : rs) out.push_back(engine.locality(r.locality).id);
    return out;
}

}  // namespace

TEST_CASE("apply upserts by (kind, time, source) and keeps series ordered", "[engine]") {
    Engine e;
    e.set_localities({place("A")});
    e.apply({obs("A", day(2026, 1, 3), "k", 3), obs("A", day(2026, 1, 1), "k", 1),
             obs("A", day(2026, 1, 2), "k", 2, "zeta"), obs("A", day(2026, 1, 2), "k", 20, "alpha"),
             obs("nowhere", day(2026, 1, 1), "k", 9)});
    CHECK(e.observation_count() == 4);
    // Same key again: replaces value and weight, adds nothing.
    e.apply({obs("A", day(2026, 1, 2), "k", 7, "zeta", 0.5)});
    CHECK(e.observation_count() == 4);

    std::vector<std::tuple<sdk::TimePoint, double, double, std::string>> seen;
    inspect(e, day(2026, 2, 1), [&](const sdk::LocalityView& v) {
        for (const auto& p : v.series("k"))
            seen.emplace_back(p.time, p.value, p.weight, std::string(p.source));
    });
    REQUIRE(seen.size() == 4);
    CHECK(seen[0] == std::tuple{day(2026, 1, 1), 1.0, 1.0, std::string("emis")});
    CHECK(seen[1] == std::tuple{day(2026, 1, 2), 20.0, 1.0, std::string("alpha")});
    CHECK(seen[2] == std::tuple{day(2026, 1, 2), 7.0, 0.5, std::string("zeta")});
    CHECK(seen[3] == std::tuple{day(2026, 1, 3), 3.0, 1.0, std::string("emis")});
}

TEST_CASE("a view shows nothing after now, neighbours included", "[engine]") {
    Engine e;
    e.set_localities({place("A", {"B", "ghost"}), place("B", {"A"})});
    e.apply({obs("A", day(2026, 1, 1), "k", 1), obs("A", day(2026, 1, 10), "k", 2),
             obs("A", day(2026, 1, 20), "k", 3), obs("B", day(2026, 1, 5), "k", 10),
             obs("B", day(2026, 1, 15), "k", 11), obs("B", day(2026, 1, 16), "late", 1)});
    std::map<std::string, std::vector<double>> own, through_neighbour;
    std::map<std::string, std::size_t> neighbour_counts;
    std::map<std::string, std::size_t> neighbours_of_neighbour;
    inspect(e, day(2026, 1, 10), [&](const sdk::LocalityView& v) {
        std::string id(v.info().id);
        CHECK(v.now() == day(2026, 1, 10));
        for (const auto& p : v.series("k")) own[id].push_back(p.value);
        CHECK(v.series("late").empty());
        CHECK(v.series("unknown").empty());
        neighbour_counts[id] = v.neighbour_count();
        for (std::size_t i = 0; i < v.neighbour_count(); ++i) {
            const auto& n = v.neighbour(i);
            CHECK(n.now() == day(2026, 1, 10));
            neighbours_of_neighbour[id] += n.neighbour_count();
            for (const auto& p : n.series("k")) through_neighbour[id].push_back(p.value);
            CHECK(n.kinds("").size() == 1);
        }
    });
    // A point exactly at now is visible; later ones are not.
    CHECK(own["A"] == std::vector<double>{1, 2});
    CHECK(own["B"] == std::vector<double>{10});
    CHECK(through_neighbour["A"] == std::vector<double>{10});
    CHECK(through_neighbour["B"] == std::vector<double>{1, 2});
    // The unknown neighbour id is skipped; neighbours' views stop at one hop.
    CHECK(neighbour_counts["A"] == 1);
    CHECK(neighbours_of_neighbour["A"] == 0);
    CHECK(neighbours_of_neighbour["B"] == 0);
}

TEST_CASE("view exposes locality metadata", "[engine]") {
    Engine e;
    e.set_localities({place("A")});
    inspect(e, day(2026, 1, 1), [&](const sdk::LocalityView& v) {
        CHECK(v.info().id == "A");
        CHECK(v.info().name == "Name of A");
        CHECK(v.info().region == "KE/KE-03");
        CHECK(v.info().population == 1000.0);
    });
}

TEST_CASE("kinds lists visible kinds with a prefix, sorted", "[engine]") {
    Engine e;
    e.set_localities({place("A")});
    e.apply({obs("A", day(2026, 1, 1), "incident.b", 1), obs("A", day(2026, 1, 1), "incident.a", 1),
             obs("A", day(2026, 3, 1), "incident.future", 1),
             obs("A", day(2026, 1, 1), "school.enrolled", 1)});
    std::vector<std::string> incidents, all;
    inspect(e, day(2026, 2, 1), [&](const sdk::LocalityView& v) {
        for (auto k : v.kinds("incident.")) incidents.emplace_back(k);
        for (auto k : v.kinds("")) all.emplace_back(k);
    });
    CHECK(incidents == std::vector<std::string>{"incident.a", "incident.b"});
    CHECK(all == std::vector<std::string>{"incident.a", "incident.b", "school.enrolled"});
}

TEST_CASE("apply marks the locality and its neighbours dirty", "[engine]") {
    Engine e;
    // B lists A; D lists C only one way (C does not list D), E is unrelated.
    e.set_localities({place("A", {"B"}), place("B", {"A"}), place("C"), place("D", {"C"}),
                      place("E")});
    CHECK(e.dirty_count() == 5);
    auto counting = make_plugin("c", [](const sdk::LocalityView&, sdk::TimePoint) {
        return sdk::Assessment{};
    });
    CHECK(e.evaluate({counting}, day(2026, 1, 1), true).size() == 5);
    CHECK(e.dirty_count() == 0);
    CHECK(e.evaluate({counting}, day(2026, 1, 1), true).empty());

    e.apply({obs("A", day(2026, 1, 1), "k", 1)});
    CHECK(e.dirty_count() == 2);
    auto rs = e.evaluate({counting}, day(2026, 1, 1), true);
    CHECK(ids_of(e, rs) == std::vector<std::string>{"A", "B"});
    CHECK(e.dirty_count() == 0);

    // D's view shows C, so new data in C makes D dirty too.
    e.apply({obs("C", day(2026, 1, 1), "k", 1), obs("nowhere", day(2026, 1, 1), "k", 1)});
    rs = e.evaluate({counting}, day(2026, 1, 1), true);
    CHECK(ids_of(e, rs) == std::vector<std::string>{"C", "D"});

    e.mark_all_dirty();
    CHECK(e.dirty_count() == 5);
    e.evaluate({counting}, day(2026, 1, 1), false);
    CHECK(e.dirty_count() == 0);
}

TEST_CASE("set_localities keeps the data of localities that stay", "[engine]") {
    Engine e;
    e.set_localities({place("A"), place("B"), place("C")});
    e.apply({obs("A", day(2026, 1, 1), "k", 1), obs("B", day(2026, 1, 1), "k", 2),
             obs("B", day(2026, 1, 2), "k", 3), obs("C", day(2026, 1, 1), "k", 4)});
    REQUIRE(e.observation_count() == 4);
    e.evaluate({}, day(2026, 1, 1), false);

    e.set_localities({place("C"), place("New", {"C"}), place("A")});
    CHECK(e.locality_count() == 3);
    CHECK(e.dirty_count() == 3);
    CHECK(e.find("A") == 2u);
    CHECK(e.find("B") == std::nullopt);
    CHECK(e.locality(1).id == "New");
    CHECK(e.observation_count() == 2);  // B's two points were dropped with B
    std::map<std::string, std::vector<double>> values;
    std::map<std::string, std::vector<double>> neighbour_values;
    inspect(e, day(2026, 2, 1), [&](const sdk::LocalityView& v) {
        auto& mine = values[std::string(v.info().id)];
        for (const auto& p : v.series("k")) mine.push_back(p.value);
        for (std::size_t i = 0; i < v.neighbour_count(); ++i)
            for (const auto& p : v.neighbour(i).series("k"))
                neighbour_values[std::string(v.info().id)].push_back(p.value);
    });
    CHECK(values["A"] == std::vector<double>{1});
    CHECK(values["C"] == std::vector<double>{4});
    CHECK(values["New"].empty());
    CHECK(neighbour_values["New"] == std::vector<double>{4});
}

TEST_CASE("evaluate assesses every locality with every plugin, in order", "[engine]") {
    Engine e;
    e.set_localities({place("A"), place("B"), place("C")});
    e.apply({obs("B", day(2026, 1, 1), "k", 5)});
    std::atomic<int> calls{0};
    auto sum = make_plugin("sum", [&](const sdk::LocalityView& v, sdk::TimePoint) {
        ++calls;
        sdk::Assessment a;
        a.status = sdk::Status::ok;
        a.confidence = 1;
        for (const auto& p : v.series("k")) a.score += p.value / 10;
        a.evidence.text = std::string(v.info().id);
        return a;
    });
    auto other = make_plugin("other", [&](const sdk::LocalityView&, sdk::TimePoint) {
        ++calls;
        sdk::Assessment a;
        a.evidence.text = "other";
        return a;
    });
    auto rs = e.evaluate({sum, other}, day(2026, 1, 1), false);
    CHECK(calls == 6);
    REQUIRE(ids_of(e, rs) == std::vector<std::string>{"A", "B", "C"});
    for (const auto& r : rs) {
        REQUIRE(r.assessments.size() == 2);
        CHECK(r.assessments[0].evidence.text == e.locality(r.locality).id);
        CHECK(r.assessments[1].evidence.text == "other");
    }
    CHECK(rs[1].assessments[0].score == Approx(0.5));
    CHECK(rs[0].assessments[0].score == 0);

    // Only B changes: only B is assessed again.
    calls = 0;
    e.apply({obs("B", day(2026, 1, 1), "k", 8)});
    rs = e.evaluate({sum, other}, day(2026, 1, 1), true);
    CHECK(calls == 2);
    REQUIRE(ids_of(e, rs) == std::vector<std::string>{"B"});
    CHECK(rs[0].assessments[0].score == Approx(0.8));
}

TEST_CASE("a throwing plugin gives an error for that assessment only", "[engine]") {
    Engine e;
    e.set_localities({place("A"), place("B")});
    auto good = make_plugin("good", [](const sdk::LocalityView&, sdk::TimePoint) {
        sdk::Assessment a;
        a.status = sdk::Status::ok;
        a.score = 0.25;
        a.confidence = 1;
        return a;
    });
    auto bad = make_plugin("bad", [](const sdk::LocalityView& v, sdk::TimePoint) {
        if (v.info().id == "B") throw std::runtime_error("boom");
        sdk::Assessment a;
        a.status = sdk::Status::ok;
        a.score = 0.5;
        a.confidence = 1;
        return a;
    });
    auto rs = e.evaluate({good, bad, good}, day(2026, 1, 1), false);
    REQUIRE(rs.size() == 2);
    CHECK(rs[0].assessments[1].status == sdk::Status::ok);
    CHECK(rs[0].assessments[1].score == 0.5);
    CHECK(rs[1].assessments[1].status == sdk::Status::error);
    CHECK_THAT(rs[1].assessments[1].evidence.text, Catch::Contains("boom"));
    for (const auto& r : rs) {
        CHECK(r.assessments[0].status == sdk::Status::ok);
        CHECK(r.assessments[2].score == 0.25);
    }
}

TEST_CASE("multi-threaded evaluation gives the single-threaded results", "[engine]") {
    constexpr int n = 5000;
    std::vector<Locality> places;
    std::vector<Observation> rows;
    for (int i = 0; i < n; ++i) {
        std::string id = "L" + std::to_string(i);
        places.push_back(place(id, {"L" + std::to_string((i + 1) % n),
                                    "L" + std::to_string((i + n - 1) % n)}));
        for (int w = 0; w < 1 + i % 7; ++w)
            rows.push_back(obs(id, day(2026, 1, 1) + std::chrono::days(7 * w), "k",
                               (i * 31 + w * 7) % 13));
    }
    Engine e;
    e.set_localities(places);
    e.apply(rows);
    // Depends on the locality's own data and its neighbours', so a wrong view shows up.
    auto plugin = make_plugin("mix", [](const sdk::LocalityView& v, sdk::TimePoint now) {
        double own = 0, around = 0;
        for (const auto& p : v.series("k")) own += p.value;
        for (std::size_t i = 0; i < v.neighbour_count(); ++i)
            for (const auto& p : v.neighbour(i).series("k")) around += p.value;
        sdk::Assessment a;
        a.status = sdk::Status::ok;
        a.score = std::fmod(own * 0.37 + around * 0.11, 1.0);
        a.confidence = 1.0 / (1.0 + static_cast<double>(v.series("k").size()));
        if (!v.series("k").empty()) a.newest = v.series("k").back().time;
        a.evidence.text = std::string(v.info().id) + ":" + std::to_string(own);
        (void)now;
        return a;
    });
    const auto now = day(2026, 1, 20);
    auto all = e.evaluate({plugin}, now, false);  // >= 256 localities: fans out
    REQUIRE(all.size() == n);
    for (int i = 0; i < n; ++i) REQUIRE(all[i].locality == static_cast<std::size_t>(i));

    // Re-assess in small dirty batches (< 256 localities: one thread). Re-applying a point
    // with its own value marks the locality dirty without changing any data.
    int compared = 0;
    for (int start = 0; start < n; start += 40) {
        std::vector<Observation> touch;
        for (int i = start; i < std::min(n, start + 40); ++i)
            touch.push_back(obs("L" + std::to_string(i), day(2026, 1, 1), "k", (i * 31) % 13));
        e.apply(touch);
        REQUIRE(e.dirty_count() < 256);
        for (const auto& r : e.evaluate({plugin}, now, true)) {
            const auto& a = r.assessments.at(0);
            const auto& b = all[r.locality].assessments.at(0);
            REQUIRE(a.score == b.score);
            REQUIRE(a.confidence == b.confidence);
            REQUIRE(a.newest == b.newest);
            REQUIRE(a.evidence.text == b.evidence.text);
            ++compared;
        }
    }
    CHECK(compared >= n);
    CHECK(e.observation_count() == rows.size());
}

TEST_CASE("evaluate runs plugin after plugin, with the hooks around each", "[engine]") {
    // Enough localities to fan out over worker threads: every call into one plugin must
    // still fall between its before_plugin and the next plugin's.
    std::vector<Locality> places;
    for (int i = 0; i < 600; ++i) places.push_back(place("L" + std::to_string(i)));
    Engine e;
    e.set_localities(places);

    std::mutex m;
    std::vector<std::string> trace;  // "before:<p>", "call:<p>" (collapsed), "after"
    auto note = [&](const std::string& what) {
        std::lock_guard lock(m);
        if (trace.empty() || trace.back() != what) trace.push_back(what);
    };
    auto calling = [&](const std::string& name) {
        return make_plugin(name, [&, name](const sdk::LocalityView&, sdk::TimePoint) {
            note("call:" + name);
            return sdk::Assessment{};
        });
    };
    EvaluationOptions options;
    options.before_plugin = [&](const LoadedPlugin& p) { note("before:" + p.name()); };
    options.after_plugins = [&] { note("after"); };
    auto rs = e.evaluate({calling("one"), calling("two")}, day(2026, 1, 1), false, options);
    CHECK(rs.size() == 600);
    CHECK(trace == std::vector<std::string>{"before:one", "call:one", "before:two", "call:two",
                                            "after"});

    // Nothing selected: no plugin code runs, so no hook is called either.
    trace.clear();
    CHECK(e.evaluate({calling("one")}, day(2026, 1, 1), true, options).empty());
    CHECK(trace.empty());
}

TEST_CASE("evaluate counts each plugin's failed calls and keeps the first few", "[engine]") {
    std::vector<Locality> places;
    for (int i = 0; i < 400; ++i) places.push_back(place("L" + std::to_string(1000 + i)));
    Engine e;
    e.set_localities(places);
    auto good = make_plugin("good", [](const sdk::LocalityView&, sdk::TimePoint) {
        sdk::Assessment a;
        a.status = sdk::Status::error;  // the plugin's own verdict on the data: not a fault
        return a;
    });
    // Fails on every third locality, across every worker's chunk.
    auto flaky = make_plugin("flaky", [](const sdk::LocalityView& v, sdk::TimePoint) {
        const int n = std::stoi(std::string(v.info().id.substr(1)));
        if (n % 3 == 0) throw std::runtime_error("bad " + std::to_string(n));
        sdk::Assessment a;
        if (n % 3 == 1) a.score = std::numeric_limits<double>::infinity();
        return a;
    });
    e.evaluate({good, flaky}, day(2026, 1, 1), false);
    const auto& stats = e.last_call_stats();
    REQUIRE(stats.size() == 2);
    CHECK(stats[0].calls == 400);
    CHECK(stats[0].errors == 0);
    CHECK(stats[0].first_failures.empty());
    CHECK(stats[1].calls == 400);
    CHECK(stats[1].errors == 267);  // n % 3 == 0 or 1 for n in 1000..1399
    CHECK(stats[1].slow == 0);
    REQUIRE(stats[1].first_failures.size() == PluginCallStats::failure_samples);
    // The first ones in locality order: L1000 (n%3==1), L1002 (throws), L1003, L1004, ...
    CHECK(e.locality(stats[1].first_failures[0].first).id == "L1000");
    CHECK_THAT(stats[1].first_failures[0].second, Catch::Contains("score outside [0,1]"));
    CHECK(e.locality(stats[1].first_failures[1].first).id == "L1002");
    CHECK(stats[1].first_failures[1].second == "plugin threw: bad 1002");
    CHECK(e.locality(stats[1].first_failures[4].first).id == "L1006");
}

TEST_CASE("evaluate holds each call to the budget", "[engine]") {
    Engine e;
    e.set_localities({place("A"), place("B")});
    auto slow_on_b = make_plugin("slow", [](const sdk::LocalityView& v, sdk::TimePoint) {
        if (v.info().id == "B") std::this_thread::sleep_for(std::chrono::milliseconds(30));
        sdk::Assessment a;
        a.status = sdk::Status::ok;
        a.score = 0.5;
        a.confidence = 1;
        return a;
    });
    EvaluationOptions options;
    options.budget = std::chrono::milliseconds(10);
    auto rs = e.evaluate({slow_on_b}, day(2026, 1, 1), false, options);
    REQUIRE(rs.size() == 2);
    CHECK(rs[0].assessments[0].score == 0.5);
    CHECK(rs[1].assessments[0].status == sdk::Status::error);
    CHECK_THAT(rs[1].assessments[0].evidence.text, Catch::Contains("over its budget of 10 ms"));
    const auto& stats = e.last_call_stats().at(0);
    CHECK(stats.calls == 2);
    CHECK(stats.errors == 1);
    CHECK(stats.slow == 1);
}

TEST_CASE("every series reads back as a plain model of the upserts, whatever their order",
          "[engine]") {
    // A locality keeps all its series in one block (kind name order, each by time and
    // source), so a point added to an early series moves the later ones: checked against a
    // map of every key, over rows of several kinds arriving in random order and batches,
    // with repeated keys, new kinds between existing ones, and cuts at several times.
    using Key = std::tuple<std::string, sdk::TimePoint, std::string>;  // kind, time, source
    std::map<std::string, std::map<Key, double>> model;                // by locality
    Engine e;
    e.set_localities({place("A", {"B"}), place("B", {"A"}), place("C")});
    std::mt19937_64 rng(11);
    const char* kinds[] = {"m.kind", "a.kind", "z.kind", "f.kind", "incident.x", "incident.b"};
    const char* sources[] = {"s1", "s2", "s3"};
    const char* localities[] = {"A", "B", "C"};
    for (int batch = 0; batch < 40; ++batch) {
        std::vector<Observation> rows;
        for (int i = 0; i < 25; ++i) {
            Observation o = obs(localities[rng() % 3], day(2026, 1, 1) + std::chrono::days{int(rng() % 60)},
                                kinds[rng() % (batch < 10 ? 3 : 6)], double(rng() % 1000), sources[rng() % 3]);
            model[o.locality][{o.kind, o.time, o.source}] = o.value;  // a later row wins
            rows.push_back(std::move(o));
        }
        e.apply(rows);
    }
    std::size_t total = 0;
    for (const auto& [l, points] : model) total += points.size();
    CHECK(e.observation_count() == total);

    for (const auto now : {day(2026, 1, 1), day(2026, 1, 20), day(2026, 3, 30)}) {
        std::map<std::string, std::map<Key, double>> seen;
        std::map<std::string, std::vector<std::string>> listed;
        inspect(e, now, [&](const sdk::LocalityView& v) {
            const std::string id(v.info().id);
            for (auto kind : v.kinds("")) {
                listed[id].emplace_back(kind);
                const auto points = v.series(kind);
                CHECK(std::is_sorted(points.begin(), points.end(), [](const auto& a, const auto& b) {
                    return a.time < b.time || (a.time == b.time && a.source < b.source);
                }));
                for (const auto& p : points)
                    seen[id][{std::string(kind), p.time, std::string(p.source)}] = p.value;
            }
        });
        for (const char* id : localities) {
            std::map<Key, double> expected;
            std::set<std::string> kinds_expected;
            for (const auto& [key, value] : model[id]) {
                if (std::get<1>(key) > now) continue;
                expected[key] = value;
                kinds_expected.insert(std::get<0>(key));
            }
            CHECK(seen[id] == expected);
            CHECK(listed[id] == std::vector<std::string>(kinds_expected.begin(), kinds_expected.end()));
        }
    }
}
