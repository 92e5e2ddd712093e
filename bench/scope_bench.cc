// Incident scope over a large audit trail, and access-log import speed. Three modes:
//   scope_bench generate STORE_URL [DOWNLOADS=10000000] [DAYS=30]
//       generates DOWNLOADS served records in time order over DAYS days and 20 nodes and
//       prints two windows, one per line: "seed|busy NODE FROM TO EXPECTED_ROWS". The seed
//       window (node 7, one day) is thinned to 170 downloads, the incident's size; the busy
//       window is an ordinary node-day (DOWNLOADS / (20 x DAYS) downloads).
//   scope_bench floor STORE_URL NODE FROM TO EXPECTED_ROWS
//       the floor: the bare index query (Store::VisitScopeDownloads, which the scope runs:
//       every row seen in place, nothing kept) timed inside one process with the store
//       already open and the scope command's heap (huge pages); checks the row count; median
//       of 7. Beside it, in the same process: ComputeScope (the query and the grouping) and
//       RenderTable. Prints "QUERY_MEDIAN QUERY_MIN SCOPE_MEDIAN TABLE_MEDIAN" (ms).
//   scope_bench import STORE_URL [LOG_LINES=1000000]
//       imports LOG_LINES nginx lines twice (every line a download; one in ten) and
//       reports lines/s.
// Every failure exits non-zero: the shell script around it aborts.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <cstring>
#include <random>

#include "core/clock.h"
#include "core/heap_huge_pages.h"
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

std::vector<User> MakeUsers(Store& s, const std::string& tag) {
  std::vector<User> users;
  for (int o = 0; o < 200; ++o) {
    std::string org = "bench-org-" + tag + "-" + std::to_string(o);
    (void)s.AddOrganisation({0, org, "gold", "AM " + std::to_string(o % 17), "am" + std::to_string(o % 17) + "@vendor.example",
                             "+44 20 7946 0" + std::to_string(100 + o % 17), {"security@org" + std::to_string(o) + ".example"}});
    std::string u = "bench-u-" + tag + "-" + std::to_string(o);
    (void)s.AddUser(org, u, Sha256Hex(u));
    users.push_back(*s.GetUser(u));
  }
  return users;
}

int Fail(const Status& st) {
  std::fprintf(stderr, "scope_bench: %s\n", st.ToString().c_str());
  return 1;
}

int Generate(Store& s, long long n, int days) {
  std::string tag = std::to_string(SystemClock::Get().NowMicros() % 1000000);
  std::vector<User> users = MakeUsers(s, tag);
  const int64_t t0 = 1'790'000'000LL * 1'000'000, day = 86'400LL * 1'000'000;
  const int seed_day = days > 10 ? 10 : days / 2, busy_day = days > 12 ? 12 : days - 1;
  std::mt19937_64 rng(3);
  std::string node_prefix = "bench-node-" + tag + "-";
  // Through the bulk path (Store::ImportDownloads), 50,000 rows per transaction; each
  // download lasts five seconds; nodes interleaved in time order, as a real trail grows.
  auto start = std::chrono::steady_clock::now();
  std::vector<Download> batch;
  long long in_seed = 0, in_busy = 0, made = 0;
  const int64_t seed_from = t0 + seed_day * day, seed_to = seed_from + day;
  const int64_t busy_from = t0 + busy_day * day, busy_to = busy_from + day;
  for (long long i = 0; made < n; ++i) {
    Download d;
    int node = static_cast<int>(rng() % 20);
    d.started_at = t0 + static_cast<int64_t>(static_cast<double>(i) / static_cast<double>(n) * days * day) +
                   static_cast<int64_t>(rng() % 1'000'000);
    d.ended_at = d.started_at + 5'000'000;
    d.node = node_prefix + std::to_string(node);
    d.username = users[rng() % users.size()].username;
    d.target_path = "product" + std::to_string(rng() % 40) + "/update-" + std::to_string(rng() % 30000) + ".msp";
    d.sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    d.bytes_sent = 1000;
    d.outcome = DownloadOutcome::kComplete;
    d.http_status = 200;
    d.remote_addr = "198.51.100." + std::to_string(rng() % 250);
    d.user_agent = "patchgate-client/1.0";
    char key[64];
    std::snprintf(key, sizeof key, "gen-%s-%012lld", tag.c_str(), i);  // ascending, like real keys
    d.import_key = key;
    // The window overlap rule counts a download that ends inside the window too.
    auto overlaps = [&](int64_t from, int64_t to) { return d.started_at <= to && *d.ended_at >= from; };
    bool seed = node == 7 && overlaps(seed_from, seed_to);
    if (seed && in_seed >= 170) continue;  // keep the incident's window sparse
    in_seed += seed;
    in_busy += node == 3 && overlaps(busy_from, busy_to);
    batch.push_back(std::move(d));
    ++made;
    if (batch.size() == 50000 || made == n) {
      auto r = s.ImportDownloads(batch);
      if (!r.ok()) return Fail(r.status());
      batch.clear();
    }
  }
  double gen = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "%s: generated %lld download records in %.1f s (%.0f records/s)\n", s.engine().c_str(), n, gen,
               n / gen);
  std::printf("seed %s7 %s %s %lld\n", node_prefix.c_str(), FormatRfc3339(seed_from / 1'000'000).c_str(),
              FormatRfc3339(seed_to / 1'000'000).c_str(), in_seed);
  std::printf("busy %s3 %s %s %lld\n", node_prefix.c_str(), FormatRfc3339(busy_from / 1'000'000).c_str(),
              FormatRfc3339(busy_to / 1'000'000).c_str(), in_busy);
  return 0;
}

