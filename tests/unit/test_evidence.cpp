// Evidence on demand (SDK 1.1, LocalityView::wants_evidence): the daemon assesses every
// locality without evidence, then asks again, with evidence, for the localities that have an
// event. Checks that the shipped plugins answer the same either way, that the engine's views
// and Engine::assess carry the request, and that add_evidence moves only agreeing evidence.
#include "community_incidents/community_incidents.hpp"
#include "group_presence/group_presence.hpp"
#include "school_dropout/school_dropout.hpp"

#include "engine.hpp"
#include "scorer.hpp"

#include <ews/sdk/testing.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

using namespace ews;
using sdk::testing::day;
using sdk::testing::MemoryLocality;

namespace {

// Equal, counting two NaNs as equal.
bool same(double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); }

// A random locality: school counts, presence reports from a few teams, incident counts of
// several categories (one a sentinel by default), at random days over three years, some
// after `late` so that cuts at earlier times hide them.
void fill(MemoryLocality& loc, std::mt19937_64& rng, bool sparse) {
    const auto start = day(2023, 1, 1);
    auto at = [&](int max_day) { return start + std::chrono::days{int(rng() % max_day)}; };
    const int n = sparse ? int(rng() % 4) : 10 + int(rng() % 60);
    const char* incidents[] = {"incident.abduction", "incident.armed_violence",
                               "incident.recruitment_attempt", "incident.child_exploitation"};
    for (int i = 0; i < n; ++i) {
        switch (rng() % 5) {
            case 0: loc.add("school.enrolled", at(1100), double(rng() % 900), 1, "emis"); break;
            case 1: loc.add("school.dropouts", at(1100), double(rng() % 15), 1, "emis"); break;
            case 2:
                loc.add(rng() % 4 ? "presence.report" : "presence.recruitment_activity", at(1100),
                        double(rng() % 101) / 100, rng() % 3 ? 1.0 : 0.5,
                        "team-" + std::to_string(rng() % 3));
                break;
            default:
                loc.add(incidents[rng() % 4], at(1100), double(rng() % 7), 1,
                        "monitor-" + std::to_string(rng() % 2));
        }
    }
}

void require_same_but_evidence(const sdk::Assessment& with, const sdk::Assessment& without) {
    CHECK(with.status == without.status);
    CHECK(same(with.score, without.score));
    CHECK(same(with.confidence, without.confidence));
    CHECK(with.newest == without.newest);
    CHECK(with.floor == without.floor);
}

}  // namespace

TEST_CASE("the shipped plugins give the same assessment with and without evidence",
          "[evidence]") {
    plugins::SchoolDropout school;
    plugins::CommunityIncidents incidents;
    plugins::GroupPresence presence;
    school.configure({});
    incidents.configure({});
    presence.configure({});
    const std::vector<const sdk::Indicator*> all{&school, &incidents, &presence};

    std::mt19937_64 rng(20261203);
    constexpr int localities = 300;
    std::vector<std::unique_ptr<MemoryLocality>> locs;
    for (int i = 0; i < localities; ++i) {
        locs.push_back(std::make_unique<MemoryLocality>("L" + std::to_string(i), "Locality",
                                                        "KE/KE-03", 1500.0));
        fill(*locs.back(), rng, i % 7 == 0);
    }
    for (int i = 0; i < localities; ++i) {  // a ring with a chord: 2 or 3 neighbours each
        locs[i]->add_neighbour(*locs[(i + 1) % localities]);
        locs[i]->add_neighbour(*locs[(i + localities - 1) % localities]);
        if (i % 3 == 0) locs[i]->add_neighbour(*locs[(i + 37) % localities]);
    }
    std::size_t compared = 0, with_text = 0, ok = 0;
    for (const auto now : {day(2024, 6, 1), day(2025, 2, 14), day(2026, 1, 5)}) {
        for (const auto& loc : locs) {
            for (const sdk::Indicator* plugin : all) {
                const auto with = plugin->assess(loc->view(now, true), now);
                const auto without = plugin->assess(loc->view(now, false), now);
                require_same_but_evidence(with, without);
                ++compared;
                if (!with.evidence.text.empty()) ++with_text;
                if (with.status == sdk::Status::ok || with.status == sdk::Status::stale) {
                    ++ok;
                    // What the daemon skips formatting: assessed localities carry none.
                    CHECK(without.evidence.text.empty());
                    CHECK(without.evidence.values.empty());
                    CHECK_FALSE(with.evidence.values.empty());
                }
            }
        }
    }
    CHECK(compared == 3 * 3 * localities);
    CHECK(with_text == compared);  // every assessment asked for evidence explains itself
    CHECK(ok > compared / 2);      // most had data: the comparison is not of empty results
}

