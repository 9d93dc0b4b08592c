// fuzz_sub_message.cpp: libFuzzer target for the subscriber's handling of a published
// message (ews-sub: the topic and payload frames, schema and seq checks, filters, and the
// pretty, json and csv output of tools/ews-sub/output.cpp). Input: topic, a line break,
// payload. Aborts when ews::fuzz::check_sub_message (checks.hpp) reports a broken contract.
#include "checks.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    if (const auto problem = ews::fuzz::check_sub_message(input); !problem.empty()) {
        std::fprintf(stderr, "contract broken: %s\n", problem.c_str());
        std::abort();
    }
    return 0;
}
