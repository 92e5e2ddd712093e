// Test support: a generated world with a known ground truth, shaped like the incident that
// started this project — a catalogue of files, ~200 organisations, and a one-day window on
// one node with ~170 successful downloads by ~26 organisations, plus traffic outside the
// window, on other nodes, and failed requests. Deterministic for a seed.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "store/store.h"

namespace patchgate::incident::testing {

struct WorldSpec {
  int organisations = 200;
  int affected_organisations = 26;
  int downloads_in_window = 170;
  int catalogue = 30000;
  int noise = 600;
  uint64_t seed = 1;
  std::string node = "mirror-2";
  int64_t window_start = 1'790'000'000LL * 1'000'000;  // microseconds
  int64_t window_end = window_start + 86'400LL * 1'000'000;
};

struct Traffic {  // one request as a node would see it
  int64_t start, end;
  std::string node, user, org, target, sha256;
  int status;
  uint64_t bytes;
};

struct World {
  WorldSpec spec;
  std::vector<Traffic> traffic;
  // Ground truth: (org, user, target, start in seconds) of every affected download.
  std::set<std::tuple<std::string, std::string, std::string, int64_t>> truth;
  std::set<std::string> affected_orgs;
};

// Creates the organisations (with contacts and account managers), users and grants in the
// store and returns the traffic and the ground truth. Nothing is downloaded yet.
World MakeWorld(Store& store, const WorldSpec& spec);
// Records the traffic as served downloads (BeginDownloads/FinishDownloads).
void RecordServed(Store& store, const World& w);
// The same traffic as an nginx combined access log.
std::string AsNginxLog(const World& w, const std::string& node);

}  // namespace patchgate::incident::testing
