#include "incident/import.h"

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "core/text.h"
#include "crypto/hash.h"
#include "incident/nginx_log.h"
#include "tuf/naming.h"
#include "tuf/repository.h"

namespace patchgate::incident {

namespace {


// Reads lines of at most kMaxLine bytes from a file through one large buffer; a longer
// line is reported (its first bytes only) and skipped up to the next newline.
class LineReader {
 public:
  static constexpr size_t kMaxLine = 64 * 1024;
  explicit LineReader(std::FILE* f) : f_(f), buf_(1 << 20) {}

  // False at the end of the file. *too_long is set for a line cut at kMaxLine.
  bool Next(std::string_view* line, bool* too_long) {
    *too_long = false;
    for (;;) {
      const char* nl = static_cast<const char*>(std::memchr(buf_.data() + pos_, '\n', end_ - pos_));
      if (nl) {
        size_t len = static_cast<size_t>(nl - (buf_.data() + pos_));
        *line = std::string_view(buf_.data() + pos_, len);
        pos_ += len + 1;
        if (skipping_) {
          skipping_ = false;
          continue;
        }
        if (len > kMaxLine) {
          *line = line->substr(0, 120);
          *too_long = true;
        }
        return true;
      }
      if (end_ - pos_ >= kMaxLine && !skipping_) {  // a line longer than any access-log line
        *line = std::string_view(buf_.data() + pos_, 120);
        *too_long = true;
        skipping_ = true;
        pos_ = end_;
        return true;
      }
      if (skipping_) pos_ = end_;
      std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
      end_ -= pos_;
      pos_ = 0;
      size_t n = std::fread(buf_.data() + end_, 1, buf_.size() - end_, f_);
      if (n == 0) {
        if (end_ == 0 || skipping_) return false;
        *line = std::string_view(buf_.data(), end_);  // last line without a newline
        pos_ = end_;
        return true;
      }
      end_ += n;
    }
  }
  bool failed() const { return std::ferror(f_) != 0; }

 private:
  std::FILE* f_;
  std::vector<char> buf_;
  size_t pos_ = 0, end_ = 0;
  bool skipping_ = false;
};

// Occurrence number of a line among identical lines of the file. Identical lines carry
// the same $time_local, and nginx writes lines at most seconds out of time order, so
// lines whose log time is more than kHorizon behind the newest seen are forgotten
// (bounded memory). Deterministic for a file and for any file that extends it.
class Occurrences {
 public:
  // `hash`: at least 32 hex digits identifying the line.
  int Next(std::string_view hash, int64_t time_us) {
    newest_ = std::max(newest_, time_us);
    if (counts_.size() >= kSweepAt) {
      for (auto it = counts_.begin(); it != counts_.end();)
        it = it->second.time_us < newest_ - kHorizon ? counts_.erase(it) : std::next(it);
    }
    Key k{0, 0};
    std::from_chars(hash.data(), hash.data() + 16, k.first, 16);
    std::from_chars(hash.data() + 16, hash.data() + 32, k.second, 16);
    auto& e = counts_[k];
    e.time_us = time_us;
    return ++e.count;
  }

 private:
  static constexpr size_t kSweepAt = size_t{1} << 20;
  static constexpr int64_t kHorizon = int64_t{600} * 1'000'000;
  using Key = std::pair<uint64_t, uint64_t>;
  struct KeyHash {
    size_t operator()(const Key& k) const { return static_cast<size_t>(k.first ^ (k.second * 0x9E3779B97F4A7C15ULL)); }
  };
  struct Entry {
    int count = 0;
    int64_t time_us = 0;
  };
  std::unordered_map<Key, Entry, KeyHash> counts_;
  int64_t newest_ = 0;
};

// The hand-over between the reading thread and the thread that writes to the store: at
// most kDepth batches wait, so memory stays bounded whatever the file size.
class BatchQueue {
 public:
  static constexpr size_t kDepth = 3;
  // False when the consumer gave up (store error): stop reading.
  bool Push(std::vector<Download> batch) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return q_.size() < kDepth || abandoned_; });
    if (abandoned_) return false;
    q_.push_back(std::move(batch));
    cv_.notify_all();
    return true;
  }
  void Close() {
    std::lock_guard<std::mutex> l(mu_);
    closed_ = true;
    cv_.notify_all();
  }
  void Abandon() {
    std::lock_guard<std::mutex> l(mu_);
    abandoned_ = true;
    cv_.notify_all();
  }
  // False when closed and drained.
  bool Pop(std::vector<Download>* batch) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return !q_.empty() || closed_; });
    if (q_.empty()) return false;
    *batch = std::move(q_.front());
    q_.pop_front();
    cv_.notify_all();
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::vector<Download>> q_;
  bool closed_ = false, abandoned_ = false;
};

// The stable key of a log line: log time first (fixed width) so the keys of a log arrive
// in nearly ascending order and the unique index grows at its end, then 128 bits of
// SHA-256(node, line), then the occurrence number among identical lines past the first.
std::string ImportKey(int64_t time_us, std::string_view line_hash, int occurrence) {
  char t[17];
  std::snprintf(t, sizeof t, "%016llx", static_cast<unsigned long long>(time_us));
  std::string key(t);
  key.append(line_hash.substr(0, 32));
  if (occurrence > 1) key += "-" + std::to_string(occurrence);
  return key;
}

