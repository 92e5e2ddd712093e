#include "tuf/repository.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include "crypto/hash.h"
#include "core/names.h"
#include "core/text.h"
#include "tuf/metadata.h"
#include "tuf/naming.h"

namespace patchgate::tuf {

namespace {

constexpr char kConfigFile[] = "patchgate-repo.json";
constexpr char kTopRoles[4][10] = {"root", "timestamp", "snapshot", "targets"};

struct Config {
  std::string root_keys_dir;
  ExpiryDays expiry;
  int bins_threshold = 1024;
  int bin_bits = 8;
  KeyType key_type = KeyType::kEd25519;
};

std::string MetaDir(const std::string& dir) { return JoinPath(dir, "metadata"); }
std::string KeysDir(const std::string& dir) { return JoinPath(dir, "keys"); }
std::string RoleKeyPath(const std::string& dir, const std::string& role) {
  return JoinPath(KeysDir(dir), QuoteRoleName(role) + ".key.json");
}
std::string ProductRole(const std::string& product) { return ProductRoleName(product); }
std::string BinPrefix(const std::string& product) { return ProductBinPrefix(product); }
std::string MetaFileName(int64_t version, const std::string& role) { return VersionedMetadataName(version, role); }

std::string KeyTypeName(KeyType t) {
  switch (t) {
    case KeyType::kEd25519: return "ed25519";
    case KeyType::kEcdsaP256: return "ecdsa";
    case KeyType::kRsaPss: return "rsa";
  }
  return "ed25519";
}

Result<Config> LoadConfig(const std::string& dir) {
  auto text = RealFileSystem::Get().ReadFile(JoinPath(dir, kConfigFile), 1 << 20);
  if (!text.ok()) {
    if (text.status().code() == ErrorCode::kNotFound)
      return NotFound(dir + " is not a patchgate repository (no " + kConfigFile + "); create one with `patchgate init " + dir + "`");
    return text.status();
  }
  PG_ASSIGN_OR_RETURN(Json j, cjson::Parse(*text));
  Config c;
  try {
    c.root_keys_dir = j.at("root_keys_dir").get<std::string>();
    c.expiry.root = j.at("expiry_days").at("root").get<int>();
    c.expiry.targets = j.at("expiry_days").at("targets").get<int>();
    c.expiry.snapshot = j.at("expiry_days").at("snapshot").get<int>();
    c.expiry.timestamp = j.at("expiry_days").at("timestamp").get<int>();
    c.bins_threshold = j.at("bins_threshold").get<int>();
    c.bin_bits = j.at("bin_bits").get<int>();
    PG_ASSIGN_OR_RETURN(c.key_type, ParseKeyType(j.at("key_type").get<std::string>()));
  } catch (const Json::exception& e) {
    return Corrupt(std::string(kConfigFile) + " is damaged: " + e.what());
  }
  return c;
}

Status SaveConfig(const std::string& dir, const Config& c) {
  Json j = {{"root_keys_dir", c.root_keys_dir},
            {"expiry_days", {{"root", c.expiry.root}, {"targets", c.expiry.targets},
                             {"snapshot", c.expiry.snapshot}, {"timestamp", c.expiry.timestamp}}},
            {"bins_threshold", c.bins_threshold},
            {"bin_bits", c.bin_bits},
            {"key_type", KeyTypeName(c.key_type)}};
  return RealFileSystem::Get().WriteFileAtomic(JoinPath(dir, kConfigFile), j.dump(2) + "\n");
}

// ---- keys --------------------------------------------------------------------------

Status SaveKey(const std::string& path, const PrivateKey& key, const KeyAccess& access) {
  PG_ASSIGN_OR_RETURN(std::string blob, key.Serialize(access.passphrase, access.allow_plaintext));
  PG_RETURN_IF_ERROR(RealFileSystem::Get().MakeDirs(DirName(path)));
  ::chmod(DirName(path).c_str(), 0700);
  PG_RETURN_IF_ERROR(RealFileSystem::Get().WriteFileAtomic(path, blob));
  ::chmod(path.c_str(), 0600);
  return Status::OK();
}

Result<PrivateKey> LoadKey(const std::string& path, const KeyAccess& access) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return Unavailable("private key " + path + " is missing: restore it from backup, or rotate the role's key "
                       "with `patchgate key rotate`");
  if (st.st_mode & 0077)
    return Unavailable("private key " + path + " is readable by other users (mode " +
                       std::to_string(st.st_mode & 0777) + "); run `chmod 600 " + path + "` first");
  PG_ASSIGN_OR_RETURN(std::string blob, RealFileSystem::Get().ReadFile(path, 64 * 1024));
  auto key = PrivateKey::Deserialize(blob, access.passphrase, access.allow_plaintext);
  if (!key.ok()) return key.status().WithContext(path);
  return key;
}

// ---- writing metadata --------------------------------------------------------------

Json NewSigned(RoleType type, int64_t version, int64_t expires) {
  return Json{{"_type", std::string(RoleTypeName(type))},
              {"spec_version", kSpecVersion},
              {"version", version},
              {"expires", FormatRfc3339(expires)}};
}

Result<std::string> SignedFile(Json signed_json, const std::vector<const PrivateKey*>& keys) {
  PG_ASSIGN_OR_RETURN(Envelope env, Envelope::FromSigned(std::move(signed_json)));
  for (const PrivateKey* k : keys) PG_RETURN_IF_ERROR(env.Sign(*k));
  return env.Serialize();
}

FileSystem* g_repo_fs = nullptr;  // the seam for metadata writes during one operation (tests)

Status WriteMeta(const std::string& dir, const std::string& name, const std::string& bytes) {
  FileSystem& fs = g_repo_fs ? *g_repo_fs : RealFileSystem::Get();
  return fs.WriteFileAtomic(JoinPath(MetaDir(dir), name), bytes);
}

Json RoleJson(const std::vector<std::string>& keyids, int threshold) {
  return Json{{"keyids", keyids}, {"threshold", threshold}};
}

// ---- reading the committed state ---------------------------------------------------

struct State {
  int64_t root_version = 0;
  Envelope root_env;
  Root root;
  std::string ts_bytes;
  Envelope ts_env;
  Timestamp ts;
  std::string snapshot_bytes;
  Envelope snap_env;
  Snapshot snap;
  Envelope targets_env;
  Targets targets;  // top-level (delegations only)
};

Result<Envelope> ReadEnvelope(const std::string& path, uint64_t cap) {
  PG_ASSIGN_OR_RETURN(std::string text, RealFileSystem::Get().ReadFile(path, cap));
  auto env = Envelope::Parse(text, cap);
  if (!env.ok()) return env.status().WithContext(path);
  return env;
}

Result<int64_t> HighestRootVersion(const std::string& dir) {
  PG_ASSIGN_OR_RETURN(auto names, RealFileSystem::Get().ListDir(MetaDir(dir)));
  int64_t best = 0;
  for (const auto& n : names)
    if (auto p = ParseVersionedMetadataName(n); p && p->role == "root") best = std::max(best, p->version);
  if (best == 0) return NotFound("no N.root.json in " + MetaDir(dir));
  return best;
}

Result<State> LoadState(const std::string& dir) {
  State s;
  PG_ASSIGN_OR_RETURN(s.root_version, HighestRootVersion(dir));
  PG_ASSIGN_OR_RETURN(s.root_env, ReadEnvelope(JoinPath(MetaDir(dir), MetaFileName(s.root_version, "root")), kMaxRootBytes));
  PG_ASSIGN_OR_RETURN(s.root, Root::FromSigned(s.root_env.signed_json));
  PG_ASSIGN_OR_RETURN(s.ts_bytes, RealFileSystem::Get().ReadFile(JoinPath(MetaDir(dir), "timestamp.json"), kMaxTimestampBytes));
  {
    auto env = Envelope::Parse(s.ts_bytes, kMaxTimestampBytes);
    if (!env.ok()) return env.status().WithContext(JoinPath(MetaDir(dir), "timestamp.json"));
    s.ts_env = std::move(*env);
  }
  PG_ASSIGN_OR_RETURN(s.ts, Timestamp::FromSigned(s.ts_env.signed_json));
  std::string snap_path = JoinPath(MetaDir(dir), MetaFileName(s.ts.snapshot.version, "snapshot"));
  PG_ASSIGN_OR_RETURN(s.snapshot_bytes, RealFileSystem::Get().ReadFile(snap_path, kMaxSnapshotBytes));
  PG_ASSIGN_OR_RETURN(s.snap_env, Envelope::Parse(s.snapshot_bytes, kMaxSnapshotBytes));
  PG_ASSIGN_OR_RETURN(s.snap, Snapshot::FromSigned(s.snap_env.signed_json));
  int64_t tv = s.snap.meta.at("targets.json").version;
  PG_ASSIGN_OR_RETURN(s.targets_env, ReadEnvelope(JoinPath(MetaDir(dir), MetaFileName(tv, "targets")), kMaxTargetsBytes));
  PG_ASSIGN_OR_RETURN(s.targets, Targets::FromSignedWithoutTargets(s.targets_env.signed_json));
  return s;
}

Result<Envelope> LoadRole(const std::string& dir, const State& s, const std::string& role) {
  auto it = s.snap.meta.find(role + ".json");
  if (it == s.snap.meta.end()) return NotFound("role " + role + " is not in the snapshot");
  return ReadEnvelope(JoinPath(MetaDir(dir), MetaFileName(it->second.version, role)), kMaxTargetsBytes);
}

int64_t RoleVersion(const State& s, const std::string& role) {
  auto it = s.snap.meta.find(role + ".json");
  return it == s.snap.meta.end() ? 0 : it->second.version;
}

// Writes snapshot (with `meta`) and then timestamp.json: the commit point.
Status CommitSnapshotAndTimestamp(const std::string& dir, const Config& cfg, const State& s, const Json& meta,
                                  const PrivateKey& snapshot_key, const PrivateKey& timestamp_key,
                                  const Clock& clock) {
  int64_t now = clock.NowUnix();
  int64_t sv = s.snap.common.version + 1;
  Json snap = NewSigned(RoleType::kSnapshot, sv, now + int64_t{cfg.expiry.snapshot} * 86400);
  snap["meta"] = meta;
  PG_ASSIGN_OR_RETURN(std::string snap_bytes, SignedFile(std::move(snap), {&snapshot_key}));
  PG_RETURN_IF_ERROR(WriteMeta(dir, MetaFileName(sv, "snapshot"), snap_bytes));
  Json ts = NewSigned(RoleType::kTimestamp, s.ts.common.version + 1, now + int64_t{cfg.expiry.timestamp} * 86400);
  ts["meta"] = {{"snapshot.json", {{"version", sv}, {"length", snap_bytes.size()},
                                   {"hashes", {{"sha256", Sha256Hex(snap_bytes)}}}}}};
  PG_ASSIGN_OR_RETURN(std::string ts_bytes, SignedFile(std::move(ts), {&timestamp_key}));
  return WriteMeta(dir, "timestamp.json", ts_bytes);
}

Json SnapshotMeta(const State& s) {
  Json meta = Json::object();
  for (const auto& [name, m] : s.snap.meta) meta[name] = {{"version", m.version}};
  return meta;
}

// An exclusive lock on the repository for the duration of a write operation.
class RepoLock {
 public:
  static Result<RepoLock> Acquire(const std::string& dir) {
    std::string path = JoinPath(dir, ".patchgate.lock");
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return IOError("cannot open lock " + path + ": " + std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd);
      return Unavailable("another patchgate command is writing " + dir + "; try again when it has finished");
    }
    RepoLock l;
    l.fd_ = fd;
    return l;
  }
  RepoLock(RepoLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  ~RepoLock() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  RepoLock() = default;
  int fd_ = -1;
};

// Streams `src` into `dst` through a temporary file, fsynced and renamed into place.
Status CopyFileAtomic(const std::string& src, const std::string& dst) {
  int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return IOError("cannot open " + src + ": " + std::strerror(errno));
  std::string tmp = dst + ".tmp." + std::to_string(::getpid());
  int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) {
    ::close(in);
    return IOError("cannot create " + tmp + ": " + std::strerror(errno));
  }
  std::string buf(1 << 20, '\0');
  Status st;
  for (;;) {
    ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      st = IOError("cannot read " + src + ": " + std::strerror(errno));
      break;
    }
    if (n == 0) break;
    ssize_t off = 0;
    while (off < n) {
      ssize_t w = ::write(out, buf.data() + off, static_cast<size_t>(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        st = IOError("cannot write " + tmp + ": " + std::strerror(errno));
        break;
      }
      off += w;
    }
    if (!st.ok()) break;
  }
  if (st.ok() && ::fsync(out) != 0) st = IOError("cannot fsync " + tmp + ": " + std::strerror(errno));
  ::close(in);
  ::close(out);
  if (st.ok() && ::rename(tmp.c_str(), dst.c_str()) != 0) st = IOError("cannot rename " + tmp + ": " + std::strerror(errno));
  if (!st.ok()) ::unlink(tmp.c_str());
  return st;
}

