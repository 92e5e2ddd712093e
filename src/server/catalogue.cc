#include "server/catalogue.h"

#include <sys/stat.h>

#include <chrono>

#include "core/fs.h"
#include "core/log.h"
#include "tuf/naming.h"

namespace patchgate::server {

bool Catalogue::CurrentWithoutLoading() {
  int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now().time_since_epoch()).count();
  {
    std::lock_guard<std::mutex> l(mu_);
    if (loaded_mtime_ns_ < 0 || loading_) return false;
    if (now_ms - last_check_ms_ < 500) return true;
  }
  struct stat st {};
  std::string ts = JoinPath(JoinPath(dir_, "metadata"), "timestamp.json");
  if (::stat(ts.c_str(), &st) != 0) return false;
  int64_t mtime = int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
  std::lock_guard<std::mutex> l(mu_);
  if (mtime != loaded_mtime_ns_ || static_cast<int64_t>(st.st_ino) != loaded_ino_) return false;
  last_check_ms_ = now_ms;
  return true;
}

Status Catalogue::Refresh() {
  int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now().time_since_epoch()).count();
  {
    std::lock_guard<std::mutex> l(mu_);
    if (loaded_mtime_ns_ >= 0 && !loading_ && now_ms - last_check_ms_ < 500) return Status::OK();
  }
  // Single flight: one caller checks and loads; the others wait for its result instead of
  // answering from the catalogue it is replacing (a new target would be a 404 meanwhile).
  std::lock_guard<std::mutex> load(load_mu_);
  {
    std::lock_guard<std::mutex> l(mu_);
    if (loaded_mtime_ns_ >= 0 && now_ms - last_check_ms_ < 500) return Status::OK();  // loaded while we waited
    last_check_ms_ = now_ms;
    loading_ = true;
  }
  struct Done {
    Catalogue* c;
    ~Done() {
      std::lock_guard<std::mutex> l(c->mu_);
      c->loading_ = false;
    }
  } done{this};
  struct stat st {};
  std::string ts = JoinPath(JoinPath(dir_, "metadata"), "timestamp.json");
  if (::stat(ts.c_str(), &st) != 0) return Unavailable("no repository at " + dir_ + " (missing metadata/timestamp.json)");
  int64_t mtime = int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (mtime == loaded_mtime_ns_ && static_cast<int64_t>(st.st_ino) == loaded_ino_) return Status::OK();
  }
  auto entries = tuf::LoadCatalogue(dir_);
  if (!entries.ok()) return entries.status();
  auto map = std::make_shared<std::map<std::string, std::shared_ptr<const tuf::CatalogueEntry>>>();
  for (auto& e : *entries) {
    std::string rel = tuf::ConsistentTargetName(e.path, e.sha256);
    (*map)[rel] = std::make_shared<const tuf::CatalogueEntry>(std::move(e));
  }
  std::lock_guard<std::mutex> l(mu_);
  entries_ = std::move(map);
  loaded_mtime_ns_ = mtime;
  loaded_ino_ = static_cast<int64_t>(st.st_ino);
  log::Info("catalogue loaded", {{"targets", std::to_string(entries_->size())}});
  return Status::OK();
}

std::shared_ptr<const tuf::CatalogueEntry> Catalogue::Find(const std::string& rel) const {
  std::shared_ptr<const std::map<std::string, std::shared_ptr<const tuf::CatalogueEntry>>> e;
  {
    std::lock_guard<std::mutex> l(mu_);
    e = entries_;
  }
  auto it = e->find(rel);
  return it == e->end() ? nullptr : it->second;
}

void Catalogue::Expire() {
  std::lock_guard<std::mutex> l(mu_);
  last_check_ms_ = 0;
}

size_t Catalogue::size() const {
  std::lock_guard<std::mutex> l(mu_);
  return entries_->size();
}

}  // namespace patchgate::server
