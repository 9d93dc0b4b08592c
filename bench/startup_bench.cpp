// startup_bench.cpp: the start-up target of DESIGN.md ("start-up with 10M observations
// stored: within 2x of `sqlite3` reading the same rows"), measured beside its reference in
// the same run.
//
// What is compared (each figure the median of --runs repetitions, the two sides alternating:
// ewsd first in even runs, sqlite3 first in odd ones):
//   ewsd:      the real release `ewsd` binary (EWS_BENCH_EWSD) started with posix_spawn on a
//              configuration whose state directory holds the database below, with
//              NOTIFY_SOCKET naming a unix datagram socket this program owns; the time from
//              the spawn to the arrival of READY=1. The daemon sends READY=1 in
//              Daemon::run (daemon/app.cpp) after: exec and dynamic linking, reading the
//              configuration, the state lock, Pipeline's constructor (Store::Store: the
//              pragmas, PRAGMA quick_check of every page, migrations, statements; loading the
//              plugins; Store::localities + Engine::set_localities; every stored observation
//              through Store::for_each_observation into Engine::apply in batches of 65536;
//              alert states, silences, last seqs), the spool, binding the publish endpoint
//              and the control socket (all this ends at the "ewsd ... started" log line),
//              then a scan of the (empty) spool and a FULL EVALUATION of every locality with
//              the three shipped plugins, committed to the store. So READY covers load +
//              first evaluation; both parts are reported: "load" is the spawn to the
//              timestamp of the "started" log line (milliseconds), "evaluation" the duration
//              the daemon logs for its full evaluation. The daemon is then stopped with
//              SIGTERM (its shutdown is not timed).
//   reference: the `sqlite3` command-line shell reading the same rows of the same database:
//                sqlite3 DB "SELECT locality, kind, time, source, value, weight
//                            FROM observations ORDER BY locality, kind, time, source"
//              with its output to /dev/null (the daemon's own query, store.cpp: in key order,
//              which is the table's order, so no sort), timed the same way: from the spawn
//              to its exit. The shell prints every value as text; --split shows how much of
//              its time SQLite's own reading takes (a bare sqlite3_step loop).
// Page cache: each side runs once unmeasured before the measured runs, and the database
// file of each ewsd run is a fresh copy of the cached one (synced before the run), so both
// sides read from a warm page cache and every ewsd run starts from the same state.
//
// The data (cached under EWS_BENCH_CACHE_DIR, made again when missing, when its
// description differs, when it is older than a week, or with --rebuild): a database created
// by ews::Store itself (the real schema), 10M observations by default: 100k localities on a
// grid 100 wide (up to four neighbours each) x 100 rows for the year before the day the cache
// was made, the shape eval_bench.cpp and memory_bench.cpp generate (monthly school.enrolled
// and school.dropouts from emis, fortnightly presence.report from a field team, weekly
// incident.* counts from a monitor and further rounds by field teams), from a fixed seed,
// written through Store::upsert_localities and Store::commit_observations (batches of about
// 1M rows in key order, one transaction each, one ingest record each). `ewsd --once` then runs
// on it until an evaluation after the first publishes events for at most 1% of the
// localities (with raise_after = 2 the first evaluation only makes alerts pending and the
// second raises them; at most 4 runs), so the cached state is that of a daemon that has been
// running (alert states and outbox rows), as a restart finds it, and the start's own
// evaluation is not the one that raises every alert.
//
// Where the time goes (printed when the target is missed, or with --split): the start-up's
// parts, once each, measured with the daemon's own code in fresh child processes of this
// program (a fresh heap, as the daemon has, a fresh copy of the state): Store::Store,
// PRAGMA quick_check alone, a bare sqlite3_step pass over the daemon's query,
// Store::for_each_observation, Store::alert_states, the load loop (reading and Engine::apply
// apart), Pipeline::Pipeline (everything the daemon loads) and Pipeline::evaluate(full).
//
// Output: a table on stdout; progress on stderr when it is a terminal; results in
// EWS_BENCH_RESULTS_DIR/startup.json. Exit status 1 when the target is missed, 2 when the
// measurement cannot be set up (no sqlite3 shell, the daemon does not start, ...).
#include "bench_support.hpp"

#include "allocator.hpp"
#include "config.hpp"
#include "engine.hpp"
#include "pipeline.hpp"
#include "store.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef EWS_BENCH_RESULTS_DIR
#define EWS_BENCH_RESULTS_DIR "bench-results"
#endif
#ifndef EWS_BENCH_PLUGIN_DIR
#define EWS_BENCH_PLUGIN_DIR "plugins"
#endif
#ifndef EWS_BENCH_EWSD
#define EWS_BENCH_EWSD "ewsd"
#endif
#ifndef EWS_BENCH_CACHE_DIR
#define EWS_BENCH_CACHE_DIR "startup-cache"
#endif

extern char** environ;

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

using ews::bench::load_average;
using ews::bench::median;
using ews::bench::Progress;

constexpr double ratio_target = 2.0;
// Bump when the generated data or the cached state changes shape.
constexpr int cache_format = 4;
constexpr auto cache_max_age = std::chrono::hours(24 * 7);
constexpr std::size_t commit_rows = 1'000'000;  // rows per Store::commit_observations
const char* const reference_query =
    "SELECT locality, kind, time, source, value, weight FROM observations "
    "ORDER BY locality, kind, time, source";

struct Options {
    std::size_t observations = 10'000'000;
    std::size_t per_locality = 100;
    int runs = 3;
    double timeout_s = 600;  // for one start of the daemon
    bool rebuild = false;
    bool split = false;
    fs::path ewsd = EWS_BENCH_EWSD;
    fs::path plugin_dir = EWS_BENCH_PLUGIN_DIR;
    fs::path cache_root = EWS_BENCH_CACHE_DIR;
};

