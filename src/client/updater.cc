#include "client/updater.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>
#include <vector>

#include "client/target_fetch.h"
#include "crypto/hash.h"

namespace patchgate::client {

using tuf::Envelope;

namespace {

std::string StripSlash(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

bool SameKeys(const tuf::Root& a, const tuf::Root& b, const std::string& role) {
  const auto& ra = a.roles.at(role);
  const auto& rb = b.roles.at(role);
  std::set<std::string> ka(ra.keyids.begin(), ra.keyids.end()), kb(rb.keyids.begin(), rb.keyids.end());
  return ka == kb && ra.threshold == rb.threshold;
}

// What a canonical envelope's signature check needs, found without reading the whole
// text: canonical form puts "signatures" first and "signed" last, so the signed bytes are
// what follows the first `,"signed":` up to the closing brace. A guess only: the check
// made over it counts once the full scan (LazyTargets::Parse) has found exactly the same
// signed bytes and signatures; any other text is checked again over what the scan found.
struct EnvelopeGuess {
  std::vector<tuf::Signature> signatures;
  size_t signed_offset = 0, signed_size = 0;
};
std::optional<EnvelopeGuess> GuessEnvelope(std::string_view text) {
  constexpr std::string_view kHead = "{\"signatures\":", kSigned = ",\"signed\":{";
  if (text.size() < kHead.size() + kSigned.size() + 1 || text.substr(0, kHead.size()) != kHead || text.back() != '}')
    return std::nullopt;
  size_t pos = text.find(kSigned, kHead.size());
  if (pos == std::string_view::npos) return std::nullopt;
  std::string shell = "{\"signatures\":" + std::string(text.substr(kHead.size(), pos - kHead.size())) + ",\"signed\":{}}";
  auto env = tuf::Envelope::Parse(shell, tuf::kMaxTargetsBytes);
  if (!env.ok()) return std::nullopt;
  EnvelopeGuess g;
  g.signatures = std::move(env->signatures);
  g.signed_offset = pos + kSigned.size() - 1;
  g.signed_size = text.size() - 1 - g.signed_offset;
  return g;
}

bool SameSignatures(const std::vector<tuf::Signature>& a, const std::vector<tuf::Signature>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].keyid != b[i].keyid || a[i].sig != b[i].sig) return false;
  return true;
}

}  // namespace

Status Updater::Loaded::Verify(const std::map<std::string, PublicKey>& keys, const tuf::RoleKeys& role_keys,
                              std::string_view role) {
  if (lazy) return tuf::VerifyThreshold(lz.SignedBytes(raw), lz.signatures, keys, role_keys, role, &checked);
  return tuf::VerifyThreshold(env, keys, role_keys, role, &checked);
}

Result<std::optional<tuf::TargetFile>> Updater::Loaded::Find(const std::string& path) const {
  if (lazy) return lz.Find(raw, path);
  auto it = targets.targets.find(path);
  if (it == targets.targets.end()) return std::optional<tuf::TargetFile>();
  return std::optional<tuf::TargetFile>(it->second);
}

Result<std::map<std::string, tuf::TargetFile>> Updater::Loaded::All(bool with_custom) const {
  if (!lazy) {
    if (with_custom) return targets.targets;
    std::map<std::string, tuf::TargetFile> out;
    for (const auto& [path, file] : targets.targets)
      out.emplace_hint(out.end(), path, tuf::TargetFile{file.length, file.hashes, Json()});
    return out;
  }
  // The role's text passed the canonical scan when it was verified: each entry is read from
  // its own slice (no DOM of the whole role).
  std::string_view text = lz.TargetsText(raw);
  PG_ASSIGN_OR_RETURN(auto read, tuf::ReadCanonicalTargets(text, with_custom));
  if (read) return std::move(*read);
  PG_ASSIGN_OR_RETURN(Json j, cjson::Parse(text, {.max_bytes = tuf::kMaxTargetsBytes, .max_depth = 64}));
  std::map<std::string, tuf::TargetFile> out;
  if (!j.is_object()) return Corrupt("targets: \"targets\" is not an object");
  // The parse is ours alone: each entry is consumed (its custom object moved, not copied).
  for (auto& [path, entry] : j.get_ref<Json::object_t&>()) {
    if (!with_custom && entry.is_object()) entry.erase("custom");
    auto tf = tuf::ParseTargetFile(std::move(entry));
    if (!tf.ok()) return tf.status().WithContext("target " + path.substr(0, 128));
    out.emplace_hint(out.end(), path, std::move(*tf));
  }
  return out;
}

Updater::Updater(UpdaterOptions o, Fetcher* fetcher, const Clock& clock, FileSystem* fs)
    : o_(std::move(o)), fetcher_(fetcher), clock_(clock), fs_(fs) {
  o_.metadata_url = StripSlash(o_.metadata_url);
  o_.target_base_url = StripSlash(o_.target_base_url);
  if (o_.write_metadata_in_background) writer_ = std::make_unique<MetadataWriter>(fs_);
}

std::string Updater::LocalName(const std::string& target_path) { return tuf::QuoteRoleName(target_path); }

std::string Updater::MetaUrl(const std::string& file) const { return o_.metadata_url + "/" + file; }

Status Updater::Persist(const std::string& role, std::string_view bytes) {
  std::string path = JoinPath(o_.metadata_dir, tuf::MetadataName(role));
  // root (rare) stays synchronous: later steps read it back
  if (writer_ && role != "root") return writer_->Write(path, bytes);
  return fs_->WriteFileAtomic(path, bytes);
}

Status Updater::FlushMetadataWrites() { return writer_ ? writer_->Flush() : Status::OK(); }

