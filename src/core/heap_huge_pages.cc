#include "core/heap_huge_pages.h"

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>

namespace patchgate {

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
  auto* before = static_cast<char*>(::sbrk(0));
  // A request larger than any free space makes malloc extend the heap now, by the request
  // plus the pad; freed at once, it becomes the heap's free top.
  void* p = std::malloc(threshold / 2);
  if (p == nullptr) return 0;
  auto* after = static_cast<char*>(::sbrk(0));
  std::free(p);
  if (before == reinterpret_cast<char*>(-1) || after <= before) return 0;  // the heap did not grow by brk
  uintptr_t begin = (reinterpret_cast<uintptr_t>(before) + kHuge - 1) & ~(kHuge - 1);
  uintptr_t end = reinterpret_cast<uintptr_t>(after) & ~(kHuge - 1);
  if (end <= begin) return 0;
  if (::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE) != 0) return 0;
  return end - begin;
}

}  // namespace patchgate