[[noreturn]] void die(const std::string& what) { ews::bench::die("ews_bench_startup", what); }

// ---- the data (the shape of memory_bench.cpp) ----------------------------------------------

constexpr const char* kinds[] = {
    "school.enrolled",          "school.dropouts",          "presence.report",
    "incident.recruitment_attempt", "incident.abduction",   "incident.child_exploitation",
    "incident.violence_against_children", "incident.armed_violence", "incident.drug_trafficking"};
constexpr int first_incident = 3;
constexpr int incident_kinds = 6;
constexpr int source_count = 51;

// Sources: 0 = emis, 1..40 = monitor-N, 41..50 = field-a..field-j.
std::string source_name(int s) {
    if (s == 0) return "emis";
    if (s <= 40) return "monitor-" + std::to_string(s);
    return std::string("field-") + char('a' + (s - 41));
}

// Six digits: up to 999999 localities sort by id in index order.
std::string locality_id(std::size_t i) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "DM-%06zu", i + 1);
    return buf;
}

// Localities on a grid 100 wide; neighbours are the up to four adjacent cells.
std::vector<ews::Locality> make_localities(std::size_t count) {
    constexpr std::size_t width = 100;
    std::vector<ews::Locality> out(count);
    for (std::size_t i = 0; i < count; ++i) {
        ews::Locality& l = out[i];
        l.id = locality_id(i);
        l.name = "Locality " + std::to_string(i + 1);
        l.region = "DM/DM-" + std::to_string(1 + i % 4) + "/DM-" + std::to_string(1 + i % 4) +
                   "-" + std::to_string(1 + i % 25);
        l.population = double(500 + i % 3000);
        if (i % width > 0) l.neighbours.push_back(locality_id(i - 1));
        if (i % width + 1 < width && i + 1 < count) l.neighbours.push_back(locality_id(i + 1));
        if (i >= width) l.neighbours.push_back(locality_id(i - width));
        if (i + width < count) l.neighbours.push_back(locality_id(i + width));
    }
    return out;
}

struct Row {
    std::uint16_t day;  // 0..364 within the year
    std::uint8_t kind;
    std::uint8_t source;
    float value;
    float weight;
};

// One locality's year, `take` rows with unique natural keys: 12 monthly enrolment counts and
// 12 monthly dropout counts (emis), fortnightly presence confidences (a field team), the rest
// incident counts, one a week by the monitor and further rounds by field teams.
void generate_locality(std::size_t l, std::size_t take, std::mt19937_64& rng,
                       std::vector<Row>& out) {
    out.clear();
    const float enrolled = float(200 + rng() % 1800);
    const std::uint8_t monitor = std::uint8_t(1 + l % 40);
    const std::uint8_t field = std::uint8_t(41 + l % 10);
    for (std::size_t k = 0; k < take; ++k) {
        Row r{};
        if (k < 12) {
            r = {std::uint16_t(k * 30), 0, 0, enrolled + float(rng() % 21) - 10, 1};
        } else if (k < 24) {
            r = {std::uint16_t((k - 12) * 30 + 29), 1, 0, float(rng() % 12), 1};
        } else if (k < 50) {
            r = {std::uint16_t((k - 24) * 14), 2, field, float(rng() % 101) / 100.0f,
                 rng() % 4 == 0 ? 0.5f : 1.0f};
        } else {
            const std::size_t slot = (k - 50) * 7 + l % 7, round = slot / 365;
            r = {std::uint16_t(slot % 365), std::uint8_t(first_incident + rng() % incident_kinds),
                 round == 0 ? monitor : std::uint8_t(41 + (round - 1) % 10), float(rng() % 6), 1};
        }
        out.push_back(r);
    }
}

// ---- processes -----------------------------------------------------------------------------

// The daemon being measured, killed on every way out of this program.
pid_t g_daemon = -1;

void kill_daemon() {
    if (g_daemon <= 0) return;
    ::kill(g_daemon, SIGKILL);
    int status = 0;
    ::waitpid(g_daemon, &status, 0);
    g_daemon = -1;
}

extern "C" void on_signal(int sig) {
    if (g_daemon > 0) ::kill(g_daemon, SIGKILL);
    ::signal(sig, SIG_DFL);
    ::raise(sig);
}

struct Redirect {
    std::string stdout_file = "/dev/null";
    std::string stderr_file = "/dev/null";
};

// Starts `argv` (argv[0] searched in PATH when it has no '/') with the given environment.
// Returns: its pid. Dies when it cannot be started.
pid_t spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
            const Redirect& io) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, io.stdout_file.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, io.stderr_file.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<char*> args, envp;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    pid_t pid = -1;
    const int rc = ::posix_spawnp(&pid, argv[0].c_str(), &fa, nullptr, args.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) die("cannot start " + argv[0] + ": " + std::strerror(rc));
    return pid;
}

// This process's environment without the variables that would change how ewsd starts or
// logs (a systemd of our own, the journal), plus `extra`.
std::vector<std::string> environment(const std::vector<std::string>& extra) {
    std::vector<std::string> out;
    for (char** e = environ; *e; ++e) {
        const std::string_view v = *e;
        bool drop = false;
        for (std::string_view name : {"NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID=",
                                      "JOURNAL_STREAM=", "LISTEN_FDS=", "LISTEN_PID="})
            drop = drop || v.substr(0, name.size()) == name;
        if (!drop) out.emplace_back(v);
    }
    out.insert(out.end(), extra.begin(), extra.end());
    return out;
}

