#include "advisory/advisory.h"

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "advisory/cvss.h"
#include "core/text.h"
#include "tuf/catalogue.h"

namespace patchgate::advisory {

using nlohmann::json;

namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

Status CheckText(const std::string& what, const std::string& s, size_t cap, bool required) {
  if (required && s.empty()) return InvalidArgument(what + " must not be empty");
  if (s.size() > cap) return InvalidArgument(what + " is longer than " + std::to_string(cap) + " bytes");
  if (!IsValidUtf8(s)) return InvalidArgument(what + " is not valid UTF-8");
  for (unsigned char c : s)
    if (c < 0x20 && c != '\n' && c != '\t') return InvalidArgument(what + " contains control characters");
  return Status::OK();
}

Status CheckCve(const std::string& cve) {
  // CVE-YYYY-NNNN with four or more digits (the CSAF schema's pattern).
  if (cve.empty()) return Status::OK();
  bool ok = cve.size() >= 13 && cve.size() <= 24 && cve.compare(0, 4, "CVE-") == 0 && cve[8] == '-';
  for (size_t i = 4; ok && i < cve.size(); ++i) ok = i == 8 || std::isdigit(static_cast<unsigned char>(cve[i]));
  return ok ? Status::OK() : InvalidArgument("'" + cve + "' is not a CVE id (CVE-YYYY-NNNN)");
}

Result<std::string> CheckSeverity(const std::string& s) {
  std::string l = Lower(s);
  if (l.empty() || l == "critical" || l == "high" || l == "medium" || l == "low") return l;
  return InvalidArgument("--severity must be critical, high, medium or low");
}

json OptMicros(const std::optional<int64_t>& v) { return v ? json(*v) : json(nullptr); }
std::optional<int64_t> GetOptMicros(const json& j, const char* k) {
  if (!j.contains(k) || j[k].is_null()) return std::nullopt;
  return j[k].get<int64_t>();
}

}  // namespace

Result<std::string> ParseTlp(std::string_view label) {
  std::string l = Lower(std::string(label));
  if (l == "red" || l == "amber" || l == "green" || l == "white") {
    for (char& c : l) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return l;
  }
  if (l == "clear") return std::string("WHITE");
  return InvalidArgument("TLP label must be red, amber, green or white (or clear)");
}

