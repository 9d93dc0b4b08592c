// ingest_bench.cpp: the ingest target of DESIGN.md ("ingest 1M-row CSV into the store: at
// least as fast as the sqlite3 CLI .import of the same file into the same schema"), measured
// beside its reference in the same run.
//
// What is compared, per run, each side starting from a byte-identical copy of one database
// made by ews::Store (so the same observations table, WITHOUT ROWID primary key and foreign
// key to localities included, and the same 10k localities):
//   ewsd:      Store open + ews::ingest_file (read, SHA-1 digest, CSV parse and validation,
//              one transaction) + Store close (which checkpoints the WAL), policy partial.
//   reference: the sqlite3 CLI process: PRAGMA journal_mode=WAL, synchronous=NORMAL,
//              foreign_keys=ON (what Store sets), `.import --skip 1` into observations, exit
//              (which checkpoints the WAL).
// The reference reads a second CSV holding the same rows already in the table's column order
// with time as unix seconds: .import cannot reorder columns or convert ISO dates, and giving
// it the finished values (rather than a temp table plus INSERT ... SELECT) is the cheapest
// path it has, so the comparison errs against ewsd, which parses and validates every field.
// Two row orders are measured: time order (a year of reports exported by date, the usual
// file) and key order (the b-tree's own order, the reference's best case). Each side starts
// after a sync(), outside its timing, so that neither pays for writing back the database the
// other has just written.
//
// Output: one table row per order on stdout; progress on stderr when it is a terminal;
// results in EWS_BENCH_RESULTS_DIR/ingest.json ("results": this program's own figures;
// "rows": one common row per order, throughput in rows/s, ratio ewsd / reference >= 1.0).
// Exit status 1 when a target is missed.
#include "bench_support.hpp"

#include "ingest.hpp"
#include "store.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <unordered_set>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#ifndef EWS_BENCH_RESULTS_DIR
#define EWS_BENCH_RESULTS_DIR "bench-results"
#endif

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

using ews::bench::load_average;
using ews::bench::median;
using ews::bench::Progress;

struct Options {
    std::size_t rows = 1'000'000;
    std::size_t localities = 10'000;
    int runs = 5;  // a side takes 1.5-3 s a run on the development machine and varies that much
    bool keep = false;   // keep the temporary directory
    bool split = false;  // print where ewsd's time goes even when the target is met
    bool skip_reference = false;  // for profiling ewsd alone
};

struct Row {
    std::uint32_t locality;
    std::uint16_t day;  // 0..364 within the year
    std::uint8_t kind;
    std::uint8_t source;
    float value;
    float weight;
};

constexpr const char* kinds[] = {
    "school.enrolled",          "school.dropouts",          "presence.report",
    "incident.recruitment_attempt", "incident.abduction",   "incident.child_exploitation",
    "incident.violence_against_children", "incident.armed_violence", "incident.drug_trafficking"};
constexpr int first_incident = 3;
constexpr int incident_kinds = 6;

// Sources: 0 = emis, 1..40 = monitor-N, 41..50 = field-a..field-j.
std::string source_name(int s) {
    if (s == 0) return "emis";
    if (s <= 40) return "monitor-" + std::to_string(s);
    return std::string("field-") + char('a' + (s - 41));
}

const std::int64_t year_start = 1735689600;  // 2025-01-01T00:00:00Z

std::string date_text(int day) {
    std::time_t t = year_start + std::int64_t(day) * 86400;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[16];
    std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
    return buf;
}

std::string locality_id(std::uint32_t i) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "DM-%05u", i + 1);
    return buf;
}

std::string number(float v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", double(v));
    return buf;
}

