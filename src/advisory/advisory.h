// Advisories: the model (texts, CVE, CVSS, TLP, workaround, fix, revision history,
// schedule, steps done, the issued CSAF document) and the operations the CLI runs on it.
// An advisory lives in the store (advisories table; the model as JSON); every change is a
// compare-and-swap on the row, so the CLI, `advisory run-due` and `patchgate serve` may
// work on the same advisory at once. Thread-safe (no shared state besides the store).
//
// Life: draft (new, workaround, fix, update) -> scheduled (schedule) -> published (the
// publish step, at publish-at, when a fix is recorded). A document is "issued" (rendered
// as CSAF, hashed, signed and kept in the store for the provider) at the pre-notice
// (TLP as given, status interim), at the publication (TLP:WHITE, final), and on every
// update after either.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "store/store.h"

namespace patchgate::advisory {

// CSAF 2.0 TLP labels: RED, AMBER, GREEN, WHITE. Accepts any case and "clear" for WHITE.
Result<std::string> ParseTlp(std::string_view label);

// Who is told before publication.
struct Audience {
  enum class Kind { kTier, kProduct, kDownloaded } kind = Kind::kTier;
  std::vector<std::string> values;  // tiers, or one product
  std::string text;                 // as given, normalised ("tier:gold,premier")
};
// "tier:premier[,gold]" | "product:P" | "downloaded:P".
Result<Audience> ParseAudience(std::string_view text);

struct Revision {
  std::string number;  // "1", "2", ... (CSAF integer versioning)
  int64_t date = 0;    // micros
  std::string summary;
};

struct FixTarget {
  std::string path;  // TUF target path PRODUCT/FILE
  std::string version;
  std::string sha256;
  uint64_t length = 0;
};

struct Schedule {
  int64_t prenotify_at = 0;
  std::optional<int64_t> workaround_at;
  int64_t publish_at = 0;
  std::string audience;
};

// A rendered, hashed and signed document as the provider serves it.
struct Issued {
  std::string tlp;     // its distribution label
  std::string status;  // interim | final
  std::string json, sha256, sha512, asc;
  int64_t at = 0;
};

struct Advisory {
  std::string id, product, title, summary, cve, cvss_vector, severity;
  std::string tlp = "AMBER";  // the label before publication
  std::string state = "draft";
  std::string workaround;
  std::optional<FixTarget> fix;
  std::vector<Revision> revisions;
  std::optional<Schedule> schedule;
  std::map<std::string, int64_t> steps_done;  // prenotice | workaround | publish -> when
  std::optional<int64_t> published_at;
  std::optional<Issued> issued;
  int64_t row_version = 0;
  int64_t created_at = 0;

  // The year folder and file name the provider uses, e.g. "2026" and "pg-2026-0001.json".
  std::string Year() const;
  std::string FileName() const;
};

AdvisoryRow ToRow(const Advisory& a);
Result<Advisory> FromRow(const AdvisoryRow& row);

struct NewAdvisory {
  std::string product, title, summary, cve, cvss_vector, severity, tlp = "AMBER";
};
// Validates (CVE syntax, CVSS vector, severity, TLP, caps on text) and stores a draft with
// revision 1. Returns the id.
Result<std::string> Create(AdvisoryRegister& store, const NewAdvisory& n, const Clock& clock);
Result<Advisory> Load(AdvisoryRegister& store, const std::string& id);
// Applies `change` to the stored advisory and writes it back, re-reading and retrying when
// another writer got there first.
Status Modify(AdvisoryRegister& store, const std::string& id, const std::function<Status(Advisory&)>& change);

Status SetWorkaround(AdvisoryRegister& store, const std::string& id, const std::string& text, const Clock& clock);
// `target`: a published target of the advisory's product whose scan verdict is clean. With
// `repo_dir`, it is looked up in the repository's signed TUF metadata (signatures and
// hashes checked; the scan verdict from the target's custom metadata) and recorded in the
// store's targets; without, in the store's targets.
Status SetFix(Store& store, const std::string& id, const std::string& target, const Clock& clock,
              const std::string& repo_dir = "");
// The product's published targets: the store's, and with `repo_dir` the signed catalogue's.
Result<std::vector<TargetRecord>> ProductTargets(TargetCatalogue& store, const std::string& product, const std::string& repo_dir);
struct Update {
  std::optional<std::string> title, summary, cve, cvss_vector, severity;
  std::string revision_summary;  // what changed (required)
};
Status ApplyUpdate(AdvisoryRegister& store, const std::string& id, const Update& u, const Clock& clock);
// Refuses a schedule that would publish before the fix exists (publish-at not in the
// future without a fix), pre-notify after publishing, a workaround step after publishing
// or without a workaround text, an empty audience, or a published advisory.
Status SetSchedule(Store& store, const std::string& id, const Schedule& s, const Clock& clock);

// The organisations of an audience now (name-sorted).
Result<std::vector<Organisation>> ResolveAudience(Store& store, const Audience& audience);

// The audience organisations to phone: no acknowledgement of any embargoed notice of
// this advisory, and notified before `cutoff` (micros) or not at all. Premier first, then
// gold, then standard; by name within a tier.
struct CallEntry {
  Organisation org;
  std::optional<int64_t> first_notified;
};
Result<std::vector<CallEntry>> CallList(Store& store, const Advisory& a, int64_t cutoff);

// Caps on text from the command line.
inline constexpr size_t kMaxTitle = 512;
inline constexpr size_t kMaxText = 64 * 1024;

}  // namespace patchgate::advisory