Result<std::string> Updater::ReadLocal(const std::string& role, uint64_t cap) {
  return fs_->ReadFile(JoinPath(o_.metadata_dir, tuf::MetadataName(role)), cap);
}

Status Updater::InitTrustedRoot(const std::string& metadata_dir, const std::string& root_file, FileSystem* fs) {
  PG_ASSIGN_OR_RETURN(std::string bytes, fs->ReadFile(root_file, tuf::kMaxRootBytes));
  PG_ASSIGN_OR_RETURN(Envelope env, Envelope::Parse(bytes, tuf::kMaxRootBytes));
  PG_ASSIGN_OR_RETURN(tuf::Root root, tuf::Root::FromSigned(env.signed_json));
  PG_RETURN_IF_ERROR(tuf::VerifyThreshold(env, root.keys, root.roles.at("root"), "trusted root"));
  PG_RETURN_IF_ERROR(fs->MakeDirs(metadata_dir));
  return fs->WriteFileAtomic(JoinPath(metadata_dir, "root.json"), bytes);
}

Status Updater::LoadTrustedRoot() {
  auto bytes = ReadLocal("root", tuf::kMaxRootBytes);
  if (!bytes.ok()) {
    if (bytes.status().code() == ErrorCode::kNotFound)
      return NotFound("no trusted root in " + o_.metadata_dir + ": run `patchgate-client --metadata-dir " +
                      o_.metadata_dir + " init ROOT_FILE` first");
    return bytes.status();
  }
  PG_ASSIGN_OR_RETURN(root_env_, Envelope::Parse(*bytes, tuf::kMaxRootBytes));
  PG_ASSIGN_OR_RETURN(root_, tuf::Root::FromSigned(root_env_.signed_json));
  PG_RETURN_IF_ERROR(tuf::VerifyThreshold(root_env_, root_.keys, root_.roles.at("root"), "trusted root"));
  root_raw_ = std::move(*bytes);
  return Status::OK();
}

// Loads the locally trusted timestamp/snapshot/targets; anything that no longer verifies
// under the current root is ignored (as if absent).
void Updater::LoadTrustedTopLevel() {
  timestamp_.reset();
  snapshot_.reset();
  targets_.clear();
  if (auto b = ReadLocal("timestamp", tuf::kMaxTimestampBytes); b.ok()) {
    auto env = Envelope::Parse(*b, tuf::kMaxTimestampBytes);
    if (env.ok() && tuf::VerifyThreshold(*env, root_.keys, root_.roles.at("timestamp"), "timestamp").ok()) {
      auto t = tuf::Timestamp::FromSigned(env->signed_json);
      if (t.ok()) {
        timestamp_ = std::move(*t);
        timestamp_raw_ = std::move(*b);
      }
    }
  }
  if (auto b = ReadLocal("snapshot", tuf::kMaxSnapshotBytes); b.ok()) {
    auto env = Envelope::Parse(*b, tuf::kMaxSnapshotBytes);
    if (env.ok() && tuf::VerifyThreshold(*env, root_.keys, root_.roles.at("snapshot"), "snapshot").ok()) {
      auto s = tuf::Snapshot::FromSigned(env->signed_json);
      if (s.ok()) {
        snapshot_ = std::move(*s);
        snapshot_raw_ = std::move(*b);
      }
    }
  }
}

Status Updater::UpdateRoot() {
  tuf::Root original = root_;
  for (int i = 0; i < tuf::kMaxRootRotations; ++i) {
    int64_t next = root_.common.version + 1;
    std::string url = MetaUrl(tuf::VersionedMetadataName(next, "root"));
    auto bytes = fetcher_->FetchAll(url, tuf::kMaxRootBytes);
    if (!bytes.ok()) {
      // No newer root. Some static hosts (S3 without list rights) answer a missing file 403.
      if (bytes.status().code() == ErrorCode::kNotFound || bytes.status().code() == ErrorCode::kForbidden) break;
      return bytes.status().WithContext("root v" + std::to_string(next));
    }
    PG_ASSIGN_OR_RETURN(Envelope env, Envelope::Parse(*bytes, tuf::kMaxRootBytes));
    PG_ASSIGN_OR_RETURN(tuf::Root fresh, tuf::Root::FromSigned(env.signed_json));
    // Signed by the threshold of the trusted root AND of the new root itself.
    PG_RETURN_IF_ERROR(tuf::VerifyThreshold(env, root_.keys, root_.roles.at("root"),
                                            "root v" + std::to_string(next) + " (by the trusted root)"));
    PG_RETURN_IF_ERROR(tuf::VerifyThreshold(env, fresh.keys, fresh.roles.at("root"),
                                            "root v" + std::to_string(next) + " (by itself)"));
    if (fresh.common.version != next)
      return Status(ErrorCode::kRollback, url + " claims version " + std::to_string(fresh.common.version) +
                                              "; expected " + std::to_string(next));
    root_env_ = std::move(env);
    root_ = std::move(fresh);
    PG_RETURN_IF_ERROR(Persist("root", *bytes));
    root_raw_ = *bytes;
  }
  PG_RETURN_IF_ERROR(tuf::CheckNotExpired(root_.common, clock_, "root"));
  // Fast-forward recovery: new timestamp/snapshot keys invalidate what the old keys signed.
  if (!SameKeys(original, root_, "timestamp") || !SameKeys(original, root_, "snapshot")) {
    timestamp_.reset();
    snapshot_.reset();
    PG_RETURN_IF_ERROR(FlushMetadataWrites());  // no queued write may land after the removal
    PG_RETURN_IF_ERROR(fs_->Remove(JoinPath(o_.metadata_dir, "timestamp.json")));
    PG_RETURN_IF_ERROR(fs_->Remove(JoinPath(o_.metadata_dir, "snapshot.json")));
  }
  return Status::OK();
}

