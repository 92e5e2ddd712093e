#include "core/memory_advice.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

namespace patchgate {

bool AdviseHugePages(const void* p, size_t n) {
  if (p == nullptr || n < kHugePageAdviceMinBytes) return false;
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);
  uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n) & ~(page - 1);
  if (end <= begin) return false;
  return ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE) == 0;
}

}  // namespace patchgate
