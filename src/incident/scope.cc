#include "incident/scope.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>
#include <unordered_set>

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
  dq.scope_columns = true;  // what the scope reports, straight from the scope index
  PG_ASSIGN_OR_RETURN(std::vector<Download> rows, store.QueryDownloads(dq));
  Scope s;
  s.query = q;
  if (rows.empty()) return s;
  PG_ASSIGN_OR_RETURN(std::vector<Organisation> orgs, store.ListOrganisations());
  std::unordered_map<std::string_view, const Organisation*> by_name;
  by_name.reserve(orgs.size());
  for (const auto& o : orgs) by_name.emplace(o.name, &o);

  // One sort of row indexes by (organisation, user, file, time, id), then one pass that
  // cuts it into organisations and counts users and files.
  static constexpr std::string_view kUnknown = "(unknown user)";
  auto org_of = [&](const Download& d) { return d.org_name.empty() ? kUnknown : std::string_view(d.org_name); };
  std::vector<uint32_t> order(rows.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](uint32_t x, uint32_t y) {
    const Download& a = rows[x];
    const Download& b = rows[y];
    if (int c = org_of(a).compare(org_of(b))) return c < 0;
    if (int c = a.username.compare(b.username)) return c < 0;
    if (int c = a.target_path.compare(b.target_path)) return c < 0;
    return std::tie(a.started_at, a.id) < std::tie(b.started_at, b.id);
  });
  std::unordered_set<std::string_view> all_files, org_files;
  all_files.reserve(rows.size());
  for (size_t i = 0; i < order.size();) {
    std::string_view org = org_of(rows[order[i]]);
    OrgScope g;
    g.name = std::string(org);
    if (auto it = by_name.find(org); it != by_name.end()) {
      const Organisation& o = *it->second;
      g.tier = o.tier;
      g.account_manager = o.account_manager_name;
      g.account_manager_email = o.account_manager_email;
      g.phone = o.account_manager_phone;
      g.contacts = o.security_contacts;
      g.org_id = o.id;
      g.webhook_url = o.webhook_url;
    }
    org_files.clear();
    size_t j = i;
    for (; j < order.size() && org_of(rows[order[j]]) == org; ++j) {
      const Download& d = rows[order[j]];
      if (j == i || d.username != rows[order[j - 1]].username) ++g.users;
      org_files.insert(d.target_path);
      all_files.insert(d.target_path);
      s.unfinished += d.outcome == DownloadOutcome::kInProgress;
    }
    g.files = org_files.size();
    g.downloads.reserve(j - i);
    for (size_t k = i; k < j; ++k) g.downloads.push_back(std::move(rows[order[k]]));
    s.users += g.users;
    s.downloads += g.downloads.size();
    s.orgs.push_back(std::move(g));
    i = j;
  }
  s.files = all_files.size();
  return s;
}

namespace {

// "YYYY-MM-DDTHH:MM:SSZ" for a time in microseconds, without gmtime/snprintf (the table
// and CSV print one per row). Days to civil date after H. Hinnant's public-domain method.
void AppendTime(std::string& out, int64_t us) {
  int64_t secs = us / 1'000'000;
  if (us % 1'000'000 < 0) --secs;
  int64_t days = secs / 86400, rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const int64_t doe = days - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t day = doy - (153 * mp + 2) / 5 + 1, month = mp < 10 ? mp + 3 : mp - 9;
  const int64_t year = yoe + era * 400 + (month <= 2);
  if (year < 0 || year > 9999) {
    out += FormatRfc3339(secs);
    return;
  }
  char b[20];
  auto two = [&](int pos, int64_t v) {
    b[pos] = static_cast<char>('0' + v / 10);
    b[pos + 1] = static_cast<char>('0' + v % 10);
  };
  two(0, year / 100);
  two(2, year % 100);
  b[4] = '-';
  two(5, month);
  b[7] = '-';
  two(8, day);
  b[10] = 'T';
  two(11, rem / 3600);
  b[13] = ':';
  two(14, rem / 60 % 60);
  b[16] = ':';
  two(17, rem % 60);
  out.append(b, 19);
  out += 'Z';
}

std::string T(int64_t us) {
  std::string s;
  AppendTime(s, us);
  return s;
}

// Text from the store as a terminal may print it (no escape sequences). Printable ASCII,
// the common case, is appended as it is, without a copy.
void AppendTm(std::string& out, std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c >= 0x7f) {
      out += EscapeForTerminal(s);
      return;
    }
  out += s;
}
std::string Tm(std::string_view s) {
  std::string out;
  AppendTm(out, s);
  return out;
}

