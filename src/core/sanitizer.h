// Whether this build runs under a sanitizer whose allocator replaces glibc's malloc (ASan,
// MSan, TSan). Code and tests that rely on how glibc grows its heap (brk, madvise on the
// heap) check kGlibcMalloc first: under a sanitizer that heap is never grown.
#pragma once

namespace patchgate {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kGlibcMalloc = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer) || __has_feature(thread_sanitizer)
inline constexpr bool kGlibcMalloc = false;
#else
inline constexpr bool kGlibcMalloc = true;
#endif
#else
inline constexpr bool kGlibcMalloc = true;
#endif

}  // namespace patchgate
