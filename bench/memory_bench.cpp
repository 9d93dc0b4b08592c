// memory_bench.cpp: the resident memory target of DESIGN.md ("resident memory: at most 2x the
// raw bytes of the observation columns"), measured beside its reference in the same run.
//
// What is compared, per size, in a child process of its own (so one size's freed heap cannot
// flatter the next):
//   ewsd:      resident memory (VmRSS from /proc/self/statm) after ews::Engine::set_localities
//              and Engine::apply of every observation in batches of 65536 rows in the store's
//              key order (locality, kind, time, source), as the daemon loads its windows at
//              start, minus the resident memory measured just before the Engine was created.
//              The rows are generated batch by batch and each batch is freed after it is
//              applied, so the input never inflates the figure; the input locality table is
//              freed too. malloc_trim(0) runs before both measurements, so free heap pages
//              are returned and what stays resident is live data plus the fragmentation the
//              engine's allocations leave.
//   reference: the raw bytes of the observation columns held: 36 bytes a row, time (8) +
//              value (8) + weight (8) + locality index (4) + kind id (4) + source id (4). The
//              strings themselves are interned, so they are counted once: the bytes of the
//              distinct locality ids, kind names and source names are added once.
// The data: a year of aggregate reports, 100 rows per locality by default (20k localities
// for 2M rows, each with up to four grid neighbours): monthly school.enrolled and
// school.dropouts (emis), fortnightly presence.report (a field team), weekly incident.*
// counts (a monitor), from a fixed seed.
//
// Scale study (--scale-study): the same measurement at 10k, 100k and 1M localities, each
// locality holding the same rows (--study-per-locality, 100 by default: the full year), so
// that only the number of localities differs; each size is a study row of its own, held to
// the same 2x target.
//
// Output: one table row per size on stdout (and, when the target is missed or with --split,
// where the bytes go); progress on stderr when it is a terminal; results in
// EWS_BENCH_RESULTS_DIR/memory.json ("results": this program's own figures; "rows": the
// common rows, MB of ewsd against raw MB, ratio <= 2). Exit status 1 when a target is missed.
#include "bench_support.hpp"

#include "engine.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <malloc.h>
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

// Bytes a row of the reference holds; see the top comment.
constexpr std::size_t raw_row_bytes = 8 + 8 + 8 + 4 + 4 + 4;
constexpr std::size_t batch_rows = 65536;  // what Pipeline hands Engine::apply at start

struct Options {
    std::size_t rows = 2'000'000;
    std::size_t larger = 5'000'000;  // second size, run when it fits in `larger_budget_s`
    std::size_t per_locality = 100;
    double larger_budget_s = 20;
    bool split = false;  // print where the bytes go even when the target is met
    bool scale_study = false;
    std::vector<std::size_t> study_localities{10'000, 100'000, 1'000'000};
    std::size_t study_per_locality = 100;
};

