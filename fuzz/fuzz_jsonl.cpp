// fuzz_jsonl.cpp: libFuzzer target for the JSON Lines observation parser
// (parse_observations_jsonl, daemon/ingest.cpp). Aborts when
// ews::fuzz::check_observations_jsonl (checks.hpp) reports a broken contract.
#include "checks.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    if (const auto problem = ews::fuzz::check_observations_jsonl(input); !problem.empty()) {
        std::fprintf(stderr, "contract broken: %s\n", problem.c_str());
        std::abort();
    }
    return 0;
}
