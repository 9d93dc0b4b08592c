// allocator.hpp: how ewsd asks glibc's malloc to treat memory it frees.
//
// An evaluation allocates its results (assessments with evidence, about 1.5 KB a locality)
// and frees them at the end. By default glibc hands the freed top of the heap back to the
// kernel each time (trim threshold 128 KiB), so the next evaluation takes every page fault
// again: measured on 100k localities, a third of the evaluation's CPU time. Keeping up to
// `trim_threshold` of free heap, and growing the heap in steps of `top_pad`, removes that
// cost for the price of memory that stays resident between evaluations.
#pragma once

#include <malloc.h>

namespace ews {

inline void keep_freed_memory() {
    constexpr int trim_threshold = 256 << 20;  // 256 MiB
    constexpr int top_pad = 64 << 20;          // 64 MiB
    mallopt(M_TRIM_THRESHOLD, trim_threshold);
    mallopt(M_TOP_PAD, top_pad);
}

}  // namespace ews
