// Incident-scope latency over a large audit trail, and access-log import speed.
// Usage: scope_bench STORE_URL [DOWNLOADS=10000000] [LOG_LINES=1000000]
// Generates DOWNLOADS served records spread over 30 days and 20 nodes (a one-day window on
// one node holds ~170 of them), times `incident scope` for that node and window, then
// imports LOG_LINES nginx lines and reports lines/s. Prints figures.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>

#include "core/clock.h"
#include "crypto/hash.h"
#include "incident/import.h"
#include "incident/scope.h"
#include "store/store.h"

using namespace patchgate;

int main(int argc, char** argv) {
  if (argc < 2) return std::fprintf(stderr, "usage: scope_bench STORE_URL [DOWNLOADS] [LOG_LINES]\n"), 2;
  long long n = argc > 2 ? std::atoll(argv[2]) : 10'000'000;
  long long lines = argc > 3 ? std::atoll(argv[3]) : 1'000'000;
  auto store = Store::Open(argv[1]);
  if (!store.ok()) return std::fprintf(stderr, "%s\n", store.status().ToString().c_str()), 1;
  Store& s = **store;
  std::string tag = std::to_string(SystemClock::Get().NowMicros() % 1000000);
  std::vector<User> users;
  for (int o = 0; o < 200; ++o) {
    std::string org = "bench-org-" + tag + "-" + std::to_string(o);
    (void)s.AddOrganisation({0, org, "gold"});
    std::string u = "bench-u-" + tag + "-" + std::to_string(o);
    (void)s.AddUser(org, u, Sha256Hex(u));
    users.push_back(*s.GetUser(u));
  }
  const int64_t t0 = 1'790'000'000LL * 1'000'000, day = 86'400LL * 1'000'000;
  std::mt19937_64 rng(3);
  std::string node_prefix = "bench-node-" + tag + "-";
  auto start = std::chrono::steady_clock::now();
  std::vector<DownloadStart> batch;
  std::vector<DownloadFinish> fin;
  long long in_window = 0;
  for (long long i = 0; i < n; ++i) {
    DownloadStart d;
    int node = static_cast<int>(rng() % 20);
    d.started_at = t0 + static_cast<int64_t>(rng() % static_cast<uint64_t>(30 * day));
    d.node = node_prefix + std::to_string(node);
    const User& u = users[rng() % users.size()];
    d.user_id = u.id;
    d.org_id = u.org_id;
    d.target_path = "product" + std::to_string(rng() % 40) + "/update-" + std::to_string(rng() % 30000) + ".msp";
    d.sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    // ~170 in the window on node 7: keep the window sparse like the incident.
    if (node == 7 && d.started_at >= t0 + 10 * day && d.started_at < t0 + 11 * day && in_window >= 170) continue;
    if (node == 7 && d.started_at >= t0 + 10 * day && d.started_at < t0 + 11 * day) ++in_window;
    batch.push_back(d);
    if (batch.size() == 20000 || i + 1 == n) {
      auto ids = s.BeginDownloads(batch);
      if (!ids.ok()) return std::fprintf(stderr, "%s\n", ids.status().ToString().c_str()), 1;
      fin.clear();
      for (size_t k = 0; k < ids->size(); ++k) fin.push_back({(*ids)[k], batch[k].started_at + 5'000'000, 1000, DownloadOutcome::kComplete});
      (void)s.FinishDownloads(fin);
      batch.clear();
    }
  }
  double gen = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s: generated %lld download records in %.1f s (%.0f records/s)\n", s.engine().c_str(), n, gen, n / gen);
  incident::ScopeQuery q{node_prefix + "7", t0 + 10 * day, t0 + 11 * day};
  std::vector<double> ms;
  size_t found = 0;
  for (int r = 0; r < 7; ++r) {
    auto a = std::chrono::steady_clock::now();
    auto sc = incident::ComputeScope(s, q);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
    if (!sc.ok()) return std::fprintf(stderr, "%s\n", sc.status().ToString().c_str()), 1;
    found = sc->downloads;
  }
  std::sort(ms.begin(), ms.end());
  std::printf("%s: incident scope over %lld downloads: %zu in scope, median %.1f ms (min %.1f ms)\n", s.engine().c_str(), n,
              found, ms[ms.size() / 2], ms[0]);
  // Access-log import speed.
  std::string file = "/tmp/scope-bench-" + tag + ".log";
  {
    std::ofstream out(file);
    char buf[512];
    for (long long i = 0; i < lines; ++i) {
      std::snprintf(buf, sizeof buf,
                    "198.51.100.%lld - %s [%02lld/Nov/2026:%02lld:%02lld:%02lld +0000] \"GET /targets/product%lld/"
                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.update-%lld.msp HTTP/1.1\" 200 %lld \"-\" \"curl/8\"\n",
                    i % 250, users[static_cast<size_t>(i % 200)].username.c_str(), 1 + (i / 86400) % 28, (i / 3600) % 24,
                    (i / 60) % 60, i % 60, i % 40, i % 30000, 1000 + i % 9000);
      out << buf;
    }
  }
  auto a = std::chrono::steady_clock::now();
  auto rep = incident::ImportNginxLog(s, file, {"bench-legacy-" + tag});
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
  std::remove(file.c_str());
  if (!rep.ok()) return std::fprintf(stderr, "%s\n", rep.status().ToString().c_str()), 1;
  std::printf("%s: import-log %zu lines in %.2f s: %.0f lines/s (%zu imported)\n", s.engine().c_str(), rep->lines, secs,
              rep->lines / secs, rep->imported);
  return 0;
}