Status Updater::UpdateTimestamp() {
  PG_ASSIGN_OR_RETURN(std::string bytes, fetcher_->FetchAll(MetaUrl("timestamp.json"), tuf::kMaxTimestampBytes));
  PG_ASSIGN_OR_RETURN(Envelope env, Envelope::Parse(bytes, tuf::kMaxTimestampBytes));
  PG_RETURN_IF_ERROR(tuf::VerifyThreshold(env, root_.keys, root_.roles.at("timestamp"), "timestamp"));
  PG_ASSIGN_OR_RETURN(tuf::Timestamp fresh, tuf::Timestamp::FromSigned(env.signed_json));
  if (timestamp_) {
    if (fresh.common.version < timestamp_->common.version)
      return Status(ErrorCode::kRollback, "timestamp version " + std::to_string(fresh.common.version) +
                                              " is older than the trusted version " +
                                              std::to_string(timestamp_->common.version));
    if (fresh.snapshot.version < timestamp_->snapshot.version)
      return Status(ErrorCode::kRollback, "timestamp lists snapshot version " + std::to_string(fresh.snapshot.version) +
                                              ", older than the trusted " + std::to_string(timestamp_->snapshot.version));
    if (fresh.common.version == timestamp_->common.version) {
      // Nothing new: keep the trusted timestamp (still subject to expiry below).
      return tuf::CheckNotExpired(timestamp_->common, clock_, "timestamp");
    }
  }
  PG_RETURN_IF_ERROR(tuf::CheckNotExpired(fresh.common, clock_, "timestamp"));
  timestamp_ = std::move(fresh);
  PG_RETURN_IF_ERROR(Persist("timestamp", bytes));
  timestamp_raw_ = std::move(bytes);
  return Status::OK();
}

Status Updater::UpdateSnapshot() {
  const tuf::MetaFile& meta = timestamp_->snapshot;
  if (snapshot_ && snapshot_->common.version == meta.version) {
    return tuf::CheckNotExpired(snapshot_->common, clock_, "snapshot");
  }
  uint64_t cap = meta.length.value_or(tuf::kMaxSnapshotBytes);
  if (cap > tuf::kMaxSnapshotBytes) cap = tuf::kMaxSnapshotBytes;
  std::string file = root_.consistent_snapshot ? tuf::VersionedMetadataName(meta.version, "snapshot")
                                               : tuf::MetadataName("snapshot");
  auto bytes = fetcher_->FetchAll(MetaUrl(file), cap);
  if (!bytes.ok()) {
    if (bytes.status().code() == ErrorCode::kTooLarge)
      return Status(ErrorCode::kLengthMismatch, "snapshot is longer than its signed length: " + bytes.status().message());
    return bytes.status().WithContext("snapshot");
  }
  PG_RETURN_IF_ERROR(tuf::CheckMetaFile(meta, *bytes, "snapshot"));
  PG_ASSIGN_OR_RETURN(Envelope env, Envelope::Parse(*bytes, tuf::kMaxSnapshotBytes));
  PG_RETURN_IF_ERROR(tuf::VerifyThreshold(env, root_.keys, root_.roles.at("snapshot"), "snapshot"));
  PG_ASSIGN_OR_RETURN(tuf::Snapshot fresh, tuf::Snapshot::FromSigned(env.signed_json));
  if (fresh.common.version != meta.version)
    return Status(ErrorCode::kMixAndMatch, "snapshot version " + std::to_string(fresh.common.version) +
                                               " differs from the version the timestamp lists (" +
                                               std::to_string(meta.version) + ")");
  if (snapshot_) {
    for (const auto& [name, old] : snapshot_->meta) {
      auto it = fresh.meta.find(name);
      if (it == fresh.meta.end())
        return Status(ErrorCode::kRollback, "the new snapshot drops " + name + ", which the trusted snapshot lists");
      if (it->second.version < old.version)
        return Status(ErrorCode::kRollback, "the new snapshot rolls " + name + " back from version " +
                                                std::to_string(old.version) + " to " + std::to_string(it->second.version));
    }
  }
  PG_RETURN_IF_ERROR(tuf::CheckNotExpired(fresh.common, clock_, "snapshot"));
  snapshot_ = std::move(fresh);
  PG_RETURN_IF_ERROR(Persist("snapshot", *bytes));
  snapshot_raw_ = std::move(*bytes);
  return Status::OK();
}

Result<const Updater::Loaded*> Updater::LoadDelegated(const std::string& role,
                                                      const std::map<std::string, PublicKey>& keys,
                                                      const tuf::RoleKeys& role_keys) {
  // A role already loaded is verified again against the delegator it is reached through
  // now: a role delegated by two parents with different keys must satisfy each of them.
  if (auto it = targets_.find(role); it != targets_.end()) {
    PG_RETURN_IF_ERROR(it->second.Verify(keys, role_keys, role));
    return &it->second;
  }
  PG_ASSIGN_OR_RETURN(Checked c, CheckDelegated(role, keys, role_keys));
  return CommitDelegated(role, std::move(c));
}

Result<const Updater::Loaded*> Updater::CommitDelegated(const std::string& role, Checked c) {
  if (c.fetched) PG_RETURN_IF_ERROR(Persist(role, c.loaded.raw));
  auto [it, _] = targets_.insert_or_assign(role, std::move(c.loaded));
  return &it->second;
}

