// Runs a command and writes its cost to OUT_FILE as one line: WALL_US CPU_US MAXRSS_KB.
// Wall is from just before the fork to the reap; CPU (user + system) and peak RSS are the
// command's own, from wait4's rusage, in microseconds (/usr/bin/time prints CPU time in
// hundredths of a second, too coarse for a 20 ms run). This runner is a small C program so
// that the command starts with little on its peak-RSS record (an exec keeps the peak of the
// process it replaces: a command spawned from Python starts with Python's ~10 MB).
// The command's standard output goes to /dev/null; exits with the command's exit status.
// Usage: rusage_run OUT_FILE CMD [ARGS...]
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: rusage_run OUT_FILE CMD [ARGS...]\n");
    return 2;
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pid_t pid = fork();
  if (pid < 0) return perror("fork"), 2;
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, 1);
    execvp(argv[2], argv + 2);
    perror(argv[2]);
    _exit(127);
  }
  int status = 0;
  struct rusage ru;
  if (wait4(pid, &status, 0, &ru) < 0) return perror("wait4"), 2;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  long long wall = (t1.tv_sec - t0.tv_sec) * 1000000LL + (t1.tv_nsec - t0.tv_nsec) / 1000;
  long long cpu = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000LL + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
  FILE* f = fopen(argv[1], "w");
  if (!f) return perror(argv[1]), 2;
  fprintf(f, "%lld %lld %ld\n", wall, cpu, ru.ru_maxrss);
  fclose(f);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}
