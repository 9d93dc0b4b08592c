// The code that runs on more than one thread, made to run concurrently so that a
// ThreadSanitizer build (the tsan preset) sees every access: the evaluation workers of
// Engine::evaluate with the shipped plugins and an in-process one, the WalCheckpointer while
// its database is being written, and the ZAP handler while clients connect and its domains
// are replaced. Each test also checks its results, so it stands on its own in any build.
#include "curve.hpp"
#include "engine.hpp"
#include "plugin_host.hpp"
#include "store.hpp"

#include "temp_dir.hpp"

#include <catch2/catch.hpp>
#include <zmq_addon.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace ews;
namespace fs = std::filesystem;

namespace {

TimePoint at(const char* text) {
    auto t = parse_time(text);
    REQUIRE(t);
    return *t;
}

// Counts the threads that run it and the most that ran it at once; the assessment reads the
// locality's own series and its neighbours', so a wrong view shows in the result.
class WitnessIndicator final : public sdk::Indicator {
public:
    sdk::Descriptor describe() const override { return {"witness", "1.0.0", {}, {}}; }
    void configure(const sdk::Params&) override {}
    sdk::Assessment assess(const sdk::LocalityView& view, sdk::TimePoint now) const override {
        const int running = inside_.fetch_add(1) + 1;
        int seen = most_.load();
        while (running > seen && !most_.compare_exchange_weak(seen, running)) {
        }
        {
            std::lock_guard lock(mutex_);
            threads_.insert(std::this_thread::get_id());
        }
        double own = 0, around = 0;
        for (const auto& p : view.series("incident.armed_violence")) own += p.value * p.weight;
        for (std::size_t i = 0; i < view.neighbour_count(); ++i)
            for (const auto& p : view.neighbour(i).series("incident.armed_violence"))
                around += p.value;
        // A little work per call, so that the workers overlap.
        double spin = 0;
        for (int i = 0; i < 2000; ++i) spin += std::sin(own + i);
        sdk::Assessment a;
        a.status = sdk::Status::ok;
        a.score = std::fmod(own * 0.37 + around * 0.11, 1.0);
        a.confidence = 1.0 / (1.0 + double(view.series("incident.armed_violence").size()));
        a.evidence.values.push_back({"spin", spin, false});
        if (auto s = view.series("incident.armed_violence"); !s.empty()) a.newest = s.back().time;
        a.evidence.text = std::string(view.info().id) + ":" + std::to_string(own) + "/" +
                          std::to_string(around) + "@" + format_time(now);
        inside_.fetch_sub(1);
        return a;
    }
    std::size_t threads() const {
        std::lock_guard lock(mutex_);
        return threads_.size();
    }
    int most_at_once() const { return most_.load(); }

private:
    mutable std::atomic<int> inside_{0};
    mutable std::atomic<int> most_{0};
    mutable std::mutex mutex_;
    mutable std::set<std::thread::id> threads_;
};

void require_same(const sdk::Assessment& a, const sdk::Assessment& b) {
    REQUIRE(a.status == b.status);
    REQUIRE(a.score == b.score);
    REQUIRE(a.confidence == b.confidence);
    REQUIRE(a.newest == b.newest);
    REQUIRE(a.floor == b.floor);
    REQUIRE(a.evidence.text == b.evidence.text);
    REQUIRE(a.evidence.values.size() == b.evidence.values.size());
    for (std::size_t i = 0; i < a.evidence.values.size(); ++i) {
        REQUIRE(a.evidence.values[i].name == b.evidence.values[i].name);
        REQUIRE(a.evidence.values[i].value == b.evidence.values[i].value);
    }
}

}  // namespace

