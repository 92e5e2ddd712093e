#include "client/target_fetch.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "crypto/hash.h"
#include "tuf/repository.h"

namespace patchgate::client {

std::string TargetUrlPath(const std::string& target_path, const std::string& sha256, bool consistent) {
  std::string path = consistent ? tuf::ConsistentTargetName(target_path, sha256) : target_path;
  std::string out;
  size_t start = 0;
  for (;;) {
    size_t pos = path.find('/', start);
    out += tuf::QuoteRoleName(path.substr(start, pos == std::string::npos ? std::string::npos : pos - start));
    if (pos == std::string::npos) break;
    out += '/';
    start = pos + 1;
  }
  return out;
}

namespace {

Status WriteAll(int fd, std::string_view data, const std::string& name) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IOError("cannot write " + name + ": " + std::strerror(errno));
    off += static_cast<size_t>(n);
  }
  return Status::OK();
}

}  // namespace

Status FetchTargetTo(Fetcher* fetcher, const std::string& url, const std::string& what, const tuf::TargetFile& file,
                     const std::string& dest, const TargetFetchOptions& o) {
  std::map<std::string, Hasher> hashers;
  for (const auto& [alg, _] : file.hashes) {
    auto h = Hasher::Create(alg);
    if (h.ok()) hashers.emplace(alg, std::move(*h));
  }
  if (hashers.empty()) return Unsupported(what + " lists no hash algorithm this client supports");
  std::string tmp = o.partial_path.empty() ? dest + ".part" : o.partial_path;
  int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | (o.resume ? 0 : O_TRUNC), 0644);
  if (fd < 0) return IOError("cannot create " + tmp + ": " + std::strerror(errno));
  uint64_t have = 0;
  if (o.resume) {
    // Re-hash what an earlier attempt left, then continue after it.
    struct stat st {};
    bool empty = ::fstat(fd, &st) == 0 && st.st_size == 0;
    if (!empty && static_cast<uint64_t>(st.st_size) <= file.length) {
      char buf[1 << 16];
      while (have < static_cast<uint64_t>(st.st_size)) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        for (auto& [alg, h] : hashers) h.Update(buf, static_cast<size_t>(n));
        have += static_cast<uint64_t>(n);
      }
    }
    if (have != 0 && (::lseek(fd, static_cast<off_t>(have), SEEK_SET) < 0)) have = 0;
    // (A new, empty file is not truncated: on ext4 a truncation to 0 also makes close()
    // start writing the file back at once, one synchronous flush per target.)
    if (have == 0 && !empty && ::ftruncate(fd, 0) != 0) {
      ::close(fd);
      return IOError("cannot truncate " + tmp);
    }
  }
  uint64_t received = have;
  auto sink = [&](std::string_view chunk) -> Status {
    received += chunk.size();
    for (auto& [alg, h] : hashers) h.Update(chunk);
    return WriteAll(fd, chunk, tmp);
  };
  Status st = have > 0 ? fetcher->FetchFrom(url, have, file.length - have, sink) : fetcher->Fetch(url, file.length, sink);
  if (st.code() == ErrorCode::kUnsupported && have > 0) {
    // The server would not resume: start over.
    for (auto& [alg, h] : hashers) h = std::move(*Hasher::Create(alg));
    received = 0;
    if (::ftruncate(fd, 0) != 0 || ::lseek(fd, 0, SEEK_SET) != 0) st = IOError("cannot truncate " + tmp);
    else st = fetcher->Fetch(url, file.length, sink);
  }
  if (st.ok() && o.fsync && ::fsync(fd) != 0) st = IOError("cannot fsync " + tmp);
  ::close(fd);
  bool keep_partial = o.resume && (st.code() == ErrorCode::kNetwork || st.code() == ErrorCode::kTimeout);
  if (st.code() == ErrorCode::kTooLarge)
    st = Status(ErrorCode::kLengthMismatch, what + ": the server sent more than the signed length of " +
                                                std::to_string(file.length) + " bytes; download stopped and discarded");
  if (st.ok() && received != file.length)
    st = Status(ErrorCode::kLengthMismatch, what + ": received " + std::to_string(received) +
                                                " bytes; the signed length is " + std::to_string(file.length));
  if (st.ok()) {
    for (auto& [alg, h] : hashers) {
      if (!ConstantTimeEquals(h.FinalHex(), file.hashes.at(alg))) {
        st = Status(ErrorCode::kHashMismatch, what + ": the downloaded bytes do not match the signed " + alg +
                                                  " hash; discarded (nothing was installed)");
        break;
      }
    }
  }
  if (!st.ok()) {
    if (!keep_partial) ::unlink(tmp.c_str());
    return st;
  }
  if (o.before_rename) o.before_rename();
  if (tmp == dest) return Status::OK();  // written in place
  if (::rename(tmp.c_str(), dest.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return IOError("cannot rename " + tmp + " to " + dest + ": " + std::strerror(e));
  }
  return Status::OK();
}

}  // namespace patchgate::client