bool ValidFileName(const std::string& n) {
  if (n.empty() || n.size() > 200 || n[0] == '.') return false;
  // Target names go into JSON metadata: only valid UTF-8 can be written (and read back).
  if (!IsValidUtf8(n)) return false;
  for (unsigned char c : n)
    if (c < 0x21 || c == '/' || c == '\\' || c == '%' || c == 0x7f) return false;
  return true;
}

std::string BaseName(const std::string& p) {
  auto pos = p.find_last_of('/');
  return pos == std::string::npos ? p : p.substr(pos + 1);
}

}  // namespace

// =======================================================================================
// init

Status InitRepository(const InitOptions& o, const KeyAccess& access, const Clock& clock) {
  auto& fs = RealFileSystem::Get();
  if (o.root_threshold < 1 || o.root_keys < 1 || o.root_threshold > o.root_keys)
    return InvalidArgument("--root-threshold must be between 1 and --root-keys");
  if (o.bin_bits < 1 || o.bin_bits > 14) return InvalidArgument("bin bits must be between 1 and 14");
  if (access.passphrase.empty() && !access.allow_plaintext)
    return InvalidArgument("private keys must be encrypted: set PATCHGATE_PASSPHRASE, pass --passphrase-file, or "
                           "(for throwaway demos only) --insecure-plaintext-keys");
  if (fs.Exists(JoinPath(o.dir, kConfigFile)) || fs.Exists(MetaDir(o.dir)))
    return AlreadyExists(o.dir + " already holds a repository; choose an empty directory");
  Config cfg;
  cfg.root_keys_dir = o.root_keys_dir.empty() ? o.dir + ".root-keys" : o.root_keys_dir;
  cfg.expiry = o.expiry;
  cfg.bins_threshold = o.bins_threshold;
  cfg.bin_bits = o.bin_bits;
  cfg.key_type = o.key_type;
  if (fs.Exists(cfg.root_keys_dir)) {
    auto names = fs.ListDir(cfg.root_keys_dir);
    if (names.ok() && !names->empty())
      return AlreadyExists("root key directory " + cfg.root_keys_dir + " is not empty; choose another with --root-keys-dir");
  }
  // Generate every key first.
  std::vector<PrivateKey> root_keys;
  for (int i = 0; i < o.root_keys; ++i) {
    PG_ASSIGN_OR_RETURN(PrivateKey k, PrivateKey::Generate(o.key_type));
    root_keys.push_back(std::move(k));
  }
  std::map<std::string, PrivateKey> online;
  for (const char* role : {"timestamp", "snapshot", "targets"}) {
    PG_ASSIGN_OR_RETURN(PrivateKey k, PrivateKey::Generate(o.key_type));
    online.emplace(role, std::move(k));
  }
  // Key files, then metadata, timestamp last.
  for (const auto& dir : {o.dir, MetaDir(o.dir), JoinPath(o.dir, "targets"), KeysDir(o.dir)})
    PG_RETURN_IF_ERROR(fs.MakeDirs(dir));
  PG_RETURN_IF_ERROR(fs.MakeDirs(cfg.root_keys_dir));
  ::chmod(cfg.root_keys_dir.c_str(), 0700);
  for (const auto& k : root_keys)
    PG_RETURN_IF_ERROR(SaveKey(JoinPath(cfg.root_keys_dir, "root-" + k.KeyId().substr(0, 16) + ".key.json"), k, access));
  for (const auto& [role, k] : online) PG_RETURN_IF_ERROR(SaveKey(RoleKeyPath(o.dir, role), k, access));
  PG_RETURN_IF_ERROR(SaveConfig(o.dir, cfg));

  int64_t now = clock.NowUnix();
  Json keys = Json::object();
  std::vector<std::string> root_ids;
  for (const auto& k : root_keys) {
    keys[k.KeyId()] = k.public_key().ToJson();
    root_ids.push_back(k.KeyId());
  }
  Json roles = {{"root", RoleJson(root_ids, o.root_threshold)}};
  for (const auto& [role, k] : online) {
    keys[k.KeyId()] = k.public_key().ToJson();
    roles[role] = RoleJson({k.KeyId()}, 1);
  }
  Json root = NewSigned(RoleType::kRoot, 1, now + int64_t{o.expiry.root} * 86400);
  root["consistent_snapshot"] = true;
  root["keys"] = keys;
  root["roles"] = roles;
  std::vector<const PrivateKey*> signers;
  for (const auto& k : root_keys) signers.push_back(&k);
  PG_ASSIGN_OR_RETURN(std::string root_bytes, SignedFile(std::move(root), signers));
  PG_RETURN_IF_ERROR(WriteMeta(o.dir, "1.root.json", root_bytes));

  Json targets = NewSigned(RoleType::kTargets, 1, now + int64_t{o.expiry.targets} * 86400);
  targets["targets"] = Json::object();
  targets["delegations"] = {{"keys", Json::object()}, {"roles", Json::array()}};
  PG_ASSIGN_OR_RETURN(std::string targets_bytes, SignedFile(std::move(targets), {&online.at("targets")}));
  PG_RETURN_IF_ERROR(WriteMeta(o.dir, "1.targets.json", targets_bytes));

  Json snap = NewSigned(RoleType::kSnapshot, 1, now + int64_t{o.expiry.snapshot} * 86400);
  snap["meta"] = {{"targets.json", {{"version", 1}}}};
  PG_ASSIGN_OR_RETURN(std::string snap_bytes, SignedFile(std::move(snap), {&online.at("snapshot")}));
  PG_RETURN_IF_ERROR(WriteMeta(o.dir, "1.snapshot.json", snap_bytes));

  Json ts = NewSigned(RoleType::kTimestamp, 1, now + int64_t{o.expiry.timestamp} * 86400);
  ts["meta"] = {{"snapshot.json", {{"version", 1}, {"length", snap_bytes.size()},
                                   {"hashes", {{"sha256", Sha256Hex(snap_bytes)}}}}}};
  PG_ASSIGN_OR_RETURN(std::string ts_bytes, SignedFile(std::move(ts), {&online.at("timestamp")}));
  return WriteMeta(o.dir, "timestamp.json", ts_bytes);
}

