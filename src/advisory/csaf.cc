#include "advisory/csaf.h"

#include <algorithm>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "advisory/cvss.h"

namespace patchgate::advisory {

using nlohmann::json;
// Keys sorted alphabetically (the CSAF recommended test 6.2.13).
using ordered_json = nlohmann::json;

namespace {

std::string D(int64_t micros) { return FormatRfc3339(micros / 1'000'000); }

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// product_id: letters, digits, '.', '_' and '-' only.
std::string ProductId(const std::string& product, const std::string& version) {
  std::string id = "CSAFPID-" + product + (version.empty() ? "" : "-" + version);
  for (char& c : id)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '_';
  return id;
}

std::string Dump(const ordered_json& j) { return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n"; }

ordered_json PublisherJson(const struct Publisher& p) {
  return {{"category", "vendor"}, {"contact_details", p.contact}, {"name", p.name}, {"namespace", p.namespace_url}};
}

ordered_json Generator(int64_t now) {
  return {{"date", D(now)}, {"engine", {{"name", "patchgate"}, {"version", "0.1.0"}}}};
}

}  // namespace

int CompareVersions(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() || j < b.size()) {
    size_t ei = a.find_first_of(".-", i), ej = b.find_first_of(".-", j);
    std::string pa = a.substr(i, ei == std::string::npos ? std::string::npos : ei - i);
    std::string pb = b.substr(j, ej == std::string::npos ? std::string::npos : ej - j);
    bool na = !pa.empty() && pa.size() < 18 && pa.find_first_not_of("0123456789") == std::string::npos;
    bool nb = !pb.empty() && pb.size() < 18 && pb.find_first_not_of("0123456789") == std::string::npos;
    if (na && nb) {
      long long x = std::stoll(pa), y = std::stoll(pb);
      if (x != y) return x < y ? -1 : 1;
    } else if (pa != pb) {
      return pa < pb ? -1 : 1;
    }
    i = ei == std::string::npos ? a.size() : ei + 1;
    j = ej == std::string::npos ? b.size() : ej + 1;
  }
  return 0;
}

std::string DocumentUrl(const struct Publisher& p, const std::string& tlp, const std::string& year, const std::string& file) {
  return p.base_url + "/.well-known/csaf/" + Lower(tlp) + "/" + year + "/" + file;
}

std::string TargetUrl(const struct Publisher& p, const FixTarget& t) {
  auto slash = t.path.rfind('/');
  std::string dir = slash == std::string::npos ? "" : t.path.substr(0, slash + 1);
  std::string file = slash == std::string::npos ? t.path : t.path.substr(slash + 1);
  return p.base_url + "/targets/" + dir + t.sha256 + "." + file;
}

std::string RenderAdvisory(const Advisory& a, const std::vector<TargetRecord>& targets, const std::string& tlp,
                           const std::string& status, int64_t now, const struct Publisher& p) {
  // Product tree: one product per published version of the product.
  std::map<std::string, std::vector<const TargetRecord*>, std::function<bool(const std::string&, const std::string&)>>
      versions([](const std::string& x, const std::string& y) { return CompareVersions(x, y) < 0; });
  for (const auto& t : targets)
    if (t.product == a.product) versions[t.version].push_back(&t);
  if (a.fix && !versions.count(a.fix->version)) versions[a.fix->version];
  std::vector<std::string> affected, fixed;
  ordered_json version_branches = ordered_json::array();
  for (const auto& [version, files] : versions) {
    std::string pid = ProductId(a.product, version);
    bool is_fixed = a.fix && CompareVersions(version, a.fix->version) >= 0;
    (is_fixed ? fixed : affected).push_back(pid);
    ordered_json product = {{"name", p.name + " " + a.product + (version.empty() ? "" : " " + version)}, {"product_id", pid}};
    ordered_json hashes = ordered_json::array();
    std::set<std::string> seen;
    auto add_hash = [&](const std::string& path, const std::string& sha256) {
      if (sha256.size() != 64 || !seen.insert(path).second) return;
      hashes.push_back({{"file_hashes", {{{"algorithm", "sha256"}, {"value", sha256}}}},
                        {"filename", path.substr(path.rfind('/') + 1)}});
    };
    if (a.fix && version == a.fix->version) add_hash(a.fix->path, a.fix->sha256);
    for (const auto* f : files) add_hash(f->path, f->sha256);
    if (!hashes.empty()) product["product_identification_helper"] = {{"hashes", hashes}};
    version_branches.push_back({{"category", "product_version"}, {"name", version.empty() ? "unversioned" : version},
                                {"product", product}});
  }
  ordered_json product_branch = {{"category", "product_name"}, {"name", a.product}};
  if (version_branches.empty()) {  // nothing published yet: the product as a whole
    std::string pid = ProductId(a.product, "");
    affected.push_back(pid);
    product_branch["product"] = {{"name", p.name + " " + a.product}, {"product_id", pid}};
  } else {
    product_branch["branches"] = version_branches;
  }
  ordered_json tree = {{"branches", {{{"category", "vendor"}, {"name", p.name}, {"branches", {product_branch}}}}}};

  ordered_json revisions = ordered_json::array();
  for (const auto& r : a.revisions) revisions.push_back({{"date", D(r.date)}, {"number", r.number}, {"summary", r.summary}});
  ordered_json doc;
  doc["document"] = ordered_json{
      {"category", "csaf_security_advisory"},
      {"csaf_version", "2.0"},
      {"distribution", {{"tlp", {{"label", tlp}, {"url", "https://www.first.org/tlp/"}}}}},
      {"lang", "en"},
      {"notes", {{{"category", "summary"}, {"text", a.summary}, {"title", "Summary"}}}},
      {"publisher", PublisherJson(p)},
      {"references", {{{"category", "self"}, {"summary", "URL of this document"},
                       {"url", DocumentUrl(p, tlp, a.Year(), a.FileName())}}}},
      {"title", a.title},
      {"tracking", {{"current_release_date", D(a.revisions.back().date)},
                    {"generator", Generator(now)},
                    {"id", a.id},
                    {"initial_release_date", D(a.revisions.front().date)},
                    {"revision_history", revisions},
                    {"status", status},
                    {"version", a.revisions.back().number}}}};
  if (!a.severity.empty())
    doc["document"]["aggregate_severity"] = {{"namespace", "https://www.first.org/cvss/specification-document"},
                                             {"text", a.severity}};
  doc["product_tree"] = tree;
  ordered_json v;
  if (!a.cve.empty()) v["cve"] = a.cve;
  v["notes"] = {{{"category", "description"}, {"text", a.summary}, {"title", "Vulnerability description"}}};
  ordered_json status_obj;
  if (!affected.empty()) status_obj["known_affected"] = affected;
  if (!fixed.empty()) status_obj["fixed"] = fixed;
  v["product_status"] = status_obj;
  ordered_json rem = ordered_json::array();
  if (!affected.empty() && !a.workaround.empty())
    rem.push_back({{"category", "workaround"}, {"details", a.workaround}, {"product_ids", affected}});
  if (!affected.empty() && a.fix)
    rem.push_back({{"category", "vendor_fix"},
                   {"details", "Update to " + a.product + " " + a.fix->version + ": install " + a.fix->path + " (" +
                                   std::to_string(a.fix->length) + " bytes, sha256 " + a.fix->sha256 +
                                   ", as signed in the update repository's TUF metadata)."},
                   {"product_ids", affected},
                   {"url", TargetUrl(p, *a.fix)}});
  if (!rem.empty()) v["remediations"] = rem;
  if (!a.cvss_vector.empty() && !affected.empty()) {  // a score for fixed products only would be wrong (6.2.19)
    auto c = ParseCvss31(a.cvss_vector);
    if (c.ok()) {
      v["scores"] = {{{"cvss_v3", {{"baseScore", c->base_score}, {"baseSeverity", c->severity},
                                   {"vectorString", c->vector}, {"version", "3.1"}}},
                      {"products", affected}}};
    }
  }
  v["title"] = a.title;
  doc["vulnerabilities"] = {v};
  return Dump(doc);
}

std::string RenderIncidentResponse(const Incident& inc, const incident::Scope& scope, const std::string& tlp,
                                   int64_t now, const struct Publisher& p) {
  std::string id = "PG-INC-" + std::to_string(inc.id);
  std::set<std::string> files;
  for (const auto& g : scope.orgs)
    for (const auto& d : g.downloads) files.emplace(d.target_path);
  std::string what = "Between " + D(inc.window_start) + " and " + D(inc.window_end) + " our download node \"" + inc.node +
                     "\" served files that may have been altered" + (inc.cause.empty() ? "" : " (" + inc.cause + ")") +
                     ". The incident was detected at " + D(inc.detected_at) + ". " + scope.Totals() + ".";
  std::string list = "Files served by the node in that window (" + std::to_string(files.size()) + "):\n";
  size_t n = 0;
  for (const auto& f : files) {
    if (++n > 200) {
      list += "... and " + std::to_string(files.size() - 200) + " more; affected customers received their own list.\n";
      break;
    }
    list += "- " + f + "\n";
  }
  std::string todo =
      "1. Do not install any of these files obtained from that node in that window; remove copies and check every "
      "machine they reached.\n2. Compare the SHA-256 of any copy with the signed value in the update repository's TUF "
      "metadata; patchgate-client refuses any file that does not match.\n3. Download the files again from a verified "
      "node.\nAffected customers were notified individually with exactly their downloads.";
  std::string url = DocumentUrl(p, tlp, D(inc.detected_at).substr(0, 4), Lower(id) + ".json");
  ordered_json doc;
  doc["document"] = ordered_json{
      {"category", "csaf_security_incident_response"},
      {"csaf_version", "2.0"},
      {"distribution", {{"tlp", {{"label", tlp}, {"url", "https://www.first.org/tlp/"}}}}},
      {"lang", "en"},
      {"notes", {{{"category", "summary"}, {"text", what}, {"title", "What happened"}},
                 {{"category", "details"}, {"text", list}, {"title", "What was served"}},
                 {{"category", "general"}, {"text", todo}, {"title", "What to do"}}}},
      {"publisher", PublisherJson(p)},
      {"references", {{{"category", "self"}, {"summary", "URL of this document"}, {"url", url}},
                      {{"category", "external"}, {"summary", "Verified downloads (TUF repository metadata)"},
                       {"url", p.base_url + "/metadata/timestamp.json"}}}},
      {"title", "Files served by download node " + inc.node + " may have been altered"},
      {"tracking", {{"current_release_date", D(now)},
                    {"generator", Generator(now)},
                    {"id", id},
                    {"initial_release_date", D(now)},
                    {"revision_history", {{{"date", D(now)}, {"number", "1"}, {"summary", "Initial version"}}}},
                    {"status", "final"},
                    {"version", "1"}}}};
  return Dump(doc);
}

}  // namespace patchgate::advisory