Result<Audience> ParseAudience(std::string_view text) {
  Audience a;
  auto colon = text.find(':');
  if (colon == std::string_view::npos)
    return InvalidArgument("--audience is tier:premier[,gold], product:P or downloaded:P");
  std::string kind(text.substr(0, colon)), rest(text.substr(colon + 1));
  if (kind == "tier") {
    a.kind = Audience::Kind::kTier;
    std::set<std::string> tiers;
    size_t start = 0;
    while (start <= rest.size()) {
      size_t comma = rest.find(',', start);
      std::string t = rest.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      if (t != "premier" && t != "gold" && t != "standard")
        return InvalidArgument("unknown tier '" + t + "' (premier, gold or standard)");
      tiers.insert(t);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    a.values.assign(tiers.begin(), tiers.end());
  } else if (kind == "product" || kind == "downloaded") {
    a.kind = kind == "product" ? Audience::Kind::kProduct : Audience::Kind::kDownloaded;
    if (rest.empty() || rest.size() > 128 || rest.find_first_of(",/ \t\r\n") != std::string::npos)
      return InvalidArgument("--audience " + kind + ":P needs one product name");
    a.values = {rest};
  } else {
    return InvalidArgument("--audience is tier:premier[,gold], product:P or downloaded:P");
  }
  a.text = kind + ":";
  for (size_t i = 0; i < a.values.size(); ++i) a.text += (i ? "," : "") + a.values[i];
  return a;
}

std::string Advisory::Year() const { return id.size() >= 7 ? id.substr(3, 4) : "0000"; }
std::string Advisory::FileName() const { return Lower(id) + ".json"; }

AdvisoryRow ToRow(const Advisory& a) {
  json j = {{"title", a.title},         {"summary", a.summary},   {"cve", a.cve},
            {"cvss_vector", a.cvss_vector}, {"severity", a.severity}, {"workaround", a.workaround},
            {"revisions", json::array()}, {"steps_done", a.steps_done}, {"published_at", OptMicros(a.published_at)},
            {"tlp_before_publication", a.tlp}};
  for (const auto& r : a.revisions) j["revisions"].push_back({{"number", r.number}, {"date", r.date}, {"summary", r.summary}});
  if (a.fix) j["fix"] = {{"path", a.fix->path}, {"version", a.fix->version}, {"sha256", a.fix->sha256}, {"length", a.fix->length}};
  if (a.schedule)
    j["schedule"] = {{"prenotify_at", a.schedule->prenotify_at}, {"workaround_at", OptMicros(a.schedule->workaround_at)},
                     {"publish_at", a.schedule->publish_at}, {"audience", a.schedule->audience}};
  if (a.issued)
    j["issued"] = {{"tlp", a.issued->tlp}, {"status", a.issued->status}, {"json", a.issued->json},
                   {"sha256", a.issued->sha256}, {"sha512", a.issued->sha512}, {"asc", a.issued->asc}, {"at", a.issued->at}};
  AdvisoryRow r;
  r.id = a.id;
  r.product = a.product;
  r.state = a.state;
  r.tlp = a.issued ? a.issued->tlp : a.tlp;
  if (a.schedule) r.publish_at = a.schedule->publish_at;
  r.version = a.row_version;
  r.data = j.dump(-1, ' ', false, json::error_handler_t::replace);
  r.created_at = a.created_at;
  return r;
}

Result<Advisory> FromRow(const AdvisoryRow& row) {
  json j = json::parse(row.data, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Corrupt("advisory " + row.id + ": stored data is not JSON");
  try {
    Advisory a;
    a.id = row.id;
    a.product = row.product;
    a.state = row.state;
    a.row_version = row.version;
    a.created_at = row.created_at;
    a.title = j.value("title", "");
    a.summary = j.value("summary", "");
    a.cve = j.value("cve", "");
    a.cvss_vector = j.value("cvss_vector", "");
    a.severity = j.value("severity", "");
    a.workaround = j.value("workaround", "");
    a.tlp = j.value("tlp_before_publication", "AMBER");
    for (const auto& r : j.at("revisions")) a.revisions.push_back({r.at("number"), r.at("date"), r.at("summary")});
    if (j.contains("steps_done")) a.steps_done = j["steps_done"].get<std::map<std::string, int64_t>>();
    a.published_at = GetOptMicros(j, "published_at");
    if (j.contains("fix"))
      a.fix = FixTarget{j["fix"].at("path"), j["fix"].at("version"), j["fix"].at("sha256"), j["fix"].at("length")};
    if (j.contains("schedule")) {
      const json& s = j["schedule"];
      a.schedule = Schedule{s.at("prenotify_at"), GetOptMicros(s, "workaround_at"), s.at("publish_at"), s.at("audience")};
    }
    if (j.contains("issued")) {
      const json& i = j["issued"];
      a.issued = Issued{i.at("tlp"), i.at("status"), i.at("json"), i.at("sha256"), i.at("sha512"), i.at("asc"), i.at("at")};
    }
    return a;
  } catch (const json::exception& e) {
    return Corrupt("advisory " + row.id + ": stored data is damaged (" + e.what() + ")");
  }
}

Result<std::string> Create(AdvisoryRegister& store, const NewAdvisory& n, const Clock& clock) {
  PG_RETURN_IF_ERROR(CheckText("--product", n.product, 128, true));
  if (n.product.find_first_of("/ \t\n") != std::string::npos) return InvalidArgument("--product is a product name, not a path");
  PG_RETURN_IF_ERROR(CheckText("--title", n.title, kMaxTitle, true));
  PG_RETURN_IF_ERROR(CheckText("--summary", n.summary, kMaxText, true));
  PG_RETURN_IF_ERROR(CheckCve(n.cve));
  Advisory a;
  a.product = n.product;
  a.title = n.title;
  a.summary = n.summary;
  a.cve = n.cve;
  if (!n.cvss_vector.empty()) {
    PG_ASSIGN_OR_RETURN(Cvss31 c, ParseCvss31(n.cvss_vector));
    a.cvss_vector = c.vector;
  }
  PG_ASSIGN_OR_RETURN(a.severity, CheckSeverity(n.severity));
  PG_ASSIGN_OR_RETURN(a.tlp, ParseTlp(n.tlp.empty() ? "amber" : n.tlp));
  a.created_at = clock.NowMicros();
  a.revisions.push_back({"1", a.created_at, "Initial version"});
  AdvisoryRow row = ToRow(a);
  return store.CreateAdvisory(row, static_cast<int>(std::stoi(FormatRfc3339(clock.NowUnix()).substr(0, 4))));
}

Result<Advisory> Load(AdvisoryRegister& store, const std::string& id) {
  std::string upper = id;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  PG_ASSIGN_OR_RETURN(AdvisoryRow row, store.GetAdvisory(upper));
  return FromRow(row);
}

Status Modify(AdvisoryRegister& store, const std::string& id, const std::function<Status(Advisory&)>& change) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    PG_ASSIGN_OR_RETURN(Advisory a, Load(store, id));
    PG_RETURN_IF_ERROR(change(a));
    Status st = store.UpdateAdvisory(ToRow(a));
    if (st.code() != ErrorCode::kConflict) return st;
  }
  return Status(ErrorCode::kConflict, "advisory " + id + " keeps changing; try again");
}

