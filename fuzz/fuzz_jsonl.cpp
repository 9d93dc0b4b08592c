// fuzz_jsonl.cpp: libFuzzer target for the JSON Lines observation parser
// (parse_observations_jsonl, daemon/ingest.cpp). Aborts when
// ews::fuzz::check_observations_jsonl (checks.hpp) reports a broken contract.
#include "checks.hpp"

#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return ews::fuzz::enforce(data, size, ews::fuzz::check_observations_jsonl);
}
