// allocator.hpp: how ewsd asks glibc's malloc and the kernel to treat its memory.
//
// An evaluation allocates its results (assessments with evidence, about 1.5 KB a locality)
// and frees them at the end. By default glibc hands the freed top of the heap back to the
// kernel each time (trim threshold 128 KiB), so the next evaluation takes every page fault
// again: measured on 100k localities, a third of the evaluation's CPU time. Keeping up to
// `trim_threshold` of free heap, and growing the heap in steps of `top_pad`, removes that
// cost for the price of memory that stays resident between evaluations.
#pragma once

#include <cstddef>
#include <cstdint>

#include <malloc.h>
#include <sys/mman.h>

namespace ews {

// Asks the kernel to back the 2 MiB-aligned part of [data, data + bytes) with transparent
// huge pages, before it is first written. A large buffer filled once (a file read whole, the
// rows parsed from it) otherwise takes a page fault every 4 KiB, and faults are expensive on
// virtual machines: reading an 80 MB file into fresh memory took 0.8 s with 4 KiB pages and
// 40 ms with huge ones on the development machine. Advice only: without THP (or with
// `transparent_hugepage=never`) nothing changes.
inline void advise_huge_pages(const void* data, std::size_t bytes) {
    constexpr std::uintptr_t huge = std::uintptr_t{2} << 20;
    const auto begin = reinterpret_cast<std::uintptr_t>(data);
    const std::uintptr_t first = (begin + huge - 1) & ~(huge - 1);
    const std::uintptr_t last = (begin + bytes) & ~(huge - 1);
    if (last > first)
        ::madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
}

inline void keep_freed_memory() {
    constexpr int trim_threshold = 256 << 20;  // 256 MiB
    constexpr int top_pad = 64 << 20;          // 64 MiB
    mallopt(M_TRIM_THRESHOLD, trim_threshold);
    mallopt(M_TOP_PAD, top_pad);
}

}  // namespace ews