// At most `max` bytes of s, cut at a UTF-8 sequence boundary.
std::string Truncated(const std::string& s, size_t max) {
  if (s.size() <= max) return s;
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return s.substr(0, cut);
}

}  // namespace

bool TargetFromRequestPath(const std::string& raw, std::string* target, std::string* sha256) {
  std::string path = PercentDecodeLenient(raw);
  if (!IsPlainText(path)) path = raw;  // undecodable: keep the path as the log has it
  if (path.rfind("/targets/", 0) != 0 || path.size() <= 9) return false;
  std::string rel = path.substr(9);
  auto parsed = tuf::ParseConsistentTargetName(rel);
  if (parsed && parsed->hash_hex.size() == 64) {
    *sha256 = std::move(parsed->hash_hex);
    *target = std::move(parsed->target_path);
  } else {
    sha256->clear();
    *target = rel;
  }
  return !target->empty();
}

Result<ImportReport> ImportNginxLog(Store& store, const std::string& file, const ImportOptions& o) {
  if (o.node.empty()) return InvalidArgument("name the node the log comes from (--node)");
  if (o.batch == 0) return InvalidArgument("the import batch size must be at least 1");
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(file.c_str(), "rb"), &std::fclose);
  if (!f) return NotFound("cannot read " + file);
  // Known paths: the published catalogue when given, else the store's targets. Loaded
  // once, so the reading thread never waits on the store.
  std::unordered_set<std::string> known_targets;
  if (!o.repo_dir.empty()) {
    PG_ASSIGN_OR_RETURN(auto entries, tuf::LoadCatalogue(o.repo_dir));
    for (auto& e : entries) known_targets.insert(std::move(e.path));
  } else {
    PG_ASSIGN_OR_RETURN(auto paths, store.ListTargetPaths());
    for (auto& p : paths) known_targets.insert(std::move(p));
  }

  // Reading thread: lines -> records -> batches. This thread: batches -> store.
  ImportReport rep;
  BatchQueue queue;
  Status read_status = Status::OK();
  std::thread reader([&] {
    Occurrences occurrences;
    LineReader lines(f.get());
    std::vector<Download> batch;
    batch.reserve(o.batch);
    auto bad = [&](const std::string& reason) {
      ++rep.unparseable;
      if (rep.bad_lines.size() < 100) rep.bad_lines.emplace_back(rep.lines, reason);
    };
    std::string_view line;
    bool too_long = false;
    while (lines.Next(&line, &too_long)) {
      ++rep.lines;
      if (too_long) {
        bad("line longer than " + std::to_string(LineReader::kMaxLine) + " bytes");
        continue;
      }
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty()) continue;
      auto rec = ParseCombinedLine(line);
      if (!rec.ok()) {
        bad(rec.status().message());
        continue;
      }
      Download d;
      if (rec->method != "GET" || rec->status < 200 || rec->status >= 300 ||
          !TargetFromRequestPath(rec->path, &d.target_path, &d.sha256)) {
        ++rep.skipped;  // metadata, health checks, HEAD, refused requests: not downloads
        continue;
      }
      d.started_at = rec->time_us;
      d.ended_at = rec->time_us;
      d.node = o.node;
      d.username = std::move(rec->remote_user);
      d.remote_addr = std::move(rec->remote_addr);
      d.user_agent = Truncated(rec->user_agent, 256);
      d.bytes_sent = rec->bytes;
      d.http_status = rec->status;
      d.outcome = rec->status == 200 ? DownloadOutcome::kComplete
                                     : (rec->status == 206 ? DownloadOutcome::kPartial : DownloadOutcome::kAborted);
      d.source = "imported";
      d.unknown_target = known_targets.count(d.target_path) == 0;  // unknown_user: the store knows
      rep.unknown_targets += d.unknown_target;
      std::string hash = Sha256Hex(o.node + '\n' + std::string(line));
      hash.resize(32);
      d.import_key = ImportKey(rec->time_us, hash, occurrences.Next(hash, rec->time_us));
      batch.push_back(std::move(d));
      if (batch.size() >= o.batch) {
        if (!queue.Push(std::move(batch))) return;
        batch = {};
        batch.reserve(o.batch);
      }
    }
    if (lines.failed()) read_status = Unavailable("error reading " + file + " after line " + std::to_string(rep.lines));
    else if (!batch.empty()) (void)queue.Push(std::move(batch));
    queue.Close();
  });

  Status write_status = Status::OK();
  size_t imported = 0, duplicates = 0, unknown_users = 0;
  std::vector<Download> batch;
  while (queue.Pop(&batch)) {
    auto r = store.ImportDownloads(batch);
    if (!r.ok()) {
      write_status = r.status().WithContext("importing " + file + " (batches before this one are kept; rerun to resume)");
      queue.Abandon();
      break;
    }
    imported += r->inserted;
    duplicates += r->duplicates;
    unknown_users += r->unknown_users;
  }
  reader.join();
  PG_RETURN_IF_ERROR(write_status);
  PG_RETURN_IF_ERROR(read_status);
  rep.imported = imported;
  rep.duplicates = duplicates;
  rep.unknown_users = unknown_users;
  return rep;
}

}  // namespace patchgate::incident
