#include "incident/import.h"

#include <fstream>
#include <map>
#include <set>
#include <unordered_map>

#include "crypto/hash.h"
#include "incident/nginx_log.h"
#include "tuf/repository.h"

namespace patchgate::incident {

namespace {

std::string PercentDecode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      auto hex = HexDecode(s.substr(i + 1, 2));
      if (hex.ok()) {
        out += *hex;
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

bool IsHex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

}  // namespace

bool TargetFromRequestPath(const std::string& raw, std::string* target, std::string* sha256) {
  std::string path = PercentDecode(raw);
  if (path.rfind("/targets/", 0) != 0 || path.size() <= 9) return false;
  std::string rel = path.substr(9);
  auto slash = rel.find_last_of('/');
  std::string dir = slash == std::string::npos ? "" : rel.substr(0, slash + 1);
  std::string base = slash == std::string::npos ? rel : rel.substr(slash + 1);
  if (base.size() > 65 && base[64] == '.' && IsHex64(std::string_view(base).substr(0, 64))) {
    *sha256 = base.substr(0, 64);
    *target = dir + base.substr(65);
  } else {
    sha256->clear();
    *target = rel;
  }
  return !target->empty();
}

Result<ImportReport> ImportNginxLog(Store& store, const std::string& file, const ImportOptions& o) {
  if (o.node.empty()) return InvalidArgument("name the node the log comes from (--node)");
  std::ifstream in(file, std::ios::binary);
  if (!in) return NotFound("cannot read " + file);
  std::set<std::string> catalogue;
  bool have_catalogue = false;
  if (!o.repo_dir.empty()) {
    PG_ASSIGN_OR_RETURN(auto entries, tuf::LoadCatalogue(o.repo_dir));
    for (const auto& e : entries) catalogue.insert(e.path);
    have_catalogue = true;
  }
  std::unordered_map<std::string, bool> user_known, target_known;
  std::unordered_map<std::string, int> occurrences;
  ImportReport rep;
  std::vector<Download> batch;
  batch.reserve(o.batch);
  auto flush = [&]() -> Status {
    if (batch.empty()) return Status::OK();
    PG_ASSIGN_OR_RETURN(ImportResult r, store.ImportDownloads(batch));
    rep.imported += r.inserted;
    rep.duplicates += r.duplicates;
    batch.clear();
    return Status::OK();
  };
  std::string line;
  while (std::getline(in, line)) {
    ++rep.lines;
    if (line.empty()) continue;
    auto rec = ParseCombinedLine(line);
    if (!rec.ok()) {
      ++rep.unparseable;
      if (rep.bad_lines.size() < 100) rep.bad_lines.emplace_back(rep.lines, rec.status().message());
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
    d.username = rec->remote_user;
    d.remote_addr = rec->remote_addr;
    d.user_agent = rec->user_agent.substr(0, 256);
    d.bytes_sent = rec->bytes;
    d.http_status = rec->status;
    d.outcome = rec->status == 200 ? DownloadOutcome::kComplete
                                   : (rec->status == 206 ? DownloadOutcome::kPartial : DownloadOutcome::kAborted);
    d.source = "imported";
    auto [uit, unew] = user_known.try_emplace(d.username, false);
    if (unew) uit->second = !d.username.empty() && store.GetUser(d.username).ok();
    d.unknown_user = !uit->second;
    auto [tit, tnew] = target_known.try_emplace(d.target_path, false);
    if (tnew) tit->second = have_catalogue ? catalogue.count(d.target_path) > 0 : store.GetTarget(d.target_path).ok();
    d.unknown_target = !tit->second;
    rep.unknown_users += d.unknown_user;
    rep.unknown_targets += d.unknown_target;
    int n = ++occurrences[line];
    d.import_key = Sha256Hex(o.node + '\n' + line + '\n' + std::to_string(n));
    batch.push_back(std::move(d));
    if (batch.size() >= o.batch) PG_RETURN_IF_ERROR(flush());
  }
  PG_RETURN_IF_ERROR(flush());
  return rep;
}

}  // namespace patchgate::incident
