// FileSystem seam: the repository, the client's trusted-metadata store and the quarantine
// write through this interface so tests can inject a full disk, a failed fsync or a crash
// between two steps. RealFileSystem is stateless and thread-safe. ForwardingFileSystem
// forwards every call, so a test overrides just the call it wants to break.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace patchgate {

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  // Reads the whole file; kTooLarge if it is longer than max_bytes (nothing returned).
  virtual Result<std::string> ReadFile(const std::string& path, uint64_t max_bytes) = 0;
  // Writes to "<path>.tmp.<pid>", fsyncs, renames over path and fsyncs the directory:
  // a reader (or a crash) sees the whole old file or the whole new one.
  virtual Status WriteFileAtomic(const std::string& path, std::string_view data) = 0;
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  virtual Status Remove(const std::string& path) = 0;  // OK if it did not exist
  virtual Status MakeDirs(const std::string& path) = 0;
  virtual bool Exists(const std::string& path) = 0;
  // Names (not paths) of the entries in a directory, sorted.
  virtual Result<std::vector<std::string>> ListDir(const std::string& path) = 0;
  virtual Status SyncDir(const std::string& path) = 0;

  // For writing several files durably at the price of one wait (client/metadata_writer.h):
  // WriteFileNoWait writes `data` to `path` (created or truncated) and starts writing it to
  // disk without waiting: nothing is durable yet, and a crash may leave the file short or
  // empty, so the caller writes to a temporary name, calls SyncFile, and only then renames
  // it into place. SyncFile waits until the file's contents (and the size needed to read
  // them) are on stable storage. The defaults are durable at once: WriteFileAtomic, and
  // nothing more to wait for.
  virtual Status WriteFileNoWait(const std::string& path, std::string_view data) { return WriteFileAtomic(path, data); }
  virtual Status SyncFile(const std::string& path) {
    (void)path;
    return Status::OK();
  }
};

class RealFileSystem : public FileSystem {
 public:
  Result<std::string> ReadFile(const std::string& path, uint64_t max_bytes) override;
  Status WriteFileAtomic(const std::string& path, std::string_view data) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status Remove(const std::string& path) override;
  Status MakeDirs(const std::string& path) override;
  bool Exists(const std::string& path) override;
  Result<std::vector<std::string>> ListDir(const std::string& path) override;
  Status SyncDir(const std::string& path) override;
  Status WriteFileNoWait(const std::string& path, std::string_view data) override;
  Status SyncFile(const std::string& path) override;
  // A process-wide instance; never deleted.
  static RealFileSystem& Get();
};

class ForwardingFileSystem : public FileSystem {
 public:
  explicit ForwardingFileSystem(FileSystem* target) : target_(target) {}
  Result<std::string> ReadFile(const std::string& p, uint64_t m) override { return target_->ReadFile(p, m); }
  Status WriteFileAtomic(const std::string& p, std::string_view d) override { return target_->WriteFileAtomic(p, d); }
  Status Rename(const std::string& f, const std::string& t) override { return target_->Rename(f, t); }
  Status Remove(const std::string& p) override { return target_->Remove(p); }
  Status MakeDirs(const std::string& p) override { return target_->MakeDirs(p); }
  bool Exists(const std::string& p) override { return target_->Exists(p); }
  Result<std::vector<std::string>> ListDir(const std::string& p) override { return target_->ListDir(p); }
  Status SyncDir(const std::string& p) override { return target_->SyncDir(p); }
  Status WriteFileNoWait(const std::string& p, std::string_view d) override { return target_->WriteFileNoWait(p, d); }
  Status SyncFile(const std::string& p) override { return target_->SyncFile(p); }

 protected:
  FileSystem* target_;
};

// Directory part of a path ("." when none).
std::string DirName(const std::string& path);
// Joins with exactly one '/'.
std::string JoinPath(const std::string& a, const std::string& b);

// What a regular file is, without reading it: replaced, rewritten or touched since, it has
// another identity (a write changes mtime and ctime; ctime cannot be set back). Used to
// reuse what was verified from a file only while the file is the one that was verified.
struct FileIdentity {
  uint64_t dev = 0, ino = 0;
  int64_t size = -1, mtime_ns = 0, ctime_ns = 0;
  bool operator==(const FileIdentity&) const = default;
};
// nullopt when PATH cannot be stat'ed or is not a regular file.
std::optional<FileIdentity> IdentityOf(const std::string& path);

}  // namespace patchgate
