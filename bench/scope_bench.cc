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

namespace {

// nginx combined lines, one second of log time apart; every `every`-th line downloads a
// target, the others are metadata polls (200 or 304) and HEAD requests.
void WriteLog(const std::string& file, long long lines, int every, const std::vector<User>& users) {
  std::ofstream out(file);
  char buf[512];
  for (long long i = 0; i < lines; ++i) {
    const char* user = users[static_cast<size_t>(i % 200)].username.c_str();
    long long d = 1 + (i / 86400) % 28, h = (i / 3600) % 24, m = (i / 60) % 60, sec = i % 60;
    if (i % every == 0)
      std::snprintf(buf, sizeof buf,
                    "198.51.100.%lld - %s [%02lld/Nov/2026:%02lld:%02lld:%02lld +0000] \"GET /targets/product%lld/"
                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.update-%lld.msp HTTP/1.1\" 200 "
                    "%lld \"-\" \"patchgate-client/1.0\"\n",
                    i % 250, user, d, h, m, sec, i % 40, i % 30000, 1000 + i % 9000);
    else
      std::snprintf(buf, sizeof buf,
                    "198.51.100.%lld - %s [%02lld/Nov/2026:%02lld:%02lld:%02lld +0000] \"%s /metadata/%s HTTP/1.1\" %d %d "
                    "\"-\" \"patchgate-client/1.0\"\n",
                    i % 250, user, d, h, m, sec, i % 7 == 0 ? "HEAD" : "GET",
                    i % 3 == 0 ? "snapshot.json" : "timestamp.json", i % 2 ? 304 : 200, i % 2 ? 0 : 1450);
    out << buf;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return std::fprintf(stderr, "usage: scope_bench STORE_URL [DOWNLOADS] [LOG_LINES]\n"), 2;
  long long n = argc > 2 ? std::atoll(argv[2]) : 10'000'000;
  long long lines = argc > 3 ? std::atoll(argv[3]) : 1'000'000;
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
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
  // The audit trail is generated through the bulk path (Store::ImportDownloads), 50,000
  // rows per transaction, spread over 30 days and 20 nodes; each lasts five seconds.
  auto start = std::chrono::steady_clock::now();
  std::vector<Download> batch;
  long long in_window = 0, made = 0;
  for (long long i = 0; made < n; ++i) {
    Download d;
    int node = static_cast<int>(rng() % 20);
    // The trail grows in time order, as a real one does (nodes interleaved).
    d.started_at = t0 + static_cast<int64_t>(static_cast<double>(i) / static_cast<double>(n) * 30 * day) +
                   static_cast<int64_t>(rng() % 1'000'000);
    d.ended_at = d.started_at + 5'000'000;
    d.node = node_prefix + std::to_string(node);
    d.username = users[rng() % users.size()].username;
    d.target_path = "product" + std::to_string(rng() % 40) + "/update-" + std::to_string(rng() % 30000) + ".msp";
    d.sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    d.bytes_sent = 1000;
    d.outcome = DownloadOutcome::kComplete;
    d.http_status = 200;
    char key[64];
    std::snprintf(key, sizeof key, "gen-%s-%012lld", tag.c_str(), i);  // ascending, like real keys
    d.import_key = key;
    // ~170 in the window on node 7: keep the window sparse like the incident.
    bool in = node == 7 && d.started_at >= t0 + 10 * day && d.started_at < t0 + 11 * day;
    if (in && in_window >= 170) continue;
    in_window += in;
    batch.push_back(std::move(d));
    ++made;
    if (batch.size() == 50000 || made == n) {
      auto r = s.ImportDownloads(batch);
      if (!r.ok()) return std::fprintf(stderr, "%s\n", r.status().ToString().c_str()), 1;
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
  // Access-log import speed: a log where every line is a download (the worst case for the
  // store), and one shaped like a patch server's traffic, where clients poll metadata and
  // one line in ten is a download.
  for (int every : {1, 10}) {
    std::string file = "/tmp/scope-bench-" + tag + "-" + std::to_string(every) + ".log";
    WriteLog(file, lines, every, users);
    auto a = std::chrono::steady_clock::now();
    auto rep = incident::ImportNginxLog(s, file, {"bench-legacy-" + tag + "-" + std::to_string(every)});
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
    std::remove(file.c_str());
    if (!rep.ok()) return std::fprintf(stderr, "%s\n", rep.status().ToString().c_str()), 1;
    std::printf("%s: import-log, %s: %zu lines in %.2f s: %.0f lines/s (%zu downloads imported, %.0f rows/s)\n",
                s.engine().c_str(), every == 1 ? "every line a download" : "1 line in 10 a download", rep->lines, secs,
                rep->lines / secs, rep->imported, rep->imported / secs);
  }
  return 0;
}
