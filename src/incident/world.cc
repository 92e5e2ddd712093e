#include "incident/world.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <random>

#include "crypto/hash.h"

namespace patchgate::incident::testing {

World MakeWorld(Store& store, const WorldSpec& spec) {
  World w;
  w.spec = spec;
  std::mt19937_64 rng(spec.seed);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  std::vector<std::vector<std::string>> users(static_cast<size_t>(spec.organisations));
  const char* tiers[] = {"premier", "gold", "standard"};
  std::string tag = std::to_string(spec.seed) + "-" + std::to_string(rng() % 100000);
  for (int i = 0; i < spec.organisations; ++i) {
    Organisation o;
    o.name = "org-" + tag + "-" + std::to_string(i);
    o.tier = tiers[i % 3];
    o.account_manager_name = "Manager " + std::to_string(i % 17);
    o.account_manager_email = "am" + std::to_string(i % 17) + "@vendor.example";
    o.account_manager_phone = "+1 555 01" + std::to_string(10 + i % 80);
    o.security_contacts = {"security@org" + std::to_string(i) + ".example"};
    (void)store.AddOrganisation(o);
    int nusers = 1 + pick(3);
    for (int u = 0; u < nusers; ++u) {
      std::string name = "u" + tag + "-" + std::to_string(i) + "-" + std::to_string(u);
      (void)store.AddUser(o.name, name, Sha256Hex(name));
      users[static_cast<size_t>(i)].push_back(name);
    }
  }
  auto target = [&] {
    int f = pick(spec.catalogue);
    return "product" + std::to_string(f % 40) + "/update-" + std::to_string(f) + ".msp";
  };
  auto add = [&](int org, int64_t start, int64_t dur, const std::string& node, int status, bool truth) {
    const auto& us = users[static_cast<size_t>(org)];
    Traffic t;
    t.start = start;
    t.end = start + dur;
    t.node = node;
    t.user = us[static_cast<size_t>(pick(static_cast<int>(us.size())))];
    t.org = "org-" + tag + "-" + std::to_string(org);
    t.target = target();
    t.sha256 = Sha256Hex(t.target);
    t.status = status;
    t.bytes = status < 300 ? 1000 + rng() % 100000 : 0;
    w.traffic.push_back(t);
    if (truth) {
      w.truth.insert({t.org, t.user, t.target, t.start / 1'000'000});
      w.affected_orgs.insert(t.org);
    }
  };
  int64_t span = spec.window_end - spec.window_start;
  std::vector<int> affected;
  while (static_cast<int>(affected.size()) < spec.affected_organisations) {
    int o = pick(spec.organisations);
    if (std::find(affected.begin(), affected.end(), o) == affected.end()) affected.push_back(o);
  }
  for (int i = 0; i < spec.downloads_in_window; ++i) {
    int org = affected[static_cast<size_t>(i < spec.affected_organisations ? i : pick(spec.affected_organisations))];
    add(org, spec.window_start + static_cast<int64_t>(rng() % static_cast<uint64_t>(span - 60'000'000)),
        1'000'000 + static_cast<int64_t>(rng() % 30'000'000), spec.node, 200, true);
  }
  // Noise that must NOT be in scope: before and after the window on the same node, inside
  // the window on other nodes, and failed requests inside the window.
  for (int i = 0; i < spec.noise; ++i) {
    int org = pick(spec.organisations);
    int kind = i % 4;
    if (kind == 0) add(org, spec.window_start - 3'600'000'000LL - static_cast<int64_t>(rng() % 86'400'000'000ULL), 1'000'000, spec.node, 200, false);
    else if (kind == 1) add(org, spec.window_end + 1'000'000 + static_cast<int64_t>(rng() % 86'400'000'000ULL), 1'000'000, spec.node, 200, false);
    else if (kind == 2) add(org, spec.window_start + static_cast<int64_t>(rng() % static_cast<uint64_t>(span)), 1'000'000, "mirror-" + std::to_string(3 + i % 3), 200, false);
    else add(org, spec.window_start + static_cast<int64_t>(rng() % static_cast<uint64_t>(span)), 1'000'000, spec.node, 403, false);
  }
  return w;
}

void RecordServed(Store& store, const World& w) {
  std::vector<DownloadStart> starts;
  std::vector<const Traffic*> rows;
  for (const auto& t : w.traffic) {
    if (t.status >= 400) continue;  // refused requests are never recorded by the server
    auto u = store.GetUser(t.user);
    DownloadStart s;
    s.started_at = t.start;
    s.node = t.node;
    s.user_id = u->id;
    s.org_id = u->org_id;
    s.target_path = t.target;
    s.sha256 = t.sha256;
    s.remote_addr = "192.0.2.1";
    s.user_agent = "patchgate-client/0.1";
    starts.push_back(s);
    rows.push_back(&t);
  }
  auto ids = store.BeginDownloads(starts);
  std::vector<DownloadFinish> fin;
  for (size_t i = 0; i < rows.size(); ++i)
    fin.push_back({(*ids)[i], rows[i]->end, rows[i]->bytes, DownloadOutcome::kComplete});
  (void)store.FinishDownloads(fin);
}

std::string AsNginxLog(const World& w, const std::string& node) {
  static const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::string out;
  char buf[1024];
  for (const auto& t : w.traffic) {
    if (t.node != w.spec.node) continue;  // this log is the affected node's
    time_t secs = t.start / 1'000'000;
    tm g{};
    gmtime_r(&secs, &g);
    auto pos = t.target.find('/');
    std::string url = "/targets/" + t.target.substr(0, pos + 1) + t.sha256 + "." + t.target.substr(pos + 1);
    std::snprintf(buf, sizeof buf, "198.51.100.%d - %s [%02d/%s/%04d:%02d:%02d:%02d +0000] \"GET %s HTTP/1.1\" %d %llu \"-\" \"curl/7.88\"\n",
                  static_cast<int>(t.start % 200), t.user.c_str(), g.tm_mday, kMonths[g.tm_mon], g.tm_year + 1900,
                  g.tm_hour, g.tm_min, g.tm_sec, url.c_str(), t.status, static_cast<unsigned long long>(t.bytes));
    out += buf;
  }
  (void)node;
  return out;
}

}  // namespace patchgate::incident::testing
