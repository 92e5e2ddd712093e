#include "client/metadata_writer.h"

namespace patchgate::client {

MetadataWriter::~MetadataWriter() {
  (void)Flush();
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void MetadataWriter::Write(std::string path, std::string bytes) {
  {
    std::lock_guard<std::mutex> l(mu_);
    queue_.emplace_back(std::move(path), std::move(bytes));
  }
  if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
  cv_.notify_all();
}

Status MetadataWriter::Flush() {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [&] { return queue_.empty() && !busy_; });
  return first_error_;
}

void MetadataWriter::Run() {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    cv_.wait(l, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stop_ and nothing left
    auto [path, bytes] = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    bool skip = !first_error_.ok();
    l.unlock();
    Status st = skip ? Status::OK() : fs_->WriteFileAtomic(path, bytes);
    std::string().swap(bytes);  // a 5 MB role is not held longer than its write
    l.lock();
    if (!st.ok() && first_error_.ok()) first_error_ = st.WithContext("cannot store trusted metadata " + path);
    busy_ = false;
    cv_.notify_all();
  }
}

}  // namespace patchgate::client
