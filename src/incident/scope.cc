#include "incident/scope.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "core/clock.h"
#include "core/csv.h"
#include "core/json_output.h"
#include "core/text.h"

namespace patchgate::incident {

std::string Scope::Totals() const {
  std::string t = std::to_string(downloads) + " downloads of " + std::to_string(files) + " files by " +
                  std::to_string(users) + " users in " + std::to_string(orgs.size()) + " organisations";
  if (unfinished)
    t += " (" + std::to_string(unfinished) +
         " never recorded as finished: the node stopped mid-transfer; count it as received)";
  return t;
}

Result<ScopeQuery> QueryForIncident(Store& store, int64_t id) {
  PG_ASSIGN_OR_RETURN(Incident inc, store.GetIncident(id));
  ScopeQuery q;
  q.node = inc.node;
  q.from = inc.window_start;
  q.to = inc.window_end;
  q.targets = inc.targets;
  q.incident_id = inc.id;
  q.cause = inc.cause;
  return q;
}

Result<Scope> ComputeScope(Store& store, const ScopeQuery& q) {
  if (q.node.empty()) return InvalidArgument("name the node (--node)");
  if (q.to < q.from) return InvalidArgument("the window ends before it starts");
  DownloadQuery dq;
  dq.node = q.node;
  dq.since = q.from;
  dq.until = q.to;
  dq.targets = q.targets;
  dq.successful_only = true;
  PG_ASSIGN_OR_RETURN(std::vector<Download> rows, store.QueryDownloads(dq));
  PG_ASSIGN_OR_RETURN(std::vector<Organisation> orgs, store.ListOrganisations());
  std::map<std::string, const Organisation*> by_name;
  for (const auto& o : orgs) by_name[o.name] = &o;

  Scope s;
  s.query = q;
  std::map<std::string, OrgScope> grouped;
  std::set<std::string> files, users;
  for (auto& d : rows) {
    std::string org = d.org_name.empty() ? "(unknown user)" : d.org_name;
    OrgScope& g = grouped[org];
    if (g.name.empty()) {
      g.name = org;
      if (auto it = by_name.find(org); it != by_name.end()) {
        g.tier = it->second->tier;
        g.account_manager = it->second->account_manager_name;
        g.account_manager_email = it->second->account_manager_email;
        g.phone = it->second->account_manager_phone;
        g.contacts = it->second->security_contacts;
        g.org_id = it->second->id;
        g.webhook_url = it->second->webhook_url;
      }
    }
    files.insert(d.target_path);
    users.insert(org + "\n" + d.username);
    s.unfinished += d.outcome == DownloadOutcome::kInProgress;
    g.downloads.push_back(std::move(d));
  }
  for (auto& [name, g] : grouped) {
    std::stable_sort(g.downloads.begin(), g.downloads.end(), [](const Download& a, const Download& b) {
      return std::tie(a.username, a.target_path, a.started_at) < std::tie(b.username, b.target_path, b.started_at);
    });
    std::set<std::string> gu, gf;
    for (const auto& d : g.downloads) {
      gu.insert(d.username);
      gf.insert(d.target_path);
    }
    g.users = gu.size();
    g.files = gf.size();
    s.downloads += g.downloads.size();
    s.orgs.push_back(std::move(g));
  }
  s.files = files.size();
  s.users = users.size();
  return s;
}

namespace {

std::string T(int64_t us) { return FormatRfc3339(us / 1'000'000); }

// Text from the store as a terminal may print it (no escape sequences).
std::string Tm(const std::string& s) { return EscapeForTerminal(s); }

std::string Html(const std::string& raw) {
  std::string s = EscapeInvalidUtf8(raw), o;  // the report declares UTF-8: make it so
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o += c;
    }
  }
  return o;
}

}  // namespace

std::string RenderTable(const Scope& s) {
  std::string out = "Incident scope: node " + Tm(s.query.node) + ", " + T(s.query.from) + " to " + T(s.query.to) + "\n";
  char buf[512];
  for (const auto& g : s.orgs) {
    std::snprintf(buf, sizeof buf, "\n%s [%s] account manager: %s %s %s\n", Tm(g.name).c_str(), Tm(g.tier).c_str(),
                  Tm(g.account_manager).c_str(),
                  g.account_manager_email.empty() ? "" : ("<" + Tm(g.account_manager_email) + ">").c_str(),
                  Tm(g.phone).c_str());
    out += buf;
    std::string user;
    for (const auto& d : g.downloads) {
      if (d.username != user) {
        user = d.username;
        out += "  " + Tm(user) + "\n";
      }
      std::snprintf(buf, sizeof buf, "    %-20s  %-40s  %s  %s%s\n", T(d.started_at).c_str(), Tm(d.target_path).c_str(),
                    Tm(d.sha256).c_str(), Tm(d.source).c_str(),
                    d.outcome == DownloadOutcome::kInProgress ? "  unfinished" : "");
      out += buf;
    }
  }
  out += "\n" + s.Totals() + "\n";
  return out;
}

std::string RenderCsv(const Scope& s) {
  std::string out;
  CsvWriter w(&out);
  w.Row({"organisation", "tier", "account_manager", "account_manager_email", "user", "file", "time", "sha256", "node",
         "bytes", "source", "outcome"});
  for (const auto& g : s.orgs)
    for (const auto& d : g.downloads) {
      w.Text(g.name).Text(g.tier).Text(g.account_manager).Text(g.account_manager_email).Text(d.username);
      w.Text(d.target_path).Text(T(d.started_at)).Text(d.sha256).Text(d.node).Number(uint64_t{d.bytes_sent});
      w.Text(d.source).Text(DownloadOutcomeName(d.outcome)).EndRow();
    }
  return out;
}

