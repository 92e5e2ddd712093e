// Time to publish one more target into a repository that already holds N targets (the
// repository work: hashing, copying, signing the affected roles, snapshot and timestamp).
// Usage: publish_bench REPO_DIR PRODUCT N_EXISTING_LABEL [ROUNDS]
// The repository must use plaintext keys or PATCHGATE_PASSPHRASE must be set; key
// decryption (scrypt) is measured separately and reported.
#include <algorithm>
#include <chrono>
#include <unistd.h>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "tuf/repository.h"

int main(int argc, char** argv) {
  using namespace patchgate;
  if (argc < 3) return std::fprintf(stderr, "usage: publish_bench REPO_DIR PRODUCT [ROUNDS]\n"), 2;
  int rounds = argc > 3 ? std::atoi(argv[3]) : 10;
  const char* pass = std::getenv("PATCHGATE_PASSPHRASE");
  tuf::KeyAccess access{pass ? pass : "", pass == nullptr};
  std::vector<double> ms;
  for (int i = 0; i < rounds; ++i) {
    std::string f = "/tmp/publish-bench-" + std::to_string(::getpid()) + "-" + std::to_string(i) + ".bin";
    std::ofstream(f) << "one more target " << i << " " << std::chrono::steady_clock::now().time_since_epoch().count();
    auto t0 = std::chrono::steady_clock::now();
    auto r = tuf::Publish({argv[1], argv[2], "9.9", false, nullptr}, {f}, access, SystemClock::Get());
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    std::remove(f.c_str());
    if (!r.ok()) return std::fprintf(stderr, "%s\n", r.status().ToString().c_str()), 1;
  }
  std::sort(ms.begin(), ms.end());
  std::printf("{\"publish_one_ms_median\":%.2f,\"publish_one_ms_min\":%.2f,\"keys\":\"%s\"}\n", ms[ms.size() / 2], ms[0],
              pass ? "encrypted (includes scrypt key decryption)" : "plaintext (repository work only)");
  return 0;
}