std::string describe_status(int status) {
    if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("killed by ") + ::strsignal(WTERMSIG(status));
    return "stopped";
}

std::string read_text(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// Returns: about the last `lines` lines of `text`.
std::string tail(const std::string& text, std::size_t lines = 12) {
    std::size_t at = text.size();
    for (std::size_t n = 0; n <= lines && at > 0; ++n) {
        at = text.rfind('\n', at - 1);
        if (at == std::string::npos) return text;
    }
    return at >= text.size() ? text : text.substr(at + 1);
}

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

// ---- files ---------------------------------------------------------------------------------

// A free TCP port on the loopback interface, for the daemon's publish endpoint.
int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die(std::string("socket: ") + std::strerror(errno));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
        die(std::string("cannot find a free port: ") + std::strerror(errno));
    ::close(fd);
    return ntohs(a.sin_port);
}

std::string toml_string(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

// The daemon's configuration: the demo's scoring, one publish endpoint, the shipped plugins.
void write_config(const fs::path& file, const fs::path& state_dir, const fs::path& plugin_dir) {
    std::ofstream out(file);
    out << "[daemon]\n"
        << "state_dir = " << toml_string(state_dir.string()) << "\n"
        << "plugin_dir = " << toml_string(plugin_dir.string()) << "\n"
        << "evaluate_every_s = 3600\nheartbeat_s = 60\nlog_level = \"info\"\n\n"
        << "[ingest]\npolicy = \"partial\"\n\n"
        << "[[publish]]\nname = \"main\"\nbind = \"tcp://127.0.0.1:" << free_port() << "\"\n\n"
        << "[scoring]\nraise_after = 2\nclear_after = 3\n\n"
        << "[scoring.levels.watch]\nraise = 45\nclear = 35\n\n"
        << "[scoring.levels.warning]\nraise = 60\nclear = 50\n\n"
        << "[scoring.levels.critical]\nraise = 80\nclear = 70\n\n"
        << "[privacy]\nmin_cell = 5\n\n"
        << "[plugins.school_dropout]\n\n[plugins.community_incidents]\n\n[plugins.group_presence]\n\n"
        << "[actions]\n"
        << "watch = [\"Share with the community child-protection committee for review\"]\n"
        << "warning = [\"Convene the community child-protection committee within a week\"]\n"
        << "critical = [\"Activate referral pathways for recovery and reintegration support\"]\n";
    if (!out) die(file.string() + ": cannot write");
}

// Copies `from` to `to` and syncs the copy, so its write-back does not run during a
// measurement; the copy stays in the page cache.
void copy_synced(const fs::path& from, const fs::path& to) {
    std::error_code ec;
    fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
    if (ec) die("cannot copy " + from.string() + " to " + to.string() + ": " + ec.message());
    const int fd = ::open(to.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::fsync(fd) != 0) die(to.string() + ": cannot sync: " + std::strerror(errno));
    ::close(fd);
}

// ---- the cache -----------------------------------------------------------------------------

struct Cache {
    fs::path dir;
    fs::path db;  // the state a daemon leaves after its first evaluation
    nlohmann::json manifest;
};

nlohmann::json wanted_manifest(const Options& o) {
    return {{"format", cache_format},
            {"observations", o.observations},
            {"per_locality", o.per_locality},
            {"schema_version", ews::Store::schema_version}};
}

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Returns: why the cache in `dir` cannot be used; empty when it can.
std::string cache_problem(const fs::path& dir, const Options& o, nlohmann::json& manifest) {
    const fs::path file = dir / "manifest.json";
    if (!fs::exists(file)) return "none yet";
    manifest = nlohmann::json::parse(read_text(file), nullptr, false);
    if (!manifest.is_object()) return "unreadable manifest";
    const nlohmann::json wanted = wanted_manifest(o);
    for (const auto& [key, value] : wanted.items())
        if (manifest.value(key, nlohmann::json()) != value) return key + " differs";
    std::error_code ec;
    const auto bytes = fs::file_size(dir / "ewsd.db", ec);
    if (ec || bytes != manifest.value("db_bytes", std::uint64_t(0))) return "database missing or changed";
    // An empty log (a reader killed before it closed the database) holds nothing.
    if (fs::exists(dir / "ewsd.db-wal")) {
        if (fs::file_size(dir / "ewsd.db-wal", ec) != 0 || ec)
            return "a write-ahead log beside the database";
        fs::remove(dir / "ewsd.db-wal", ec);
        fs::remove(dir / "ewsd.db-shm", ec);
    }
    const std::int64_t age = unix_now() - manifest.value("made_at", std::int64_t(0));
    if (age < 0 || age > std::chrono::duration_cast<std::chrono::seconds>(cache_max_age).count())
        return "older than a week (the data is the year before the day it was made)";
    return "";
}

// Runs `ewsd --once` on `config` and waits for it. Dies when it fails.
// Returns: the events its evaluation published, as it logs them.
std::size_t run_once(const Options& o, const fs::path& config, const fs::path& log) {
    const pid_t pid = spawn({o.ewsd.string(), "--once", "--config", config.string()},
                            environment({}), {log.string(), log.string()});
    g_daemon = pid;
    int status = 0;
    ::waitpid(pid, &status, 0);
    g_daemon = -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("ewsd --once " + describe_status(status) + "; its log ends:\n" + tail(read_text(log)));
    const std::string text = read_text(log);
    const auto at = text.find("evaluation (full): ");
    const auto ms = at == std::string::npos ? at : text.find(" ms, ", at);
    if (ms == std::string::npos) die("ewsd --once logged no full evaluation; its log ends:\n" + tail(text));
    return std::strtoull(text.c_str() + ms + 5, nullptr, 10);
}

Cache make_cache(const Options& o, const Progress& progress) {
    const std::string name = std::to_string(o.observations) + "-" + std::to_string(o.per_locality);
    Cache c;
    c.dir = o.cache_root / name;
    c.db = c.dir / "ewsd.db";
    std::string why = o.rebuild ? "--rebuild" : cache_problem(c.dir, o, c.manifest);
    if (why.empty()) {
        std::printf("data: cached in %s (made %s)\n", c.dir.c_str(),
                    c.manifest.value("made", std::string("?")).c_str());
        return c;
    }
    std::printf("data: making %s (%s)\n", c.dir.c_str(), why.c_str());
    std::fflush(stdout);

    const fs::path tmp = o.cache_root / (name + ".making");
    std::error_code ec;
    fs::remove_all(tmp, ec);
    fs::create_directories(tmp / "state", ec);
    if (ec) die(tmp.string() + ": " + ec.message());
    const std::size_t localities = (o.observations + o.per_locality - 1) / o.per_locality;
    // The year before today (UTC): rows on days 0..364 from year_start.
    const std::int64_t today = unix_now() / 86400 * 86400;
    const std::int64_t year_start = today - 365 * 86400;

    const auto t0 = Clock::now();
    try {
        ews::Store store(tmp / "state" / "ewsd.db");
        progress("data: " + std::to_string(localities) + " localities");
        store.upsert_localities(make_localities(localities));
        std::vector<std::string> kind_names(std::begin(kinds), std::end(kinds));
        std::vector<std::string> source_names;
        for (int s = 0; s < source_count; ++s) source_names.push_back(source_name(s));
        std::mt19937_64 rng(20250101);
        std::vector<Row> one;
        std::vector<ews::Observation> batch;
        batch.reserve(commit_rows + o.per_locality);
        std::size_t generated = 0, batches = 0;
        auto commit = [&] {
            if (batch.empty()) return;
            ews::IngestRecord record;
            char digest[65];
            std::snprintf(digest, sizeof digest, "%064zx", batches + 1);
            record.digest = digest;
            record.name = "startup-bench-" + std::to_string(batches + 1) + ".csv";
            record.accepted = std::int64_t(batch.size());
            record.status = "done";
            record.at = ews::wall_now();
            store.commit_observations(batch, record);
            ++batches;
            batch.clear();
            progress("data: " + std::to_string(generated) + " observations stored");
        };
        for (std::size_t l = 0; l < localities; ++l) {
            const std::size_t take =
                l + 1 == localities ? o.observations - generated : o.per_locality;
            generate_locality(l, take, rng, one);
            // Key order within the locality: kind name, time, source name.
            std::sort(one.begin(), one.end(), [&](const Row& a, const Row& b) {
                if (a.kind != b.kind) return kind_names[a.kind] < kind_names[b.kind];
                if (a.day != b.day) return a.day < b.day;
                return source_names[a.source] < source_names[b.source];
            });
            const std::string id = locality_id(l);
            for (const Row& r : one) {
                ews::Observation obs;
                obs.locality = id;
                obs.time = ews::TimePoint(std::chrono::seconds(year_start + std::int64_t(r.day) * 86400));
                obs.kind = kind_names[r.kind];
                obs.value = r.value;
                obs.weight = r.weight;
                obs.source = source_names[r.source];
                batch.push_back(std::move(obs));
            }
            generated += take;
            if (batch.size() >= commit_rows) commit();
        }
        commit();
        if (store.observation_count() != std::int64_t(o.observations))
            die("the store holds " + std::to_string(store.observation_count()) +
                " observations, expected " + std::to_string(o.observations));
    } catch (const ews::StoreError& e) {
        die(std::string("making the data: ") + e.what());
    }
    const double store_s = seconds_since(t0);
    progress.done();
    std::printf("data: %zu observations stored through ews::Store in %.1f s (%.0f rows/s)\n",
                o.observations, store_s, double(o.observations) / store_s);
    std::fflush(stdout);

    // Evaluations until the alert states have settled (see the top comment).
    write_config(tmp / "ewsd.toml", tmp / "state", o.plugin_dir);
    for (int n = 1;; ++n) {
        // An evaluation at or before the second of the last one changes nothing (alerting.hpp).
        if (n > 1) std::this_thread::sleep_for(std::chrono::milliseconds(1100));
        progress("data: ewsd --once (" + std::to_string(n) + ")");
        const auto t1 = Clock::now();
        const std::size_t events = run_once(o, tmp / "ewsd.toml", tmp / "once.log");
        progress.done();
        std::printf("data: ewsd --once took %.1f s, %zu events published\n", seconds_since(t1),
                    events);
        std::fflush(stdout);
        // The first evaluation only makes alerts pending; the second confirms them.
        if ((n >= 2 && events * 100 <= localities) || n == 4) break;
    }
    if (fs::exists(tmp / "state" / "ewsd.db-wal"))
        die("ewsd --once left a write-ahead log in " + (tmp / "state").string());
    fs::rename(tmp / "state" / "ewsd.db", tmp / "ewsd.db", ec);
    if (ec) die(tmp.string() + ": " + ec.message());
    fs::remove_all(tmp / "state", ec);
    fs::remove(tmp / "ewsd.toml", ec);

    c.manifest = wanted_manifest(o);
    c.manifest["localities"] = localities;
    c.manifest["made_at"] = unix_now();
    c.manifest["made"] = ews::format_time(ews::wall_now());
    c.manifest["history"] = ews::format_time(ews::TimePoint(std::chrono::seconds(year_start))) +
                            " to " + ews::format_time(ews::TimePoint(std::chrono::seconds(today)));
    c.manifest["db_bytes"] = fs::file_size(tmp / "ewsd.db");
    c.manifest["store_seconds"] = store_s;
    std::ofstream(tmp / "manifest.json") << c.manifest.dump(2) << "\n";
    fs::remove_all(c.dir, ec);
    fs::rename(tmp, c.dir, ec);
    if (ec) die("cannot move " + tmp.string() + " to " + c.dir.string() + ": " + ec.message());
    return c;
}

// ---- the measurements ----------------------------------------------------------------------

struct Run {
    fs::path dir;      // the daemon's state, configuration, logs and the notify socket
    fs::path state;
    fs::path config;
    fs::path notify;   // NOTIFY_SOCKET
    int notify_fd = -1;
};

struct Start {
    double ready_s = 0;                 // spawn to READY=1
    std::optional<double> load_s;       // spawn to the "started" log line
    std::optional<double> evaluation_s; // the full evaluation, as the daemon logs it
    std::size_t observations = 0;       // as the "started" line says
    double stop_s = 0;                  // SIGTERM to exit (not part of the target)
};

// Parses the local time at the start of a log line ("2026-12-03T07:10:00.123 info ...").
// Returns: seconds since the epoch.
std::optional<double> log_time(const std::string& line) {
    std::tm tm{};
    const char* end = ::strptime(line.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end || *end != '.') return std::nullopt;
    tm.tm_isdst = -1;
    const std::time_t t = std::mktime(&tm);
    return double(t) + std::atof(end);
}

void prepare_state(const Run& run, const Cache& cache) {
    std::error_code ec;
    fs::remove_all(run.state, ec);
    fs::create_directories(run.state, ec);
    if (ec) die(run.state.string() + ": " + ec.message());
    copy_synced(cache.db, run.state / "ewsd.db");
}

Start start_ewsd(const Options& o, const Run& run, const Cache& cache, const std::string& tag) {
    prepare_state(run, cache);
    const fs::path log = run.dir / ("ewsd-" + tag + ".log");
    // Messages a previous daemon left unread.
    char buf[4096];
    while (::recv(run.notify_fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {}

    const auto env = environment({"NOTIFY_SOCKET=" + run.notify.string()});
    const std::vector<std::string> argv{o.ewsd.string(), "--config", run.config.string()};
    Start s;
    const auto wall0 = std::chrono::system_clock::now();
    const auto t0 = Clock::now();
    g_daemon = spawn(argv, env, {log.string(), log.string()});
    bool ready = false;
    while (!ready) {
        pollfd p{run.notify_fd, POLLIN, 0};
        const int n = ::poll(&p, 1, 100);
        if (n > 0) {
            const ssize_t got = ::recv(run.notify_fd, buf, sizeof buf - 1, 0);
            if (got > 0) {
                const std::string msg(buf, std::size_t(got));
                if (("\n" + msg + "\n").find("\nREADY=1\n") != std::string::npos) {
                    s.ready_s = seconds_since(t0);
                    ready = true;
                }
            }
            continue;
        }
        int status = 0;
        if (::waitpid(g_daemon, &status, WNOHANG) == g_daemon) {
            g_daemon = -1;
            die("ewsd " + describe_status(status) + " before READY=1; its log (" + log.string() +
                ") ends:\n" + tail(read_text(log)));
        }
        if (seconds_since(t0) > o.timeout_s) {
            kill_daemon();
            std::ostringstream limit;
            limit << o.timeout_s;
            die("ewsd sent no READY=1 within " + limit.str() + " s (an ewsd built without libsystemd sends none); its log (" + log.string() +
                ") ends:\n" + tail(read_text(log)));
        }
    }
    // Stopped the way systemd stops it.
    const auto t1 = Clock::now();
    ::kill(g_daemon, SIGTERM);
    int status = 0;
    for (;;) {
        if (::waitpid(g_daemon, &status, WNOHANG) == g_daemon) break;
        if (seconds_since(t1) > 60) {
            kill_daemon();
            die("ewsd did not stop within 60 s of SIGTERM");
        }
        ::usleep(2000);
    }
    g_daemon = -1;
    s.stop_s = seconds_since(t1);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("ewsd " + describe_status(status) + " on SIGTERM; its log (" + log.string() +
            ") ends:\n" + tail(read_text(log)));

    const double spawned = std::chrono::duration<double>(wall0.time_since_epoch()).count();
    std::istringstream in(read_text(log));
    for (std::string line; std::getline(in, line);) {
        if (auto at = line.find(" started: "); at != std::string::npos && !s.load_s) {
            if (auto t = log_time(line)) s.load_s = *t - spawned;
            const auto comma = line.find(" localities, ", at);
            if (comma != std::string::npos)
                s.observations = std::strtoull(line.c_str() + comma + 13, nullptr, 10);
        }
        if (auto at = line.find("evaluation (full): "); at != std::string::npos && !s.evaluation_s) {
            const auto in_ms = line.find(" localities in ", at);
            if (in_ms != std::string::npos)
                s.evaluation_s = std::strtod(line.c_str() + in_ms + 15, nullptr) / 1000.0;
        }
    }
    if (s.observations != o.observations)
        die("ewsd loaded " + std::to_string(s.observations) + " observations, expected " +
            std::to_string(o.observations) + " (log " + log.string() + ")");
    return s;
}

double run_sqlite3(const Run& run, const Cache& cache) {
    const fs::path err = run.dir / "sqlite3.err";
    const auto t0 = Clock::now();
    const pid_t pid = spawn({"sqlite3", cache.db.string(), reference_query}, environment({}),
                            {"/dev/null", err.string()});
    int status = 0;
    ::waitpid(pid, &status, 0);
    const double s = seconds_since(t0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("sqlite3 " + describe_status(status) + ": " + read_text(err));
    return s;
}

// Returns: the rows the sqlite3 shell counts in the cached database.
std::size_t sqlite3_count(const Run& run, const Cache& cache) {
    const fs::path out = run.dir / "count.txt", err = run.dir / "sqlite3.err";
    const pid_t pid = spawn({"sqlite3", cache.db.string(), "SELECT count(*) FROM observations"},
                            environment({}), {out.string(), err.string()});
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("sqlite3 " + describe_status(status) + ": " + read_text(err));
    return std::strtoull(read_text(out).c_str(), nullptr, 10);
}

// ---- where the time goes -------------------------------------------------------------------

// The parts of the start-up measured with the daemon's own code. Each group of parts runs in
// a fresh child process (a fresh heap, as the daemon starts with) on a fresh copy of the
// cached state, with a warm page cache.
constexpr int split_groups = 5;

nlohmann::json split_group(int group, const Run& run, const Cache& cache) {
    ews::keep_freed_memory();  // as ewsd's main() does
    spdlog::set_level(spdlog::level::warn);
    nlohmann::json parts = nlohmann::json::array();
    auto part = [&](const std::string& what, const std::string& where, double s) {
        parts.push_back({{"what", what}, {"where", where}, {"s", s}});
    };
    prepare_state(run, cache);
    const fs::path db = run.state / "ewsd.db";
    if (group == 0 || group == 1) {
        sqlite3* h = nullptr;
        if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) !=
            SQLITE_OK)
            die(db.string() + ": cannot open");
        // Store::open's settings.
        for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL",
                                   "PRAGMA cache_size=-65536"})
            sqlite3_exec(h, pragma, nullptr, nullptr, nullptr);
        if (group == 0) {
            const auto t = Clock::now();
            if (sqlite3_exec(h, "PRAGMA quick_check", nullptr, nullptr, nullptr) != SQLITE_OK)
                die(std::string("quick_check: ") + sqlite3_errmsg(h));
            part("PRAGMA quick_check alone",
                 "Store::open, daemon/store.cpp: run_check(db_, \"PRAGMA quick_check\")",
                 seconds_since(t));
        } else {
            sqlite3_stmt* st = nullptr;
            sqlite3_prepare_v2(h, reference_query, -1, &st, nullptr);
            const auto t = Clock::now();
            std::size_t rows = 0;
            double sum = 0;
            while (sqlite3_step(st) == SQLITE_ROW) {
                ++rows;
                // Every column read, as the daemon reads them.
                sum += double(sqlite3_column_bytes(st, 0) + sqlite3_column_bytes(st, 1) +
                              sqlite3_column_bytes(st, 3)) +
                       double(sqlite3_column_int64(st, 2)) + sqlite3_column_double(st, 4) +
                       sqlite3_column_double(st, 5);
            }
            part("bare sqlite3_step loop over the daemon's query (" + std::to_string(rows) +
                     " rows, every column read)",
                 "SQLite alone, no ewsd code", seconds_since(t));
            sqlite3_finalize(st);
            if (sum < 0) std::printf("%f\n", sum);  // keeps the reads
        }
        sqlite3_close(h);
    } else if (group == 2 || group == 3) {
        auto t = Clock::now();
        auto store = std::make_unique<ews::Store>(db);
        part("Store::Store (pragmas, quick_check, migrations, prepared statements)",
             "daemon/store.cpp Store::Store -> Store::open", seconds_since(t));
        if (group == 3) {
            t = Clock::now();
            ews::Engine engine;
            engine.set_localities(store->localities());
            part("Store::localities + Engine::set_localities",
                 "daemon/pipeline.cpp Pipeline::Pipeline", seconds_since(t));
            // Pipeline's load loop, with the time in Engine::apply summed apart.
            t = Clock::now();
            Clock::duration in_apply{};
            std::vector<ews::Observation> batch;
            batch.reserve(65536);
            auto apply = [&] {
                const auto a = Clock::now();
                engine.apply(batch);
                in_apply += Clock::now() - a;
                batch.clear();
            };
            store->for_each_observation([&](const ews::Observation& obs) {
                batch.push_back(obs);
                if (batch.size() == batch.capacity()) apply();
            });
            apply();
            const double total = seconds_since(t);
            const double applying = std::chrono::duration<double>(in_apply).count();
            part("load loop: Store::for_each_observation + copy into the batch",
                 "daemon/store.cpp Store::for_each_observation, daemon/pipeline.cpp Pipeline::Pipeline",
                 total - applying);
            part("load loop: Engine::apply of the batches", "daemon/engine.cpp Engine::apply",
                 applying);
        } else {
            t = Clock::now();
            std::size_t rows = 0;
            store->for_each_observation([&](const ews::Observation&) { ++rows; });
            part("Store::for_each_observation alone (a callback that counts)",
                 "daemon/store.cpp Store::for_each_observation", seconds_since(t));
            t = Clock::now();
            const auto states = store->alert_states();
            part("Store::alert_states (" + std::to_string(states.size()) +
                     " states, each with its lifecycle JSON)",
                 "daemon/store.cpp Store::alert_states, read by Pipeline::Pipeline",
                 seconds_since(t));
        }
    } else {
        const ews::Config config = ews::load_config(run.config);
        auto t = Clock::now();
        auto pipeline = std::make_unique<ews::Pipeline>(config);
        part("Pipeline::Pipeline (everything the daemon loads)", "daemon/pipeline.cpp",
             seconds_since(t));
        t = Clock::now();
        const auto rows = pipeline->evaluate(ews::wall_now(), true);
        part("Pipeline::evaluate(full) (" + std::to_string(rows.size()) + " events)",
             "daemon/pipeline.cpp Pipeline::evaluate", seconds_since(t));
    }
    return parts;
}

