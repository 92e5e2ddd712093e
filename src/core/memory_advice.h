// Advice to the kernel about large, short-lived buffers (a multi-megabyte metadata file
// read whole). Thread-safe; never fails (advice the kernel does not take changes nothing).
#pragma once

#include <cstddef>

namespace patchgate {

// Buffers at least this large are worth the advice.
inline constexpr size_t kHugePageAdviceMinBytes = size_t{2} << 20;

// Asks for transparent huge pages over the whole pages inside [p, p + n) when n is at
// least kHugePageAdviceMinBytes (madvise MADV_HUGEPAGE; used where THP is "madvise"). A
// 5 MB buffer filled once then takes a few page faults instead of ~1,300, which on a
// virtual machine is most of the cost of filling it. The memory stays the caller's; its
// contents are not touched. Returns whether the kernel took the advice.
bool AdviseHugePages(const void* p, size_t n);

}  // namespace patchgate