namespace {
void AddRevision(Advisory& a, const std::string& summary, const Clock& clock) {
  // Revisions after the first issue are new document versions; before, the draft's single
  // revision is amended (its date moves) so the first issued document starts at "1".
  if (!a.issued && a.revisions.size() == 1 && a.state == "draft") {
    a.revisions[0].date = clock.NowMicros();
    return;
  }
  a.revisions.push_back({std::to_string(a.revisions.size() + 1), clock.NowMicros(), summary});
}
}  // namespace

Status SetWorkaround(AdvisoryRegister& store, const std::string& id, const std::string& text, const Clock& clock) {
  PG_RETURN_IF_ERROR(CheckText("--text", text, kMaxText, true));
  return Modify(store, id, [&](Advisory& a) {
    if (a.state == "published" && !a.workaround.empty() && a.workaround == text) return Status::OK();
    a.workaround = text;
    AddRevision(a, "Workaround added", clock);
    return Status::OK();
  });
}

namespace {
Result<TargetRecord> FromCatalogue(const std::string& repo_dir, const std::string& target) {
  PG_ASSIGN_OR_RETURN(std::vector<tuf::CatalogueEntry> all, tuf::LoadCatalogue(repo_dir));
  for (const auto& e : all) {
    if (e.path != target) continue;
    TargetRecord t;
    t.path = e.path;
    t.product = e.product;
    t.sha256 = e.sha256;
    t.length = e.length;
    if (e.custom.is_object()) {
      if (e.custom.contains("version") && e.custom["version"].is_string()) t.version = e.custom["version"];
      if (e.custom.contains("scan") && e.custom["scan"].is_object()) {
        const auto& sc = e.custom["scan"];
        if (sc.contains("verdict") && sc["verdict"].is_string()) t.scan_verdict = sc["verdict"];
        if (sc.contains("engine") && sc["engine"].is_string()) t.scan_engine = sc["engine"];
        if (sc.contains("signature_version") && sc["signature_version"].is_string()) t.scan_db_version = sc["signature_version"];
      }
    }
    return t;
  }
  return NotFound("no published target " + target + " in the signed metadata of " + repo_dir);
}
}  // namespace