Result<Updater::Checked> Updater::CheckDelegated(const std::string& role, const std::map<std::string, PublicKey>& keys,
                                                 const tuf::RoleKeys& role_keys) {
  auto mit = snapshot_->meta.find(role + ".json");
  if (mit == snapshot_->meta.end())
    return Status(ErrorCode::kMixAndMatch, "role " + role + " is not listed in the trusted snapshot");
  const tuf::MetaFile& meta = mit->second;
  uint64_t cap = std::min(meta.length.value_or(tuf::kMaxTargetsBytes), tuf::kMaxTargetsBytes);

  auto accept = [&](std::string bytes, bool fetched) -> Result<Checked> {
    Loaded loaded;
    loaded.raw = std::move(bytes);
    // A large fetched role is hashed (the snapshot's hash) on another thread while this one
    // reads and verifies it; nothing is kept unless both pass, and a hash mismatch is the
    // error reported first, as for a small role.
    std::future<Status> hash_check;
    if (fetched) {
      if (loaded.raw.size() >= kBackgroundHashBytes)
        hash_check = std::async(std::launch::async, [&] { return tuf::CheckMetaFile(meta, loaded.raw, role); });
      else
        PG_RETURN_IF_ERROR(tuf::CheckMetaFile(meta, loaded.raw, role));
    }
    // A large role's signature check (hashing all of its signed bytes) runs on another
    // thread while this one scans the text, over the bytes the envelope's shape points to;
    // it counts only if the scan finds the same (GuessEnvelope).
    std::optional<EnvelopeGuess> guess;
    std::future<Status> guessed_check;
    tuf::VerifiedSignatures guessed_checked;
    if (loaded.raw.size() >= kBackgroundHashBytes && (guess = GuessEnvelope(loaded.raw))) {
      guessed_check = std::async(std::launch::async, [&] {
        return tuf::VerifyThreshold(std::string_view(loaded.raw).substr(guess->signed_offset, guess->signed_size),
                                    guess->signatures, keys, role_keys, role, &guessed_checked);
      });
    }
    auto read_and_verify = [&]() -> Status {
      // Large canonical roles: no DOM and no copy; the signature is checked over the exact
      // bytes of the file and targets are looked up in the text when asked for.
      if (loaded.raw.size() >= kLazyRoleBytes) {
        auto lz = tuf::LazyTargets::Parse(loaded.raw, tuf::kMaxTargetsBytes);
        if (guessed_check.valid()) {
          Status guessed = guessed_check.get();
          if (lz.ok() && lz->signed_offset == guess->signed_offset && lz->signed_size == guess->signed_size &&
              SameSignatures(lz->signatures, guess->signatures)) {
            // The check was made over exactly these bytes and signatures.
            loaded.lz = std::move(*lz);
            loaded.lazy = true;
            loaded.checked = std::move(guessed_checked);
            PG_RETURN_IF_ERROR(guessed);
            loaded.targets = std::move(loaded.lz.parsed);
            return Status::OK();
          }
        }
        if (lz.ok()) {
          loaded.lz = std::move(*lz);
          loaded.lazy = true;
          PG_RETURN_IF_ERROR(loaded.Verify(keys, role_keys, role));
          loaded.targets = std::move(loaded.lz.parsed);
          return Status::OK();
        }
        if (lz.status().code() != ErrorCode::kUnsupported) return lz.status().WithContext(role);
      }
      PG_ASSIGN_OR_RETURN(loaded.env, Envelope::Parse(loaded.raw, tuf::kMaxTargetsBytes));
      PG_RETURN_IF_ERROR(loaded.Verify(keys, role_keys, role));
      PG_ASSIGN_OR_RETURN(loaded.targets, tuf::Targets::FromSigned(loaded.env.signed_json));
      return Status::OK();
    };
    Status read = read_and_verify();
    if (hash_check.valid()) PG_RETURN_IF_ERROR(hash_check.get());
    PG_RETURN_IF_ERROR(read);
    const tuf::Targets& t = loaded.targets;
    if (t.common.version != meta.version)
      return Status(ErrorCode::kMixAndMatch, role + " version " + std::to_string(t.common.version) +
                                                 " differs from the version the snapshot lists (" +
                                                 std::to_string(meta.version) + ")");
    PG_RETURN_IF_ERROR(tuf::CheckNotExpired(t.common, clock_, role));
    return Checked{std::move(loaded), fetched};
  };

  // A trusted local copy of exactly the listed version is reused.
  Result<std::string> local = [&] {
    std::lock_guard<std::mutex> l(io_mu_);
    return ReadLocal(role, tuf::kMaxTargetsBytes);
  }();
  if (local.ok()) {
    auto r = accept(std::move(*local), false);
    if (r.ok()) return r;
  }
  std::string file = root_.consistent_snapshot ? tuf::VersionedMetadataName(meta.version, role)
                                               : tuf::MetadataName(role);
  Result<std::string> bytes = [&] {
    std::lock_guard<std::mutex> l(io_mu_);
    return fetcher_->FetchAll(MetaUrl(file), cap);
  }();
  if (!bytes.ok()) {
    if (bytes.status().code() == ErrorCode::kTooLarge)
      return Status(ErrorCode::kLengthMismatch, role + " is longer than its signed length: " + bytes.status().message());
    return bytes.status().WithContext(role);
  }
  return accept(std::move(*bytes), true);
}

Status Updater::UpdateTargets() {
  targets_.erase("targets");
  auto r = LoadDelegated("targets", root_.keys, root_.roles.at("targets"));
  return r.status();
}

