#include "mirror/node_runtime.h"

#include <dirent.h>
#include <sys/stat.h>

#include <chrono>
#include <set>

#include "core/clock.h"
#include "core/fs.h"
#include "core/log.h"
#include "mirror/policy.h"
#include "crypto/hash.h"
#include "scan/scanner.h"
#include "tuf/catalogue.h"
#include "tuf/metadata.h"
#include "tuf/repository.h"

namespace patchgate::mirror {

namespace {

constexpr char kSoftwareVersion[] = "patchgate 0.1.0";
// Refusals: one row per (user, target, reason) and minute at most; a bounded queue.
constexpr int64_t kRefusalWindowMicros = 60'000'000;
constexpr size_t kMaxPendingRefusals = 10'000;

int64_t Now() { return SystemClock::Get().NowMicros(); }

std::string PromLabel(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

// Seconds since the epoch of the newest file in the signature directory.
int64_t NewestFileTime(const std::string& dir) {
  int64_t newest = 0;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  while (dirent* e = ::readdir(d)) {
    struct stat st {};
    if (e->d_name[0] == '.') continue;
    if (::stat(JoinPath(dir, e->d_name).c_str(), &st) == 0 && S_ISREG(st.st_mode))
      newest = std::max<int64_t>(newest, st.st_mtim.tv_sec);
  }
  ::closedir(d);
  return newest;
}

}  // namespace

Result<std::unique_ptr<NodeRuntime>> NodeRuntime::Create(const NodeOptions& o, Store* store, Syncer* syncer) {
  PG_ASSIGN_OR_RETURN(std::unique_ptr<NodeRegistry> reg, NodeRegistry::Open(o.store_url));
  PG_RETURN_IF_ERROR(reg->EnsureNode(o.name, o.role, o.upstream));
  return std::unique_ptr<NodeRuntime>(new NodeRuntime(o, store, syncer, std::move(reg)));
}

NodeRuntime::NodeRuntime(NodeOptions o, Store* store, Syncer* syncer, std::unique_ptr<NodeRegistry> reg)
    : o_(std::move(o)), store_(store), syncer_(syncer), registry_(std::move(reg)) {}

NodeRuntime::~NodeRuntime() { Stop(); }

server::ChainHooks NodeRuntime::Hooks() {
  server::ChainHooks h;
  h.authenticate_node = [this](const std::string& hash) -> Result<std::string> {
    int64_t now = Now();
    {
      std::lock_guard<std::mutex> l(mu_);
      auto it = auth_cache_.find(hash);
      if (it != auth_cache_.end() && now - it->second.first < 1'000'000) return it->second.second;
    }
    Result<std::string> r = registry_->AuthenticateNodeTokenHash(hash);
    if (!r.ok() && r.status().code() != ErrorCode::kUnauthorized) return Unavailable("store: " + r.status().message());
    std::lock_guard<std::mutex> l(mu_);
    if (auth_cache_.size() > 4096) auth_cache_.clear();
    auth_cache_.insert_or_assign(hash, std::make_pair(now, r));
    return r;
  };
  h.record_sync = [this](const std::string& node, const std::string& what, uint64_t bytes) {
    bool poll = what == "metadata/timestamp.json";
    std::string kind = what.rfind("targets/", 0) == 0 ? "targets" : (poll ? "timestamp polls" : "metadata");
    std::lock_guard<std::mutex> l(mu_);
    SyncRecord& r = pending_syncs_[{node, kind}];
    if (r.at == 0) r.at = Now();
    r.node = node;
    r.what = kind;
    r.files += 1;
    r.bytes += static_cast<int64_t>(bytes);
  };
  h.refused = [this](const User& user, const std::string& target, const std::string& reason) {
    int64_t now = Now();
    std::lock_guard<std::mutex> l(mu_);
    auto key = std::make_tuple(user.id, target, reason);
    auto it = refusals_.find(key);
    if (it == refusals_.end()) {
      if (refusals_.size() >= kMaxPendingRefusals) {
        ++refusals_dropped_;
        return;
      }
      it = refusals_.emplace(key, PendingRefusal{}).first;
    }
    PendingRefusal& p = it->second;
    if (!p.queued) {
      p.r = RefusalRecord{o_.name, now, user.org_id, user.org_name, user.username, target, reason, 0};
      p.queued = true;
    }
    ++p.r.repeats;
  };
  h.fenced = &fenced_;
  if (syncer_) h.content_generation = syncer_->generation();
  h.extra_metrics = [this] {
    std::lock_guard<std::mutex> l(mu_);
    return metrics_text_;
  };
  return h;
}

void NodeRuntime::ReportSync(bool ok, const std::string& error) {
  std::lock_guard<std::mutex> l(mu_);
  upstream_ok_ = ok;
  upstream_error_ = error.substr(0, 300);
}

Status NodeRuntime::Start() {
  if (o_.watch) {
    WatchOptions wo;
    wo.dir = o_.dir;
    wo.node = o_.name;
    wo.verify_interval_seconds = o_.verify_interval_seconds;
    WatchHooks wh;
    wh.store = store_;
    if (syncer_) {
      wh.expected = [this] { return syncer_->Expected(); };
      wh.restore = [this](const std::string& rel) { return syncer_->Restore(rel); };
    } else {
      std::string dir = o_.dir;
      wh.expected = [dir] {
        // The origin: its verified catalogue, and its metadata as it is when that verifies.
        std::map<std::string, ExpectedFile> out;
        auto cat = tuf::LoadCatalogue(dir);
        if (!cat.ok()) return out;
        for (const auto& e : *cat)
          out["targets/" + tuf::ConsistentTargetName(e.path, e.sha256)] = ExpectedFile{e.sha256, e.length, e.path};
        auto names = RealFileSystem::Get().ListDir(JoinPath(dir, "metadata"));
        if (names.ok())
          for (const auto& n : *names) {
            auto d = Sha256File(JoinPath(JoinPath(dir, "metadata"), n));
            if (d.ok() && n.find(".tmp.") == std::string::npos) out["metadata/" + n] = ExpectedFile{d->sha256, d->length, ""};
          }
        return out;
      };
    }
    watch_ = std::make_unique<Watch>(wo, wh);
    if (syncer_) syncer_->SetOnPlace([this](const std::string& rel, const ExpectedFile& e) { watch_->Expect(rel, e); });
    PG_RETURN_IF_ERROR(watch_->Start());
  }
  if (!o_.signatures_dir.empty()) scanner_ = std::thread([this] { ScanLoop(); });
  Status st = Beat();
  if (!st.ok()) log::Warn("first heartbeat failed", {{"error", st.ToString()}});
  heartbeat_ = std::thread([this] { HeartbeatLoop(); });
  return Status::OK();
}

void NodeRuntime::Stop() {
  if (stop_.exchange(true)) return;
  wake_.notify_all();
  if (heartbeat_.joinable()) heartbeat_.join();
  if (scanner_.joinable()) scanner_.join();
  if (watch_) watch_->Stop();
  FlushSyncs();
  FlushRefusals(true);  // the server has stopped: nothing more can arrive
}

void NodeRuntime::FlushRefusals(bool all) {
  using Key = std::tuple<int64_t, std::string, std::string>;
  std::vector<std::pair<Key, RefusalRecord>> batch;
  int64_t dropped = 0;
  int64_t now = Now();
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto it = refusals_.begin(); it != refusals_.end();) {
      PendingRefusal& p = it->second;
      if (p.queued && (all || now - p.last_written >= kRefusalWindowMicros)) {
        batch.emplace_back(it->first, std::move(p.r));
        p.queued = false;
        p.last_written = now;
      }
      // A key with nothing queued whose minute is over is forgotten.
      if (!p.queued && now - p.last_written >= kRefusalWindowMicros) it = refusals_.erase(it);
      else ++it;
    }
    std::swap(dropped, refusals_dropped_);
  }
  if (dropped > 0)
    log::Warn("refusals not recorded: too many distinct (user, target, reason) at once",
              {{"dropped", std::to_string(dropped)}, {"node", o_.name}});
  if (batch.empty()) return;
  std::vector<RefusalRecord> rows;
  for (const auto& [_, r] : batch) rows.push_back(r);
  Status st = registry_->RecordRefusals(rows);
  if (st.ok()) return;
  if (all) {
    log::Error("could not record refusals at shutdown; they are lost",
               {{"error", st.ToString()}, {"count", std::to_string(rows.size())}});
    return;
  }
  log::Warn("could not record refusals; retrying", {{"error", st.ToString()}, {"count", std::to_string(rows.size())}});
  // Back in the queue for the next flush, folded with any newer refusal of the same key.
  std::lock_guard<std::mutex> l(mu_);
  for (auto& [key, r] : batch) {
    PendingRefusal& p = refusals_[key];
    if (p.queued) {
      p.r.at = std::min(p.r.at, r.at);
      p.r.repeats += r.repeats;
    } else {
      p.r = std::move(r);
      p.queued = true;
    }
    p.last_written = 0;
  }
}

