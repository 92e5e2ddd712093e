// Pre-notice throughput: an advisory pre-notified to N organisations through an SMTP
// server, with K parallel connections, each reused from message to message.
//   advise_bench STORE_URL SMTP_URL [ORGS=10000] [PARALLEL=8]
// Prints messages/s. The store must be empty (the script makes a fresh one).
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "advisory/openpgp.h"
#include "advisory/runner.h"
#include "crypto/hash.h"

using namespace patchgate;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: advise_bench STORE_URL SMTP_URL [ORGS] [PARALLEL]\n");
    return 2;
  }
  int orgs = argc > 3 ? std::atoi(argv[3]) : 10000;
  int parallel = argc > 4 ? std::atoi(argv[4]) : 8;
  auto store = Store::Open(argv[1]);
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
    return 1;
  }
  Store& s = **store;
  for (int i = 0; i < orgs; ++i) {
    Organisation o;
    o.name = "org-" + std::to_string(i);
    o.tier = "premier";
    o.account_manager_name = "AM";
    o.account_manager_email = "am@vendor.example";
    o.security_contacts = {"security@" + o.name + ".example"};
    if (!s.AddOrganisation(o).ok()) return 1;
  }
  char tmpl[] = "/tmp/pgadvbenchXXXXXX";
  std::string tmp = mkdtemp(tmpl);
  std::string home = tmp + "/gnupg";
  auto key = advisory::CreateSigningKey(home, "Bench <bench@vendor.example>", "bench");
  if (!key.ok()) {
    std::fprintf(stderr, "%s\n", key.status().ToString().c_str());
    return 1;
  }
  advisory::NewAdvisory n;
  n.product = "webserver";
  n.title = "Benchmark advisory";
  n.summary = "A flaw";
  auto id = advisory::Create(s, n, SystemClock::Get());
  (void)advisory::SetWorkaround(s, *id, "Turn it off.", SystemClock::Get());
  int64_t now = SystemClock::Get().NowMicros();
  Status st = advisory::SetSchedule(s, *id, {now, now, now + 86'400'000'000LL, "tier:premier"}, SystemClock::Get());
  if (!st.ok()) {
    std::fprintf(stderr, "%s\n", st.ToString().c_str());
    return 1;
  }
  advisory::RunOptions o;
  o.delivery.from = "PSIRT <psirt@vendor.example>";
  o.delivery.parallel = parallel;
  o.delivery.max_attempts = 1;
  o.gnupg_home = home;
  o.passphrase = "bench";
  auto t = notify::NewCurlTransport(argv[2]);
  auto start = std::chrono::steady_clock::now();
  auto r = advisory::RunDue(s, *t, o, SystemClock::Get());
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::system(("gpgconf --homedir '" + home + "' --kill gpg-agent; rm -rf '" + tmp + "'").c_str());
  if (!r.ok()) {
    std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
    return 1;
  }
  std::printf("%s: pre-notice to %d organisations, %d connections: %zu sent, %zu failed in %.1f s = %.0f messages/s\n",
              s.engine().c_str(), orgs, parallel, r->sent, r->failed, secs, r->sent / secs);
  return r->failed ? 1 : 0;
}