Status Updater::Refresh() {
  PG_RETURN_IF_ERROR(FlushMetadataWrites());  // what an earlier refresh queued is on disk before it is read
  PG_RETURN_IF_ERROR(LoadTrustedRoot());
  LoadTrustedTopLevel();
  PG_RETURN_IF_ERROR(fs_->MakeDirs(o_.metadata_dir));
  PG_RETURN_IF_ERROR(UpdateRoot());
  PG_RETURN_IF_ERROR(UpdateTimestamp());
  PG_RETURN_IF_ERROR(UpdateSnapshot());
  PG_RETURN_IF_ERROR(UpdateTargets());
  refreshed_ = true;
  return Status::OK();
}

Result<TargetInfo> Updater::GetTargetInfo(const std::string& target_path) {
  if (!refreshed_) PG_RETURN_IF_ERROR(Refresh());
  struct Visit {
    std::string role;
    std::map<std::string, PublicKey> keys;  // of the delegator
    tuf::RoleKeys role_keys;
  };
  std::vector<Visit> stack{{"targets", root_.keys, root_.roles.at("targets")}};
  std::set<std::string> visited;
  bool loop = false;
  while (!stack.empty()) {
    if (static_cast<int>(visited.size()) >= tuf::kMaxDelegationDepth)
      return Status(ErrorCode::kDelegationDepth, "gave up looking for " + target_path + " after " +
                                                     std::to_string(tuf::kMaxDelegationDepth) + " delegated roles");
    Visit v = std::move(stack.back());
    stack.pop_back();
    if (!visited.insert(v.role).second) {
      loop = true;
      continue;
    }
    PG_ASSIGN_OR_RETURN(const Loaded* loaded, LoadDelegated(v.role, v.keys, v.role_keys));
    PG_ASSIGN_OR_RETURN(std::optional<tuf::TargetFile> hit, loaded->Find(target_path));
    if (hit) return TargetInfo{target_path, std::move(*hit), v.role};
    if (!loaded->targets.delegations) continue;
    const tuf::Delegations& d = *loaded->targets.delegations;
    std::vector<Visit> children;
    if (d.succinct) {
      children.push_back({d.succinct->BinFor(target_path), d.keys, d.succinct->keys});
    } else {
      for (const auto& r : d.roles) {
        if (!r.Matches(target_path)) continue;
        children.push_back({r.name, d.keys, r.keys});
        if (r.terminating) {
          stack.clear();
          break;
        }
      }
    }
    for (auto it = children.rbegin(); it != children.rend(); ++it) stack.push_back(std::move(*it));
  }
  if (loop) return Status(ErrorCode::kDelegationLoop, "delegations loop while looking for " + target_path);
  return NotFound("no role signs a target named " + target_path);
}

std::optional<std::string> Updater::FindCachedTarget(const TargetInfo& info) {
  std::string path = JoinPath(o_.target_dir, LocalName(info.path));
  auto bytes = fs_->ReadFile(path, info.file.length);
  if (!bytes.ok()) return std::nullopt;
  tuf::MetaFile m;
  m.length = info.file.length;
  m.hashes = info.file.hashes;
  if (!tuf::CheckMetaFile(m, *bytes, info.path).ok()) return std::nullopt;
  return path;
}

Result<std::string> Updater::DownloadTarget(const TargetInfo& info) {
  if (auto cached = FindCachedTarget(info)) return *cached;
  std::string hash;
  if (root_.consistent_snapshot) {
    // TUF 5.7.3: the file is "<hash>.<name>" for one of the hashes the metadata lists.
    // sha256 when listed (what patchgate writes), else the first supported algorithm.
    if (auto sha = info.file.hashes.find("sha256"); sha != info.file.hashes.end()) {
      hash = sha->second;
    } else {
      for (const auto& [alg, hex] : info.file.hashes)
        if (Hasher::Create(alg).ok()) {
          hash = hex;
          break;
        }
    }
    if (hash.empty()) return Unsupported(info.path + " lists no hash algorithm this client supports");
    if (hash.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
      return Corrupt(info.path + ": a listed hash is not hexadecimal; cannot name the file to download");
  }
  PG_RETURN_IF_ERROR(fs_->MakeDirs(o_.target_dir));
  // The verified metadata becomes durable while the target downloads (their syncs share
  // the journal's commits); FlushMetadataWrites() waits for it.
  if (writer_) writer_->FlushInBackground();
  std::string final_path = JoinPath(o_.target_dir, LocalName(info.path));
  std::string url = o_.target_base_url + "/" + TargetUrlPath(info.path, hash, root_.consistent_snapshot);
  PG_RETURN_IF_ERROR(FetchTargetTo(fetcher_, url, info.path, info.file, final_path, TargetFetchOptions{}));
  return final_path;
}

Result<std::vector<TargetInfo>> Updater::ListAllTargets() {
  std::vector<TargetInfo> out;
  PG_RETURN_IF_ERROR(VisitAllTargets([&out](std::vector<TargetInfo> batch) {
    if (out.empty()) out = std::move(batch);
    else out.insert(out.end(), std::make_move_iterator(batch.begin()), std::make_move_iterator(batch.end()));
    return Status::OK();
  }));
  return out;
}

namespace {

// Checks roles ahead of the walk on a few threads (UpdaterOptions::parallel_roles): a role
// is handed in only once its delegator is verified (its keys come from that verified
// delegator), and its result is used only when the walk reaches that very entry.
template <typename Job, typename Out>
class Lookahead {
 public:
  Lookahead(int threads, std::function<Out(const Job&)> run) : run_(std::move(run)) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
  }
  ~Lookahead() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
      queue_.clear();
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  // Started and not taken yet (queued, running or done).
  size_t Pending() {
    std::lock_guard<std::mutex> l(mu_);
    return started_.size();
  }
  void Start(uint64_t id, Job job) {
    std::lock_guard<std::mutex> l(mu_);
    started_.insert(id);
    queue_.emplace_back(id, std::move(job));
    cv_.notify_one();
  }
  // The result for id (waiting for it), or nullopt if id was never started.
  std::optional<Out> Take(uint64_t id) {
    std::unique_lock<std::mutex> l(mu_);
    if (!started_.count(id)) return std::nullopt;
    // Not picked up yet: run here rather than wait in line.
    auto q = std::find_if(queue_.begin(), queue_.end(), [&](const auto& e) { return e.first == id; });
    if (q != queue_.end()) {
      Job job = std::move(q->second);
      queue_.erase(q);
      started_.erase(id);
      l.unlock();
      return run_(job);
    }
    cv_.wait(l, [&] { return done_.count(id) > 0; });
    Out out = std::move(done_.at(id));
    done_.erase(id);
    started_.erase(id);
    return out;
  }

 private:
  void Work() {
    for (;;) {
      std::pair<uint64_t, Job> j;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        j = std::move(queue_.front());
        queue_.pop_front();
      }
      Out out = run_(j.second);
      {
        std::lock_guard<std::mutex> l(mu_);
        done_.emplace(j.first, std::move(out));
      }
      cv_.notify_all();
    }
  }
  std::function<Out(const Job&)> run_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::deque<std::pair<uint64_t, Job>> queue_;
  std::set<uint64_t> started_;
  std::map<uint64_t, Out> done_;
  std::vector<std::thread> threads_;
};

}  // namespace

