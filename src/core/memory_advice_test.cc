#include "core/memory_advice.h"

#include <gtest/gtest.h>

#include <string>

namespace patchgate {
namespace {

TEST(MemoryAdvice, SmallOrNullBuffersAreLeftAlone) {
  std::string small(4096, 'x');
  EXPECT_FALSE(AdviseHugePages(small.data(), small.size()));
  EXPECT_FALSE(AdviseHugePages(nullptr, 8u << 20));
}

TEST(MemoryAdvice, ALargeBufferKeepsItsContents) {
  std::string big(6u << 20, '\0');
  for (size_t i = 0; i < big.size(); i += 4093) big[i] = static_cast<char>('a' + i % 26);
  std::string copy = big;
  (void)AdviseHugePages(big.data() + 1, big.size() - 1);  // unaligned: only whole pages inside are advised
  EXPECT_EQ(big, copy);
  big.append("tail");  // still ordinary, usable memory
  EXPECT_EQ(big.substr(big.size() - 4), "tail");
}

}  // namespace
}  // namespace patchgate