// =======================================================================================
// publish

namespace {

// The targets of one product: either all in the product role, or spread over hash bins.
class ProductContent {
 public:
  ProductContent(const std::string& dir, const State& s, const Config& cfg, std::string product)
      : dir_(dir), s_(s), cfg_(cfg), product_(std::move(product)) {}

  Status Load(bool exists) {
    if (!exists) {
      product_signed_ = Json::object();
      product_signed_["targets"] = Json::object();
      return Status::OK();
    }
    PG_ASSIGN_OR_RETURN(Envelope env, LoadRole(dir_, s_, ProductRole(product_)));
    product_signed_ = std::move(env.signed_json);
    const Json& d = product_signed_.value("delegations", Json::object());
    if (d.contains("succinct_roles")) {
      auto del = Targets::FromSignedWithoutTargets(product_signed_);
      if (!del.ok()) return del.status();
      succinct_ = del->delegations->succinct;
    }
    return Status::OK();
  }

  bool binned() const { return succinct_.has_value(); }

  // The target entry for `path`, or null.
  Result<const Json*> Find(const std::string& path) {
    Json* targets;
    PG_ASSIGN_OR_RETURN(targets, TargetsFor(path));
    auto it = targets->find(path);
    return it == targets->end() ? nullptr : &*it;
  }

  Status Put(const std::string& path, Json entry) {
    Json* targets;
    PG_ASSIGN_OR_RETURN(targets, TargetsFor(path));
    (*targets)[path] = std::move(entry);
    if (binned()) dirty_bins_.insert(succinct_->BinFor(path));
    else dirty_product_ = true;
    return Status::OK();
  }

  // Splits a role that outgrew the threshold into 2^bits hash bins.
  void SplitIntoBins(const std::string& keyid, const Json& public_key) {
    SuccinctRoles sr;
    sr.keys = {{keyid}, 1};
    sr.bit_length = cfg_.bin_bits;
    sr.name_prefix = BinPrefix(product_);
    Json all = std::move(product_signed_["targets"]);
    product_signed_["targets"] = Json::object();
    product_signed_["delegations"] = {
        {"keys", {{keyid, public_key}}},
        {"succinct_roles", {{"keyids", {keyid}}, {"threshold", 1}, {"bit_length", sr.bit_length},
                            {"name_prefix", sr.name_prefix}}}};
    for (int i = 0; i < sr.NumBins(); ++i) {
      bins_[sr.BinName(i)] = Json::object();
      dirty_bins_.insert(sr.BinName(i));
    }
    for (auto it = all.begin(); it != all.end(); ++it) bins_[sr.BinFor(it.key())][it.key()] = std::move(it.value());
    succinct_ = sr;
    dirty_product_ = true;
  }

  size_t UnbinnedCount() const { return product_signed_["targets"].size(); }

  // Signs and writes every changed role; records the new versions in `meta`.
  Status Write(const PrivateKey& key, const Clock& clock, Json* meta) {
    int64_t expires = clock.NowUnix() + int64_t{cfg_.expiry.targets} * 86400;
    std::string prole = ProductRole(product_);
    if (dirty_product_) {
      int64_t v = RoleVersion(s_, prole) + 1;
      Json signed_json = NewSigned(RoleType::kTargets, v, expires);
      signed_json["targets"] = product_signed_["targets"];
      if (product_signed_.contains("delegations")) signed_json["delegations"] = product_signed_["delegations"];
      PG_ASSIGN_OR_RETURN(std::string bytes, SignedFile(std::move(signed_json), {&key}));
      PG_RETURN_IF_ERROR(WriteMeta(dir_, MetaFileName(v, prole), bytes));
      (*meta)[prole + ".json"] = {{"version", v}};
    }
    for (const auto& bin : dirty_bins_) {
      int64_t v = RoleVersion(s_, bin) + 1;
      Json signed_json = NewSigned(RoleType::kTargets, v, expires);
      signed_json["targets"] = bins_[bin];
      PG_ASSIGN_OR_RETURN(std::string bytes, SignedFile(std::move(signed_json), {&key}));
      PG_RETURN_IF_ERROR(WriteMeta(dir_, MetaFileName(v, bin), bytes));
      (*meta)[bin + ".json"] = {{"version", v}};
    }
    return Status::OK();
  }

 private:
  Result<Json*> TargetsFor(const std::string& path) {
    if (!binned()) return &product_signed_["targets"];
    std::string bin = succinct_->BinFor(path);
    auto it = bins_.find(bin);
    if (it == bins_.end()) {
      Json targets = Json::object();
      if (RoleVersion(s_, bin) > 0) {
        PG_ASSIGN_OR_RETURN(Envelope env, LoadRole(dir_, s_, bin));
        targets = std::move(env.signed_json["targets"]);
      }
      it = bins_.emplace(bin, std::move(targets)).first;
    }
    return &it->second;
  }

  const std::string& dir_;
  const State& s_;
  const Config& cfg_;
  std::string product_;
  Json product_signed_;
  std::optional<SuccinctRoles> succinct_;
  std::map<std::string, Json> bins_;  // bin role -> its "targets" object
  std::set<std::string> dirty_bins_;
  bool dirty_product_ = false;
};



// The private copies of one publish: DIR/.staging/<pid>/, removed (with whatever is in it)
// when the publish ends, however it ends. Published targets are hard links to the copies,
// so removing the staging names never touches them.
class Staging {
 public:
  static Result<Staging> Create(const std::string& repo_dir) {
    std::string parent = JoinPath(repo_dir, ".staging");
    if (::mkdir(parent.c_str(), 0700) != 0 && errno != EEXIST)
      return IOError("cannot create " + parent + ": " + std::strerror(errno));
    Staging st;
    st.dir_ = JoinPath(parent, std::to_string(::getpid()));
    RemoveTree(st.dir_);  // a leftover of an earlier process with this pid (killed)
    if (::mkdir(st.dir_.c_str(), 0700) != 0) return IOError("cannot create " + st.dir_ + ": " + std::strerror(errno));
    return st;
  }
  Staging(Staging&& o) noexcept : dir_(std::move(o.dir_)) { o.dir_.clear(); }
  ~Staging() {
    if (!dir_.empty()) RemoveTree(dir_);
  }
  const std::string& dir() const { return dir_; }

  // Opens `source` once, checks through that descriptor that it is a regular file, and
  // copies it through the same descriptor into the staging directory while hashing it.
  // An input over `max_bytes` (0: no cap) is refused before any byte is copied, and one that
  // grows past it while being copied is refused too.
  Result<StagedInput> Stage(const std::string& source, const std::string& name, uint64_t max_bytes) {
    int in = ::open(source.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (in < 0) return InvalidArgument("cannot read " + source + ": " + std::strerror(errno));
    struct stat st {};
    if (::fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(in);
      return InvalidArgument(source + " is not a regular file");
    }
    auto too_large = [&](const std::string& what) {
      return TooLarge(source + what + ", over the gate's --max-file-size of " + std::to_string(max_bytes) +
                      " bytes; nothing was published. Raise --max-file-size (the scan engine cannot scan files of "
                      "2 GiB or more) or leave the file out");
    };
    if (max_bytes && static_cast<uint64_t>(st.st_size) > max_bytes) {
      ::close(in);
      return too_large(" is " + std::to_string(st.st_size) + " bytes: refused before it was copied");
    }
    StagedInput s;
    s.source = source;
    s.name = name;
    s.staged = JoinPath(dir_, name);
    int out = ::open(s.staged.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
      ::close(in);
      return IOError("cannot create " + s.staged + ": " + std::strerror(errno));
    }
    auto hasher = Hasher::Create("sha256");
    std::string buf(1 << 20, '\0');
    Status result;
    for (;;) {
      ssize_t n = ::read(in, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        result = IOError("cannot read " + source + ": " + std::strerror(errno));
        break;
      }
      if (n == 0) break;
      s.length += static_cast<uint64_t>(n);
      if (max_bytes && s.length > max_bytes) {  // grew after the check above
        result = too_large(" grew to " + std::to_string(s.length) + " bytes while it was being copied");
        break;
      }
      hasher->Update(std::string_view(buf.data(), static_cast<size_t>(n)));
      for (ssize_t off = 0; off < n && result.ok();) {
        ssize_t w = ::write(out, buf.data() + off, static_cast<size_t>(n - off));
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) result = IOError("cannot write " + s.staged + ": " + std::strerror(errno));
        else off += w;
      }
      if (!result.ok()) break;
    }
    // Readable by a static server's workers once published; the directory stays private.
    if (result.ok() && ::fchmod(out, 0644) != 0) result = IOError("cannot chmod " + s.staged);
    if (result.ok() && ::fsync(out) != 0) result = IOError("cannot fsync " + s.staged + ": " + std::strerror(errno));
    ::close(in);
    ::close(out);
    if (!result.ok()) return result;
    s.sha256 = hasher->FinalHex();
    return s;
  }

