#include "incident/scope.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
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
  if (refusals)
    t += "; " + std::to_string(refusals) + " refusals (nothing served) to " + std::to_string(refused.size()) +
         " organisations";
  return t;
}

Result<ScopeQuery> QueryForIncident(IncidentRegister& store, int64_t id) {
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

Result<Scope> ComputeScope(DownloadTrail& trail, AuthDirectory& directory, const ScopeQuery& q) {
  if (q.node.empty()) return InvalidArgument("name the node (--node)");
  if (q.to < q.from) return InvalidArgument("the window ends before it starts");
  DownloadQuery dq;
  dq.node = q.node;
  dq.since = q.from;
  dq.until = q.to;
  dq.targets = q.targets;
  dq.successful_only = true;
  dq.scope_columns = true;  // what the scope reports, straight from the scope index
  PG_ASSIGN_OR_RETURN(std::vector<Download> rows, trail.QueryDownloads(dq));
  Scope s;
  s.query = q;
  if (rows.empty()) return s;
  PG_ASSIGN_OR_RETURN(std::vector<Organisation> orgs, directory.ListOrganisations());
  std::unordered_map<int64_t, const Organisation*> by_id;
  by_id.reserve(orgs.size());
  for (const auto& o : orgs) by_id.emplace(o.id, &o);

  // Grouping costs a few hundred instructions per row: organisations and users are ranked
  // once (a few hundred distinct names), files are interned to ids in first-seen order,
  // and one sort of small fixed-size keys orders the rows by (organisation, user, time);
  // files are compared as text only inside one user's rows.
  static constexpr std::string_view kUnknown = "(unknown user)";
  std::vector<const Organisation*> org_of(rows.size(), nullptr);
  std::unordered_map<std::string_view, uint32_t> user_ids;
  std::vector<std::string_view> user_names;
  std::vector<uint32_t> user_of(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    Download& d = rows[i];
    if (auto it = by_id.find(d.org_id); d.org_id && it != by_id.end()) org_of[i] = it->second;
    auto [it, added] = user_ids.try_emplace(d.username, static_cast<uint32_t>(user_names.size()));
    if (added) user_names.push_back(d.username);
    user_of[i] = it->second;
  }
  auto org_name = [&](size_t i) { return org_of[i] ? std::string_view(org_of[i]->name) : kUnknown; };
  // Ranks: organisations by name, users by name.
  std::vector<uint32_t> user_rank(user_names.size());
  {
    std::vector<uint32_t> by(user_names.size());
    for (uint32_t k = 0; k < by.size(); ++k) by[k] = k;
    std::sort(by.begin(), by.end(), [&](uint32_t a, uint32_t b) { return user_names[a] < user_names[b]; });
    for (uint32_t k = 0; k < by.size(); ++k) user_rank[by[k]] = k;
  }
  std::vector<std::string_view> org_names;
  {
    std::unordered_set<std::string_view> seen;
    for (size_t i = 0; i < rows.size(); ++i)
      if (seen.insert(org_name(i)).second) org_names.push_back(org_name(i));
    std::sort(org_names.begin(), org_names.end());
  }
  std::unordered_map<std::string_view, uint32_t> org_rank;
  for (uint32_t k = 0; k < org_names.size(); ++k) org_rank.emplace(org_names[k], k);
  struct Key {
    uint32_t org, user;
    uint32_t row;
    int64_t started_at, id;
  };
  std::vector<Key> keys(rows.size());
  for (uint32_t i = 0; i < keys.size(); ++i)
    keys[i] = {org_rank[org_name(i)], user_rank[user_of[i]], i, rows[i].started_at, rows[i].id};
  std::sort(keys.begin(), keys.end(), [&](const Key& a, const Key& b) {
    if (a.org != b.org) return a.org < b.org;
    if (a.user != b.user) return a.user < b.user;
    return std::tie(a.started_at, a.id) < std::tie(b.started_at, b.id);
  });
  // Within one user: by file, then time (a stable sort keeps the time order).
  for (size_t i = 0; i < keys.size();) {
    size_t j = i + 1;
    while (j < keys.size() && keys[j].org == keys[i].org && keys[j].user == keys[i].user) ++j;
    if (j - i > 1)
      std::stable_sort(keys.begin() + static_cast<std::ptrdiff_t>(i), keys.begin() + static_cast<std::ptrdiff_t>(j),
                       [&](const Key& a, const Key& b) { return rows[a.row].target_path < rows[b.row].target_path; });
    i = j;
  }
  // Files interned to ids, one hash per row, before any row is moved into its group (a view
  // of a moved short string would see the moved-from object); each organisation counts its
  // distinct files by stamping their ids with its group number.
  std::vector<uint32_t> file_of(rows.size());
  {
    std::unordered_map<std::string_view, uint32_t> file_ids;
    file_ids.reserve(rows.size());
    for (size_t i = 0; i < rows.size(); ++i)
      file_of[i] = file_ids.try_emplace(rows[i].target_path, static_cast<uint32_t>(file_ids.size())).first->second;
    s.files = file_ids.size();
  }
  std::vector<uint32_t> counted_by(s.files, UINT32_MAX);  // file id -> the last group that counted it
  for (size_t i = 0; i < keys.size();) {
    const size_t first = keys[i].row;
    OrgScope g;
    g.name = std::string(org_name(first));
    if (const Organisation* o = org_of[first]) {
      g.tier = o->tier;
      g.account_manager = o->account_manager_name;
      g.account_manager_email = o->account_manager_email;
      g.phone = o->account_manager_phone;
      g.contacts = o->security_contacts;
      g.org_id = o->id;
      g.webhook_url = o->webhook_url;
    }
    const auto group = static_cast<uint32_t>(s.orgs.size());
    size_t j = i;
    for (; j < keys.size() && keys[j].org == keys[i].org; ++j) {
      const Download& d = rows[keys[j].row];
      if (j == i || keys[j].user != keys[j - 1].user) ++g.users;
      if (uint32_t& by = counted_by[file_of[keys[j].row]]; by != group) {
        by = group;
        ++g.files;
      }
      s.unfinished += d.outcome == DownloadOutcome::kInProgress;
    }
    g.downloads.reserve(j - i);
    for (size_t k = i; k < j; ++k) {
      Download& d = rows[keys[k].row];
      if (const Organisation* o = org_of[keys[k].row]) {
        d.org_name = o->name;
        d.org_tier = o->tier;
      }
      g.downloads.push_back(std::move(d));
    }
    s.users += g.users;
    s.downloads += g.downloads.size();
    s.orgs.push_back(std::move(g));
    i = j;
  }
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

// True when every byte of `s` is printable ASCII (0x20-0x7e). Eight bytes at a time: a
// word has a byte below 0x20 when subtracting 0x20 from each byte borrows into a byte whose
// top bit was clear, and a byte of 0x7f or more when that byte, or it plus one, has its top
// bit set. Either test may also fire on a clean word (a carry or borrow between bytes):
// the caller then takes the exact, slower path, never the other way round. The byte-by-byte
// loop was a twentieth of a busy scope's CPU.
bool PrintableAscii(std::string_view s) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL, kTops = 0x8080808080808080ULL;
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    if (((w - kOnes * 0x20) & ~w & kTops) | ((w | (w + kOnes)) & kTops)) return false;
  }
  for (; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c >= 0x7f) return false;
  }
  return true;
}

