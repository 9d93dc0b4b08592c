// The one Catch2 main of the unit test binary; each module's tests live in test_<module>.cpp.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
