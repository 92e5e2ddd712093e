// Huge pages for the heap of a short-lived command that builds a large result in memory
// (an incident scope of tens of thousands of downloads: rows, groups, the rendered text).
//
// Why: every first touch of a 4 KiB page is a page fault. On a virtual machine a fault
// costs 10-30 us (measured on the project's 2-core VM: 25-30 us per 4 KiB page, about
// 1 us per 4 KiB when the kernel maps a 2 MiB transparent huge page instead), so a report
// that touches 20 MB spends 100+ ms in the kernel before any of its own work. glibc can do
// this itself (GLIBC_TUNABLES=glibc.malloc.hugetlb=1) but only when the environment sets it
// before the process starts; this is the same thing done from inside the program.
//
// GrowHeapOnHugePages(bytes) asks malloc's main heap to grow in one step of `bytes` (its
// top pad), keeps allocations up to `bytes` on that heap rather than in separate mappings,
// and advises transparent huge pages over the new part (madvise MADV_HUGEPAGE; honoured
// where THP is "always" or "madvise"). Address space is reserved, not memory: the kernel
// backs the heap 2 MiB at a time as it is touched, and what is freed stays with the process
// until it exits. For commands that end after one result, never for a server.
//
// Thread-safety: call once, from the main thread, before other threads allocate. Never
// fails: where the kernel or libc does not take it, the heap stays as it was. Returns the
// number of bytes advised (0 if none).
#pragma once

#include <cstddef>

namespace patchgate {

size_t GrowHeapOnHugePages(size_t bytes);

}  // namespace patchgate
