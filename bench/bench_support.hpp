// bench_support.hpp: what every ews_bench_* program shares: the median of repeated runs,
// the machine's load average (printed beside the figures), a progress line on a terminal,
// and a fatal error that names the program.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
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

}  // namespace ews::bench