TEST_CASE("threads: Engine::evaluate over 5000 localities with every plugin equals one thread",
          "[threads]") {
    constexpr int n = 5000;
    auto set = load_plugins(EWS_PLUGIN_DIR, {});
    REQUIRE(set.refused.empty());
    REQUIRE(set.loaded.size() == 3);  // the shipped plugins: real .so files, real threads
    auto witness = std::make_shared<WitnessIndicator>();
    std::vector<LoadedPlugin> plugins = set.loaded;
    plugins.push_back(LoadedPlugin{"witness.so", witness->describe(), witness});

    std::vector<Locality> places;
    std::vector<Observation> rows;
    const TimePoint start = at("2025-01-06");
    for (int i = 0; i < n; ++i) {
        const std::string id = "T-" + std::to_string(i);
        places.push_back({id, "Place " + std::to_string(i), "TT/TT-" + std::to_string(i % 5),
                          300.0 + i % 900,
                          {"T-" + std::to_string((i + 1) % n), "T-" + std::to_string((i + n - 1) % n)}});
        for (int w = 0; w < 52; w += 1 + i % 3)
            rows.push_back({id, start + std::chrono::days(7 * w), "incident.armed_violence",
                            double((i * 31 + w * 7) % 5 == 0), 1, "monitor-1"});
        if (i % 7 == 0)
            rows.push_back({id, start + std::chrono::days(350), "incident.recruitment_attempt", 1, 1,
                            "monitor-1"});
        for (int m = 0; m < 12; ++m) {
            const TimePoint t = start + std::chrono::days(30 * m);
            rows.push_back({id, t, "school.enrolled", 200.0 + i % 300, 1, "emis"});
            rows.push_back({id, t, "school.dropouts", double((i + m) % 4 + (m > 9 && i % 11 == 0 ? 9 : 0)), 1,
                            "emis"});
        }
        if (i % 3 == 0)
            rows.push_back({id, start + std::chrono::days(340), "presence.report", 0.2 + (i % 8) / 10.0, 1,
                            "monitor-" + std::to_string(i % 4)});
    }
    Engine engine;
    engine.set_localities(places);
    engine.apply(rows);
    const TimePoint now = at("2025-12-31");

    std::atomic<int> hooks{0};
    EvaluationOptions options;
    options.before_plugin = [&](const LoadedPlugin&) { ++hooks; };
    const auto all = engine.evaluate(plugins, now, false, options);  // fans out over the workers
    REQUIRE(all.size() == n);
    CHECK(hooks == int(plugins.size()));
    if (std::thread::hardware_concurrency() >= 2) {
        CHECK(witness->threads() >= 2);
        CHECK(witness->most_at_once() >= 2);
    }
    for (const auto& stats : engine.last_call_stats()) CHECK(stats.errors == 0);

    // The reference: the same localities in dirty batches below the engine's parallel
    // threshold (256), which it assesses on the calling thread. Re-applying a point with its
    // own value marks the locality dirty without changing any data.
    std::size_t compared = 0;
    for (int begin = 0; begin < n; begin += 100) {
        std::vector<Observation> touch;
        for (int i = begin; i < std::min(n, begin + 100); ++i)
            touch.push_back({"T-" + std::to_string(i), start + std::chrono::days(30 * 11), "school.enrolled",
                             200.0 + i % 300, 1, "emis"});
        engine.apply(touch);
        REQUIRE(engine.dirty_count() < 256);
        for (const auto& r : engine.evaluate(plugins, now, true)) {
            REQUIRE(r.assessments.size() == plugins.size());
            for (std::size_t p = 0; p < plugins.size(); ++p)
                require_same(r.assessments[p], all[r.locality].assessments[p]);
            ++compared;
        }
    }
    CHECK(compared >= std::size_t(n));
    // The data makes the plugins do real work: some localities score, some hold a floor.
    std::size_t floors = 0, scored = 0;
    for (const auto& r : all) {
        for (std::size_t p = 0; p < set.loaded.size(); ++p) {
            if (r.assessments[p].floor != sdk::Floor::none) ++floors;
            if (r.assessments[p].score > 0) ++scored;
        }
    }
    CHECK(floors > 0);
    CHECK(scored > 0);
}

TEST_CASE("threads: a WalCheckpointer checkpoints while the main connection writes and reads",
          "[threads]") {
    testing::TempDir tmp;
    const fs::path file = tmp.path() / "ewsd.db";
    Store store(file);
    store.set_autocheckpoint(0);  // as in the daemon: only the checkpointer's thread copies
    std::vector<Locality> localities;
    for (int i = 0; i < 50; ++i) localities.push_back({"W-" + std::to_string(i), "x", "R/R1", std::nullopt, {}});
    store.upsert_localities(localities);

    const TimePoint t0 = at("2026-01-01");
    constexpr int commits = 300, per_commit = 200;
    {
        WalCheckpointer checkpointer(file, std::chrono::milliseconds(1));
        for (int c = 0; c < commits; ++c) {
            std::vector<Observation> rows;
            rows.reserve(per_commit);
            for (int r = 0; r < per_commit; ++r)
                rows.push_back({"W-" + std::to_string(r % 50), t0 + std::chrono::minutes(c * per_commit + r),
                                "incident.armed_violence", double(r % 3), 1, "monitor-1"});
            store.commit_observations(rows, IngestRecord{"digest-" + std::to_string(c), "batch",
                                                         per_commit, 0, "done", t0});
            if (c % 50 == 49) REQUIRE(store.observation_count() == std::int64_t(c + 1) * per_commit);
            if (c == commits / 2) {
                // The writer keeps going while the checkpointer works: wait for one to land.
                const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
                while (checkpointer.checkpoints() == 0 && std::chrono::steady_clock::now() < deadline)
                    std::this_thread::sleep_for(std::chrono::milliseconds(2));
            }
        }
        CHECK(checkpointer.checkpoints() > 0);
    }
    CHECK(store.observation_count() == std::int64_t(commits) * per_commit);
    CHECK(store.integrity_check().empty());
    std::int64_t seen = 0;
    store.for_each_observation([&](const Observation& o) {
        if (o.kind == "incident.armed_violence") ++seen;
    });
    CHECK(seen == std::int64_t(commits) * per_commit);
}

