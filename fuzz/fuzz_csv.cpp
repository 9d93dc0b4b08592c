// fuzz_csv.cpp: libFuzzer target for the CSV observation parser (parse_observations_csv,
// daemon/ingest.cpp). Aborts when ews::fuzz::check_observations_csv (checks.hpp) reports a
// broken contract.
#include "checks.hpp"

#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return ews::fuzz::enforce(data, size, ews::fuzz::check_observations_csv);
}