namespace {

// A role is trusted only for the paths every delegation on its way down allows (a bin only
// for the paths that hash to it): a target it lists outside them is one no client would
// take from it (GetTargetInfo never asks it), so it is not handed over.
using PathRule = std::function<bool(const std::string&)>;
using PathRules = std::shared_ptr<const std::vector<PathRule>>;

bool Allows(const PathRules& rules, const std::string& path) {
  if (!rules) return true;
  for (const auto& rule : *rules)
    if (!rule(path)) return false;
  return true;
}
// Trusted for `path` under `rules`, and not answered for by a terminating delegation whose
// walk ended before this role (`blocked`).
bool Admits(const PathRules& rules, const std::vector<PathRules>& blocked, const std::string& path) {
  if (!Allows(rules, path)) return false;
  for (const auto& b : blocked)
    if (Allows(b, path)) return false;
  return true;
}

}  // namespace

struct WalkMemory::State {
  struct Role {
    Updater::Loaded loaded;  // verified
    tuf::MetaFile meta;      // as the snapshot it was verified under listed it
    std::optional<FileIdentity> trusted_copy;  // its file in the trusted dir (RememberWalk)
    std::string print;                          // DelegationPrint of its delegator's keys for it
    std::shared_ptr<const std::map<std::string, PublicKey>> keys;  // its delegator's keys
    tuf::RoleKeys role_keys;
    PathRules rules;
    std::vector<PathRules> blocked;
    std::vector<std::string> admitted;  // the paths it is trusted for and lists
  };
  std::vector<std::string> order;  // walk order
  std::map<std::string, Role> roles;
  std::unordered_map<std::string, std::string> owner;  // path -> the role it was handed over from
  bool disjoint = true;  // no path was admitted by two roles
};

WalkMemory::WalkMemory(std::unique_ptr<State> s) : s_(std::move(s)) {}
WalkMemory::~WalkMemory() = default;
Updater::~Updater() = default;

namespace {

// The remembered role, when it stands for a fresh check of `role` delegated with `print`.
const WalkMemory::State::Role* Reusable(const WalkMemory::State* last, const std::string& role, const std::string& print,
                                        const tuf::Snapshot& snapshot, const std::string& metadata_dir) {
  if (!last) return nullptr;
  auto it = last->roles.find(role);
  if (it == last->roles.end()) return nullptr;
  const auto& r = it->second;
  auto m = snapshot.meta.find(role + ".json");
  if (m == snapshot.meta.end() || !tuf::SameListing(m->second, r.meta) || r.print != print) return nullptr;
  if (!r.trusted_copy || IdentityOf(JoinPath(metadata_dir, tuf::MetadataName(role))) != r.trusted_copy) return nullptr;
  return &r;
}

}  // namespace

std::unique_ptr<WalkMemory> Updater::RememberWalk() {
  if (!walk_) return nullptr;
  for (auto& [role, r] : walk_->roles)
    if (!r.trusted_copy) r.trusted_copy = IdentityOf(JoinPath(o_.metadata_dir, tuf::MetadataName(role)));
  return std::unique_ptr<WalkMemory>(new WalkMemory(std::move(walk_)));
}

Status Updater::VisitAllTargets(const TargetVisitor& visit) { return VisitAllTargets(visit, nullptr, nullptr); }