Result<std::vector<TargetRecord>> ProductTargets(TargetCatalogue& store, const std::string& product, const std::string& repo_dir) {
  std::map<std::string, TargetRecord> by_path;
  PG_ASSIGN_OR_RETURN(std::vector<std::string> paths, store.ListTargetPaths());
  for (const auto& p : paths) {
    if (p.compare(0, product.size() + 1, product + "/") != 0) continue;
    auto t = store.GetTarget(p);
    if (t.ok() && t->product == product) by_path[p] = *t;
  }
  if (!repo_dir.empty()) {
    auto all = tuf::LoadCatalogue(repo_dir);
    if (all.ok())
      for (const auto& e : *all) {
        if (e.product != product || by_path.count(e.path)) continue;
        auto t = FromCatalogue(repo_dir, e.path);
        if (t.ok()) by_path[e.path] = *t;
      }
  }
  std::vector<TargetRecord> out;
  for (auto& [p, t] : by_path) out.push_back(std::move(t));
  return out;
}

Status SetFix(Store& store, const std::string& id, const std::string& target, const Clock& clock,
              const std::string& repo_dir) {
  PG_ASSIGN_OR_RETURN(Advisory cur, Load(store, id));
  Result<TargetRecord> t = repo_dir.empty() ? store.GetTarget(target) : FromCatalogue(repo_dir, target);
  if (!t.ok()) {
    if (t.status().code() == ErrorCode::kNotFound)
      return NotFound("no published target " + target + " (publish and scan the fix first: `patchgate publish`)");
    return t.status();
  }
  if (t->product != cur.product) return InvalidArgument(target + " belongs to product " + t->product + ", not " + cur.product);
  if (t->infected || t->scan_verdict != "clean")
    return InvalidArgument(target + " has no clean scan verdict (" + (t->infected ? "infected" : t->scan_verdict.empty() ? "not scanned" : t->scan_verdict) +
                           "); only a published, scanned target can be the fix");
  if (!repo_dir.empty()) {
    TargetRecord rec = *t;
    rec.published_at = clock.NowMicros();
    PG_RETURN_IF_ERROR(store.UpsertTarget(rec));
  }
  return Modify(store, id, [&](Advisory& a) {
    a.fix = FixTarget{t->path, t->version, t->sha256, t->length};
    AddRevision(a, "Fix " + t->path + " referenced", clock);
    return Status::OK();
  });
}

Status ApplyUpdate(AdvisoryRegister& store, const std::string& id, const Update& u, const Clock& clock) {
  if (u.title) PG_RETURN_IF_ERROR(CheckText("--title", *u.title, kMaxTitle, true));
  if (u.summary) PG_RETURN_IF_ERROR(CheckText("--summary", *u.summary, kMaxText, true));
  if (u.cve) PG_RETURN_IF_ERROR(CheckCve(*u.cve));
  PG_RETURN_IF_ERROR(CheckText("--revision", u.revision_summary, 1024, true));
  std::string vector;
  if (u.cvss_vector) {
    PG_ASSIGN_OR_RETURN(Cvss31 c, ParseCvss31(*u.cvss_vector));
    vector = c.vector;
  }
  std::string severity;
  if (u.severity) {
    PG_ASSIGN_OR_RETURN(severity, CheckSeverity(*u.severity));
  }
  return Modify(store, id, [&](Advisory& a) {
    if (u.title) a.title = *u.title;
    if (u.summary) a.summary = *u.summary;
    if (u.cve) a.cve = *u.cve;
    if (u.cvss_vector) a.cvss_vector = vector;
    if (u.severity) a.severity = severity;
    a.revisions.push_back({std::to_string(a.revisions.size() + 1), clock.NowMicros(), u.revision_summary});
    return Status::OK();
  });
}

