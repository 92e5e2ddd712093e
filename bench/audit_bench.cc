// Download-audit records per second on a store, committed in batches of 1, 16 and 64
// (the server's group commit batches whatever arrived during the previous commit).
// Usage: audit_bench STORE_URL [RECORDS]
//        audit_bench STORE_URL RECORDS cycle [BATCH]
//   cycle: the server's audit path, step by step, as src/server/audit_log runs it: begins
//   written in batches of BATCH (default 16) and flushed, their ends written 512 at a time,
//   the journal folded 256 at a time; prints the thread CPU per download of each step
//   (after RECORDS downloads of warm-up, so the trail's indexes are not empty).
#include <time.h>

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
  if (argc > 3 && std::string(argv[3]) == "cycle") {
    const size_t batch = argc > 4 ? static_cast<size_t>(std::atoi(argv[4])) : 16;
    auto cpu = [] {
      timespec ts{};
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
      return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
    };
    double t_begin = 0, t_sync = 0, t_end = 0, t_fold = 0;
    std::vector<DownloadFinish> ends;
    auto run = [&](int n, bool timed) -> bool {
      std::vector<DownloadStart> starts(batch);
      for (auto& s : starts) {
        s.node = "bench";
        s.user_id = user->id;
        s.org_id = user->org_id;
        s.target_path = "bench/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.small.bin";
        s.sha256 = std::string(64, 'a');
        s.remote_addr = "127.0.0.1";
        s.user_agent = "audit_bench";
      }
      size_t pending_fold = 0;
      for (int done = 0; done < n; done += static_cast<int>(batch)) {
        for (auto& s : starts) s.started_at = SystemClock::Get().NowMicros();
        double a = cpu();
        auto ids = (*store)->WriteDownloads(starts);
        double b = cpu();
        if (!ids.ok()) return std::fprintf(stderr, "%s\n", ids.status().ToString().c_str()), false;
        if (!(*store)->SyncDownloads().ok()) return false;
        double c = cpu();
        for (int64_t id : *ids) ends.push_back({id, SystemClock::Get().NowMicros(), 1024, DownloadOutcome::kComplete, ""});
        double d = c, e = c;
        if (ends.size() >= 512) {
          if (!(*store)->WriteFinishes(ends).ok()) return false;
          pending_fold += ends.size();
          ends.clear();
          d = cpu();
          while (pending_fold >= 256) {
            auto moved = (*store)->FoldDownloads(256, 0);
            if (!moved.ok()) return false;
            pending_fold = *moved == 256 ? pending_fold - 256 : 0;
          }
          e = cpu();
        }
        if (timed) t_begin += b - a, t_sync += c - b, t_end += d - c, t_fold += e - d;
      }
      return true;
    };
    if (!run(records, false) || !run(records, true)) return 1;
    std::printf("%-10s cycle, begins %zu per commit, CPU per download: begin write %.1f us, flush %.1f us, "
                "end write %.1f us, fold %.1f us, total %.1f us\n",
                (*store)->engine().c_str(), batch, t_begin / records, t_sync / records, t_end / records,
                t_fold / records, (t_begin + t_sync + t_end + t_fold) / records);
    return 0;
  }
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