int Floor(Store& s, const std::string& node, const std::string& from, const std::string& to, size_t expected) {
  auto a = ParseRfc3339Micros(from), b = ParseRfc3339Micros(to);
  if (!a.ok() || !b.ok()) return Fail(InvalidArgument("FROM and TO are RFC 3339 times"));
  DownloadQuery q;
  q.node = node;
  q.since = *a;
  q.until = *b;
  q.successful_only = true;
  q.scope_columns = true;  // exactly the query ComputeScope runs
  auto ms_since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
  };
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::vector<double> query_ms, scope_ms, render_ms;
  for (int r = 0; r < 7; ++r) {
    // The floor: the rows as the scope reads them (Store::VisitScopeDownloads), each seen
    // and its texts' lengths summed, nothing kept.
    auto t = std::chrono::steady_clock::now();
    size_t rows = 0, bytes = 0;
    Status st = s.VisitScopeDownloads(
        q,
        [&](const ScopeRowView& v) {
          ++rows;
          bytes += v.node.size() + v.username.size() + v.target_path.size() + v.sha256.size() + v.source.size();
        },
        [&](int64_t, std::string_view d) { bytes += d.size(); });
    query_ms.push_back(ms_since(t));
    if (!st.ok()) return Fail(st);
    if (rows != expected || bytes == 0)
      return Fail(Internal("the query found " + std::to_string(rows) + " rows, expected " + std::to_string(expected)));
    // What the command adds in memory: grouping (with the query) and the table.
    t = std::chrono::steady_clock::now();
    auto scope = incident::ComputeScope(s, s, {node, *a, *b});
    scope_ms.push_back(ms_since(t));
    if (!scope.ok()) return Fail(scope.status());
    if (scope->downloads != expected) return Fail(Internal("the scope counted " + std::to_string(scope->downloads)));
    t = std::chrono::steady_clock::now();
    std::string table = incident::RenderTable(*scope);
    render_ms.push_back(ms_since(t));
    if (table.empty()) return Fail(Internal("empty table"));
  }
  // median, min of the bare query; median of the scope (query + grouping) and of the table (ms)
  std::printf("%.2f %.2f %.2f %.2f\n", median(query_ms), *std::min_element(query_ms.begin(), query_ms.end()),
              median(scope_ms), median(render_ms));
  return 0;
}

int Import(Store& s, long long lines) {
  std::string tag = std::to_string(SystemClock::Get().NowMicros() % 1000000);
  std::vector<User> users = MakeUsers(s, tag);
  // An all-download log (the worst case for the store) and one shaped like a patch
  // server's traffic, where clients poll metadata and one line in ten is a download.
  for (int every : {1, 10}) {
    std::string file = "/tmp/scope-bench-" + tag + "-" + std::to_string(every) + ".log";
    WriteLog(file, lines, every, users);
    auto a = std::chrono::steady_clock::now();
    auto rep = incident::ImportNginxLog(s, file, {"bench-legacy-" + tag + "-" + std::to_string(every)});
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
    std::remove(file.c_str());
    if (!rep.ok()) return Fail(rep.status());
    if (rep->lines != static_cast<size_t>(lines)) return Fail(Internal("import read fewer lines than written"));
    std::printf("%s: import-log, %s: %zu lines in %.2f s: %.0f lines/s (%zu downloads imported, %.0f rows/s)\n",
                s.engine().c_str(), every == 1 ? "every line a download" : "1 line in 10 a download", rep->lines, secs,
                rep->lines / secs, rep->imported, rep->imported / secs);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (argc < 3 || (mode != "generate" && mode != "floor" && mode != "import") || (mode == "floor" && argc != 7))
    return std::fprintf(stderr,
                        "usage: scope_bench generate STORE_URL [DOWNLOADS] [DAYS]\n"
                        "       scope_bench floor STORE_URL NODE FROM TO EXPECTED_ROWS\n"
                        "       scope_bench import STORE_URL [LOG_LINES]\n"),
           2;
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  auto store = Store::Open(argv[2]);
  if (!store.ok()) return Fail(store.status());
  if (mode == "generate")
    return Generate(**store, argc > 3 ? std::atoll(argv[3]) : 10'000'000, argc > 4 ? std::atoi(argv[4]) : 30);
  // The floor runs with the heap the scope command uses (huge pages: core/heap_huge_pages.h),
  // so that the two differ only by what the command adds to the query.
  if (mode == "floor") GrowHeapOnHugePages(size_t{256} << 20);
  if (mode == "floor") return Floor(**store, argv[3], argv[4], argv[5], std::strtoull(argv[6], nullptr, 10));
  return Import(**store, argc > 3 ? std::atoll(argv[3]) : 1'000'000);
}