namespace {

class RecordingIndicator final : public sdk::Indicator {
public:
    sdk::Descriptor describe() const override { return {"rec", "1.0.0", {}, {}}; }
    void configure(const sdk::Params&) override {}
    sdk::Assessment assess(const sdk::LocalityView& view, sdk::TimePoint) const override {
        sdk::Assessment a;
        a.status = sdk::Status::ok;
        a.score = 0.5;
        a.confidence = 1;
        bool neighbours_agree = true;
        for (std::size_t i = 0; i < view.neighbour_count(); ++i)
            neighbours_agree = neighbours_agree &&
                               view.neighbour(i).wants_evidence() == view.wants_evidence();
        if (view.wants_evidence())
            a.evidence.text = std::string(view.info().id) + (neighbours_agree ? "" : " mixed");
        return a;
    }
};

LoadedPlugin recording() {
    auto p = std::make_shared<RecordingIndicator>();
    return LoadedPlugin{"rec.so", p->describe(), p};
}

Locality place(std::string id, std::vector<std::string> neighbours) {
    Locality l;
    l.id = std::move(id);
    l.region = "KE/KE-03";
    l.neighbours = std::move(neighbours);
    return l;
}

}  // namespace

TEST_CASE("the engine's views ask for evidence as the evaluation options say, and assess() "
          "re-assesses chosen localities",
          "[evidence][engine]") {
    Engine engine;
    engine.set_localities({place("A", {"B"}), place("B", {"A", "C"}), place("C", {"B"})});
    const std::vector<LoadedPlugin> plugins{recording()};
    const auto now = day(2026, 1, 1);

    EvaluationOptions quiet;
    quiet.evidence = false;
    auto results = engine.evaluate(plugins, now, false, quiet);
    REQUIRE(results.size() == 3);
    for (const auto& r : results) CHECK(r.assessments[0].evidence.text.empty());
    CHECK(engine.dirty_count() == 0);

    engine.apply({Observation{"A", now, "x.count", 1, 1, "s"}});  // A and B become dirty
    REQUIRE(engine.dirty_count() == 2);
    const auto explained = engine.assess(plugins, now, {0, 2});
    REQUIRE(explained.size() == 2);
    CHECK(explained[0].locality == 0);
    CHECK(explained[0].assessments[0].evidence.text == "A");
    CHECK(explained[1].locality == 2);
    CHECK(explained[1].assessments[0].evidence.text == "C");  // neighbours asked alike
    CHECK(engine.last_call_stats().at(0).calls == 2);
    CHECK(engine.dirty_count() == 2);  // assess() leaves the marks alone
    CHECK_THROWS_AS(engine.assess(plugins, now, {3}), std::out_of_range);
}

TEST_CASE("add_evidence moves the evidence of agreeing assessments only", "[evidence][scorer]") {
    auto assessed = [](double score, std::string text) {
        sdk::Assessment a;
        a.status = sdk::Status::ok;
        a.score = score;
        a.confidence = 0.8;
        a.newest = day(2026, 1, 1);
        a.evidence.text = std::move(text);
        if (!a.evidence.text.empty()) a.evidence.values.push_back({"n", 12, true});
        return a;
    };
    const std::vector<std::string> names{"one", "two", "three"};
    Composite c = compose(names, {assessed(0.5, ""), assessed(0.25, ""), assessed(0.1, "")}, {});
    const double score = c.score;

    std::vector<sdk::Assessment> second{assessed(0.5, "one explained"),
                                        assessed(0.3, "two changed its mind"),
                                        assessed(0.1, "three explained")};
    second[2].floor = sdk::Floor::watch;  // differs in the floor alone
    const auto differed = add_evidence(c, std::move(second));
    CHECK(differed == std::vector<std::size_t>{1, 2});
    CHECK(c.contributions[0].assessment.evidence.text == "one explained");
    CHECK(c.contributions[0].assessment.evidence.values.size() == 1);
    CHECK(c.contributions[1].assessment.evidence.text.empty());
    CHECK(c.contributions[1].assessment.score == 0.25);  // the first assessment stands
    CHECK(c.contributions[2].assessment.evidence.text.empty());
    CHECK(c.score == score);

    // Fewer second assessments than contributions (a plugin set that shrank): the rest stay.
    Composite d = compose(names, {assessed(0.5, ""), assessed(0.25, "")}, {});
    CHECK(add_evidence(d, {assessed(0.5, "x")}).empty());
    CHECK(d.contributions[0].assessment.evidence.text == "x");
    CHECK(d.contributions[1].assessment.evidence.text.empty());
}
