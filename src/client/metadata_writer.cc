#include "client/metadata_writer.h"

#include <utility>

namespace patchgate::client {

MetadataWriter::~MetadataWriter() { (void)Flush(); }

void MetadataWriter::Write(std::string path, std::string bytes) {
  for (auto& j : jobs_)
    if (j->path == path && j->thread.joinable()) j->thread.join();  // one write per path at a time
  auto job = std::make_unique<Job>();
  job->path = std::move(path);
  Job* j = job.get();
  j->thread = std::thread([this, j, data = std::move(bytes)] {
    Status st = fs_->WriteFileAtomic(j->path, data);
    if (!st.ok()) j->status = st.WithContext("cannot store trusted metadata " + j->path);
  });
  jobs_.push_back(std::move(job));
}

Status MetadataWriter::Flush() {
  Status first;
  for (auto& j : jobs_) {
    if (j->thread.joinable()) j->thread.join();
    if (first.ok() && !j->status.ok()) first = j->status;
  }
  jobs_.clear();
  return first;
}

}  // namespace patchgate::client