// Returns: the comma-separated counts of `text`, e.g. "10000,100000".
std::vector<std::size_t> count_list(const std::string& text) {
    std::vector<std::size_t> out;
    std::size_t at = 0;
    while (!text.empty() && at <= text.size()) {
        const std::size_t end = std::min(text.find(',', at), text.size());
        out.push_back(std::stoul(text.substr(at, end - at)));
        at = end + 1;
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

constexpr const char* kinds[] = {
    "school.enrolled",          "school.dropouts",          "presence.report",
    "incident.recruitment_attempt", "incident.abduction",   "incident.child_exploitation",
    "incident.violence_against_children", "incident.armed_violence", "incident.drug_trafficking"};
constexpr int kind_count = int(std::size(kinds));
constexpr int first_incident = 3;
constexpr int incident_kinds = 6;
constexpr int source_count = 51;

// Sources: 0 = emis, 1..40 = monitor-N, 41..50 = field-a..field-j.
std::string source_name(int s) {
    if (s == 0) return "emis";
    if (s <= 40) return "monitor-" + std::to_string(s);
    return std::string("field-") + char('a' + (s - 41));
}

const std::int64_t year_start = 1735689600;  // 2025-01-01T00:00:00Z

std::string locality_id(std::size_t i) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "DM-%05zu", i + 1);
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

// Returns: resident bytes of this process, after returning free heap pages to the system.
std::size_t resident_bytes() {
    ::malloc_trim(0);
    std::ifstream in("/proc/self/statm");
    std::size_t size = 0, resident = 0;
    in >> size >> resident;
    return resident * std::size_t(::sysconf(_SC_PAGESIZE));
}

double mib(double bytes) { return bytes / (1024.0 * 1024.0); }

[[noreturn]] void die(const std::string& what) { ews::bench::die("ews_bench_memory", what); }

// The capacity a series of `n` points ends with when appended one by one under the engine's
// growth rule (grow_for_one_more in engine.cpp: n + n/4 + 4 when full). Used only to explain
// where the bytes go; the measured figure does not depend on it.
std::size_t modelled_capacity(std::size_t n) {
    std::size_t cap = 0;
    for (std::size_t size = 0; size < n; ++size)
        if (size == cap) cap = size + size / 4 + 4;
    return cap;
}

// Measures one size. Runs in a child process; returns its result as JSON.
nlohmann::json measure(std::size_t rows, std::size_t per_locality, const Progress& progress) {
    const std::size_t localities = std::max<std::size_t>((rows + per_locality - 1) / per_locality, 1);
    const std::string tag = std::to_string(rows) + " observations";

    // What the loop below keeps besides the engine exists before the first measurement.
    std::vector<std::string> kind_names(std::begin(kinds), std::end(kinds));
    std::vector<std::string> source_names;
    for (int s = 0; s < source_count; ++s) source_names.push_back(source_name(s));
    // Key order within a locality: kind name, time, source name.
    std::vector<int> kind_rank(kind_count), source_rank(source_count);
    {
        std::vector<int> order(kind_count);
        for (int i = 0; i < kind_count; ++i) order[i] = i;
        std::sort(order.begin(), order.end(),
                  [&](int a, int b) { return kind_names[a] < kind_names[b]; });
        for (int r = 0; r < kind_count; ++r) kind_rank[order[r]] = r;
        std::vector<int> sorder(source_count);
        for (int i = 0; i < source_count; ++i) sorder[i] = i;
        std::sort(sorder.begin(), sorder.end(),
                  [&](int a, int b) { return source_names[a] < source_names[b]; });
        for (int r = 0; r < source_count; ++r) source_rank[sorder[r]] = r;
    }
    std::vector<Row> one;
    one.reserve(std::max<std::size_t>(per_locality, rows - (localities - 1) * per_locality));
    std::vector<std::size_t> series_sizes;  // for the explanation only: one per series
    series_sizes.reserve(localities * kind_count);
    std::mt19937_64 rng(20250101);
    std::size_t dictionary = 0;
    for (const auto& k : kind_names) dictionary += k.size();
    for (const auto& s : source_names) dictionary += s.size();

    const auto heap_before = ::mallinfo2();
    const std::size_t rss_before = resident_bytes();
    const auto t0 = Clock::now();
    auto engine = std::make_unique<ews::Engine>();
    {
        progress(tag + ": set_localities");
        auto table = make_localities(localities);
        for (const auto& l : table) dictionary += l.id.size();
        engine->set_localities(table);
    }  // the input table is freed, as the daemon's copy from Store::localities() is

    std::vector<ews::Observation> batch;
    batch.reserve(batch_rows);
    std::size_t generated = 0;
    for (std::size_t l = 0; l < localities; ++l) {
        const std::size_t take = l + 1 == localities ? rows - generated : per_locality;
        generate_locality(l, take, rng, one);
        std::sort(one.begin(), one.end(), [&](const Row& a, const Row& b) {
            if (a.kind != b.kind) return kind_rank[a.kind] < kind_rank[b.kind];
            if (a.day != b.day) return a.day < b.day;
            return source_rank[a.source] < source_rank[b.source];
        });
        std::size_t run = 0;
        for (std::size_t i = 0; i < one.size(); ++i) {
            const Row& r = one[i];
            ++run;
            if (i + 1 == one.size() || one[i + 1].kind != r.kind) {
                series_sizes.push_back(run);
                run = 0;
            }
            ews::Observation o;
            o.locality = locality_id(l);
            o.time = ews::TimePoint(std::chrono::seconds(year_start + std::int64_t(r.day) * 86400));
            o.kind = kind_names[r.kind];
            o.value = r.value;
            o.weight = r.weight;
            o.source = source_names[r.source];
            batch.push_back(std::move(o));
            if (batch.size() == batch_rows) {
                engine->apply(batch);
                batch.clear();
            }
        }
        generated += take;
        if (l % 1024 == 0) progress(tag + ": applied " + std::to_string(generated));
    }
    engine->apply(batch);
    // Swapped out, not `= {}`: that picks operator=(initializer_list) and keeps the capacity.
    std::vector<ews::Observation>().swap(batch);
    std::vector<Row>().swap(one);
    const double load_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    progress(tag + ": measuring");
    const std::size_t rss_after = resident_bytes();
    const auto heap_after = ::mallinfo2();
    progress.done();

    if (engine->observation_count() != rows)
        die(tag + ": the engine holds " + std::to_string(engine->observation_count()) +
            " observations, expected " + std::to_string(rows));

    const std::size_t ewsd = rss_after > rss_before ? rss_after - rss_before : 0;
    const std::size_t columns = rows * raw_row_bytes;
    const std::size_t raw = columns + dictionary;
    const double ratio = double(ewsd) / double(raw);

    // Where the bytes go: the payload of the points, the spare capacity the growth rule
    // leaves, and the heap's own view (bytes in use by live allocations versus free bytes
    // still resident between them).
    std::size_t capacity = 0;
    for (std::size_t n : series_sizes) capacity += modelled_capacity(n);
    const std::size_t point_bytes = rows * sizeof(ews::sdk::Point);
    const std::size_t slack_bytes = (capacity - rows) * sizeof(ews::sdk::Point);
    const std::size_t in_use = heap_after.uordblks + heap_after.hblkhd -
                               std::min(heap_after.uordblks + heap_after.hblkhd,
                                        heap_before.uordblks + heap_before.hblkhd);
    const std::size_t free_resident = heap_after.fordblks;

    return {{"what", "resident memory of " + std::to_string(rows) + " observations"},
            {"rows", rows},
            {"localities", localities},
            {"series", series_sizes.size()},
            {"rss_before_bytes", rss_before},
            {"rss_after_bytes", rss_after},
            {"ewsd_bytes", ewsd},
            {"raw_column_bytes", columns},
            {"raw_dictionary_bytes", dictionary},
            {"raw_bytes", raw},
            {"ewsd_mib", mib(double(ewsd))},
            {"raw_mib", mib(double(raw))},
            {"ratio", ratio},
            {"target", "<= 2.0"},
            {"pass", ratio <= 2.0},
            {"load_seconds", load_seconds},
            {"where",
             {{"point_payload_bytes", point_bytes},
              {"sizeof_point", sizeof(ews::sdk::Point)},
              {"growth_slack_bytes_modelled", slack_bytes},
              {"heap_in_use_bytes", in_use},
              {"heap_free_resident_bytes", free_resident},
              {"other_in_use_bytes", in_use > point_bytes + slack_bytes
                                         ? in_use - point_bytes - slack_bytes
                                         : 0}}}};
}

// Runs measure() in a child process. Returns: its result, or a JSON null when it failed.
nlohmann::json measure_in_child(std::size_t rows, std::size_t per_locality,
                                const Progress& progress) {
    int fds[2];
    if (::pipe(fds) != 0) die(std::string("pipe: ") + std::strerror(errno));
    std::fflush(stdout);
    const pid_t pid = ::fork();
    if (pid < 0) die(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
        ::close(fds[0]);
        const std::string out = measure(rows, per_locality, progress).dump();
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

void print_row(const nlohmann::json& r, bool explain) {
    std::printf("%-44s %10.1f %10.1f %8.2f %8s %s\n", r["what"].get<std::string>().c_str(),
                r["ewsd_mib"].get<double>(), r["raw_mib"].get<double>(), r["ratio"].get<double>(),
                "<= 2.0", r["pass"].get<bool>() ? "pass" : "FAIL");
    if (!explain) return;
    const auto& w = r["where"];
    auto m = [&](const char* key) { return mib(w[key].get<double>()); };
    std::printf("  where (MiB): points %.1f (%zu B each), growth slack %.1f (modelled: n + n/4 + 4 when "
                "full), other "
                "live heap %.1f (localities, series, interning, malloc headers), free heap "
                "still resident %.1f; %zu localities, %zu series, loaded in %.2f s\n",
                m("point_payload_bytes"), w["sizeof_point"].get<std::size_t>(),
                m("growth_slack_bytes_modelled"), m("other_in_use_bytes"),
                m("heap_free_resident_bytes"), r["localities"].get<std::size_t>(),
                r["series"].get<std::size_t>(), r["load_seconds"].get<double>());
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto text = [&]() -> std::string {
            if (i + 1 >= argc) die(a + " needs a value");
            return argv[++i];
        };
        auto value = [&]() -> std::size_t { return std::stoul(text()); };
        if (a == "--rows") o.rows = value();
        else if (a == "--larger") o.larger = value();
        else if (a == "--per-locality") o.per_locality = value();
        else if (a == "--larger-budget") o.larger_budget_s = double(value());
        else if (a == "--split") o.split = true;
        else if (a == "--scale-study") o.scale_study = true;
        else if (a == "--study-localities") o.study_localities = count_list(text());
        else if (a == "--study-per-locality") o.study_per_locality = value();
        else {
            std::cerr << "usage: ews_bench_memory [--rows N] [--larger N (0: none)] "
                         "[--larger-budget SECONDS] [--per-locality N] [--split] [--scale-study] "
                         "[--study-localities N,N,...] [--study-per-locality N]\n";
            return 2;
        }
    }
    if (o.rows == 0 || o.per_locality == 0 || o.study_per_locality == 0)
        die("rows, per-locality and study-per-locality must be > 0");
    for (std::size_t n : o.study_localities)
        if (n == 0) die("study-localities must be > 0");

    Progress progress;
    const std::string load_before = load_average();
    std::printf("raw = %zu bytes a row: time 8 + value 8 + weight 8 + locality index 4 + kind "
                "id 4 + source id 4; interned strings (locality ids, kinds, sources) once\n",
                raw_row_bytes);
    std::printf("%-44s %10s %10s %8s %8s %s\n", "what", "ewsd MiB", "raw MiB", "ratio",
                "target", "result");
    std::fflush(stdout);

    bool pass = true;
    nlohmann::json results = nlohmann::json::array();
    std::vector<ews::bench::ResultRow> table;
    auto run = [&](std::size_t rows, std::size_t per_locality, bool study) {
        const auto t0 = Clock::now();
        nlohmann::json r = measure_in_child(rows, per_locality, progress);
        if (r.is_null()) die("the measurement of " + std::to_string(rows) + " rows failed");
        const bool ok = r["pass"].get<bool>();
        pass = pass && ok;
        const std::size_t localities = r["localities"].get<std::size_t>();
        r["what"] = study ? "resident memory, " + ews::bench::short_count(localities) +
                                " localities x " + std::to_string(per_locality) + " rows"
                          : "resident memory, " + ews::bench::short_count(rows) + " observations";
        r["study"] = study;
        print_row(r, !ok || o.split);
        std::fflush(stdout);
        results.push_back(r);

        ews::bench::ResultRow row;
        row.what = r["what"].get<std::string>() + (study ? " (scale study)" : "");
        row.ewsd = r["ewsd_bytes"].get<double>() / 1e6;
        row.reference = r["raw_bytes"].get<double>() / 1e6;
        row.reference_name = "raw bytes of the observation columns (36 B a row) + strings once";
        row.unit = "MB";
        row.ratio = r["ratio"].get<double>();
        row.ratio_name = "memory ewsd / raw";
        row.target = "<= 2";
        row.pass = ok;
        row.runs = 1;
        row.data_rows = double(rows);
        if (study) {
            row.scale = double(localities);
            row.study = true;
            row.cost = "resident memory (" + std::to_string(per_locality) + " rows a locality)";
        }
        table.push_back(row);
        return std::chrono::duration<double>(Clock::now() - t0).count();
    };
    const double first_s = run(o.rows, o.per_locality, false);
    if (o.larger > o.rows) {
        const double expected_s = first_s * double(o.larger) / double(o.rows);
        if (expected_s <= o.larger_budget_s)
            run(o.larger, o.per_locality, false);
        else
            std::printf("(%zu observations skipped: expected %.1f s, over the %.1f s budget)\n",
                        o.larger, expected_s, o.larger_budget_s);
    }

    if (o.scale_study) {
        std::printf("scale study: the same %zu rows a locality at each size\n",
                    o.study_per_locality);
        for (std::size_t localities : o.study_localities)
            run(localities * o.study_per_locality, o.study_per_locality, true);
    }

    const std::string load_after = load_average();
    std::printf("load average before %s, after %s; %ld cores\n", load_before.c_str(),
                load_after.c_str(), ::sysconf(_SC_NPROCESSORS_ONLN));

    nlohmann::json doc{
        {"benchmark", "memory"},
        {"reference",
         "raw bytes of the observation columns: 36 bytes a row (time 8, value 8, weight 8, "
         "locality index 4, kind id 4, source id 4) plus the interned strings once"},
        {"measured", "VmRSS after Engine::set_localities + apply in batches of 65536 in key "
                     "order, minus VmRSS before the Engine; malloc_trim(0) before each"},
        {"load_average_before", load_before},
        {"load_average_after", load_after},
        {"results", results},
        {"rows", ews::bench::rows_json(table)},
        {"pass", pass}};
    std::error_code ec;
    fs::create_directories(EWS_BENCH_RESULTS_DIR, ec);
    std::ofstream(fs::path(EWS_BENCH_RESULTS_DIR) / "memory.json") << doc.dump(2) << "\n";
    return pass ? 0 : 1;
}
