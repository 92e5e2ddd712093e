// The due steps of scheduled advisories: pre-notice (issue the embargoed document, tell the
// audience), workaround (an update to the same audience), publish (the document becomes
// TLP:WHITE and public with the fix; a final message to the audience and to every
// organisation entitled to the product). RunDue does one pass (`advisory run-due`);
// DueRunner repeats it on a thread (`patchgate serve` with delivery flags). Steps are
// idempotent and resumable: deliveries go through notify::Deliver (one row per subject,
// organisation and channel, claimed before sending), and a step is marked done only when
// every message of it is sent, so a rerun sends exactly what is missing and two runners
// at once never send twice. The clock decides what is due (tests move it).
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "advisory/advisory.h"
#include "advisory/csaf.h"
#include "notify/delivery.h"

namespace patchgate::advisory {

struct RunOptions {
  notify::DeliveryOptions delivery;
  Publisher publisher;
  std::string gnupg_home;  // the signing key (DIR/keys/openpgp)
  std::string repo_dir;    // the repository (product tree from its signed targets); may be empty
  std::string passphrase;
};

struct RunReport {
  size_t steps_done = 0, sent = 0, already_sent = 0, failed = 0, busy = 0;
  std::vector<std::string> log;
};

// One pass over every scheduled advisory (or only `only_id` when given).
Result<RunReport> RunDue(Store& store, notify::Transport& transport, const RunOptions& o, const Clock& clock,
                         const std::string& only_id = "");

// Renders the advisory as it stands with `tlp` and `status`, hashes and signs it, and
// keeps it as the issued document (what the provider serves).
Status Issue(Store& store, const std::string& id, const std::string& tlp, const std::string& status,
             const RunOptions& o, const Clock& clock);

// The messages (exposed for tests and --dry-run).
notify::Mail ComposeStepMail(const Advisory& a, const std::string& step, const Organisation& org, const RunOptions& o,
                             const std::string& ack_url, bool include_workaround = true);

// Runs RunDue every `interval_seconds` on its own thread until Stop() (or destruction).
class DueRunner {
 public:
  DueRunner(Store* store, std::unique_ptr<notify::Transport> transport, RunOptions o, const Clock* clock,
            int interval_seconds);
  ~DueRunner();
  void Stop();

 private:
  void Loop();
  Store* store_;
  std::unique_ptr<notify::Transport> transport_;
  RunOptions o_;
  const Clock* clock_;
  int interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace patchgate::advisory
