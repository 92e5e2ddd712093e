#include "client/startup.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <vector>

namespace patchgate::client {
namespace {

long MinorFaults() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

// In a child process (the settings are for the whole process): the page faults that
// filling 512 KiB of fresh heap memory takes, after PrefaultForShortRun(4 MiB) or not.
long FaultsToFillHeap(bool prefault) {
  int fds[2];
  if (::pipe(fds) != 0) return -1;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    long faults = -2;
    PrefaultReport r;
    if (prefault) r = PrefaultForShortRun(4 << 20);
    if (!prefault || r.heap_bytes >= (4u << 20)) {
      long before = MinorFaults();
      std::vector<char*> blocks;
      for (int i = 0; i < 8; ++i) {
        blocks.push_back(static_cast<char*>(std::malloc(64 << 10)));
        std::memset(blocks.back(), 1, 64 << 10);
      }
      faults = MinorFaults() - before;
      for (char* b : blocks) std::free(b);
    }
    (void)!::write(fds[1], &faults, sizeof faults);
    ::_exit(0);
  }
  ::close(fds[1]);
  long faults = -3;
  if (::read(fds[0], &faults, sizeof faults) != static_cast<ssize_t>(sizeof faults)) faults = -4;
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return faults;
}

TEST(PrefaultForShortRun, HeapMemoryIsMappedBeforeItIsTouched) {
  long without = FaultsToFillHeap(false);
  long with = FaultsToFillHeap(true);
  std::printf("page faults filling 512 KiB of heap: %ld without, %ld after PrefaultForShortRun\n", without, with);
  ASSERT_GE(with, 0) << "the heap was not populated (a kernel before 5.14 has no MADV_POPULATE_WRITE)";
  EXPECT_GE(without, 64);  // 128 pages, fresh
  EXPECT_LT(with, 16);  // a few for the stack and the bookkeeping
}

TEST(PrefaultForShortRun, TheProgramsCodeIsMapped) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    PrefaultReport r = PrefaultForShortRun(0);  // no heap: only the read-only segments
    (void)!::write(fds[1], &r, sizeof r);
    ::_exit(0);
  }
  ::close(fds[1]);
  PrefaultReport r;
  ASSERT_EQ(::read(fds[0], &r, sizeof r), static_cast<ssize_t>(sizeof r));
  ::close(fds[0]);
  ::waitpid(pid, nullptr, 0);
  EXPECT_EQ(r.heap_bytes, 0u);
  EXPECT_GT(r.mapped_bytes, 1u << 20);  // this test program's code alone is larger
}

}  // namespace
}  // namespace patchgate::client