void NodeRuntime::FlushSyncs() {
  std::vector<SyncRecord> batch;
  {
    std::lock_guard<std::mutex> l(mu_);
    std::set<std::string> pulled;  // nodes that pulled more than timestamp polls
    for (const auto& [key, r] : pending_syncs_)
      if (key.second != "timestamp polls") pulled.insert(key.first);
    for (auto& [key, r] : pending_syncs_)
      if (pulled.count(key.first)) batch.push_back(r);  // polls alone are not worth a row
    pending_syncs_.clear();
  }
  if (batch.empty()) return;
  Status st = registry_->RecordSyncs(batch);
  if (!st.ok()) log::Warn("could not record syncs", {{"error", st.ToString()}});
}

Status NodeRuntime::Beat() {
  NodeHeartbeat h;
  h.node = o_.name;
  h.at = Now();
  h.role = o_.role;
  h.software_version = kSoftwareVersion;
  h.tls = o_.tls;
  {
    std::lock_guard<std::mutex> l(mu_);
    h.upstream_ok = upstream_ok_;
    h.upstream_error = upstream_error_;
    h.scanner_loaded = scanner_loaded_;
    h.signature_age_seconds = scanner_loaded_ && signature_time_ > 0 ? h.at / 1'000'000 - signature_time_ : -1;
    h.scan_infected = scan_infected_;
  }
  if (syncer_) {
    h.snapshot_version = syncer_->served_snapshot_version();
    h.origin_snapshot_version = std::max(syncer_->upstream_snapshot_version(), h.snapshot_version);
    if (h.origin_snapshot_version > h.snapshot_version || !h.upstream_ok) {
      if (behind_since_ == 0) behind_since_ = h.at;
      h.lag_seconds = (h.at - behind_since_) / 1'000'000;
    } else {
      behind_since_ = 0;
    }
  } else {
    // The origin's own timestamp says which snapshot it serves (the server verifies the chain
    // when it loads its catalogue; no need to re-hash the tree every heartbeat).
    auto bytes = RealFileSystem::Get().ReadFile(JoinPath(JoinPath(o_.dir, "metadata"), "timestamp.json"),
                                                tuf::kMaxTimestampBytes);
    if (bytes.ok())
      if (auto env = tuf::Envelope::Parse(*bytes, tuf::kMaxTimestampBytes); env.ok())
        if (auto ts = tuf::Timestamp::FromSigned(env->signed_json); ts.ok())
          h.snapshot_version = h.origin_snapshot_version = ts->snapshot.version;
  }
  if (watch_) {
    WatchStatus ws = watch_->status();
    h.watch_alive = ws.alive;
    h.last_full_verify_at = ws.last_full_verify_at;
    h.last_full_verify_ok = ws.last_full_verify_ok;
    h.quarantine_pending = ws.quarantine_pending;
  }
  h.fenced = fenced_.load();
  PG_RETURN_IF_ERROR(registry_->PutHeartbeat(h));

  // The node's own state under the policy decides its fence; every node's state feeds /metrics.
  PG_ASSIGN_OR_RETURN(ChainPolicy policy, registry_->GetPolicy());
  PG_ASSIGN_OR_RETURN(std::vector<RegisteredNode> nodes, registry_->ListNodes());
  std::string text =
      "# HELP patchgate_node_compliance Compliance state of each node of the chain (1 = its current state).\n"
      "# TYPE patchgate_node_compliance gauge\n";
  bool fence = false;
  for (const auto& n : nodes) {
    Compliance c = Evaluate(policy, n, h.at);
    for (const char* s : {"compliant", "non-compliant", "stale", "quarantined"})
      text += "patchgate_node_compliance{node=\"" + PromLabel(n.name) + "\",state=\"" + s + "\"} " +
              (c.state == s ? "1" : "0") + "\n";
    if (n.name == o_.name) fence = policy.fence && c.state != "compliant";
  }
  text += "# HELP patchgate_node_fenced 1 while this node refuses customers under the compliance policy.\n"
          "# TYPE patchgate_node_fenced gauge\n"
          "patchgate_node_fenced{node=\"" + PromLabel(o_.name) + "\"} " + (fence ? "1" : "0") + "\n";
  if (fence != fenced_.exchange(fence))
    log::Warn(fence ? "this node is fenced off by the compliance policy: customers get 503"
                    : "this node complies again: serving customers", {{"node", o_.name}});
  std::lock_guard<std::mutex> l(mu_);
  metrics_text_ = std::move(text);
  return Status::OK();
}