Result<bool> Updater::IncrementalWalk(const TargetVisitor& visit, const WalkMemory::State& last, WalkStats& st) {
  if (!last.disjoint || last.order.empty()) return false;
  // Which roles changed. One that delegates (or whose keys from root changed) changes the
  // tree's shape or keys: the whole walk then.
  std::vector<std::string> changed;
  for (const auto& role : last.order) {
    const auto& r = last.roles.at(role);
    std::string print = role == "targets" ? tuf::DelegationPrint(root_.keys, root_.roles.at("targets"), std::nullopt) : r.print;
    if (const auto* keep = Reusable(&last, role, print, *snapshot_, o_.metadata_dir)) {
      PG_RETURN_IF_ERROR(tuf::CheckNotExpired(keep->loaded.targets.common, clock_, role));
      continue;
    }
    if (role == "targets" || r.loaded.targets.delegations) return false;
    changed.push_back(role);
  }
  // Each changed role, checked against the (unchanged) delegator's keys as in a full walk;
  // it must still delegate nothing and claim no path an unchanged role holds.
  struct Fresh {
    std::string role;
    Checked checked;
    std::map<std::string, tuf::TargetFile> all;
    std::vector<std::string> admitted;
  };
  std::set<std::string> changed_set(changed.begin(), changed.end());
  std::unordered_map<std::string, std::string> claimed;
  std::vector<Fresh> fresh;
  for (const auto& role : changed) {
    const auto& r = last.roles.at(role);
    PG_ASSIGN_OR_RETURN(Checked c, CheckDelegated(role, *r.keys, r.role_keys));
    ++st.roles_checked;
    if (c.loaded.targets.delegations) return false;
    PG_ASSIGN_OR_RETURN(auto all, c.loaded.All(o_.targets_custom));
    std::vector<std::string> admitted;
    for (const auto& [path, file] : all) {
      if (!Admits(r.rules, r.blocked, path)) continue;
      auto o = last.owner.find(path);
      if (o != last.owner.end() && o->second != role && !changed_set.count(o->second)) return false;
      if (!claimed.emplace(path, role).second) return false;
      admitted.push_back(path);
    }
    fresh.push_back(Fresh{role, std::move(c), std::move(all), std::move(admitted)});
  }
  // Commit: the reused roles as they were, the changed ones as checked now.
  auto next = std::make_unique<WalkMemory::State>(last);
  for (const auto& role : last.order)
    if (!changed_set.count(role)) {
      targets_.insert_or_assign(role, last.roles.at(role).loaded);
      ++st.roles_reused;
    }
  for (const auto& f : fresh)
    for (const auto& path : next->roles.at(f.role).admitted) next->owner.erase(path);
  st.incremental = true;
  st.changed_roles = changed;
  for (auto& f : fresh) {
    auto& nr = next->roles.at(f.role);
    PG_ASSIGN_OR_RETURN(const Loaded* loaded, CommitDelegated(f.role, std::move(f.checked)));
    nr.loaded = *loaded;
    nr.meta = snapshot_->meta.at(f.role + ".json");
    nr.trusted_copy.reset();  // rewritten or read now: taken again by RememberWalk
    std::vector<TargetInfo> batch;
    batch.reserve(f.admitted.size());
    for (const auto& path : f.admitted) {
      next->owner[path] = f.role;
      batch.push_back(TargetInfo{path, std::move(f.all.at(path)), f.role});
    }
    nr.admitted = std::move(f.admitted);
    PG_RETURN_IF_ERROR(visit(std::move(batch)));
  }
  walk_ = std::move(next);
  return true;
}