// Appends `s` (terminal-safe) left-aligned in a column `width` bytes wide (longer text is
// not cut).
void Pad(std::string& out, std::string_view s, size_t width) {
  size_t at = out.size();
  AppendTm(out, s);
  if (out.size() - at < width) out.append(width - (out.size() - at), ' ');
}

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
  size_t rows = 0;
  for (const auto& g : s.orgs) rows += g.downloads.size();
  out.reserve(out.size() + rows * 160 + s.orgs.size() * 128 + 256);
  for (const auto& g : s.orgs) {
    out += "\n" + Tm(g.name) + " [" + Tm(g.tier) + "] account manager: " + Tm(g.account_manager) + " " +
           (g.account_manager_email.empty() ? "" : "<" + Tm(g.account_manager_email) + ">") + " " + Tm(g.phone) + "\n";
    const std::string* user = nullptr;
    for (const auto& d : g.downloads) {
      if (!user || d.username != *user) {
        user = &d.username;
        out += "  ";
        AppendTm(out, d.username);
        out += '\n';
      }
      out += "    ";
      Pad(out, T(d.started_at), 20);
      out += "  ";
      Pad(out, d.target_path, 40);
      out += "  ";
      AppendTm(out, d.sha256);
      out += "  ";
      AppendTm(out, d.source);
      if (d.outcome == DownloadOutcome::kInProgress) out += "  unfinished";
      if (!d.detail.empty()) {  // e.g. cut for integrity (migration 0005)
        out += "  aborted: ";
        AppendTm(out, d.detail);
      }
      out += '\n';
    }
  }
  out += "\n" + s.Totals() + "\n";
  return out;
}

std::string RenderCsv(const Scope& s) {
  // Every text cell goes through CsvCell (core/csv.h: quoted, neutralised against formula
  // injection, valid UTF-8). An organisation's four cells are the same on each of its rows,
  // so they are encoded once per organisation, not once per row.
  std::string out;
  CsvWriter(&out).Row({"organisation", "tier", "account_manager", "account_manager_email", "user", "file", "time",
                       "sha256", "node", "bytes", "source", "outcome", "detail"});
  size_t rows = 0;
  for (const auto& g : s.orgs) rows += g.downloads.size();
  out.reserve(out.size() + rows * 200);
  for (const auto& g : s.orgs) {
    const std::string prefix = CsvCell(g.name) + "," + CsvCell(g.tier) + "," + CsvCell(g.account_manager) + "," +
                               CsvCell(g.account_manager_email) + ",";
    for (const auto& d : g.downloads) {
      out += prefix;
      out += CsvCell(d.username);
      out += ',';
      out += CsvCell(d.target_path);
      out += ',';
      out += CsvCell(T(d.started_at));
      out += ',';
      out += CsvCell(d.sha256);
      out += ',';
      out += CsvCell(d.node);
      out += ',';
      out += std::to_string(d.bytes_sent);
      out += ',';
      out += CsvCell(d.source);
      out += ',';
      out += CsvCell(DownloadOutcomeName(d.outcome));
      out += ',';
      out += CsvCell(d.detail);
      out += '\n';
    }
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
                                {"outcome", DownloadOutcomeName(d.outcome)}, {"detail", d.detail},
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
              "</td><td class=\"h\">" + Html(d.sha256) + "</td><td>" + Html(d.node) + "</td><td>" +
              Html(d.detail) + "</td></tr>\n";
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
         "<th>File</th><th>Time (UTC)</th><th>SHA-256 served</th><th>Node</th><th>Detail</th></tr></thead><tbody>\n" + rows +
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