void NodeRuntime::HeartbeatLoop() {
  auto next_beat = std::chrono::steady_clock::now() + std::chrono::seconds(o_.heartbeat_seconds);
  while (!stop_) {
    {
      std::unique_lock<std::mutex> l(mu_);
      wake_.wait_for(l, std::chrono::seconds(1), [&] { return stop_.load(); });
    }
    if (stop_) break;
    FlushSyncs();
    FlushRefusals(false);
    if (std::chrono::steady_clock::now() >= next_beat) {
      Status st = Beat();
      if (!st.ok()) log::Warn("heartbeat failed", {{"node", o_.name}, {"error", st.ToString()}});
      next_beat = std::chrono::steady_clock::now() + std::chrono::seconds(o_.heartbeat_seconds);
    }
  }
}

// The seed's "every server has antivirus" made checkable: scan this node's own tree with
// the isolated worker; the heartbeat reports whether it ran and how old its signatures are.
void NodeRuntime::ScanLoop() {
  while (!stop_) {
    scan::ScanOptions so;
    so.signatures_dir = o_.signatures_dir;
    so.jobs = 1;
    so.cache = store_;
    auto scanner = scan::NewWorkerScanner(so);
    if (!scanner.ok()) {
      log::Error("the scanner did not start; this node reports no scanner", {{"error", scanner.status().ToString()}});
      std::lock_guard<std::mutex> l(mu_);
      scanner_loaded_ = false;
    } else {
      auto files = scan::ExpandInputs({JoinPath(o_.dir, "targets")});
      auto results = (*scanner)->Scan(files.files);
      int64_t infected = 0;
      if (results.ok())
        for (const auto& r : *results) infected += r.verdict == scan::Verdict::kInfected;
      std::lock_guard<std::mutex> l(mu_);
      scanner_loaded_ = results.ok();
      scan_infected_ = infected;
      signature_time_ = NewestFileTime(o_.signatures_dir);
      if (infected > 0) log::Error("the scan of this node's tree found infected files", {{"count", std::to_string(infected)}});
    }
    std::unique_lock<std::mutex> l(mu_);
    wake_.wait_for(l, std::chrono::seconds(o_.scan_interval_seconds), [&] { return stop_.load(); });
  }
}

}  // namespace patchgate::mirror
