// fuzz_ingest_header.cpp: libFuzzer target for the ingest endpoint's header frame
// (parse_ingest_header, daemon/ingest_endpoint.cpp). Aborts when
// ews::fuzz::check_ingest_header (checks.hpp) reports a broken contract; an exception other
// than IngestRequestError escapes and is reported as a crash.
#include "checks.hpp"

#include <cstdint>

#include <spdlog/spdlog.h>

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    spdlog::set_level(spdlog::level::off);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return ews::fuzz::enforce(data, size, ews::fuzz::check_ingest_header);
}