 private:
  Staging() = default;
  static void RemoveTree(const std::string& dir) {
    auto names = RealFileSystem::Get().ListDir(dir);
    if (names.ok())
      for (const auto& n : *names) ::unlink(JoinPath(dir, n).c_str());
    ::rmdir(dir.c_str());
  }
  std::string dir_;
};

// Target files this publish added to targets/: removed again unless the publish commits.
class NewTargetFiles {
 public:
  ~NewTargetFiles() {
    if (committed_) return;
    for (auto it = files_.rbegin(); it != files_.rend(); ++it) ::unlink(it->c_str());
    for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) ::rmdir(it->c_str());  // only when empty
  }
  void AddFile(std::string f) { files_.push_back(std::move(f)); }
  void AddDir(std::string d) { dirs_.push_back(std::move(d)); }
  void Commit() { committed_ = true; }

 private:
  std::vector<std::string> files_, dirs_;
  bool committed_ = false;
};

// Puts the staged copy at `dst` by hard link (same inode: exactly the bytes hashed and
// scanned), or, across filesystems, by a copy that is hashed again. An existing `dst`
// must already hold exactly these bytes.
Status PlaceTarget(const StagedInput& in, const std::string& dst, NewTargetFiles* created) {
  struct stat st {};
  if (::lstat(dst.c_str(), &st) == 0) {
    if (!S_ISREG(st.st_mode))
      return Corrupt(dst + " exists and is not a regular file (a symlink?): remove it, then run `patchgate verify`");
    PG_ASSIGN_OR_RETURN(FileDigest d, Sha256File(dst));
    if (d.sha256 != in.sha256 || d.length != in.length)
      return Status(ErrorCode::kHashMismatch, dst + " already exists with other bytes than its content-addressed name "
                                              "says (tampered?): run `patchgate verify`; nothing was published");
    return Status::OK();
  }
  if (::link(in.staged.c_str(), dst.c_str()) == 0) {
    created->AddFile(dst);
    return Status::OK();
  }
  if (errno != EXDEV && errno != EPERM) return IOError("cannot link " + in.staged + " to " + dst + ": " + std::strerror(errno));
  PG_RETURN_IF_ERROR(CopyFileAtomic(in.staged, dst));
  created->AddFile(dst);
  PG_ASSIGN_OR_RETURN(FileDigest d, Sha256File(dst));
  if (d.sha256 != in.sha256)
    return Status(ErrorCode::kHashMismatch, "the copy of " + in.source + " in targets/ differs from the scanned bytes; "
                                            "nothing was published");
  return Status::OK();
}

class ScopedRepoFs {
 public:
  explicit ScopedRepoFs(FileSystem* fs) { g_repo_fs = fs; }
  ~ScopedRepoFs() { g_repo_fs = nullptr; }
};

}  // namespace

Result<std::vector<PublishedTarget>> Publish(const PublishOptions& o, const std::vector<std::string>& files,
                                             const KeyAccess& access, const Clock& clock) {
  ScopedRepoFs seam(o.fs);
  // The one rule for product names (core/names.h), shared with `grant`.
  if (Status st = ValidateProductName(o.product); !st.ok()) return st;
  if (files.empty()) return InvalidArgument("nothing to publish: name at least one FILE");
  PG_ASSIGN_OR_RETURN(Config cfg, LoadConfig(o.dir));
  PG_ASSIGN_OR_RETURN(RepoLock lock, RepoLock::Acquire(o.dir));
  PG_ASSIGN_OR_RETURN(State s, LoadState(o.dir));

  // Inputs: distinct valid names (checked before anything is opened or written).
  std::set<std::string> names;
  for (const auto& f : files) {
    std::string name = BaseName(f);
    if (!ValidFileName(name)) {
      std::string shown;
      for (unsigned char c : name) {
        if (c >= 0x21 && c < 0x7f) shown.push_back(static_cast<char>(c));
        else { char b[8]; std::snprintf(b, sizeof b, "\\x%02x", c); shown += b; }
      }
      return InvalidArgument("file name '" + shown + "' cannot be a target name: use a name of valid UTF-8 without "
                             "spaces, control characters, '/', '\\' or '%', not starting with '.' (rename the file); "
                             "nothing was published");
    }
    if (!names.insert(name).second) return InvalidArgument("two inputs are named " + name);
  }

  const std::string role = ProductRole(o.product);
  bool new_product = true;
  if (s.targets.delegations)
    for (const auto& r : s.targets.delegations->roles) {
      if (r.name == role) new_product = false;
      if (r.name == LegacyProductRoleName(o.product))
        return Unsupported("product " + o.product + " is held by the role \"" + r.name + "\" of an earlier release, "
                           "whose name is not a single URL path segment (static servers cannot serve it): create a new "
                           "repository with `patchgate init` and publish the product there");
    }

  // Every key before anything else is written.
  PG_ASSIGN_OR_RETURN(PrivateKey snapshot_key, LoadKey(RoleKeyPath(o.dir, "snapshot"), access));
  PG_ASSIGN_OR_RETURN(PrivateKey timestamp_key, LoadKey(RoleKeyPath(o.dir, "timestamp"), access));
  std::optional<PrivateKey> targets_key;
  std::optional<PrivateKey> product_key;
  if (new_product) {
    PG_ASSIGN_OR_RETURN(PrivateKey tk, LoadKey(RoleKeyPath(o.dir, "targets"), access));
    targets_key = std::move(tk);
    PG_ASSIGN_OR_RETURN(PrivateKey pk, PrivateKey::Generate(cfg.key_type));
    product_key = std::move(pk);
    // Fail now, not after writing, if the new key could not be stored encrypted.
    PG_RETURN_IF_ERROR(product_key->Serialize(access.passphrase, access.allow_plaintext).status());
  } else {
    PG_ASSIGN_OR_RETURN(PrivateKey pk, LoadKey(RoleKeyPath(o.dir, role), access));
    product_key = std::move(pk);
  }

  // Each input is read exactly once, into a private copy; from here on only the copies
  // are used: scanned, hashed, signed and published.
  PG_ASSIGN_OR_RETURN(Staging staging, Staging::Create(o.dir));
  std::vector<StagedInput> staged;
  for (const auto& f : files) {
    PG_ASSIGN_OR_RETURN(StagedInput in, staging.Stage(f, BaseName(f), o.max_input_bytes));
    staged.push_back(std::move(in));
  }

  // The gate (malware scan) runs on the copies before anything is written.
  std::vector<GateRecord> extra(files.size());
  if (o.hook) {
    PG_ASSIGN_OR_RETURN(extra, o.hook(staged));
    if (extra.size() != files.size()) return Internal("pre-publish hook returned the wrong number of records");
    for (size_t i = 0; i < staged.size(); ++i)
      if (!extra[i].scanned_sha256.empty() && extra[i].scanned_sha256 != staged[i].sha256)
        return Status(ErrorCode::kHashMismatch, "the gate examined other bytes (sha256 " +
                                                    extra[i].scanned_sha256.substr(0, 16) + "…) than the staged copy of " +
                                                    staged[i].source + " (" + staged[i].sha256.substr(0, 16) +
                                                    "…); nothing was published");
  }

  ProductContent content(o.dir, s, cfg, o.product);
  PG_RETURN_IF_ERROR(content.Load(!new_product));

  std::vector<PublishedTarget> out;
  std::vector<size_t> changed;
  std::string published_at = FormatRfc3339(clock.NowUnix());
  for (size_t i = 0; i < staged.size(); ++i) {
    PublishedTarget t;
    t.path = o.product + "/" + staged[i].name;
    t.sha256 = staged[i].sha256;
    t.length = staged[i].length;
    const Json* existing;
    PG_ASSIGN_OR_RETURN(existing, content.Find(t.path));
    if (existing) {
      std::string old = existing->at("hashes").value("sha256", "");
      if (old == t.sha256) {
        t.unchanged = true;
        t.custom = existing->value("custom", Json::object());
        out.push_back(std::move(t));
        continue;
      }
      if (!o.replace)
        return Status(ErrorCode::kConflict, t.path + " is already published with different bytes (sha256 " +
                                                old.substr(0, 16) + "…); pass --replace to publish the new bytes");
    }
    Json custom = {{"product", o.product}, {"published_at", published_at}};
    if (!o.version.empty()) custom["version"] = o.version;
    for (auto it = extra[i].custom.begin(); it != extra[i].custom.end(); ++it) custom[it.key()] = it.value();
    t.custom = custom;
    changed.push_back(out.size());
    out.push_back(std::move(t));
  }
  if (changed.empty()) return out;

  // The copies must still hold the bytes that were hashed and scanned.
  for (size_t idx : changed) {
    const StagedInput& in = staged[idx];
    PG_ASSIGN_OR_RETURN(FileDigest d, Sha256File(in.staged));
    if (d.sha256 != in.sha256 || d.length != in.length)
      return Status(ErrorCode::kHashMismatch, "the staged copy of " + in.source +
                                                  " changed after it was scanned; nothing was published");
  }

  // Content-addressed target files first (never overwrite what readers may be fetching);
  // removed again if the publish does not commit.
  auto& fs = RealFileSystem::Get();
  NewTargetFiles created;
  for (size_t idx : changed) {
    const auto& t = out[idx];
    std::string dst = JoinPath(JoinPath(o.dir, "targets"), ConsistentTargetName(t.path, t.sha256));
    if (!fs.Exists(DirName(dst))) {
      PG_RETURN_IF_ERROR(fs.MakeDirs(DirName(dst)));
      created.AddDir(DirName(dst));
    }
    PG_RETURN_IF_ERROR(PlaceTarget(staged[idx], dst, &created));
  }
  for (size_t idx : changed) {
    const auto& t = out[idx];
    PG_RETURN_IF_ERROR(content.Put(t.path, Json{{"length", t.length}, {"hashes", {{"sha256", t.sha256}}},
                                               {"custom", t.custom}}));
  }
  if (!content.binned() && content.UnbinnedCount() > static_cast<size_t>(cfg.bins_threshold))
    content.SplitIntoBins(product_key->KeyId(), product_key->public_key().ToJson());

  Json meta = SnapshotMeta(s);
  if (new_product) {
    PG_RETURN_IF_ERROR(SaveKey(RoleKeyPath(o.dir, role), *product_key, access));
    Json top = s.targets_env.signed_json;
    int64_t v = s.targets.common.version + 1;
    top["version"] = v;
    top["expires"] = FormatRfc3339(clock.NowUnix() + int64_t{cfg.expiry.targets} * 86400);
    if (!top.contains("delegations")) top["delegations"] = {{"keys", Json::object()}, {"roles", Json::array()}};
    top["delegations"]["keys"][product_key->KeyId()] = product_key->public_key().ToJson();
    top["delegations"]["roles"].push_back({{"name", role}, {"keyids", {product_key->KeyId()}}, {"threshold", 1},
                                           {"terminating", true}, {"paths", {o.product + "/*"}}});
    PG_ASSIGN_OR_RETURN(std::string bytes, SignedFile(std::move(top), {&*targets_key}));
    PG_RETURN_IF_ERROR(WriteMeta(o.dir, MetaFileName(v, "targets"), bytes));
    meta["targets.json"] = {{"version", v}};
  }
  PG_RETURN_IF_ERROR(content.Write(*product_key, clock, &meta));
  Status committed = CommitSnapshotAndTimestamp(o.dir, cfg, s, meta, snapshot_key, timestamp_key, clock);
  if (!committed.ok()) {
    // Keep the new target files only if timestamp.json did change (the commit happened
    // and only a later step, e.g. the directory fsync, failed).
    auto now_ts = RealFileSystem::Get().ReadFile(JoinPath(MetaDir(o.dir), "timestamp.json"), kMaxTimestampBytes);
    if (now_ts.ok() && *now_ts != s.ts_bytes) created.Commit();
    return committed;
  }
  created.Commit();
  return out;
}

