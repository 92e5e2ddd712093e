// Download-audit records per second on a store, committed in batches of 1, 16 and 64
// (the server's group commit batches whatever arrived during the previous commit).
// Usage: audit_bench STORE_URL [RECORDS]
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "core/clock.h"
#include "store/store.h"

int main(int argc, char** argv) {
  using namespace patchgate;
  if (argc < 2) return std::fprintf(stderr, "usage: audit_bench STORE_URL [RECORDS]\n"), 2;
  int records = argc > 2 ? std::atoi(argv[2]) : 4000;
  auto store = Store::Open(argv[1]);
  if (!store.ok()) return std::fprintf(stderr, "%s\n", store.status().ToString().c_str()), 1;
  std::string org = "bench-" + std::to_string(SystemClock::Get().NowMicros());
  (void)(*store)->AddOrganisation({0, org, "premier"});
  (void)(*store)->AddUser(org, org + "-u", org + "-hash");
  auto user = (*store)->GetUser(org + "-u");
  for (int batch : {1, 16, 64}) {
    std::vector<DownloadStart> starts(static_cast<size_t>(batch));
    for (auto& s : starts) {
      s.node = "bench";
      s.user_id = user->id;
      s.org_id = user->org_id;
      s.target_path = "office/setup.exe";
      s.sha256 = std::string(64, 'a');
      s.remote_addr = "127.0.0.1";
      s.user_agent = "audit_bench";
    }
    auto t0 = std::chrono::steady_clock::now();
    int done = 0;
    while (done < records) {
      for (auto& s : starts) s.started_at = SystemClock::Get().NowMicros();
      auto ids = (*store)->BeginDownloads(starts);
      if (!ids.ok()) return std::fprintf(stderr, "%s\n", ids.status().ToString().c_str()), 1;
      done += batch;
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%-10s batch %3d: %8.0f durable download records/s (%d records, %.2f s)\n",
                (*store)->engine().c_str(), batch, done / secs, done, secs);
  }
  return 0;
}