// A year of aggregate reports for `localities` localities, about rows/localities rows each,
// natural keys unique: per locality 12 monthly enrolment counts and 12 monthly dropout
// counts (emis), fortnightly presence confidences (a field team), the rest incident counts
// on distinct days (a monitor).
std::vector<Row> generate(const Options& o) {
    std::mt19937_64 rng(20250101);
    std::vector<Row> rows;
    rows.reserve(o.rows);
    const std::size_t per = std::max<std::size_t>(o.rows / o.localities, 1);
    for (std::uint32_t l = 0; l < o.localities && rows.size() < o.rows; ++l) {
        const float enrolled = float(200 + rng() % 1800);
        const std::uint8_t monitor = std::uint8_t(1 + l % 40);
        const std::uint8_t field = std::uint8_t(41 + l % 10);
        const std::size_t take = l + 1 == o.localities ? o.rows - rows.size() : per;
        for (std::size_t k = 0; k < take; ++k) {
            Row r{l, 0, 0, 0, 0, 1};
            if (k < 12) {
                r = {l, std::uint16_t(k * 30), 0, 0, enrolled + float(rng() % 21) - 10, 1};
            } else if (k < 24) {
                r = {l, std::uint16_t((k - 12) * 30 + 29), 1, 0, float(rng() % 12), 1};
            } else if (k < 50) {
                r = {l, std::uint16_t((k - 24) * 14), 2, field, float(rng() % 101) / 100.0f,
                     rng() % 4 == 0 ? 0.5f : 1.0f};
            } else {
                // Distinct (day, source) pairs keep the keys unique whatever the category:
                // one report a week by the monitor, further rounds by field teams.
                const std::size_t slot = (k - 50) * 7 + l % 7, round = slot / 365;
                r = {l, std::uint16_t(slot % 365),
                     std::uint8_t(first_incident + rng() % incident_kinds),
                     round == 0 ? monitor : std::uint8_t(41 + (round - 1) % 10), float(rng() % 6),
                     1};
            }
            rows.push_back(r);
        }
    }
    return rows;
}

void write_files(const std::vector<Row>& rows, const fs::path& observations,
                 const fs::path& reference) {
    std::vector<std::string> ids, dates, epochs, sources;
    std::uint32_t max_loc = 0;
    for (const auto& r : rows) max_loc = std::max(max_loc, r.locality);
    for (std::uint32_t i = 0; i <= max_loc; ++i) ids.push_back(locality_id(i));
    for (int d = 0; d < 366; ++d) {
        dates.push_back(date_text(d));
        epochs.push_back(std::to_string(year_start + std::int64_t(d) * 86400));
    }
    for (int s = 0; s <= 50; ++s) sources.push_back(source_name(s));

    std::string a = "locality,time,kind,value,weight,source\n";
    std::string b = "locality,kind,time,source,value,weight\n";
    a.reserve(rows.size() * 56);
    b.reserve(rows.size() * 56);
    for (const auto& r : rows) {
        const std::string v = number(r.value), w = number(r.weight);
        const std::string& id = ids[r.locality];
        a += id + ',' + dates[r.day] + ',' + kinds[r.kind] + ',' + v + ',' + w + ',' +
             sources[r.source] + '\n';
        b += id + ',' + kinds[r.kind] + ',' + epochs[r.day] + ',' + sources[r.source] + ',' + v +
             ',' + w + '\n';
    }
    std::ofstream(observations, std::ios::binary) << a;
    std::ofstream(reference, std::ios::binary) << b;
}

// Runs `command` through /bin/sh. Returns: its exit status (-1 when it did not exit).
int shell(const std::string& command) {
    int rc = std::system(command.c_str());
    return rc != -1 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

// Returns: the first line printed by `sqlite3 DB SQL`.
std::string sqlite_query(const fs::path& db, const std::string& sql) {
    std::string cmd = "sqlite3 -batch " + shell_quote(db.string()) + " " + shell_quote(sql);
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) return {};
    char buf[256] = {};
    std::string out = std::fgets(buf, sizeof buf, p) ? buf : "";
    ::pclose(p);
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
}

double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

[[noreturn]] void die(const std::string& what) { ews::bench::die("ews_bench_ingest", what); }

struct Measure {
    std::vector<double> ewsd, reference;
    double split_read = 0, split_digest = 0, split_parse = 0, split_commit = 0, split_close = 0;
};

ews::ObservationRules rules_for(const std::unordered_set<std::string>& known) {
    ews::ObservationRules rules;
    rules.known_locality = [&known](std::string_view id) {
        return known.find(std::string(id)) != known.end();
    };
    rules.now = *ews::parse_time("2026-01-01T00:00:00Z");
    return rules;
}