// =======================================================================================
// refresh

Result<bool> Refresh(const std::string& dir, bool force, int64_t margin_seconds, const KeyAccess& access,
                     const Clock& clock) {
  PG_ASSIGN_OR_RETURN(Config cfg, LoadConfig(dir));
  PG_ASSIGN_OR_RETURN(RepoLock lock, RepoLock::Acquire(dir));
  PG_ASSIGN_OR_RETURN(State s, LoadState(dir));
  int64_t horizon = clock.NowUnix() + margin_seconds;
  bool snap_due = force || s.snap.common.expires <= horizon;
  bool ts_due = snap_due || s.ts.common.expires <= horizon;
  if (!ts_due) return false;
  PG_ASSIGN_OR_RETURN(PrivateKey timestamp_key, LoadKey(RoleKeyPath(dir, "timestamp"), access));
  if (snap_due) {
    PG_ASSIGN_OR_RETURN(PrivateKey snapshot_key, LoadKey(RoleKeyPath(dir, "snapshot"), access));
    PG_RETURN_IF_ERROR(CommitSnapshotAndTimestamp(dir, cfg, s, SnapshotMeta(s), snapshot_key, timestamp_key, clock));
    return true;
  }
  Json ts = NewSigned(RoleType::kTimestamp, s.ts.common.version + 1,
                      clock.NowUnix() + int64_t{cfg.expiry.timestamp} * 86400);
  ts["meta"] = s.ts_env.signed_json["meta"];
  PG_ASSIGN_OR_RETURN(std::string bytes, SignedFile(std::move(ts), {&timestamp_key}));
  PG_RETURN_IF_ERROR(WriteMeta(dir, "timestamp.json", bytes));
  return true;
}

// =======================================================================================
// key rotation

namespace {

// Loads every root private key in the offline directory that the current root trusts.
Result<std::vector<PrivateKey>> LoadRootKeys(const Config& cfg, const Root& root, const KeyAccess& access) {
  auto names = RealFileSystem::Get().ListDir(cfg.root_keys_dir);
  if (!names.ok())
    return Unavailable("root keys directory " + cfg.root_keys_dir + " is not available: " + names.status().message() +
                       " (mount the offline root key storage)");
  const auto& ids = root.roles.at("root").keyids;
  std::vector<PrivateKey> keys;
  for (const auto& n : *names) {
    if (n.rfind("root-", 0) != 0 || n.size() < 9 || n.substr(n.size() - 9) != ".key.json") continue;
    PG_ASSIGN_OR_RETURN(PrivateKey k, LoadKey(JoinPath(cfg.root_keys_dir, n), access));
    if (std::find(ids.begin(), ids.end(), k.KeyId()) != ids.end()) keys.push_back(std::move(k));
  }
  if (static_cast<int>(keys.size()) < root.roles.at("root").threshold)
    return Unavailable("only " + std::to_string(keys.size()) + " of the " +
                       std::to_string(root.roles.at("root").threshold) + " root keys needed are in " + cfg.root_keys_dir);
  return keys;
}

// Writes the next root version with `edit` applied, signed by the current root keys and
// by `extra_signers` (the new root keys on a root rotation).
Status WriteNextRoot(const std::string& dir, const Config& cfg, const State& s, const std::vector<PrivateKey>& old_root,
                     const std::vector<const PrivateKey*>& extra_signers, const std::function<void(Json&)>& edit,
                     const Clock& clock) {
  Json root = s.root_env.signed_json;
  int64_t v = s.root_version + 1;
  root["version"] = v;
  root["expires"] = FormatRfc3339(clock.NowUnix() + int64_t{cfg.expiry.root} * 86400);
  edit(root);
  // Drop keys no role uses any more.
  std::set<std::string> used;
  for (auto& [name, r] : root["roles"].items())
    for (const auto& id : r["keyids"]) used.insert(id.get<std::string>());
  for (auto it = root["keys"].begin(); it != root["keys"].end();) {
    if (!used.count(it.key())) it = root["keys"].erase(it);
    else ++it;
  }
  std::vector<const PrivateKey*> signers;
  for (const auto& k : old_root) signers.push_back(&k);
  for (const auto* k : extra_signers) signers.push_back(k);
  PG_ASSIGN_OR_RETURN(std::string bytes, SignedFile(std::move(root), signers));
  return WriteMeta(dir, MetaFileName(v, "root"), bytes);
}

}  // namespace

