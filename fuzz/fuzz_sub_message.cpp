// fuzz_sub_message.cpp: libFuzzer target for the subscriber's handling of a published
// message (ews-sub: the topic and payload frames, schema and seq checks, filters, and the
// pretty, json and csv output of tools/ews-sub/output.cpp). Input: topic, a line break,
// payload. Aborts when ews::fuzz::check_sub_message (checks.hpp) reports a broken contract.
#include "checks.hpp"

#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return ews::fuzz::enforce(data, size, ews::fuzz::check_sub_message);
}
