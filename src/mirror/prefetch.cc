#include "mirror/prefetch.h"

#include <algorithm>

#include "tuf/metadata.h"
#include "tuf/naming.h"

namespace patchgate::mirror {

namespace {

// "<base>/<N>.snapshot.json" (consistent snapshots: the Updater asks for it by version).
bool IsVersionedSnapshotUrl(const std::string& url, const std::string& base) {
  if (url.size() <= base.size() + 1 || url.compare(0, base.size(), base) != 0 || url[base.size()] != '/') return false;
  std::string_view name = std::string_view(url).substr(base.size() + 1);
  constexpr std::string_view kSuffix = ".snapshot.json";
  if (name.size() <= kSuffix.size() || name.substr(name.size() - kSuffix.size()) != kSuffix) return false;
  std::string_view digits = name.substr(0, name.size() - kSuffix.size());
  return !digits.empty() && std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
}

Status SinkCapped(const std::string& url, const std::string& body, uint64_t max_bytes, const client::Sink& sink) {
  if (body.size() > max_bytes) {
    PG_RETURN_IF_ERROR(sink(std::string_view(body).substr(0, max_bytes)));
    return TooLarge(url + " sent more than the maximum of " + std::to_string(max_bytes) + " bytes; stopped reading");
  }
  return sink(body);
}

}  // namespace

PrefetchFetcher::PrefetchFetcher(client::Fetcher* direct, PrefetchOptions options)
    : direct_(direct), o_(std::move(options)) {
  while (!o_.metadata_url.empty() && o_.metadata_url.back() == '/') o_.metadata_url.pop_back();
  o_.parallel = std::clamp(o_.parallel, 1, 64);
}

PrefetchFetcher::~PrefetchFetcher() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
    queue_.clear();
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

size_t PrefetchFetcher::queued() const {
  std::lock_guard<std::mutex> l(mu_);
  return queued_;
}

void PrefetchFetcher::WaitForPrefetch() {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [&] { return stop_ || (queue_.empty() && pending_.empty()); });
}

Status PrefetchFetcher::FetchFrom(const std::string& url, uint64_t offset, uint64_t max_bytes, const client::Sink& sink) {
  if (offset == 0) return Fetch(url, max_bytes, sink);
  return direct_->FetchFrom(url, offset, max_bytes, sink);
}

std::optional<Result<std::string>> PrefetchFetcher::Take(const std::string& url) {
  std::unique_lock<std::mutex> l(mu_);
  // Queued but not started: the caller fetches it itself (no point waiting in line).
  auto q = std::find_if(queue_.begin(), queue_.end(), [&](const auto& e) { return e.first == url; });
  if (q != queue_.end()) queue_.erase(q);
  cv_.wait(l, [&] { return !pending_.count(url); });
  auto it = done_.find(url);
  if (it == done_.end()) return std::nullopt;
  Result<std::string> got = std::move(it->second);
  done_.erase(it);
  if (got.ok()) {
    ++hits_;
    held_ -= std::min<uint64_t>(held_, got->size());
    l.unlock();
    cv_.notify_all();
  }
  return got;
}

Status PrefetchFetcher::Fetch(const std::string& url, uint64_t max_bytes, const client::Sink& sink) {
  // A failed prefetch is tried once more, directly (its error is the caller's to see).
  if (auto got = Take(url); got && got->ok()) return SinkCapped(url, **got, max_bytes, sink);
  if (!IsVersionedSnapshotUrl(url, o_.metadata_url)) return direct_->Fetch(url, max_bytes, sink);
  std::string body;
  Status st = direct_->Fetch(url, max_bytes, [&](std::string_view chunk) {
    body.append(chunk);
    return sink(chunk);
  });
  if (st.ok()) StartFromSnapshot(body);
  return st;
}

Result<std::string> PrefetchFetcher::FetchAll(const std::string& url, uint64_t max_bytes) {
  if (auto got = Take(url); got && got->ok()) {
    if ((*got)->size() > max_bytes)
      return TooLarge(url + " sent more than the maximum of " + std::to_string(max_bytes) + " bytes; stopped reading");
    return std::move(**got);
  }
  std::string body;
  Status st = Fetch(url, max_bytes, [&](std::string_view chunk) {
    body.append(chunk);
    return Status::OK();
  });
  if (!st.ok()) return st;
  return body;
}

void PrefetchFetcher::StartFromSnapshot(const std::string& bytes) {
  // Unverified bytes, used only for the list of names: a wrong list only wastes a
  // download (bounded by max_total_bytes); the Updater verifies whatever it uses.
  auto env = tuf::Envelope::Parse(bytes, tuf::kMaxSnapshotBytes);
  if (!env.ok()) return;
  auto snap = tuf::Snapshot::FromSigned(env->signed_json);
  if (!snap.ok()) return;
  std::lock_guard<std::mutex> l(mu_);
  if (started_ || stop_) return;
  started_ = true;
  for (const auto& [file, meta] : snap->meta) {
    constexpr std::string_view kJson = ".json";
    if (file.size() <= kJson.size() || file.compare(file.size() - kJson.size(), kJson.size(), kJson) != 0) continue;
    std::string role = file.substr(0, file.size() - kJson.size());
    if (meta.version < 1) continue;
    std::string name = tuf::VersionedMetadataName(meta.version, role);
    if (o_.have && o_.have(name)) continue;
    uint64_t cap = std::min<uint64_t>(meta.length.value_or(tuf::kMaxTargetsBytes), tuf::kMaxTargetsBytes);
    queue_.emplace_back(o_.metadata_url + "/" + name, cap);
    ++queued_;
  }
  if (queue_.empty() || !o_.make_fetcher) {
    queue_.clear();
    return;
  }
  int n = std::min<int>(o_.parallel, static_cast<int>(queue_.size()));
  for (int i = 0; i < n; ++i) threads_.emplace_back([this] { Worker(); });
}

void PrefetchFetcher::Worker() {
  std::unique_ptr<client::Fetcher> f = o_.make_fetcher();
  for (;;) {
    std::string url;
    uint64_t cap = 0;
    {
      std::unique_lock<std::mutex> l(mu_);
      // Bounded memory: no new download while the answers not yet taken hold too much.
      cv_.wait(l, [&] { return stop_ || queue_.empty() || held_ < o_.max_total_bytes; });
      if (stop_ || queue_.empty()) return;
      std::tie(url, cap) = queue_.front();
      queue_.pop_front();
      pending_[url] = true;
    }
    std::string body;  // grows with the body: the cap is often the 64 MiB maximum
    Status st = f->Fetch(url, cap, [&body](std::string_view chunk) {
      body.append(chunk);
      return Status::OK();
    });
    Result<std::string> r = st.ok() ? Result<std::string>(std::move(body)) : Result<std::string>(st);
    {
      std::lock_guard<std::mutex> l(mu_);
      pending_.erase(url);
      if (r.ok()) held_ += r->size();
      done_.insert_or_assign(url, std::move(r));
    }
    cv_.notify_all();
  }
}

}  // namespace patchgate::mirror
