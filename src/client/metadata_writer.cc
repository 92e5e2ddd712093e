#include "client/metadata_writer.h"

#include <unistd.h>

#include <set>
#include <utility>

namespace patchgate::client {

MetadataWriter::~MetadataWriter() { (void)Flush(); }

void MetadataWriter::JoinBackground() {
  if (background_.joinable()) background_.join();
}

void MetadataWriter::FlushInBackground() {
  JoinBackground();
  if (pending_.empty()) return;
  std::vector<Pending> batch = std::move(pending_);
  pending_.clear();
  background_ = std::thread([this, b = std::move(batch)]() mutable {
    Status st = FlushBatch(fs_, std::move(b));
    if (background_status_.ok()) background_status_ = st;
  });
}

Status MetadataWriter::Write(const std::string& path, std::string_view bytes) {
  JoinBackground();  // its temporary files have the names this write may use
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  Status st = fs_->WriteFileNoWait(tmp, bytes);
  bool known = false;
  for (const auto& p : pending_) known |= p.path == path;
  if (!st.ok()) {
    (void)fs_->Remove(tmp);
    if (known) std::erase_if(pending_, [&](const Pending& p) { return p.path == path; });
    return st.WithContext("cannot store trusted metadata " + path);
  }
  if (!known) pending_.push_back({path, std::move(tmp)});
  return Status::OK();
}

Status MetadataWriter::Flush() {
  JoinBackground();
  Status first = std::exchange(background_status_, Status::OK());
  std::vector<Pending> batch = std::move(pending_);
  pending_.clear();
  Status st = FlushBatch(fs_, std::move(batch));
  return first.ok() ? st : first;
}

Status MetadataWriter::FlushBatch(FileSystem* fs, std::vector<Pending> batch) {
  if (batch.empty()) return Status::OK();
  // 1. Every temporary file durable. The syncs run at once: the first one's journal
  // commit carries the others' block allocations, and the device flushes coincide.
  std::vector<Status> synced(batch.size());
  {
    std::vector<std::thread> threads;
    for (size_t i = 1; i < batch.size(); ++i)
      threads.emplace_back([&, i] { synced[i] = fs->SyncFile(batch[i].tmp); });
    synced[0] = fs->SyncFile(batch[0].tmp);
    for (auto& t : threads) t.join();
  }
  // 2. Into place, only what is durable; 3. each directory once.
  Status first;
  std::set<std::string> dirs;
  for (size_t i = 0; i < batch.size(); ++i) {
    Status st = synced[i];
    if (st.ok()) st = fs->Rename(batch[i].tmp, batch[i].path);
    if (st.ok()) {
      dirs.insert(DirName(batch[i].path));
    } else {
      (void)fs->Remove(batch[i].tmp);
      if (first.ok()) first = st.WithContext("cannot store trusted metadata " + batch[i].path);
    }
  }
  for (const auto& d : dirs) {
    Status st = fs->SyncDir(d);
    if (!st.ok() && first.ok()) first = st.WithContext("cannot store trusted metadata in " + d);
  }
  return first;
}

}  // namespace patchgate::client
