// fuzz_query.cpp: libFuzzer target for the query request parser (answer_query,
// daemon/query.cpp), answering from a store with a known outbox. Aborts when
// ews::fuzz::check_query (checks.hpp) reports a broken contract.
#include "checks.hpp"

#include <cstdint>
#include <string_view>

#include <spdlog/spdlog.h>

namespace {
ews::fuzz::QueryFixture& fixture() {
    static ews::fuzz::QueryFixture f;
    return f;
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    spdlog::set_level(spdlog::level::off);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return ews::fuzz::enforce(data, size, [](std::string_view input) { return ews::fuzz::check_query(input, fixture()); });
}