double time_ewsd(const fs::path& db, const fs::path& csv, const ews::ObservationRules& rules,
                 std::size_t expected) {
    auto t0 = Clock::now();
    ews::IngestOutcome out;
    {
        ews::Store store(db);
        out = ews::ingest_file(csv, store, rules, ews::RejectPolicy::partial);
    }
    double s = seconds_since(t0);
    if (!out.committed || !out.errors.empty() || out.rows.size() != expected)
        die("ewsd ingest of " + csv.string() + " did not commit every row (" +
            std::to_string(out.rows.size()) + " rows, " + std::to_string(out.errors.size()) +
            " errors" + (out.errors.empty() ? "" : ", first: " + out.errors[0].format()) + ")");
    return s;
}

double time_reference(const fs::path& db, const fs::path& csv, const fs::path& dir,
                      std::size_t expected) {
    const fs::path script = dir / "import.sql", err = dir / "import.err";
    std::ofstream(script) << "PRAGMA journal_mode=WAL;\nPRAGMA synchronous=NORMAL;\n"
                             "PRAGMA foreign_keys=ON;\n.mode csv\n.import --skip 1 \""
                          << csv.string() << "\" observations\n";
    const std::string cmd = "sqlite3 -batch -bail " + shell_quote(db.string()) + " < " +
                            shell_quote(script.string()) + " > /dev/null 2> " +
                            shell_quote(err.string());
    auto t0 = Clock::now();
    int rc = shell(cmd);
    double s = seconds_since(t0);
    if (rc != 0 || fs::file_size(err) != 0) {
        std::ifstream in(err);
        std::string first;
        std::getline(in, first);
        die("sqlite3 .import failed (exit " + std::to_string(rc) + "): " + first);
    }
    auto count = sqlite_query(db, "SELECT count(*) FROM observations");
    if (count != std::to_string(expected))
        die("sqlite3 .import stored " + count + " rows, expected " + std::to_string(expected));
    return s;
}