// Returns: split_group(group) run in a child process; a JSON null when it failed.
nlohmann::json split_in_child(int group, const Run& run, const Cache& cache) {
    int fds[2];
    if (::pipe(fds) != 0) die(std::string("pipe: ") + std::strerror(errno));
    std::fflush(stdout);
    const pid_t pid = ::fork();
    if (pid < 0) die(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
        ::close(fds[0]);
        const std::string out = split_group(group, run, cache).dump();
        std::size_t done = 0;
        while (done < out.size()) {
            const ssize_t n = ::write(fds[1], out.data() + done, out.size() - done);
            if (n <= 0) ::_exit(3);
            done += std::size_t(n);
        }
        ::_exit(0);
    }
    ::close(fds[1]);
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) text.append(buf, std::size_t(n));
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || text.empty()) return nullptr;
    return nlohmann::json::parse(text);
}

Run make_run_dir(const Options& o) {
    Run r;
    r.dir = o.cache_root / "run";
    // The control socket and NOTIFY_SOCKET are unix socket paths (at most 107 bytes).
    if ((r.dir / "state" / "control.sock").string().size() > 100) {
        r.dir = ews::bench::make_temp_dir("ews_bench_startup", "ews-startup");
    }
    std::error_code ec;
    fs::remove_all(r.dir, ec);
    fs::create_directories(r.dir, ec);
    if (ec) die(r.dir.string() + ": " + ec.message());
    r.state = r.dir / "state";
    r.config = r.dir / "ewsd.toml";
    r.notify = r.dir / "notify";
    write_config(r.config, r.state, o.plugin_dir);
    r.notify_fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", r.notify.c_str());
    if (r.notify_fd < 0 || ::bind(r.notify_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
        die(r.notify.string() + ": cannot bind the notify socket: " + std::strerror(errno));
    return r;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) die(a + " needs a value");
            return argv[++i];
        };
        if (a == "--observations") o.observations = std::stoul(value());
        else if (a == "--per-locality") o.per_locality = std::stoul(value());
        else if (a == "--runs") o.runs = std::stoi(value());
        else if (a == "--timeout") o.timeout_s = std::stod(value());
        else if (a == "--rebuild") o.rebuild = true;
        else if (a == "--split") o.split = true;
        else if (a == "--cache-dir") o.cache_root = value();
        else {
            std::cerr << "usage: ews_bench_startup [--observations N (10000000)] [--runs N (3)] "
                         "[--per-locality N (100)] [--timeout SECONDS] [--rebuild] [--split] "
                         "[--cache-dir DIR]\n";
            return 2;
        }
    }
    if (o.observations == 0 || o.per_locality == 0 || o.runs < 1)
        die("observations, per-locality and runs must be > 0");
    if (!fs::exists(o.ewsd)) die(o.ewsd.string() + ": no ewsd binary (build the ewsd target)");
    std::atexit(kill_daemon);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::signal(sig, on_signal);

    Progress progress;
    const std::string load_before = load_average();
    std::error_code ec;
    fs::create_directories(o.cache_root, ec);
    if (ec) die(o.cache_root.string() + ": " + ec.message());
    {
        // Is the reference there at all?
        bool found = false;
        const char* path = std::getenv("PATH");
        std::istringstream dirs(path ? path : "");
        for (std::string dir; !found && std::getline(dirs, dir, ':');)
            found = !dir.empty() && ::access((fs::path(dir) / "sqlite3").c_str(), X_OK) == 0;
        if (!found)
            die("no sqlite3 shell in PATH; install the Debian package sqlite3 (./run deps does)");
        const pid_t pid = spawn({"sqlite3", "-version"}, environment({}), {});
        int status = 0;
        ::waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            die("the sqlite3 shell does not run (" + describe_status(status) +
                "); install the Debian package sqlite3 (./run deps does)");
    }
    const Cache cache = make_cache(o, progress);
    const Run run = make_run_dir(o);
    const std::size_t localities = (o.observations + o.per_locality - 1) / o.per_locality;
    const std::size_t counted = sqlite3_count(run, cache);
    if (counted != o.observations)
        die("sqlite3 counts " + std::to_string(counted) + " observations in " + cache.db.string() +
            ", expected " + std::to_string(o.observations));
    const std::uint64_t db_bytes = fs::file_size(cache.db);
    std::printf("database: %s, %.1f MiB, %zu observations, %zu localities\n", cache.db.c_str(),
                double(db_bytes) / (1024.0 * 1024.0), o.observations, localities);
    std::fflush(stdout);

    // Unmeasured: both sides once, so both read from a warm page cache.
    progress("warming the page cache: ewsd");
    start_ewsd(o, run, cache, "warm");
    progress("warming the page cache: sqlite3");
    run_sqlite3(run, cache);

    std::vector<double> ready, reference, load, evaluation, stop;
    nlohmann::json runs = nlohmann::json::array();
    for (int i = 0; i < o.runs; ++i) {
        Start s;
        double ref = 0;
        const std::string tag = "run " + std::to_string(i + 1) + "/" + std::to_string(o.runs);
        if (i % 2 == 0) {
            progress(tag + ": ewsd");
            s = start_ewsd(o, run, cache, std::to_string(i + 1));
            progress(tag + ": sqlite3");
            ref = run_sqlite3(run, cache);
        } else {
            progress(tag + ": sqlite3");
            ref = run_sqlite3(run, cache);
            progress(tag + ": ewsd");
            s = start_ewsd(o, run, cache, std::to_string(i + 1));
        }
        ready.push_back(s.ready_s);
        reference.push_back(ref);
        if (s.load_s) load.push_back(*s.load_s);
        if (s.evaluation_s) evaluation.push_back(*s.evaluation_s);
        stop.push_back(s.stop_s);
        runs.push_back({{"ewsd_ready_s", s.ready_s},
                        {"ewsd_load_s", s.load_s ? nlohmann::json(*s.load_s) : nlohmann::json()},
                        {"ewsd_evaluation_s",
                         s.evaluation_s ? nlohmann::json(*s.evaluation_s) : nlohmann::json()},
                        {"ewsd_stop_s", s.stop_s},
                        {"sqlite3_s", ref},
                        {"first", i % 2 == 0 ? "ewsd" : "sqlite3"}});
    }
    progress.done();

    const double ewsd_s = median(ready), ref_s = median(reference);
    const double ratio = ewsd_s / ref_s;
    const bool pass = ratio <= ratio_target;
    const std::string what = "start-up to READY=1, " + std::to_string(o.observations) +
                             " observations stored";
    const std::string reference_name =
        "sqlite3 shell: SELECT of the same rows (the daemon's query) > /dev/null";

    std::printf("%-52s %9s %10s %7s %7s %s\n", "what", "ewsd s", "sqlite3 s", "ratio", "target",
                "result");
    std::printf("%-52s %9.2f %10.2f %7.2f %7s %s\n", what.c_str(), ewsd_s, ref_s, ratio, "<= 2",
                pass ? "pass" : "FAIL");
    nlohmann::json rows = nlohmann::json::array();
    rows.push_back({{"what", what},
                    {"scale", localities},
                    {"ewsd", ewsd_s},
                    {"reference", ref_s},
                    {"reference_name", reference_name},
                    {"unit", "s"},
                    {"ratio", ratio},
                    {"ratio_name", "time ewsd / reference"},
                    {"target", "<= 2"},
                    {"target_abs", nullptr},
                    {"pass", pass},
                    {"runs", o.runs}});
    if (load.size() == ready.size()) {
        const double l = median(load);
        std::printf("%-52s %9.2f %10.2f %7.2f %7s %s\n", "  of which load (spawn to \"started\" line)", l,
                    ref_s, l / ref_s, "-", "");
        rows.push_back({{"what", "start-up, load part only (spawn to the \"started\" log line), " +
                                     std::to_string(o.observations) + " observations"},
                        {"scale", localities},
                        {"ewsd", l},
                        {"reference", ref_s},
                        {"reference_name", reference_name},
                        {"unit", "s"},
                        {"ratio", l / ref_s},
                        {"ratio_name", "time ewsd / reference"},
                        {"target", "-"},
                        {"target_abs", nullptr},
                        {"pass", true},
                        {"runs", o.runs}});
    }
    if (evaluation.size() == ready.size())
        std::printf("%-52s %9.2f\n", "  of which the first full evaluation (as logged)",
                    median(evaluation));
    std::printf("runs (ewsd READY s / sqlite3 s):");
    for (std::size_t i = 0; i < ready.size(); ++i)
        std::printf(" %.2f/%.2f", ready[i], reference[i]);
    std::printf("; ewsd stops in %.2f s after SIGTERM (not timed)\n", median(stop));
    std::fflush(stdout);

    nlohmann::json where;
    if (!pass || o.split) {
        where = nlohmann::json::array();
        for (int g = 0; g < split_groups; ++g) {
            progress("where the time goes: " + std::to_string(g + 1) + "/" +
                     std::to_string(split_groups));
            const auto parts = split_in_child(g, run, cache);
            if (parts.is_null()) die("measuring where the time goes failed");
            for (const auto& p : parts) where.push_back(p);
        }
        progress.done();
        std::printf("where the time goes (once each, the daemon's code in a fresh child process of "
                    "this program, warm cache):\n");
        for (const auto& p : where)
            std::printf("  %7.2f s  %s  [%s]\n", p["s"].get<double>(),
                        p["what"].get<std::string>().c_str(), p["where"].get<std::string>().c_str());
    }

    const std::string load_after = load_average();
    std::printf("load average before %s, after %s; %ld cores\n", load_before.c_str(),
                load_after.c_str(), ::sysconf(_SC_NPROCESSORS_ONLN));

    nlohmann::json doc{{"benchmark", "startup"},
                       {"rows", rows},
                       {"observations", o.observations},
                       {"localities", localities},
                       {"database_bytes", db_bytes},
                       {"cache", cache.manifest},
                       {"measured", "spawn of the release ewsd to READY=1 on NOTIFY_SOCKET (load + first "
                                    "full evaluation), warm page cache, fresh copy of the state each run"},
                       {"reference", std::string("sqlite3 \"") + reference_query + "\" > /dev/null, "
                                     "spawn to exit, warm page cache"},
                       {"runs", runs},
                       {"where", where},
                       {"load_average_before", load_before},
                       {"load_average_after", load_after},
                       {"pass", pass}};
    fs::create_directories(EWS_BENCH_RESULTS_DIR, ec);
    std::ofstream(fs::path(EWS_BENCH_RESULTS_DIR) / "startup.json") << doc.dump(2) << "\n";
    ::close(run.notify_fd);
    fs::remove_all(run.dir, ec);
    return pass ? 0 : 1;
}