Status Updater::VisitAllTargets(const TargetVisitor& visit, const WalkMemory* memory, WalkStats* stats) {
  if (!refreshed_) PG_RETURN_IF_ERROR(Refresh());
  WalkStats local;
  WalkStats& st = stats ? *stats : local;
  st = WalkStats{};
  walk_.reset();
  const WalkMemory::State* last = memory ? memory->s_.get() : nullptr;
  if (last) {
    PG_ASSIGN_OR_RETURN(bool done, IncrementalWalk(visit, *last, st));
    if (done) return Status::OK();
    st = WalkStats{};
  }
  auto next = std::make_unique<WalkMemory::State>();
  struct Visit {
    uint64_t id;
    std::string role;
    std::map<std::string, PublicKey> keys;  // of the verified delegator
    tuf::RoleKeys role_keys;
    PathRules rules;        // all must allow a path for this role to be trusted for it
    bool terminating = false;
  };
  auto with = [](const PathRules& parent, PathRule rule) {
    auto r = std::make_shared<std::vector<PathRule>>(parent ? *parent : std::vector<PathRule>{});
    r->push_back(std::move(rule));
    return PathRules(std::move(r));
  };
  // A terminating delegation ends a client's search for every path it allows: once its
  // role's walk is over (the stack is back to `below` entries), no later role is trusted
  // for those paths.
  struct Blocker {
    size_t below;
    PathRules rules;
  };
  std::vector<Blocker> blockers;
  uint64_t next_id = 0;
  std::vector<Visit> stack{{next_id++, "targets", root_.keys, root_.roles.at("targets"), nullptr, false}};
  std::set<std::string> visited, seen_paths;
  // With parallel_roles > 1, the next roles on the stack (each delegated by a role already
  // verified) are fetched and checked on other threads while this one walks: the same
  // checks (CheckDelegated: the snapshot's version, length and hashes, the delegator's keys
  // and threshold, expiry), and a role's targets are used only here, in walk order, after
  // its check passed.
  const int ahead = std::max(0, o_.parallel_roles - 1);
  // Roles the memory will most likely stand for (listed unchanged, trusted copy unchanged;
  // the keys are compared when the walk reaches them): not checked ahead.
  auto likely_reused = [&](const std::string& role) {
    if (!last) return false;
    auto it = last->roles.find(role);
    if (it == last->roles.end()) return false;
    auto m = snapshot_->meta.find(role + ".json");
    return m != snapshot_->meta.end() && tuf::SameListing(m->second, it->second.meta);
  };
  std::unique_ptr<Lookahead<Visit, Result<Checked>>> pool;
  if (ahead > 0)
    pool = std::make_unique<Lookahead<Visit, Result<Checked>>>(
        ahead, [this](const Visit& v) { return CheckDelegated(v.role, v.keys, v.role_keys); });
  std::set<std::string> speculated;  // roles handed to the pool (each at most once)
  while (!stack.empty()) {
    std::vector<PathRules> blocked;  // the terminating delegations whose walk is over
    for (const auto& b : blockers)
      if (stack.size() <= b.below) blocked.push_back(b.rules);
    Visit v = std::move(stack.back());
    stack.pop_back();
    if (!visited.insert(v.role).second) {
      if (pool) (void)pool->Take(v.id);  // checked ahead for nothing: dropped (frees its place)
      continue;
    }
    if (v.terminating) blockers.push_back({stack.size(), v.rules});
    if (visited.size() > static_cast<size_t>(tuf::kMaxDelegationDepth) * 1024)
      return Status(ErrorCode::kDelegationDepth, "more delegated roles than this client walks");
    if (pool) {
      // Up to 2 * threads of the roles walked next are in the pool's hands at a time
      // (bounded memory however many roles there are).
      for (auto it = stack.rbegin(); it != stack.rend() && pool->Pending() < static_cast<size_t>(2 * ahead); ++it) {
        if (visited.count(it->role) || targets_.count(it->role) || speculated.count(it->role) || likely_reused(it->role))
          continue;
        speculated.insert(it->role);
        pool->Start(it->id, *it);
      }
    }
    const Loaded* loaded = nullptr;
    std::optional<Result<Checked>> ahead_result = pool ? pool->Take(v.id) : std::nullopt;
    std::string print = tuf::DelegationPrint(v.keys, v.role_keys, std::nullopt);
    const auto* keep = Reusable(last, v.role, print, *snapshot_, o_.metadata_dir);
    if (keep) {
      PG_RETURN_IF_ERROR(tuf::CheckNotExpired(keep->loaded.targets.common, clock_, v.role));
      loaded = &targets_.insert_or_assign(v.role, keep->loaded).first->second;
      ++st.roles_reused;
    } else if (ahead_result) {
      if (!ahead_result->ok()) return ahead_result->status();
      PG_ASSIGN_OR_RETURN(loaded, CommitDelegated(v.role, std::move(**ahead_result)));
      ++st.roles_checked;
    } else {
      bool had = targets_.count(v.role) > 0;
      PG_ASSIGN_OR_RETURN(loaded, LoadDelegated(v.role, v.keys, v.role_keys));
      if (!had) ++st.roles_checked;
    }
    WalkMemory::State::Role& remembered = next->roles[v.role];
    next->order.push_back(v.role);
    remembered.meta = snapshot_->meta.at(v.role + ".json");
    if (keep) remembered.trusted_copy = keep->trusted_copy;
    remembered.print = std::move(print);
    remembered.keys = std::make_shared<const std::map<std::string, PublicKey>>(v.keys);
    remembered.role_keys = v.role_keys;
    remembered.rules = v.rules;
    remembered.blocked = blocked;
    PG_ASSIGN_OR_RETURN(auto all, loaded->All(o_.targets_custom));
    std::vector<TargetInfo> batch;
    for (auto& [path, file] : all) {
      if (!Admits(v.rules, blocked, path)) continue;  // outside what this role is delegated
      remembered.admitted.push_back(path);
      // The first role in walk order that signs a path wins, as in GetTargetInfo.
      if (seen_paths.insert(path).second) {
        batch.push_back(TargetInfo{path, std::move(file), v.role});  // all is not used again
        next->owner.emplace(path, v.role);
      } else {
        next->disjoint = false;
      }
    }
    if (!batch.empty()) PG_RETURN_IF_ERROR(visit(std::move(batch)));
    if (!loaded->targets.delegations) continue;
    const tuf::Delegations& d = *loaded->targets.delegations;
    std::vector<Visit> children;
    if (d.succinct) {
      auto bins = std::make_shared<const tuf::SuccinctRoles>(*d.succinct);
      for (int i = 0; i < d.succinct->NumBins(); ++i) {
        std::string bin = d.succinct->BinName(i);
        children.push_back({next_id++, bin, d.keys, d.succinct->keys,
                            with(v.rules, [bins, bin](const std::string& p) { return bins->BinFor(p) == bin; }),
                            false});
      }
    } else {
      for (const auto& r : d.roles) {
        auto delegation = std::make_shared<const tuf::DelegatedRole>(r);
        children.push_back({next_id++, r.name, d.keys, r.keys,
                            with(v.rules, [delegation](const std::string& p) { return delegation->Matches(p); }),
                            r.terminating});
      }
    }
    for (auto it = children.rbegin(); it != children.rend(); ++it) stack.push_back(std::move(*it));
  }
  for (auto& [role, r] : next->roles) r.loaded = targets_.at(role);
  walk_ = std::move(next);
  return Status::OK();
}

std::map<std::string, std::string> Updater::TrustedMetadataFiles() const {
  std::map<std::string, std::string> out;
  for (const auto& [name, bytes] : TrustedMetadataViews()) out.emplace_hint(out.end(), name, bytes);
  return out;
}

std::map<std::string, std::string_view> Updater::TrustedMetadataViews() const {
  std::map<std::string, std::string_view> out;
  if (!root_raw_.empty()) out[std::to_string(root_.common.version) + ".root.json"] = root_raw_;
  if (timestamp_ && !timestamp_raw_.empty()) out["timestamp.json"] = timestamp_raw_;
  if (snapshot_ && !snapshot_raw_.empty())
    out[std::to_string(snapshot_->common.version) + ".snapshot.json"] = snapshot_raw_;
  for (const auto& [role, loaded] : targets_)
    out[tuf::VersionedMetadataName(loaded.targets.common.version, role)] = loaded.raw;
  return out;
}

std::optional<int64_t> Updater::TrustedSnapshotVersion() const {
  if (!snapshot_) return std::nullopt;
  return snapshot_->common.version;
}

}  // namespace patchgate::client