Status RotateKey(const RotateOptions& opts, const KeyAccess& access, const Clock& clock) {
  RotateOptions o = opts;
  // "products/<name>" is how earlier releases (and their docs) named a product role.
  if (o.role.rfind("products/", 0) == 0) o.role = ProductRoleName(o.role.substr(9));
  PG_ASSIGN_OR_RETURN(Config cfg, LoadConfig(o.dir));
  PG_ASSIGN_OR_RETURN(RepoLock lock, RepoLock::Acquire(o.dir));
  PG_ASSIGN_OR_RETURN(State s, LoadState(o.dir));
  auto& fs = RealFileSystem::Get();

  if (o.role == "root") {
    PG_ASSIGN_OR_RETURN(std::vector<PrivateKey> old_keys, LoadRootKeys(cfg, s.root, access));
    int n = o.new_keys.value_or(static_cast<int>(s.root.roles.at("root").keyids.size()));
    int k = o.new_threshold.value_or(s.root.roles.at("root").threshold);
    if (k < 1 || n < 1 || k > n) return InvalidArgument("the new root threshold must be between 1 and the number of keys");
    std::vector<PrivateKey> fresh;
    for (int i = 0; i < n; ++i) {
      PG_ASSIGN_OR_RETURN(PrivateKey key, PrivateKey::Generate(cfg.key_type));
      fresh.push_back(std::move(key));
    }
    std::vector<const PrivateKey*> fresh_ptrs;
    for (const auto& key : fresh) {
      PG_RETURN_IF_ERROR(key.Serialize(access.passphrase, access.allow_plaintext).status());
      fresh_ptrs.push_back(&key);
    }
    for (const auto& key : fresh)
      PG_RETURN_IF_ERROR(SaveKey(JoinPath(cfg.root_keys_dir, "root-" + key.KeyId().substr(0, 16) + ".key.json"), key, access));
    PG_RETURN_IF_ERROR(WriteNextRoot(o.dir, cfg, s, old_keys, fresh_ptrs, [&](Json& root) {
      std::vector<std::string> ids;
      for (const auto& key : fresh) {
        root["keys"][key.KeyId()] = key.public_key().ToJson();
        ids.push_back(key.KeyId());
      }
      root["roles"]["root"] = RoleJson(ids, k);
    }, clock));
    // Retire the old root key files (kept for the record, out of the way).
    std::string retired = JoinPath(cfg.root_keys_dir, "retired");
    PG_RETURN_IF_ERROR(fs.MakeDirs(retired));
    for (const auto& key : old_keys) {
      std::string name = "root-" + key.KeyId().substr(0, 16) + ".key.json";
      PG_RETURN_IF_ERROR(fs.Rename(JoinPath(cfg.root_keys_dir, name), JoinPath(retired, name)));
    }
    return Status::OK();
  }

  if (o.role == "timestamp" || o.role == "snapshot" || o.role == "targets") {
    PG_ASSIGN_OR_RETURN(std::vector<PrivateKey> root_keys, LoadRootKeys(cfg, s.root, access));
    PG_ASSIGN_OR_RETURN(PrivateKey snapshot_key, LoadKey(RoleKeyPath(o.dir, "snapshot"), access));
    PG_ASSIGN_OR_RETURN(PrivateKey timestamp_key, LoadKey(RoleKeyPath(o.dir, "timestamp"), access));
    PG_ASSIGN_OR_RETURN(PrivateKey fresh, PrivateKey::Generate(cfg.key_type));
    PG_RETURN_IF_ERROR(fresh.Serialize(access.passphrase, access.allow_plaintext).status());
    PG_RETURN_IF_ERROR(WriteNextRoot(o.dir, cfg, s, root_keys, {}, [&](Json& root) {
      root["keys"][fresh.KeyId()] = fresh.public_key().ToJson();
      root["roles"][o.role] = RoleJson({fresh.KeyId()}, 1);
    }, clock));
    // Keep the old key beside the new one until the new root is committed.
    std::string key_path = RoleKeyPath(o.dir, o.role);
    PG_RETURN_IF_ERROR(fs.Rename(key_path, key_path + ".retired"));
    PG_RETURN_IF_ERROR(SaveKey(key_path, fresh, access));
    Json meta = SnapshotMeta(s);
    if (o.role == "targets") {
      Json top = s.targets_env.signed_json;
      int64_t v = s.targets.common.version + 1;
      top["version"] = v;
      PG_ASSIGN_OR_RETURN(std::string bytes, SignedFile(std::move(top), {&fresh}));
      PG_RETURN_IF_ERROR(WriteMeta(o.dir, MetaFileName(v, "targets"), bytes));
      meta["targets.json"] = {{"version", v}};
    }
    const PrivateKey& sk = o.role == "snapshot" ? fresh : snapshot_key;
    const PrivateKey& tk = o.role == "timestamp" ? fresh : timestamp_key;
    return CommitSnapshotAndTimestamp(o.dir, cfg, s, meta, sk, tk, clock);
  }

  if (ProductOfRole(o.role)) {
    bool exists = false;
    if (s.targets.delegations)
      for (const auto& r : s.targets.delegations->roles) exists |= r.name == o.role;
    if (!exists) return NotFound("no role " + o.role + " in this repository");
    PG_ASSIGN_OR_RETURN(PrivateKey targets_key, LoadKey(RoleKeyPath(o.dir, "targets"), access));
    PG_ASSIGN_OR_RETURN(PrivateKey snapshot_key, LoadKey(RoleKeyPath(o.dir, "snapshot"), access));
    PG_ASSIGN_OR_RETURN(PrivateKey timestamp_key, LoadKey(RoleKeyPath(o.dir, "timestamp"), access));
    PG_ASSIGN_OR_RETURN(PrivateKey old_key, LoadKey(RoleKeyPath(o.dir, o.role), access));
    PG_ASSIGN_OR_RETURN(PrivateKey fresh, PrivateKey::Generate(cfg.key_type));
    PG_RETURN_IF_ERROR(fresh.Serialize(access.passphrase, access.allow_plaintext).status());
    Json meta = SnapshotMeta(s);
    int64_t expires = clock.NowUnix() + int64_t{cfg.expiry.targets} * 86400;
    // Top-level delegation now trusts the new key.
    Json top = s.targets_env.signed_json;
    int64_t tv = s.targets.common.version + 1;
    top["version"] = tv;
    top["expires"] = FormatRfc3339(expires);
    top["delegations"]["keys"].erase(old_key.KeyId());
    top["delegations"]["keys"][fresh.KeyId()] = fresh.public_key().ToJson();
    for (auto& r : top["delegations"]["roles"])
      if (r["name"] == o.role) r["keyids"] = {fresh.KeyId()};
    PG_ASSIGN_OR_RETURN(std::string top_bytes, SignedFile(std::move(top), {&targets_key}));
    // Re-sign the product role (and its bins, whose delegation names the product key).
    PG_ASSIGN_OR_RETURN(Envelope penv, LoadRole(o.dir, s, o.role));
    Json prole = penv.signed_json;
    std::vector<std::pair<std::string, Json>> bins;
    if (prole.contains("delegations") && prole["delegations"].contains("succinct_roles")) {
      auto parsed = Targets::FromSignedWithoutTargets(prole);
      if (!parsed.ok()) return parsed.status();
      const SuccinctRoles& sr = *parsed->delegations->succinct;
      for (int i = 0; i < sr.NumBins(); ++i) {
        std::string bin = sr.BinName(i);
        PG_ASSIGN_OR_RETURN(Envelope benv, LoadRole(o.dir, s, bin));
        bins.emplace_back(bin, std::move(benv.signed_json));
      }
      prole["delegations"]["keys"] = {{fresh.KeyId(), fresh.public_key().ToJson()}};
      prole["delegations"]["succinct_roles"]["keyids"] = {fresh.KeyId()};
    }
    std::string key_path = RoleKeyPath(o.dir, o.role);
    PG_RETURN_IF_ERROR(fs.Rename(key_path, key_path + ".retired"));
    PG_RETURN_IF_ERROR(SaveKey(key_path, fresh, access));
    PG_RETURN_IF_ERROR(WriteMeta(o.dir, MetaFileName(tv, "targets"), top_bytes));
    meta["targets.json"] = {{"version", tv}};
    auto resign = [&](const std::string& name, Json j) -> Status {
      int64_t v = RoleVersion(s, name) + 1;
      j["version"] = v;
      j["expires"] = FormatRfc3339(expires);
      PG_ASSIGN_OR_RETURN(std::string bytes, SignedFile(std::move(j), {&fresh}));
      PG_RETURN_IF_ERROR(WriteMeta(o.dir, MetaFileName(v, name), bytes));
      meta[name + ".json"] = {{"version", v}};
      return Status::OK();
    };
    PG_RETURN_IF_ERROR(resign(o.role, std::move(prole)));
    for (auto& [name, j] : bins) PG_RETURN_IF_ERROR(resign(name, std::move(j)));
    return CommitSnapshotAndTimestamp(o.dir, cfg, s, meta, snapshot_key, timestamp_key, clock);
  }
  return InvalidArgument("unknown role '" + o.role + "': use root, timestamp, snapshot, targets or product.<name>");
}

// =======================================================================================
// verify and catalogue: one walk over the signed chain

