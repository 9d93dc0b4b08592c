// bench_support.hpp: what every ews_bench_* program shares: the median of repeated runs,
// the machine's load average (printed beside the figures), a progress line on a terminal,
// a fatal error that names the program, a scratch directory of its own, and the common
// "rows" of the results files (one object per line of the final table, read by
// bench/summary.py).
#pragma once

#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ews::bench {

// Returns: the median of `v`; 0 when it is empty.
inline double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Returns: the 1, 5 and 15 minute load averages, e.g. "0.52 0.61 0.70".
inline std::string load_average() {
    std::ifstream in("/proc/loadavg");
    std::string a, b, c;
    in >> a >> b >> c;
    return a + " " + b + " " + c;
}

// Prints "program: what" on stderr and exits with status 2.
[[noreturn]] inline void die(std::string_view program, const std::string& what) {
    std::cerr << program << ": " << what << "\n";
    std::exit(2);
}

// Returns: a new, empty directory of this run's own under the system's temporary directory
// (TMPDIR, else /tmp), named PREFIX-XXXXXX by mkdtemp, so two runs never share one. Dies
// (naming `program`) when it cannot be made.
inline std::filesystem::path make_temp_dir(std::string_view program, const std::string& prefix) {
    std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr)
        die(program, "cannot make a temporary directory " + pattern + ": " + std::strerror(errno));
    return pattern;
}

// A directory of make_temp_dir, removed with everything in it when this goes, unless kept.
class TempDir {
public:
    TempDir(std::string_view program, const std::string& prefix)
        : path_(make_temp_dir(program, prefix)) {}
    ~TempDir() {
        if (keep_) return;
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::filesystem::path& path() const { return path_; }
    void keep() { keep_ = true; }

private:
    std::filesystem::path path_;
    bool keep_ = false;
};

// One line of progress on stderr, rewritten in place; silent when stderr is not a terminal.
class Progress {
public:
    Progress() : on_(::isatty(2) == 1) {}
    void operator()(const std::string& what) const {
        if (on_) std::cerr << "\r\033[K" << what << std::flush;
    }
    void done() const {
        if (on_) std::cerr << "\r\033[K" << std::flush;
    }

private:
    bool on_;
};

// One line of the common results table. Ratios are ewsd / reference (throughput: higher is
// better; time and memory: lower is better); `pass` is the ratio target and the absolute
// target together, true on a row without a target (target "-").
struct ResultRow {
    std::string what;                   // short and unique within the program
    std::optional<double> scale;        // localities of the run, when it is a scale row
    double ewsd = 0;                    // median of `runs`
    std::optional<double> reference;    // measured in the same run
    std::string reference_name;
    std::string unit;                   // "s", "ms", "rows/s", "msg/s", "MB"
    double ratio = 0;
    std::string ratio_name;             // e.g. "time ewsd / reference"
    std::string target = "-";           // on the ratio, e.g. ">= 1.0", "<= 2", "flat (<= 2)"
    std::optional<std::string> target_abs;  // on ewsd's figure, e.g. "< 1 s"
    bool pass = true;
    int runs = 1;
    bool study = false;                 // a row of the scale study
    std::string cost;                   // the cost a scale row measures (one line of the chart)
    std::optional<double> data_rows;    // rows the cost is over, to show it per row
};

inline nlohmann::json to_json(const ResultRow& r) {
    // A whole count (localities, rows) is written as an integer.
    auto count = [](const std::optional<double>& v) {
        if (!v) return nlohmann::json(nullptr);
        if (*v >= 0 && *v < 9e15 && double(std::int64_t(*v)) == *v)
            return nlohmann::json(std::int64_t(*v));
        return nlohmann::json(*v);
    };
    nlohmann::json j{{"what", r.what},
                     {"scale", count(r.scale)},
                     {"ewsd", r.ewsd},
                     {"reference", r.reference ? nlohmann::json(*r.reference) : nlohmann::json(nullptr)},
                     {"reference_name", r.reference_name},
                     {"unit", r.unit},
                     {"ratio", r.ratio},
                     {"ratio_name", r.ratio_name},
                     {"target", r.target},
                     {"target_abs", r.target_abs ? nlohmann::json(*r.target_abs) : nlohmann::json(nullptr)},
                     {"pass", r.pass},
                     {"runs", r.runs}};
    if (r.study) j["study"] = true;
    if (!r.cost.empty()) j["cost"] = r.cost;
    if (r.data_rows) j["data_rows"] = count(r.data_rows);
    return j;
}

// Returns: `rows` as the results file's "rows" array.
inline nlohmann::json rows_json(const std::vector<ResultRow>& rows) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : rows) out.push_back(to_json(r));
    return out;
}

// Returns: "10k", "100k", "1M" style text of a count of localities.
inline std::string short_count(std::size_t n) {
    if (n >= 1'000'000 && n % 1'000'000 == 0) return std::to_string(n / 1'000'000) + "M";
    if (n >= 1'000 && n % 1'000 == 0) return std::to_string(n / 1'000) + "k";
    return std::to_string(n);
}

}  // namespace ews::bench
