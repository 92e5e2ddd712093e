// In-process cost of a cold TUF refresh plus one verified download with patchgate's client:
// prints wall milliseconds and the process's peak RSS.
// Usage: client_bench METADATA_URL TARGETS_URL ROOT_FILE WORKDIR TARGET_NAME
#include <sys/resource.h>

#include <chrono>
#include <cstdio>

#include "client/fetcher.h"
#include "client/updater.h"

int main(int argc, char** argv) {
  using namespace patchgate;
  if (argc != 6) {
    std::fprintf(stderr, "usage: client_bench METADATA_URL TARGETS_URL ROOT_FILE WORKDIR TARGET_NAME\n");
    return 2;
  }
  std::string work = argv[4];
  auto& fs = RealFileSystem::Get();
  Status st = client::Updater::InitTrustedRoot(work + "/meta", argv[3], &fs);
  if (!st.ok()) return std::fprintf(stderr, "%s\n", st.ToString().c_str()), 1;
  auto fetcher = client::NewCurlFetcher({});
  auto t0 = std::chrono::steady_clock::now();
  client::Updater u({work + "/meta", argv[1], argv[2], work + "/targets"}, fetcher.get(), SystemClock::Get(), &fs);
  st = u.Refresh();
  auto t1 = std::chrono::steady_clock::now();
  if (!st.ok()) return std::fprintf(stderr, "%s\n", st.ToString().c_str()), 1;
  auto info = u.GetTargetInfo(argv[5]);
  if (!info.ok()) return std::fprintf(stderr, "%s\n", info.status().ToString().c_str()), 1;
  auto path = u.DownloadTarget(*info);
  auto t2 = std::chrono::steady_clock::now();
  if (!path.ok()) return std::fprintf(stderr, "%s\n", path.status().ToString().c_str()), 1;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("{\"refresh_ms\":%.2f,\"lookup_download_ms\":%.2f,\"total_ms\":%.2f,\"peak_rss_mb\":%.1f}\n",
              std::chrono::duration<double, std::milli>(t1 - t0).count(),
              std::chrono::duration<double, std::milli>(t2 - t1).count(),
              std::chrono::duration<double, std::milli>(t2 - t0).count(), ru.ru_maxrss / 1024.0);
  return 0;
}