namespace {

struct WalkTarget {
  std::string path;
  std::string role;
  TargetFile file;
};

struct Walk {
  std::vector<std::string> problems;
  std::set<std::string> roles_seen;  // root, snapshot, targets and every role the snapshot lists
  std::vector<WalkTarget> targets;
  size_t roles = 0;
  int64_t root_version = 0, snapshot_version = 0, timestamp_version = 0;
};

void Problem(Walk* w, std::string p) { w->problems.push_back(std::move(p)); }

// The roles a targets role delegates to, in walk order: hash bins first, then named roles;
// each with the keys and threshold it must meet and the delegation that limits its paths
// (none for a bin).
std::vector<std::pair<std::string, std::pair<RoleKeys, std::optional<DelegatedRole>>>> DelegatedChildren(
    const Delegations& d) {
  std::vector<std::pair<std::string, std::pair<RoleKeys, std::optional<DelegatedRole>>>> children;
  if (d.succinct)
    for (int i = 0; i < d.succinct->NumBins(); ++i) children.push_back({d.succinct->BinName(i), {d.succinct->keys, std::nullopt}});
  for (const auto& r : d.roles) children.push_back({r.name, {r.keys, r}});
  return children;
}

// Verifies one role file against its signed version (and length/hashes when listed).
std::optional<Envelope> CheckRoleFile(const std::string& dir, const std::string& role, const MetaFile& m,
                                      const std::map<std::string, PublicKey>& keys, const RoleKeys& rk,
                                      RoleType type, const Clock& clock, Walk* w) {
  std::string file = JoinPath(MetaDir(dir), MetaFileName(m.version, role));
  auto text = RealFileSystem::Get().ReadFile(file, kMaxTargetsBytes);
  if (!text.ok()) {
    Problem(w, role + ": " + text.status().message());
    return std::nullopt;
  }
  Status st = CheckMetaFile(m, *text, file);
  if (!st.ok()) Problem(w, st.ToString());
  auto env = Envelope::Parse(*text, kMaxTargetsBytes);
  if (!env.ok()) {
    Problem(w, file + ": " + env.status().ToString());
    return std::nullopt;
  }
  ++w->roles;
  st = VerifyThreshold(*env, keys, rk, role);
  if (!st.ok()) Problem(w, file + ": " + st.ToString());
  auto common = ParseCommon(env->signed_json, type);
  if (!common.ok()) {
    Problem(w, file + ": " + common.status().ToString());
    return std::nullopt;
  }
  if (common->version != m.version)
    Problem(w, file + ": version " + std::to_string(common->version) + " but the snapshot says " + std::to_string(m.version));
  st = CheckNotExpired(*common, clock, role);
  if (!st.ok()) Problem(w, st.ToString());
  return std::move(*env);
}

void WalkTargetsRole(const std::string& dir, const Snapshot& snap, const std::string& role, const Envelope& env,
                     const std::optional<DelegatedRole>& delegation, const Clock& clock, int depth,
                     std::set<std::string>* visited, Walk* w) {
  auto parsed = Targets::FromSigned(env.signed_json);
  if (!parsed.ok()) {
    Problem(w, role + ": " + parsed.status().ToString());
    return;
  }
  for (auto& [path, tf] : parsed->targets) {
    if (delegation && !delegation->Matches(path))
      Problem(w, role + ": target " + path + " is outside the paths delegated to the role");
    w->targets.push_back({path, role, tf});
  }
  if (!parsed->delegations) return;
  if (depth >= kMaxDelegationDepth) {
    Problem(w, role + ": delegations nested deeper than " + std::to_string(kMaxDelegationDepth));
    return;
  }
  const Delegations& d = *parsed->delegations;
  for (const auto& [name, info] : DelegatedChildren(d)) {
    if (!visited->insert(name).second) {
      Problem(w, role + ": delegation to " + name + " forms a loop or repeats a role");
      continue;
    }
    auto it = snap.meta.find(name + ".json");
    if (it == snap.meta.end()) {
      Problem(w, "delegated role " + name + " is not listed in the snapshot");
      continue;
    }
    auto child = CheckRoleFile(dir, name, it->second, d.keys, info.first, RoleType::kTargets, clock, w);
    if (child) WalkTargetsRole(dir, snap, name, *child, info.second, clock, depth + 1, visited, w);
  }
}

// The chain down to the snapshot: every root version, timestamp.json and the snapshot it
// names, each checked (problems into w). Nothing when the walk cannot go on.
struct Top {
  Root root;
  Snapshot snapshot;
};
Result<std::optional<Top>> WalkTop(const std::string& dir, const Clock& clock, Walk& w) {
  PG_ASSIGN_OR_RETURN(int64_t highest, HighestRootVersion(dir));
  std::optional<Root> trusted;
  for (int64_t v = 1; v <= highest; ++v) {
    std::string file = JoinPath(MetaDir(dir), MetaFileName(v, "root"));
    auto env = ReadEnvelope(file, kMaxRootBytes);
    if (!env.ok()) {
      Problem(&w, env.status().ToString());
      continue;
    }
    auto root = Root::FromSigned(env->signed_json);
    if (!root.ok()) {
      Problem(&w, file + ": " + root.status().ToString());
      continue;
    }
    if (root->common.version != v) Problem(&w, file + ": claims version " + std::to_string(root->common.version));
    if (trusted) {
      Status st = VerifyThreshold(*env, trusted->keys, trusted->roles.at("root"), "root v" + std::to_string(v) + " (by the previous root)");
      if (!st.ok()) Problem(&w, file + ": " + st.ToString());
    }
    Status st = VerifyThreshold(*env, root->keys, root->roles.at("root"), "root v" + std::to_string(v) + " (by itself)");
    if (!st.ok()) Problem(&w, file + ": " + st.ToString());
    ++w.roles;
    trusted = std::move(*root);
  }
  if (!trusted) return Corrupt("no usable root metadata in " + MetaDir(dir));
  w.root_version = trusted->common.version;
  Status st = CheckNotExpired(trusted->common, clock, "root");
  if (!st.ok()) Problem(&w, st.ToString());

  auto ts_env = ReadEnvelope(JoinPath(MetaDir(dir), "timestamp.json"), kMaxTimestampBytes);
  if (!ts_env.ok()) {
    Problem(&w, ts_env.status().ToString());
    return std::optional<Top>();
  }
  ++w.roles;
  st = VerifyThreshold(*ts_env, trusted->keys, trusted->roles.at("timestamp"), "timestamp");
  if (!st.ok()) Problem(&w, "timestamp.json: " + st.ToString());
  auto ts = Timestamp::FromSigned(ts_env->signed_json);
  if (!ts.ok()) {
    Problem(&w, "timestamp.json: " + ts.status().ToString());
    return std::optional<Top>();
  }
  w.timestamp_version = ts->common.version;
  st = CheckNotExpired(ts->common, clock, "timestamp");
  if (!st.ok()) Problem(&w, st.ToString());

  auto snap_env = CheckRoleFile(dir, "snapshot", ts->snapshot, trusted->keys, trusted->roles.at("snapshot"),
                                RoleType::kSnapshot, clock, &w);
  if (!snap_env) return std::optional<Top>();
  auto snap = Snapshot::FromSigned(snap_env->signed_json);
  if (!snap.ok()) {
    Problem(&w, "snapshot: " + snap.status().ToString());
    return std::optional<Top>();
  }
  w.snapshot_version = snap->common.version;
  w.roles_seen = {"root", "snapshot", "targets"};
  for (const auto& [name, m] : snap->meta)
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".json") == 0) w.roles_seen.insert(name.substr(0, name.size() - 5));
  if (!snap->meta.count("targets.json")) {
    Problem(&w, "the snapshot does not list targets.json");
    return std::optional<Top>();
  }
  return std::optional<Top>(Top{std::move(*trusted), std::move(*snap)});
}

Result<Walk> WalkRepository(const std::string& dir, const Clock& clock) {
  Walk w;
  PG_ASSIGN_OR_RETURN(std::optional<Top> top, WalkTop(dir, clock, w));
  if (!top) return w;
  auto targets_env = CheckRoleFile(dir, "targets", top->snapshot.meta.at("targets.json"), top->root.keys,
                                   top->root.roles.at("targets"), RoleType::kTargets, clock, &w);
  if (!targets_env) return w;
  std::set<std::string> visited{"targets"};
  WalkTargetsRole(dir, top->snapshot, "targets", *targets_env, std::nullopt, clock, 0, &visited, &w);
  return w;
}

}  // namespace