// Text from the store as a terminal may print it (no escape sequences). Printable ASCII,
// the common case, is appended as it is, without a copy.
void AppendTm(std::string& out, std::string_view s) {
  if (PrintableAscii(s)) out += s;
  else out += EscapeForTerminal(s);
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

// Appends CsvCell(s) (core/csv.h): printable ASCII that needs neither quoting nor the
// formula guard, the common case, is appended as it is (CsvCell would return it
// unchanged), without building a string per cell; anything else goes through CsvCell.
void AppendCsv(std::string& out, std::string_view s) {
  bool plain = s.empty() || (s[0] != '=' && s[0] != '+' && s[0] != '-' && s[0] != '@');
  for (size_t i = 0; plain && i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    plain = c >= 0x20 && c < 0x7f && c != ',' && c != ';' && c != '"';
  }
  if (plain) out += s;
  else out += CsvCell(s);
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
  if (!s.refused.empty()) out += "\nRefused (nothing was served):\n";
  for (const auto& g : s.refused) {
    out += "  " + Tm(g.name) + " [" + Tm(g.tier) + "] account manager: " + Tm(g.account_manager) + "\n";
    for (const auto& r : g.refusals)
      out += "    " + Tm(r.username) + "  " + Tm(r.target) + "  " + T(r.at) + "  refused: " + Tm(r.reason) +
             (r.repeats > 1 ? " (" + std::to_string(r.repeats) + " times)" : "") + "\n";
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
  std::string time;  // one buffer for every row's time
  for (const auto& g : s.orgs) {
    const std::string prefix = CsvCell(g.name) + "," + CsvCell(g.tier) + "," + CsvCell(g.account_manager) + "," +
                               CsvCell(g.account_manager_email) + ",";
    for (const auto& d : g.downloads) {
      out += prefix;
      AppendCsv(out, d.username);
      out += ',';
      AppendCsv(out, d.target_path);
      out += ',';
      time.clear();
      AppendTime(time, d.started_at);
      AppendCsv(out, time);
      out += ',';
      AppendCsv(out, d.sha256);
      out += ',';
      AppendCsv(out, d.node);
      out += ',';
      out += std::to_string(d.bytes_sent);
      out += ',';
      AppendCsv(out, d.source);
      out += ',';
      AppendCsv(out, DownloadOutcomeName(d.outcome));
      out += ',';
      AppendCsv(out, d.detail);
      out += '\n';
    }
  }
  // Refusals: outcome "refused", nothing served (no hash, 0 bytes), the reason as detail.
  for (const auto& g : s.refused) {
    for (const auto& r : g.refusals) {
      std::string detail = r.reason + (r.repeats > 1 ? " (" + std::to_string(r.repeats) + " times)" : "");
      CsvWriter(&out).Row({g.name, g.tier, g.account_manager, g.account_manager_email, r.username, r.target, T(r.at),
                           "", r.node, "0", "refusal", "refused", detail});
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
  // What each organisation received instead of bytes: refusals (nothing served).
  j["totals"]["refusals"] = s.refusals;
  j["refusals"] = nlohmann::ordered_json::array();
  for (const auto& g : s.refused) {
    nlohmann::ordered_json o = {{"name", g.name}, {"tier", g.tier}, {"account_manager", g.account_manager},
                                {"account_manager_email", g.account_manager_email},
                                {"refusals", nlohmann::ordered_json::array()}};
    for (const auto& r : g.refusals)
      o["refusals"].push_back({{"user", r.username}, {"file", r.target}, {"time", T(r.at)}, {"time_us", r.at},
                               {"node", r.node}, {"reason", r.reason}, {"repeats", r.repeats}});
    j["refusals"].push_back(std::move(o));
  }
  return JsonText(j) + "\n";
}

namespace {

std::string RefusalsHtml(const Scope& s) {
  if (s.refused.empty()) return "";
  std::string rows;
  for (const auto& g : s.refused)
    for (const auto& r : g.refusals)
      rows += "<tr><td>" + Html(g.name) + "</td><td>" + Html(g.tier) + "</td><td>" + Html(g.account_manager) +
              "</td><td>" + Html(r.username) + "</td><td>" + Html(r.target) + "</td><td>" + T(r.at) + "</td><td>" +
              Html(r.reason) + "</td><td>" + std::to_string(r.repeats) + "</td></tr>\n";
  return "<h2>Refused (nothing was served)</h2>\n<table id=\"refusals\"><thead><tr><th>Organisation</th><th>Tier</th>"
         "<th>Account manager</th><th>User</th><th>File</th><th>Time (UTC)</th><th>Reason</th><th>Times</th></tr>"
         "</thead><tbody>\n" + rows + "</tbody></table>\n";
}

}  // namespace

Status AttachRefusals(AuthDirectory& store, NodeRegistry& registry, Scope* s) {
  PG_ASSIGN_OR_RETURN(std::vector<RefusalRecord> rows, registry.ListRefusals(s->query.node, s->query.from, s->query.to));
  std::set<std::string> only(s->query.targets.begin(), s->query.targets.end());
  std::map<std::string, OrgRefusals> by_org;
  for (auto& r : rows) {
    if (!only.empty() && !only.count(r.target)) continue;
    s->refusals += static_cast<size_t>(std::max<int64_t>(1, r.repeats));
    OrgRefusals& g = by_org[r.organisation];
    if (g.name.empty()) {
      g.name = r.organisation;
      auto org = store.GetOrganisation(r.organisation);
      if (org.ok()) {
        g.tier = org->tier;
        g.account_manager = org->account_manager_name;
        g.account_manager_email = org->account_manager_email;
      }
    }
    g.refusals.push_back(std::move(r));
  }
  s->refused.clear();
  for (auto& [_, g] : by_org) s->refused.push_back(std::move(g));
  return Status::OK();
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
         "</tbody></table>\n" + RefusalsHtml(s) + "<script>\n"
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
