#include "advisory/provider.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "advisory/openpgp.h"
#include "core/log.h"

namespace patchgate::advisory {

using nlohmann::ordered_json;

namespace {

constexpr const char* kLabels[] = {"white", "green", "amber", "red"};
constexpr std::string_view kCsaf = "/.well-known/csaf/";

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
std::string D(int64_t micros) { return FormatRfc3339(micros / 1'000'000); }

bool Visible(const ProviderSnapshot& s, const Advisory& a, int64_t org) {
  if (!a.issued) return false;
  if (a.state == "published" && a.issued->tlp == "WHITE") return true;  // public
  if (org == 0) return false;
  auto it = s.audience.find(a.id);
  return it != s.audience.end() && it->second.count(org) > 0;
}

// The advisories `org` may see under `label` (lower case), newest change first.
std::vector<const Advisory*> VisibleUnder(const ProviderSnapshot& s, const std::string& label, int64_t org) {
  std::vector<const Advisory*> out;
  for (const auto& a : s.advisories)
    if (Visible(s, a, org) && Lower(a.issued->tlp) == label) out.push_back(&a);
  std::sort(out.begin(), out.end(), [](const Advisory* x, const Advisory* y) {
    return x->issued->at != y->issued->at ? x->issued->at > y->issued->at : x->id < y->id;
  });
  return out;
}

HttpResponse Ok(std::string type, std::string body, bool is_public) {
  HttpResponse r;
  r.status = 200;
  r.headers = {{"Content-Type", std::move(type)}};
  // Responses that depend on who asks must never be shared by a cache.
  r.headers.emplace_back("Cache-Control", is_public ? "public, max-age=60" : "private, no-store");
  if (!is_public) r.headers.emplace_back("Vary", "Authorization");
  r.body = std::move(body);
  return r;
}

HttpResponse NotFoundResponse() {
  HttpResponse r;
  r.status = 404;
  r.headers = {{"Content-Type", "text/plain; charset=utf-8"}, {"Cache-Control", "private, no-store"}, {"Vary", "Authorization"}};
  r.body = "not found\n";
  return r;
}

std::string Dump(const ordered_json& j) { return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"; }

std::string FeedUrl(const Publisher& p, const std::string& label) { return p.base_url + "/.well-known/csaf/feed-tlp-" + label + ".json"; }

std::string ProviderMetadata(const Publisher& p, const ProviderSnapshot& s, int64_t now) {
  ordered_json feeds = ordered_json::array();
  for (const char* l : kLabels) {
    std::string upper = Lower(l);
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    feeds.push_back({{"summary", "CSAF advisories with TLP:" + upper}, {"tlp_label", upper}, {"url", FeedUrl(p, l)}});
  }
  int64_t updated = 0;
  for (const auto& a : s.advisories)
    if (a.issued && a.state == "published") updated = std::max(updated, a.issued->at);
  ordered_json m = {
      {"canonical_url", p.base_url + "/.well-known/csaf/provider-metadata.json"},
      {"distributions", {{{"directory_url", p.base_url + "/.well-known/csaf/white/"}, {"rolie", {{"feeds", feeds}}}}}},
      {"last_updated", D(updated ? updated : now)},
      {"list_on_CSAF_aggregators", true},
      {"metadata_version", "2.0"},
      {"mirror_on_CSAF_aggregators", true},
      {"public_openpgp_keys", ordered_json::array()},
      {"publisher", {{"category", "vendor"}, {"contact_details", p.contact}, {"name", p.name}, {"namespace", p.namespace_url}}},
      {"role", "csaf_trusted_provider"}};
  if (!s.fingerprint.empty())
    m["public_openpgp_keys"].push_back(
        {{"fingerprint", s.fingerprint}, {"url", p.base_url + "/.well-known/csaf/openpgp/" + s.fingerprint + ".asc"}});
  return Dump(m);
}

ordered_json FeedEntry(const Publisher& p, const Advisory& a) {
  std::string url = DocumentUrl(p, a.issued->tlp, a.Year(), a.FileName());
  return {{"id", a.id},
          {"title", a.title},
          {"link", {{{"rel", "self"}, {"href", url}},
                    {{"rel", "hash"}, {"href", url + ".sha256"}},
                    {{"rel", "hash"}, {"href", url + ".sha512"}},
                    {{"rel", "signature"}, {"href", url + ".asc"}}}},
          {"published", D(a.revisions.front().date)},
          {"updated", D(a.revisions.back().date)},
          {"summary", {{"content", a.summary}}},
          {"content", {{"type", "application/json"}, {"src", url}}},
          {"format", {{"schema", "https://docs.oasis-open.org/csaf/csaf/v2.0/csaf_json_schema.json"}, {"version", "2.0"}}}};
}

std::string Feed(const Publisher& p, const std::vector<const Advisory*>& list, const std::string& label, int64_t now,
                 const std::string& id, const std::string& title, const std::string& self) {
  ordered_json entries = ordered_json::array();
  int64_t updated = 0;
  for (const auto* a : list) {
    entries.push_back(FeedEntry(p, *a));
    updated = std::max(updated, a->revisions.back().date);
  }
  ordered_json f = {{"feed", {{"id", id},
                              {"title", title},
                              {"link", {{{"rel", "self"}, {"href", self}}}},
                              {"category", {{{"scheme", "urn:ietf:params:rolie:category:information-type"}, {"term", "csaf"}}}},
                              {"updated", D(updated ? updated : now)},
                              {"entry", entries}}}};
  (void)label;
  return Dump(f);
}

std::string Listing(const std::string& path, const std::vector<std::string>& names) {
  std::string b = "<!doctype html><html><head><meta charset=\"utf-8\"><title>Index of " + path + "</title></head><body><h1>Index of " +
                  path + "</h1><ul>\n";
  for (const auto& n : names) b += "<li><a href=\"" + n + "\">" + n + "</a></li>\n";  // names are [a-z0-9.-/] only
  return b + "</ul></body></html>\n";
}

bool SafePath(std::string_view p) {
  if (p.find("..") != std::string_view::npos || p.find("//") != std::string_view::npos) return false;
  for (unsigned char c : p)
    if (!(std::isalnum(c) || c == '/' || c == '.' || c == '-' || c == '_')) return false;
  return true;
}

}  // namespace

std::optional<HttpResponse> HandleProvider(const Publisher& p, const ProviderSnapshot& s, std::string_view method,
                                           std::string_view target, int64_t org, int64_t now) {
  std::string_view path = target.substr(0, target.find('?'));
  bool is_csaf = path.substr(0, kCsaf.size()) == kCsaf || path == "/.well-known/csaf";
  if (!is_csaf && path != "/.well-known/security.txt") return std::nullopt;
  if (method != "GET" && method != "HEAD") {
    HttpResponse r;
    r.status = 405;
    r.headers = {{"Allow", "GET, HEAD"}, {"Content-Type", "text/plain; charset=utf-8"}};
    r.body = "only GET and HEAD\n";
    return r;
  }
  if (!SafePath(path)) return NotFoundResponse();
  if (path == "/.well-known/security.txt") {
    std::string body = "Contact: " + p.contact + "\nExpires: " + FormatRfc3339(now / 1'000'000 + 365 * 86400) +
                       "\nCSAF: " + p.base_url + "/.well-known/csaf/provider-metadata.json\n";
    return Ok("text/plain; charset=utf-8", body, true);
  }
  if (path == "/.well-known/csaf") return NotFoundResponse();  // no redirects (req. 6): the listing is at .../csaf/
  std::string rest(path.substr(kCsaf.size()));
  if (rest.empty()) {
    std::vector<std::string> names = {"provider-metadata.json", "service.json", "openpgp/"};
    for (const char* l : kLabels) {
      names.push_back(std::string("feed-tlp-") + l + ".json");
      if (std::string(l) == "white" || !VisibleUnder(s, l, org).empty()) names.push_back(std::string(l) + "/");
    }
    return Ok("text/html; charset=utf-8", Listing("/.well-known/csaf/", names), false);
  }
  if (rest == "provider-metadata.json") return Ok("application/json", ProviderMetadata(p, s, now), true);
  if (rest == "openpgp/") {
    if (s.fingerprint.empty()) return NotFoundResponse();
    return Ok("text/html; charset=utf-8", Listing("/.well-known/csaf/openpgp/", {s.fingerprint + ".asc"}), true);
  }
  if (rest.rfind("openpgp/", 0) == 0) {
    if (s.fingerprint.empty() || rest != "openpgp/" + s.fingerprint + ".asc") return NotFoundResponse();
    return Ok("application/pgp-keys", s.public_key_armored, true);
  }
  if (rest == "service.json") {
    ordered_json ws = ordered_json::array();
    ordered_json coll = ordered_json::array();
    for (const char* l : kLabels) {
      std::string upper = l;
      for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      coll.push_back({{"title", "CSAF advisories (TLP:" + upper + ")"},
                      {"href", FeedUrl(p, l)},
                      {"categories", {{"category", {{{"scheme", "urn:ietf:params:rolie:category:information-type"}, {"term", "csaf"}}}}}}});
    }
    ws.push_back({{"title", p.name + " CSAF advisories"}, {"collection", coll}});
    return Ok("application/json", Dump({{"service", {{"workspace", ws}}}}), true);
  }
  for (const char* l : kLabels) {
    std::string label = l;
    if (rest == "feed-tlp-" + label + ".json") {
      bool is_public = label == "white";
      return Ok("application/json",
                Feed(p, VisibleUnder(s, label, org), label, now, "patchgate-csaf-feed-tlp-" + label,
                     p.name + " CSAF feed (TLP:" + Lower(label) + ")", FeedUrl(p, label)),
                is_public && org == 0);
    }
  }
  if (rest.rfind("category-", 0) == 0 && rest.size() > 14 && rest.substr(rest.size() - 5) == ".json") {
    // A ROLIE category document per product with a visible advisory.
    std::string product = rest.substr(9, rest.size() - 14);
    bool any = false;
    for (const auto& a : s.advisories) any |= Visible(s, a, org) && Lower(a.product) == product;
    if (!any) return NotFoundResponse();
    ordered_json c = {{"categories", {{"category", {{{"scheme", "urn:ietf:params:rolie:category:product"}, {"term", product}}}}}}};
    return Ok("application/json", Dump(c), org == 0);
  }
  // <label>/..., per TLP label
  auto slash = rest.find('/');
  if (slash == std::string::npos) return NotFoundResponse();
  std::string label = rest.substr(0, slash), sub = rest.substr(slash + 1);
  if (std::find(std::begin(kLabels), std::end(kLabels), label) == std::end(kLabels)) return NotFoundResponse();
  auto list = VisibleUnder(s, label, org);
  bool is_public = org == 0;
  if (sub.empty()) {
    if (label != "white" && list.empty()) return NotFoundResponse();
    std::set<std::string> years;
    for (const auto* a : list) years.insert(a->Year() + "/");
    std::vector<std::string> names = {"index.txt", "changes.csv"};
    names.insert(names.end(), years.begin(), years.end());
    return Ok("text/html; charset=utf-8", Listing("/.well-known/csaf/" + label + "/", names), is_public);
  }
  if (sub == "index.txt" || sub == "changes.csv") {
    if (label != "white" && list.empty()) return NotFoundResponse();
    std::string body;
    if (sub == "index.txt") {
      std::vector<std::string> names;
      for (const auto* a : list) names.push_back(a->Year() + "/" + a->FileName());
      std::sort(names.begin(), names.end());
      for (const auto& n : names) body += n + "\n";
      return Ok("text/plain; charset=utf-8", body, is_public);
    }
    for (const auto* a : list) body += "\"" + a->Year() + "/" + a->FileName() + "\",\"" + D(a->revisions.back().date) + "\"\n";
    return Ok("text/csv; charset=utf-8", body, is_public);
  }
  auto ys = sub.find('/');
  if (ys == std::string::npos) return NotFoundResponse();
  std::string year = sub.substr(0, ys), file = sub.substr(ys + 1);
  std::vector<const Advisory*> in_year;
  for (const auto* a : list)
    if (a->Year() == year) in_year.push_back(a);
  if (in_year.empty()) return NotFoundResponse();
  if (file.empty()) {
    std::vector<std::string> names;
    for (const auto* a : in_year)
      for (const char* ext : {"", ".sha256", ".sha512", ".asc"}) names.push_back(a->FileName() + ext);
    std::sort(names.begin(), names.end());
    return Ok("text/html; charset=utf-8", Listing("/.well-known/csaf/" + label + "/" + year + "/", names), is_public);
  }
  for (const auto* a : in_year) {
    const std::string name = a->FileName();
    if (file == name) return Ok("application/json", a->issued->json, is_public);
    if (file == name + ".sha256") return Ok("text/plain; charset=utf-8", a->issued->sha256 + "  " + name + "\n", is_public);
    if (file == name + ".sha512") return Ok("text/plain; charset=utf-8", a->issued->sha512 + "  " + name + "\n", is_public);
    if (file == name + ".asc") return Ok("application/pgp-signature", a->issued->asc, is_public);
  }
  return NotFoundResponse();
}

Provider::Provider(Store* store, Publisher p, std::string gnupg_home, const Clock* clock, int cache_ms)
    : store_(store), p_(std::move(p)), home_(std::move(gnupg_home)), clock_(clock), cache_ms_(cache_ms) {}

Result<std::shared_ptr<const ProviderSnapshot>> Provider::Snapshot() {
  std::lock_guard<std::mutex> l(mu_);
  int64_t now = clock_->NowMicros();
  if (snap_ && now - loaded_at_ < int64_t{cache_ms_} * 1000 && now >= loaded_at_) return snap_;
  auto s = std::make_shared<ProviderSnapshot>();
  PG_ASSIGN_OR_RETURN(std::vector<AdvisoryRow> rows, store_->ListAdvisories());
  for (const auto& r : rows) {
    auto a = FromRow(r);
    if (!a.ok()) {
      log::Warn("advisory unreadable; not served", {{"id", r.id}, {"error", a.status().ToString()}});
      continue;
    }
    if (!a->issued) continue;
    if (a->state != "published" && a->schedule) {
      auto aud = ParseAudience(a->schedule->audience);
      if (aud.ok()) {
        PG_ASSIGN_OR_RETURN(std::vector<Organisation> orgs, ResolveAudience(*store_, *aud));
        auto& ids = s->audience[a->id];
        for (const auto& o : orgs) ids.insert(o.id);
      }
    }
    s->advisories.push_back(std::move(*a));
  }
  if (!home_.empty()) {
    auto key = LoadSigningKey(home_);
    if (key.ok()) {
      s->fingerprint = key->fingerprint;
      s->public_key_armored = key->public_armored;
    }
  }
  snap_ = s;
  loaded_at_ = now;
  return snap_;
}

std::optional<HttpResponse> Provider::Handle(std::string_view method, std::string_view target, int64_t org_id) {
  std::string_view path = target.substr(0, target.find('?'));
  if (path.substr(0, kCsaf.size()) != kCsaf && path != "/.well-known/csaf" && path != "/.well-known/security.txt")
    return std::nullopt;
  auto snap = Snapshot();
  if (!snap.ok()) {
    HttpResponse r;
    r.status = 503;
    r.headers = {{"Content-Type", "text/plain; charset=utf-8"}, {"Cache-Control", "no-store"}};
    r.body = "the advisory store is unavailable; try again later\n";
    return r;
  }
  return HandleProvider(p_, **snap, method, target, org_id, clock_->NowMicros());
}

}  // namespace patchgate::advisory