// Where ewsd's time goes: the steps of ingest_file run one by one on the same input.
void split_times(const fs::path& db, const fs::path& csv, const ews::ObservationRules& rules,
                 Measure& m) {
    auto t = Clock::now();
    std::ifstream in(csv, std::ios::binary);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    m.split_read = seconds_since(t);
    t = Clock::now();
    const std::string digest = ews::content_digest(content);
    m.split_digest = seconds_since(t);
    t = Clock::now();
    auto parsed = ews::parse_observations_csv(content, csv.string(), rules);
    m.split_parse = seconds_since(t);
    ews::IngestRecord record;
    record.digest = digest;
    record.name = csv.string();
    record.accepted = std::int64_t(parsed.rows.size());
    record.status = "done";
    record.at = ews::wall_now();
    auto store = std::make_unique<ews::Store>(db);
    t = Clock::now();
    store->commit_observations(parsed.rows, record);
    m.split_commit = seconds_since(t);
    t = Clock::now();
    store.reset();
    m.split_close = seconds_since(t);
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::size_t {
            if (i + 1 >= argc) die(a + " needs a value");
            return std::stoul(argv[++i]);
        };
        if (a == "--rows") o.rows = value();
        else if (a == "--localities") o.localities = value();
        else if (a == "--runs") o.runs = int(value());
        else if (a == "--keep") o.keep = true;
        else if (a == "--split") o.split = true;
        else if (a == "--ewsd-only") o.skip_reference = true;
        else {
            std::cerr << "usage: ews_bench_ingest [--rows N] [--localities N] [--runs N] "
                         "[--split] [--ewsd-only] [--keep]\n";
            return 2;
        }
    }
    if (o.rows == 0 || o.localities == 0 || o.runs <= 0) die("rows, localities and runs must be > 0");
    if (!o.skip_reference && shell("sqlite3 -version > /dev/null 2>&1") != 0)
        die("the sqlite3 CLI (Debian package sqlite3) is needed for the reference");

    Progress progress;
    const std::string load_before = load_average();
    ews::bench::TempDir work("ews_bench_ingest", "ews-bench-ingest");
    const fs::path dir = work.path();

    progress("generating " + std::to_string(o.rows) + " observations");
    std::vector<ews::Locality> localities;
    std::unordered_set<std::string> known;
    for (std::uint32_t i = 0; i < o.localities; ++i) {
        ews::Locality l;
        l.id = locality_id(i);
        l.name = "Locality " + std::to_string(i + 1);
        l.region = "DM/DM-" + std::to_string(1 + i % 4) + "/DM-" + std::to_string(1 + i % 4) +
                   "-" + std::to_string(1 + i % 25);
        l.population = double(500 + i % 3000);
        known.insert(l.id);
        localities.push_back(std::move(l));
    }
    const fs::path template_db = dir / "template.db";
    {
        ews::Store store(template_db);
        store.upsert_localities(localities);
    }
    if (fs::exists(template_db.string() + "-wal")) die("template database left a WAL file");

    std::vector<Row> rows = generate(o);
    struct Order {
        std::string name;
        fs::path observations, reference;
        Measure m;
    };
    std::vector<Order> orders{{"time order", dir / "obs_time.csv", dir / "ref_time.csv", {}},
                              {"key order", dir / "obs_key.csv", dir / "ref_key.csv", {}}};
    std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
        return a.day != b.day ? a.day < b.day : a.locality < b.locality;
    });
    write_files(rows, orders[0].observations, orders[0].reference);
    std::vector<std::string> sources;
    for (int s = 0; s <= 50; ++s) sources.push_back(source_name(s));
    std::stable_sort(rows.begin(), rows.end(), [&sources](const Row& a, const Row& b) {
        if (a.locality != b.locality) return a.locality < b.locality;
        if (a.kind != b.kind) return std::string_view(kinds[a.kind]) < kinds[b.kind];
        if (a.day != b.day) return a.day < b.day;
        return sources[a.source] < sources[b.source];
    });
    write_files(rows, orders[1].observations, orders[1].reference);
    const std::size_t n = rows.size();
    rows = {};

    const auto rules = rules_for(known);
    bool pass = true;
    nlohmann::json results = nlohmann::json::array();
    std::vector<ews::bench::ResultRow> table;
    std::printf("%-34s %14s %14s %8s %8s %s\n", "what", "ewsd rows/s", "reference rows/s",
                "ratio", "target", "result");
    for (auto& order : orders) {
        for (int run = 0; run < o.runs; ++run) {
            const std::string tag = order.name + ", run " + std::to_string(run + 1) + "/" +
                                    std::to_string(o.runs);
            const fs::path ewsd_db = dir / "ewsd.db", ref_db = dir / "reference.db";
            for (const auto& p : {ewsd_db, ref_db}) {
                fs::remove(p);
                fs::remove(p.string() + "-wal");
                fs::remove(p.string() + "-shm");
                fs::copy_file(template_db, p);
            }
            // Alternate which side goes first, so neither always finds the other's pages warm.
            // Each side starts with no dirty pages left to write back (sync, outside the
            // timing): otherwise the kernel writes out the previous side's database during the
            // next one, taking disk time and CPU from whichever side comes second.
            auto do_ewsd = [&] {
                ::sync();
                progress(tag + ": ewsd ingest_file");
                order.m.ewsd.push_back(time_ewsd(ewsd_db, order.observations, rules, n));
            };
            auto do_reference = [&] {
                if (o.skip_reference) return;
                ::sync();
                progress(tag + ": sqlite3 .import");
                order.m.reference.push_back(time_reference(ref_db, order.reference, dir, n));
            };
            if (run % 2 == 0) do_ewsd(), do_reference();
            else do_reference(), do_ewsd();
            if (run == 0 && !o.skip_reference) {
                progress(tag + ": comparing the stored rows");
                auto diff = sqlite_query(
                    ewsd_db, "ATTACH " + std::string("'") + ref_db.string() +
                                 "' AS r; SELECT (SELECT count(*) FROM (SELECT * FROM observations "
                                 "EXCEPT SELECT * FROM r.observations)) + (SELECT count(*) FROM "
                                 "(SELECT * FROM r.observations EXCEPT SELECT * FROM observations))");
                if (diff != "0") die(order.name + ": ewsd and sqlite3 stored different rows (" + diff + ")");
            }
        }
        const double e = median(order.m.ewsd);
        const double r = o.skip_reference ? 0 : median(order.m.reference);
        const double ewsd_rate = double(n) / e, ref_rate = r > 0 ? double(n) / r : 0;
        const double ratio = r > 0 ? ewsd_rate / ref_rate : 0;
        const bool ok = o.skip_reference || ratio >= 1.0;
        pass = pass && ok;

        if (!ok || o.split) {
            progress(order.name + ": timing ewsd's steps");
            const fs::path db = dir / "split.db";
            fs::remove(db);
            fs::copy_file(template_db, db);
            split_times(db, order.observations, rules, order.m);
        }
        progress.done();
        const std::string what = "ingest " + ews::bench::short_count(n) + "-row CSV, " + order.name;
        std::printf("%-34s %14.0f %14.0f %8.2f %8s %s\n", what.c_str(), ewsd_rate, ref_rate, ratio,
                    ">= 1.0", o.skip_reference ? "n/a" : ok ? "pass" : "FAIL");
        if (!ok || o.split)
            std::printf("  ewsd steps (s): read %.3f, digest %.3f, parse+validate %.3f, "
                        "commit %.3f, close+checkpoint %.3f; ingest_file median %.3f, "
                        "sqlite3 .import median %.3f\n",
                        order.m.split_read, order.m.split_digest, order.m.split_parse,
                        order.m.split_commit, order.m.split_close, e, r);
        std::fflush(stdout);
        results.push_back({{"what", what},
                           {"rows", n},
                           {"runs", o.runs},
                           {"ewsd_seconds", order.m.ewsd},
                           {"reference_seconds", order.m.reference},
                           {"ewsd_median_s", e},
                           {"reference_median_s", r},
                           {"ewsd_rows_per_s", ewsd_rate},
                           {"reference_rows_per_s", ref_rate},
                           {"ratio", ratio},
                           {"target", ">= 1.0"},
                           {"pass", ok},
                           {"ewsd_steps_s",
                            {{"read", order.m.split_read},
                             {"digest", order.m.split_digest},
                             {"parse_validate", order.m.split_parse},
                             {"commit", order.m.split_commit},
                             {"close_checkpoint", order.m.split_close}}}});
        ews::bench::ResultRow row;
        row.what = what;
        row.ewsd = ewsd_rate;
        if (!o.skip_reference) row.reference = ref_rate;
        row.reference_name = "sqlite3 CLI .import of the same rows into the same schema";
        row.unit = "rows/s";
        row.ratio = ratio;
        row.ratio_name = "rows/s ewsd / reference";
        row.target = o.skip_reference ? "-" : ">= 1.0";
        row.pass = ok;
        row.runs = o.runs;
        table.push_back(row);
    }
    const std::string load_after = load_average();
    std::printf("load average before %s, after %s; %ld cores\n", load_before.c_str(),
                load_after.c_str(), ::sysconf(_SC_NPROCESSORS_ONLN));

    nlohmann::json doc{{"benchmark", "ingest"},
                       {"reference", "sqlite3 CLI .import into the same schema, WAL, synchronous=NORMAL"},
                       {"localities", o.localities},
                       {"load_average_before", load_before},
                       {"load_average_after", load_after},
                       {"results", results},
                       {"rows", ews::bench::rows_json(table)},
                       {"pass", pass}};
    doc["sqlite3_cli"] = o.skip_reference ? std::string() : [] {
        FILE* p = ::popen("sqlite3 -version", "r");
        char buf[128] = {};
        std::string v = p && std::fgets(buf, sizeof buf, p) ? buf : "";
        if (p) ::pclose(p);
        return v.substr(0, v.find(' '));
    }();
    std::error_code ec;
    fs::create_directories(EWS_BENCH_RESULTS_DIR, ec);
    std::ofstream(fs::path(EWS_BENCH_RESULTS_DIR) / "ingest.json") << doc.dump(2) << "\n";
    if (o.keep) {
        work.keep();
        std::cerr << "kept " << dir << "\n";
    }
    return pass ? 0 : 1;
}
