#include "core/heap_huge_pages.h"

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>

namespace patchgate {

namespace {
// Held so that the allocation is neither elided by the compiler nor reported as a leak.
void* volatile g_spacer = nullptr;
}  // namespace

size_t GrowHeapOnHugePages(size_t bytes) {
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  constexpr size_t kMaxMmapThreshold = size_t{32} << 20;
  if (bytes < 2 * kHuge || bytes > (size_t{1} << 30)) return 0;
  // Allocations up to `bytes` come from the heap (not one mmap each, which would be 4 KiB
  // pages again), the heap grows by `bytes` beyond each request, and freed memory at its
  // top is not given back (it would be faulted in again).
  // (glibc caps the mmap threshold at 32 MiB; larger blocks are rare and get their own
  // mapping, advised by the caller where it matters.)
  const size_t threshold = bytes < kMaxMmapThreshold ? bytes : kMaxMmapThreshold;
  if (!::mallopt(M_MMAP_THRESHOLD, static_cast<int>(threshold)) || !::mallopt(M_TOP_PAD, static_cast<int>(bytes)) ||
      !::mallopt(M_TRIM_THRESHOLD, static_cast<int>(2 * bytes)))
    return 0;
  // Make malloc extend the heap now: a request just larger than the free top of the heap
  // (keepcost) takes that top plus a little of the new memory, and the extension brings
  // the pad with it. The little (32 KiB) keeps every header malloc writes meanwhile below
  // the first advised 2 MiB: a page touched before the advice would leave its 2 MiB in
  // ordinary pages for good (measured: 512 faults in one such stretch).
  const size_t keep = ::mallinfo2().keepcost;
  auto* before = static_cast<char*>(::sbrk(0));
  if (before == reinterpret_cast<char*>(-1)) return 0;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(before) + (64 << 10) + kHuge - 1) & ~(kHuge - 1);
  void* p = std::malloc(keep + (32 << 10));
  if (p == nullptr) return 0;
  auto* after = static_cast<char*>(::sbrk(0));
  const uintptr_t end = reinterpret_cast<uintptr_t>(after) & ~(kHuge - 1);
  const bool advised = after > before && end > begin &&
                       ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE) == 0;
  const uintptr_t top = reinterpret_cast<uintptr_t>(p) - 2 * sizeof(size_t);  // p's chunk header
  std::free(p);  // back into the top of the heap, which now starts at `top`
  if (!advised) return 0;
  // From there up to the first advised byte the heap is in ordinary pages. A spacer block,
  // never touched and never freed, takes that stretch, so that the next allocations start
  // on the advised part (only the spacer's header is written, below it).
  if (begin - top > 4 * sizeof(size_t)) g_spacer = std::malloc(begin - top - 2 * sizeof(size_t));
  return end - begin;
}

}  // namespace patchgate
