// What the machine charges for the kernel work every fresh process does, in CPU time
// (this process's user + system, so a busy machine's waiting is not counted):
//  - the first write to a fresh anonymous 4 KiB page (a page fault: the kernel zeroes and
//    maps it; every new process and every PostgreSQL server process takes hundreds);
//  - the first write to a private page shared after fork (a copy-on-write fault: what a
//    PostgreSQL server process pays for each page of the postmaster it writes to);
//  - one trivial system call (getppid).
// Prints one line: "anon_fault_us cow_fault_us syscall_us".
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double CpuMicros(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

int main(void) {
  enum { kPages = 4096, kSyscalls = 100000 };
  const size_t page = 4096, size = (size_t)kPages * page;
  char* a = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (a == MAP_FAILED) return perror("mmap"), 1;
  madvise(a, size, MADV_NOHUGEPAGE);  // 4 KiB faults, as most of a process's are
  double t = CpuMicros();
  for (size_t i = 0; i < size; i += page) a[i] = 1;
  const double anon = (CpuMicros() - t) / kPages;
  // Copy-on-write: the pages are now shared with a child; the child writes each once.
  int pipefd[2];
  if (pipe(pipefd) != 0) return perror("pipe"), 1;
  pid_t pid = fork();
  if (pid < 0) return perror("fork"), 1;
  if (pid == 0) {
    double c = CpuMicros();
    for (size_t i = 0; i < size; i += page) a[i] = 2;
    double cow = (CpuMicros() - c) / kPages;
    (void)!write(pipefd[1], &cow, sizeof cow);
    _exit(0);
  }
  double cow = 0;
  if (read(pipefd[0], &cow, sizeof cow) != sizeof cow) return 1;
  waitpid(pid, NULL, 0);
  t = CpuMicros();
  for (int i = 0; i < kSyscalls; ++i) syscall(SYS_getppid);
  const double sys = (CpuMicros() - t) / kSyscalls;
  printf("%.2f %.2f %.3f\n", anon, cow, sys);
  return 0;
}
