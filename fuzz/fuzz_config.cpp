// fuzz_config.cpp: libFuzzer target for the TOML configuration loader (load_config,
// daemon/config.cpp): the bytes are written to a scratch file and loaded as
// `ewsd --check-config` loads it. Aborts when ews::fuzz::check_config (checks.hpp) reports a
// broken contract.
#include "checks.hpp"

#include <cstdint>
#include <string_view>

namespace {
// Created at the first input, removed when the process exits normally.
ews::fuzz::ScratchDir& scratch() {
    static ews::fuzz::ScratchDir dir;
    return dir;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return ews::fuzz::enforce(data, size, [](std::string_view input) {
        return ews::fuzz::check_config(input, scratch().path());
    });
}