std::string RenderJson(const Scope& s) {
  nlohmann::ordered_json j;
  j["node"] = s.query.node;
  j["from"] = T(s.query.from);
  j["to"] = T(s.query.to);
  if (s.query.incident_id) j["incident"] = s.query.incident_id;
  j["targets"] = s.query.targets;
  j["totals"] = {{"downloads", s.downloads}, {"files", s.files},           {"users", s.users},
                 {"organisations", s.orgs.size()}, {"unfinished", s.unfinished}, {"text", s.Totals()}};
  j["organisations"] = nlohmann::ordered_json::array();
  for (const auto& g : s.orgs) {
    nlohmann::ordered_json o = {{"name", g.name}, {"tier", g.tier}, {"account_manager", g.account_manager},
                                {"account_manager_email", g.account_manager_email}, {"phone", g.phone},
                                {"security_contacts", g.contacts}, {"downloads", nlohmann::ordered_json::array()}};
    for (const auto& d : g.downloads)
      o["downloads"].push_back({{"user", d.username}, {"file", d.target_path}, {"time", T(d.started_at)},
                                {"sha256", d.sha256}, {"node", d.node}, {"bytes", d.bytes_sent}, {"source", d.source},
                                {"outcome", DownloadOutcomeName(d.outcome)},
                                {"unknown_user", d.unknown_user}, {"unknown_target", d.unknown_target}});
    j["organisations"].push_back(std::move(o));
  }
  return JsonText(j) + "\n";
}

std::string RenderHtml(const Scope& s) {
  std::string rows;
  // Timeline: one dot per download on the window's axis, one lane per organisation.
  double span = std::max<double>(1, static_cast<double>(s.query.to - s.query.from));
  int lanes = static_cast<int>(s.orgs.size());
  int height = 40 + 14 * std::max(1, lanes);
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"960\" height=\"" + std::to_string(height) +
                    "\" role=\"img\" aria-label=\"timeline\"><rect x=\"150\" y=\"10\" width=\"800\" height=\"" +
                    std::to_string(height - 30) + "\" fill=\"#f6f6f6\" stroke=\"#ccc\"/>";
  int lane = 0;
  for (const auto& g : s.orgs) {
    int y = 22 + 14 * lane;
    svg += "<text x=\"145\" y=\"" + std::to_string(y + 4) + "\" font-size=\"10\" text-anchor=\"end\">" + Html(g.name) + "</text>";
    for (const auto& d : g.downloads) {
      double x = 150 + 800 * std::clamp(static_cast<double>(d.started_at - s.query.from) / span, 0.0, 1.0);
      char buf[160];
      std::snprintf(buf, sizeof buf, "<circle cx=\"%.1f\" cy=\"%d\" r=\"3\" fill=\"#c0392b\"><title>", x, y);
      svg += buf + Html(d.username + " " + d.target_path + " " + T(d.started_at)) + "</title></circle>";
      rows += "<tr><td>" + Html(g.name) + "</td><td>" + Html(g.tier) + "</td><td>" + Html(g.account_manager) +
              "</td><td>" + Html(d.username) + "</td><td>" + Html(d.target_path) + "</td><td>" + T(d.started_at) +
              "</td><td class=\"h\">" + Html(d.sha256) + "</td><td>" + Html(d.node) + "</td></tr>\n";
    }
    ++lane;
  }
  svg += "<text x=\"150\" y=\"" + std::to_string(height - 5) + "\" font-size=\"10\">" + T(s.query.from) +
         "</text><text x=\"950\" y=\"" + std::to_string(height - 5) + "\" font-size=\"10\" text-anchor=\"end\">" +
         T(s.query.to) + "</text></svg>";
  std::string title = s.query.incident_id ? "Incident " + std::to_string(s.query.incident_id) : "Incident scope";
  return "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + Html(title) +
         "</title>\n<style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
         "td,th{border:1px solid #ddd;padding:3px 6px}th{cursor:pointer;background:#eee}td.h{font-family:monospace;"
         "font-size:11px}</style></head><body>\n<h1>" + Html(title) + "</h1>\n<p>Node <b>" + Html(s.query.node) +
         "</b>, window " + T(s.query.from) + " – " + T(s.query.to) + (s.query.cause.empty() ? "" : "; cause: " + Html(s.query.cause)) +
         "</p>\n<p id=\"totals\"><b>" + Html(s.Totals()) + "</b></p>\n" + svg +
         "\n<table id=\"scope\"><thead><tr><th>Organisation</th><th>Tier</th><th>Account manager</th><th>User</th>"
         "<th>File</th><th>Time (UTC)</th><th>SHA-256 served</th><th>Node</th></tr></thead><tbody>\n" + rows +
         "</tbody></table>\n<script>\n"
         "document.querySelectorAll('#scope th').forEach(function(th, col) {\n"
         "  th.addEventListener('click', function() {\n"
         "    var body = document.querySelector('#scope tbody');\n"
         "    var rows = Array.prototype.slice.call(body.rows);\n"
         "    var dir = th.dataset.dir === 'asc' ? -1 : 1; th.dataset.dir = dir === 1 ? 'asc' : 'desc';\n"
         "    rows.sort(function(a, b) { return dir * a.cells[col].textContent.localeCompare(b.cells[col].textContent); });\n"
         "    rows.forEach(function(r) { body.appendChild(r); });\n"
         "  });\n"
         "});\n</script>\n</body></html>\n";
}

}  // namespace patchgate::incident