TEST_CASE("threads: the ZAP handler answers concurrent clients while its domains are replaced",
          "[threads]") {
    testing::TempDir tmp;
    const fs::path authorized = tmp.path() / "authorized";
    const fs::path secrets = tmp.path() / "secrets";
    fs::create_directory(authorized);
    const auto server = curve::generate();
    constexpr int good_clients = 4, bad_clients = 3;
    std::vector<curve::Certificate> good, bad;
    for (int i = 0; i < good_clients; ++i) {
        good.push_back(curve::generate());
        const auto files = curve::write_certificate(secrets, "client" + std::to_string(i), good.back());
        fs::copy_file(files.public_file, authorized / ("client" + std::to_string(i) + ".key"));
    }
    for (int i = 0; i < bad_clients; ++i) bad.push_back(curve::generate());

    zmq::context_t context;
    curve::ZapHandler zap(context, {{"alerts", authorized}});

    // An echo server on its own thread (its socket is made and used there only).
    std::atomic<bool> stop{false};
    std::string endpoint;
    std::mutex endpoint_mutex;
    std::atomic<bool> bound{false};
    std::thread echo([&] {
        zmq::socket_t router(context, zmq::socket_type::router);
        router.set(zmq::sockopt::linger, 0);
        curve::make_server(router, server, "alerts");
        router.bind("tcp://127.0.0.1:*");
        {
            std::lock_guard lock(endpoint_mutex);
            endpoint = router.get(zmq::sockopt::last_endpoint);
        }
        bound = true;
        while (!stop) {
            zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
            if (zmq::poll(&item, 1, std::chrono::milliseconds(20)) != 1) continue;
            std::vector<zmq::message_t> frames;
            if (!zmq::recv_multipart(router, std::back_inserter(frames))) continue;
            zmq::send_multipart(router, frames);
        }
    });
    while (!bound) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::string where;
    {
        std::lock_guard lock(endpoint_mutex);
        where = endpoint;
    }

    // Each client on its own thread with its own socket: authorized ones must get their echo.
    std::atomic<int> echoed{0}, silent{0};
    auto client = [&](const curve::Certificate& cert, bool expect_echo) {
        zmq::socket_t dealer(context, zmq::socket_type::dealer);
        dealer.set(zmq::sockopt::linger, 0);
        curve::make_client(dealer, server.public_key, cert);
        dealer.connect(where);
        dealer.send(zmq::str_buffer("ping"), zmq::send_flags::dontwait);
        zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLIN, 0};
        const auto wait = expect_echo ? std::chrono::milliseconds(10000) : std::chrono::milliseconds(1500);
        if (zmq::poll(&item, 1, wait) == 1) {
            zmq::message_t reply;
            if (dealer.recv(reply) && reply.to_string() == "ping") ++echoed;
        } else {
            ++silent;
        }
    };
    std::vector<std::thread> clients;
    for (const auto& c : good) clients.emplace_back(client, std::cref(c), true);
    for (const auto& c : bad) clients.emplace_back(client, std::cref(c), false);

    // Meanwhile this thread replaces the domain table and reads the counts, as a reload and
    // the status request do in the daemon.
    std::uint64_t last_total = 0;
    for (int i = 0; i < 50; ++i) {
        zap.set_domains({{"alerts", authorized}});
        const auto counts = zap.counts();
        const auto& c = counts.at("alerts");
        CHECK(c.admitted + c.refused >= last_total);  // counts only grow, across replacements
        last_total = c.admitted + c.refused;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    for (auto& t : clients) t.join();
    stop = true;
    echo.join();

    CHECK(echoed == good_clients);
    CHECK(silent == bad_clients);
    const auto counts = zap.counts().at("alerts");
    CHECK(counts.admitted >= std::uint64_t(good_clients));
    CHECK(counts.refused >= std::uint64_t(bad_clients));
}