Status SetSchedule(Store& store, const std::string& id, const Schedule& s, const Clock& clock) {
  PG_ASSIGN_OR_RETURN(Audience aud, ParseAudience(s.audience));
  int64_t now = clock.NowMicros();
  if (s.prenotify_at > s.publish_at)
    return InvalidArgument("the pre-notice (" + FormatRfc3339(s.prenotify_at / 1'000'000) + ") would go out after publishing (" +
                           FormatRfc3339(s.publish_at / 1'000'000) + "); pre-notify before --publish-at");
  if (s.workaround_at && *s.workaround_at > s.publish_at)
    return InvalidArgument("the workaround step would come after publishing; give --workaround-at before --publish-at");
  PG_ASSIGN_OR_RETURN(std::vector<Organisation> orgs, ResolveAudience(store, aud));
  if (orgs.empty()) return InvalidArgument("the audience " + aud.text + " has no organisation");
  return Modify(store, id, [&](Advisory& a) {
    if (a.state == "published") return InvalidArgument(a.id + " is published already; use `advisory update`");
    if (!a.fix && s.publish_at <= now)
      return InvalidArgument("publishing at " + FormatRfc3339(s.publish_at / 1'000'000) +
                             " would publish before the fix exists; record it first (`patchgate advisory fix " + a.id +
                             " --target PRODUCT/FILE`) or publish later");
    if (s.workaround_at && a.workaround.empty())
      return InvalidArgument("--workaround-at needs a workaround text first (`patchgate advisory workaround " + a.id + " --text ...`)");
    for (const auto& [step, at] : a.steps_done)
      if (step == "prenotice" && a.schedule && a.schedule->audience != aud.text)
        return InvalidArgument("the pre-notice went out to " + a.schedule->audience + " already; the audience cannot change");
    Schedule copy = s;
    copy.audience = aud.text;
    a.schedule = copy;
    a.state = "scheduled";
    return Status::OK();
  });
}

Result<std::vector<Organisation>> ResolveAudience(Store& store, const Audience& aud) {
  PG_ASSIGN_OR_RETURN(std::vector<Organisation> all, store.ListOrganisations());
  std::set<std::string> names;
  if (aud.kind == Audience::Kind::kProduct) {
    PG_ASSIGN_OR_RETURN(auto v, store.EntitledOrganisations(aud.values[0]));
    names.insert(v.begin(), v.end());
  } else if (aud.kind == Audience::Kind::kDownloaded) {
    PG_ASSIGN_OR_RETURN(auto v, store.OrganisationsThatDownloaded(aud.values[0]));
    names.insert(v.begin(), v.end());
  }
  std::vector<Organisation> out;
  for (auto& o : all) {
    bool in = aud.kind == Audience::Kind::kTier
                  ? std::find(aud.values.begin(), aud.values.end(), o.tier) != aud.values.end()
                  : names.count(o.name) > 0;
    if (in) out.push_back(std::move(o));
  }
  return out;
}

Result<std::vector<CallEntry>> CallList(Store& store, const Advisory& a, int64_t cutoff) {
  if (!a.schedule) return InvalidArgument(a.id + " has no audience yet (`patchgate advisory schedule`)");
  PG_ASSIGN_OR_RETURN(Audience aud, ParseAudience(a.schedule->audience));
  PG_ASSIGN_OR_RETURN(std::vector<Organisation> orgs, ResolveAudience(store, aud));
  PG_ASSIGN_OR_RETURN(std::vector<Notification> ns, store.ListSubjectNotifications("advisory:" + a.id + ":"));
  struct Seen {
    bool acked = false;
    std::optional<int64_t> first_sent;
  };
  std::map<int64_t, Seen> seen;
  for (const auto& n : ns) {
    if (n.subject.size() >= 8 && n.subject.compare(n.subject.size() - 8, 8, ":publish") == 0) continue;
    Seen& x = seen[n.org_id];
    x.acked |= n.acked_at.has_value();
    if (n.sent_at && (!x.first_sent || *n.sent_at < *x.first_sent)) x.first_sent = n.sent_at;
  }
  auto rank = [](const std::string& t) { return t == "premier" ? 0 : t == "gold" ? 1 : 2; };
  std::stable_sort(orgs.begin(), orgs.end(), [&](const Organisation& x, const Organisation& y) {
    return rank(x.tier) != rank(y.tier) ? rank(x.tier) < rank(y.tier) : x.name < y.name;
  });
  std::vector<CallEntry> out;
  for (auto& o : orgs) {
    const Seen& x = seen[o.id];
    if (x.acked || (x.first_sent && *x.first_sent > cutoff)) continue;
    out.push_back({std::move(o), x.first_sent});
  }
  return out;
}

}  // namespace patchgate::advisory