namespace {

// True when PATH holds what a publish writes for a targets role before committing it: a
// metadata envelope whose signed part is targets metadata of exactly the version its file
// name carries.
bool IsUnpublishedRoleFile(const std::string& path, const ParsedMetadataName& name) {
  auto text = RealFileSystem::Get().ReadFile(path, kMaxTargetsBytes);
  if (!text.ok()) return false;
  auto env = Envelope::Parse(*text, kMaxTargetsBytes);
  if (!env.ok()) return false;
  auto common = ParseCommon(env->signed_json, RoleType::kTargets);
  return common.ok() && common->version == name.version;
}

bool IsTempLeftover(std::string_view name) {
  auto pos = name.rfind(".tmp.");
  if (pos == std::string_view::npos || pos == 0 || pos + 5 >= name.size()) return false;
  return name.substr(pos + 5).find_first_not_of("0123456789") == std::string_view::npos;
}

// Everything under metadata/ and targets/ is served: nothing may be there but the
// versions of known roles and the content-addressed copies of known targets. Symlinks are
// always problems (a link to ../keys/... would serve a private key).
void CheckServedTree(const std::string& dir, const std::set<std::string>& roles, const std::set<std::string>& targets,
                     VerifyReport* r) {
  auto problem = [&](std::string p) { r->problems.push_back(std::move(p)); };
  std::function<void(const std::string&, const std::string&, bool)> walk = [&](const std::string& abs,
                                                                             const std::string& rel, bool meta) {
    DIR* d = ::opendir(abs.c_str());
    if (!d) {
      problem(rel + ": cannot be listed: " + std::strerror(errno));
      return;
    }
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(std::move(n));
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
      std::string a = JoinPath(abs, n), rp = rel + "/" + n;
      struct stat st {};
      if (::lstat(a.c_str(), &st) != 0) continue;
      if (S_ISLNK(st.st_mode)) {
        char buf[4096];
        ssize_t len = ::readlink(a.c_str(), buf, sizeof buf - 1);
        std::string to = len > 0 ? std::string(buf, static_cast<size_t>(len)) : "?";
        problem(rp + " is a symlink (to " + to + "): a server would serve whatever it points to; remove it");
        continue;
      }
      if (S_ISDIR(st.st_mode)) {
        if (meta) problem(rp + " is a directory; metadata/ holds only role files: remove it");
        else walk(a, rp, false);
        continue;
      }
      if (!S_ISREG(st.st_mode)) {
        problem(rp + " is not a regular file: remove it");
        continue;
      }
      if (IsTempLeftover(n)) {
        r->notes.push_back(rp + " is left over from an interrupted write; safe to delete");
        continue;
      }
      bool known = false;
      if (meta) {
        if (n == "timestamp.json") {
          known = true;
        } else if (auto p = ParseVersionedMetadataName(n)) {
          known = roles.count(p->role) > 0;
          if (!known && IsUnpublishedRoleFile(a, *p)) {
            // A new role's first file written before the snapshot naming it: what a publish
            // killed between its role files and its commit leaves. No client asks for a role
            // nothing delegates to; anything that is not such a file stays a stray.
            r->notes.push_back(rp + " is a role file no signed metadata names yet (left by an interrupted publish?); safe to delete");
            continue;
          }
        }
      } else {
        auto parsed = ParseConsistentTargetName(rp.substr(std::string("targets/").size()));
        known = parsed && targets.count(parsed->target_path) > 0;
        if (parsed && !known && parsed->hash_hex.size() == 64) {
          // A content-addressed copy no metadata names yet: what a publish killed between
          // placing its targets and committing leaves. Harmless when its bytes are what its
          // name says; anything else is a stray.
          auto d = Sha256File(a);
          if (d.ok() && d->sha256 == parsed->hash_hex) {
            r->notes.push_back(rp + " is named by no signed metadata (left by an interrupted publish?); safe to delete");
            continue;
          }
        }
      }
      if (!known && !roles.empty())  // roles unknown: the chain itself did not verify (reported)
        problem(rp + " is a stray file: no signed metadata names it, yet a server may serve it; remove it");
    }
  };
  for (const char* sub : {"metadata", "targets"}) {
    std::string abs = JoinPath(dir, sub);
    struct stat st {};
    if (::lstat(abs.c_str(), &st) != 0) continue;
    if (!S_ISDIR(st.st_mode)) {
      problem(std::string(sub) + "/ is not a directory (a symlink?): it must be a real directory");
      continue;
    }
    walk(abs, sub, std::string(sub) == "metadata");
  }
}

}  // namespace

Result<VerifyReport> VerifyRepository(const std::string& dir, const Clock& clock) {
  if (!RealFileSystem::Get().Exists(MetaDir(dir)))
    return NotFound(dir + " has no metadata/ directory: is it a patchgate repository?");
  PG_ASSIGN_OR_RETURN(Walk w, WalkRepository(dir, clock));
  VerifyReport r;
  r.problems = std::move(w.problems);
  {
    std::set<std::string> paths;
    for (const auto& t : w.targets) paths.insert(t.path);
    CheckServedTree(dir, w.roles_seen, paths, &r);
  }
  r.roles_checked = w.roles;
  r.root_version = w.root_version;
  r.snapshot_version = w.snapshot_version;
  r.timestamp_version = w.timestamp_version;
  for (const auto& t : w.targets) {
    auto sha = t.file.hashes.find("sha256");
    if (sha == t.file.hashes.end()) {
      r.problems.push_back("target " + t.path + " has no sha256 hash");
      continue;
    }
    std::string file = JoinPath(JoinPath(dir, "targets"), ConsistentTargetName(t.path, sha->second));
    auto d = Sha256File(file);
    ++r.targets_checked;
    if (!d.ok()) {
      r.problems.push_back("target " + t.path + ": " + d.status().message());
      continue;
    }
    if (d->length != t.file.length)
      r.problems.push_back("target " + t.path + ": " + file + " is " + std::to_string(d->length) +
                           " bytes; signed length " + std::to_string(t.file.length));
    else if (d->sha256 != sha->second)
      r.problems.push_back("target " + t.path + ": " + file + " does not match its signed sha256");
  }
  return r;
}

struct CatalogueLoader::Memo {
  MetaFile meta;  // as the snapshot listed it
  FileIdentity id;
  std::string print;
  Common common;
  std::optional<Delegations> delegations;
  RoleEntries entries;
};

CatalogueLoader::CatalogueLoader(std::string dir) : dir_(std::move(dir)) {}
CatalogueLoader::~CatalogueLoader() = default;

Result<std::vector<CatalogueLoader::RoleEntries>> CatalogueLoader::Load() {
  const Clock& clock = SystemClock::Get();
  Walk w;
  roles_read_ = roles_reused_ = 0;
  PG_ASSIGN_OR_RETURN(std::optional<Top> top, WalkTop(dir_, clock, w));
  std::vector<RoleEntries> out;
  std::map<std::string, Memo> next;
  std::string targets_dir = JoinPath(dir_, "targets");
  std::set<std::string> visited{"targets"};
  // One role: reused from the last good load, or read and checked as WalkRepository does;
  // then its delegations, depth first.
  std::function<void(const std::string&, const MetaFile&, const std::map<std::string, PublicKey>&, const RoleKeys&,
                     const std::optional<DelegatedRole>&, int)>
      role_walk = [&](const std::string& role, const MetaFile& m, const std::map<std::string, PublicKey>& keys,
                      const RoleKeys& rk, const std::optional<DelegatedRole>& delegation, int depth) {
        std::string file = JoinPath(MetaDir(dir_), MetaFileName(m.version, role));
        std::string print = DelegationPrint(keys, rk, delegation);
        std::optional<FileIdentity> id = IdentityOf(file);
        Memo memo;
        auto had = memo_.find(role);
        if (id && had != memo_.end() && SameListing(had->second.meta, m) && had->second.id == *id && had->second.print == print) {
          memo = had->second;  // shares the entries and delegations
          next[role] = memo;
          ++roles_reused_;
          Status st = CheckNotExpired(memo.common, clock, role);
          if (!st.ok()) Problem(&w, st.ToString());
        } else {
          size_t problems = w.problems.size();
          ++roles_read_;
          auto env = CheckRoleFile(dir_, role, m, keys, rk, RoleType::kTargets, clock, &w);
          if (!env) return;
          auto parsed = Targets::FromSigned(env->signed_json);
          if (!parsed.ok()) {
            Problem(&w, role + ": " + parsed.status().ToString());
            return;
          }
          auto entries = std::make_shared<std::vector<CatalogueEntry>>();
          entries->reserve(parsed->targets.size());
          for (auto& [path, tf] : parsed->targets) {
            if (delegation && !delegation->Matches(path))
              Problem(&w, role + ": target " + path + " is outside the paths delegated to the role");
            auto sha = tf.hashes.find("sha256");
            if (sha == tf.hashes.end()) continue;
            CatalogueEntry e;
            e.path = path;
            e.sha256 = sha->second;
            e.length = tf.length;
            if (tf.custom.is_object()) e.product = tf.custom.value("product", "");
            e.custom = std::move(tf.custom);
            e.file = JoinPath(targets_dir, ConsistentTargetName(path, e.sha256));
            entries->push_back(std::move(e));
          }
          memo = Memo{m, id.value_or(FileIdentity{}), print, parsed->common, std::move(parsed->delegations),
                      std::move(entries)};
          // Remembered only when the role itself checked clean and its file is still the one read.
          if (w.problems.size() == problems && id && IdentityOf(file) == id) next[role] = memo;
        }
        out.push_back(memo.entries);
        if (!memo.delegations) return;
        if (depth >= kMaxDelegationDepth) {
          Problem(&w, role + ": delegations nested deeper than " + std::to_string(kMaxDelegationDepth));
          return;
        }
        const Delegations& d = *memo.delegations;
        for (const auto& [name, info] : DelegatedChildren(d)) {
          if (!visited.insert(name).second) {
            Problem(&w, role + ": delegation to " + name + " forms a loop or repeats a role");
            continue;
          }
          auto it = top->snapshot.meta.find(name + ".json");
          if (it == top->snapshot.meta.end()) {
            Problem(&w, "delegated role " + name + " is not listed in the snapshot");
            continue;
          }
          role_walk(name, it->second, d.keys, info.first, info.second, depth + 1);
        }
      };
  if (top) role_walk("targets", top->snapshot.meta.at("targets.json"), top->root.keys, top->root.roles.at("targets"),
                     std::nullopt, 0);
  // Expiry is a client's concern; a server keeps serving while `patchgate refresh` is due.
  for (const auto& p : w.problems)
    if (p.find("ExpiredMetadata") == std::string::npos)
      return Corrupt("the repository's signed metadata does not verify: " + p + " (run `patchgate verify`)");
  memo_ = std::move(next);
  return out;
}

Result<std::vector<CatalogueEntry>> LoadCatalogue(const std::string& dir) {
  CatalogueLoader loader(dir);
  PG_ASSIGN_OR_RETURN(std::vector<CatalogueLoader::RoleEntries> roles, loader.Load());
  std::vector<CatalogueEntry> out;
  for (const auto& r : roles) out.insert(out.end(), r->begin(), r->end());
  return out;
}

}  // namespace patchgate::tuf
