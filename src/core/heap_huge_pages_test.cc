#include "core/heap_huge_pages.h"
#include "core/sanitizer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace patchgate {
namespace {

// The VmFlags line of the mapping of /proc/self/smaps that holds `p`, or "" if none does.
std::string VmFlagsOf(const void* p) {
  std::ifstream in("/proc/self/smaps");
  const auto at = reinterpret_cast<uintptr_t>(p);
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if (line.find("VmFlags:") == 0) {
      if (inside) return line;
      continue;
    }
    if (head >> std::hex >> lo >> dash >> hi && dash == '-' && line.find(':') > line.find(' ')) inside = lo <= at && at < hi;
  }
  return "";
}

bool ThpMadviseAvailable() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string mode;
  std::getline(in, mode);
  return !mode.empty() && mode.find("[never]") == std::string::npos;
}

TEST(HeapHugePages, RefusesSizesItCannotUse) {
  EXPECT_EQ(GrowHeapOnHugePages(1 << 20), 0u);          // under two huge pages
  EXPECT_EQ(GrowHeapOnHugePages(size_t{2} << 30), 0u);  // over the 1 GiB cap
}


TEST(HeapHugePages, LargeAllocationsLandOnTheAdvisedHeapAndStayUsable) {
  if (!kGlibcMalloc) GTEST_SKIP() << "a sanitizer's allocator replaces glibc's malloc";
  if (!ThpMadviseAvailable()) GTEST_SKIP() << "transparent huge pages are off on this machine";
  const size_t advised = GrowHeapOnHugePages(size_t{64} << 20);
  ASSERT_GT(advised, size_t{0}) << "the heap did not grow by brk";
  // A block of a few MiB (which malloc would otherwise map on its own, in 4 KiB pages)
  // comes from the advised heap: its mapping carries the huge-page flag ("hg").
  auto* block = static_cast<char*>(std::malloc(size_t{6} << 20));
  ASSERT_NE(block, nullptr);
  std::memset(block, 0x5a, size_t{6} << 20);
  EXPECT_NE(VmFlagsOf(block + (size_t{3} << 20)).find(" hg"), std::string::npos) << VmFlagsOf(block);
  EXPECT_EQ(block[(size_t{6} << 20) - 1], 0x5a);
  std::free(block);
  std::string more(size_t{1} << 20, 'x');  // the heap still serves ordinary requests
  EXPECT_EQ(more.back(), 'x');
}

}  // namespace
}  // namespace patchgate
