#include "incident/scope.h"

#include <algorithm>
#include <charconv>
#include <chrono>
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

// The text store: blocks of 64 KiB filled one after the other (a text longer than a block
// gets a block of its own), so what it holds never moves.
class ScopeTexts {
 public:
  std::string_view Copy(std::string_view s) {
    if (s.empty()) return {};
    if (s.size() > left_) {
      const size_t size = std::max(s.size(), kBlock);
      blocks_.push_back(std::make_unique<char[]>(size));
      at_ = blocks_.back().get();
      left_ = size;
    }
    std::memcpy(at_, s.data(), s.size());
    std::string_view kept(at_, s.size());
    at_ += s.size();
    left_ -= s.size();
    return kept;
  }

 private:
  static constexpr size_t kBlock = size_t{64} << 10;
  std::vector<std::unique_ptr<char[]>> blocks_;
  char* at_ = nullptr;
  size_t left_ = 0;
};

ScopeDownload Scope::Keep(const Download& d) {
  if (!texts) texts = std::make_shared<ScopeTexts>();
  ScopeDownload k;
  k.id = d.id;
  k.started_at = d.started_at;
  k.bytes_sent = d.bytes_sent;
  k.outcome = d.outcome;
  k.unknown_user = d.unknown_user;
  k.unknown_target = d.unknown_target;
  k.node = texts->Copy(d.node);
  k.username = texts->Copy(d.username);
  k.org_name = texts->Copy(d.org_name);
  k.org_tier = texts->Copy(d.org_tier);
  k.target_path = texts->Copy(d.target_path);
  k.sha256 = texts->Copy(d.sha256);
  k.source = texts->Copy(d.source);
  k.detail = texts->Copy(d.detail);
  return k;
}

namespace {

// Texts of one column interned to dense ids (0, 1, 2, ... in first-seen order), each kept
// once in the scope's text store: a window's rows repeat their node, users, hashes and
// source over and over. A row's text is first compared with the previous row's (the same
// user or hash downloading again), then looked up in an open-addressing table of ids.
class Interner {
 public:
  explicit Interner(ScopeTexts& texts) : texts_(texts), slots_(64, 0) {}

  uint32_t Id(std::string_view s) {
    if (last_ < views_.size() && Same(views_[last_], s)) return last_;
    const uint64_t h = Hash(s);
    // A slot holds the id + 1 (low half) and the hash's top half: a probe that meets
    // another text's slot is told apart without reading that text or its hash.
    const uint64_t tag = h & 0xFFFFFFFF00000000ULL;
    size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const uint64_t slot = slots_[i];
      if (slot == 0) break;
      if ((slot & 0xFFFFFFFF00000000ULL) == tag) {
        const auto id = static_cast<uint32_t>(slot) - 1;
        if (Same(views_[id], s)) return last_ = id;
      }
    }
    const auto id = static_cast<uint32_t>(views_.size());
    views_.push_back(texts_.Copy(s));
    hashes_.push_back(h);
    if (2 * views_.size() > slots_.size()) {
      slots_.assign(slots_.size() * 4, 0);  // every id placed again in the larger table
      mask = slots_.size() - 1;
      for (uint32_t k = 0; k < views_.size(); ++k) Place(k, mask);
    } else {
      Place(id, mask);
    }
    return last_ = id;
  }
  std::string_view View(uint32_t id) const { return views_[id]; }
  size_t size() const { return views_.size(); }

 private:
  static bool Same(std::string_view a, std::string_view b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
  }
  // 8 bytes at a time, multiply and fold; seeded per process (text from requests and
  // imported logs cannot be picked to collide).
  static uint64_t Hash(std::string_view s) {
    static const uint64_t seed = reinterpret_cast<uintptr_t>(&seed) * 0x9E3779B97F4A7C15ULL ^
                                 static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    uint64_t h = seed ^ (s.size() * 0xC2B2AE3D27D4EB4FULL);
    size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      h = (h ^ w) * 0xFF51AFD7ED558CCDULL;
      h ^= h >> 32;
    }
    uint64_t w = 0;
    std::memcpy(&w, s.data() + i, s.size() - i);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ULL;
    return h ^ (h >> 29);
  }
  void Place(uint32_t id, size_t mask) {
    const uint64_t h = hashes_[id];
    for (size_t i = h & mask;; i = (i + 1) & mask)
      if (slots_[i] == 0) {
        slots_[i] = (h & 0xFFFFFFFF00000000ULL) | (uint64_t{id} + 1);
        return;
      }
  }

  ScopeTexts& texts_;
  std::vector<uint64_t> slots_;  // 0: empty
  std::vector<uint64_t> hashes_;
  std::vector<std::string_view> views_;
  uint32_t last_ = 0;
};

}  // namespace

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
  Scope s;
  s.query = q;
  s.texts = std::make_shared<ScopeTexts>();
  ScopeTexts& texts = *s.texts;

  // Each row as it arrives: numbers and the ids of its interned texts (a few dozen bytes
  // a row, no string of its own).
  struct Row {
    int64_t id, started_at, org_id;
    uint64_t bytes_sent;
    uint32_t node, user, path, sha256, source;
    uint32_t detail;  // index into `details`; 0: none
    DownloadOutcome outcome;
    bool unknown_user, unknown_target;
  };
  std::vector<Row> rows;
  rows.reserve(size_t{1} << 14);
  Interner nodes(texts), users(texts), paths(texts), hashes(texts), sources(texts);
  std::vector<std::string_view> details = {{}};
  std::unordered_map<int64_t, uint32_t> aborted;  // id -> row, for the details read after the rows
  PG_RETURN_IF_ERROR(trail.VisitScopeDownloads(
      dq,
      [&](const ScopeRowView& v) {
        if (v.outcome == DownloadOutcome::kAborted) aborted.emplace(v.id, static_cast<uint32_t>(rows.size()));
        rows.push_back({v.id, v.started_at, v.org_id, v.bytes_sent, nodes.Id(v.node), users.Id(v.username),
                        paths.Id(v.target_path), hashes.Id(v.sha256), sources.Id(v.source), 0, v.outcome,
                        v.unknown_user, v.unknown_target});
      },
      [&](int64_t id, std::string_view detail) {
        if (auto it = aborted.find(id); it != aborted.end()) {
          rows[it->second].detail = static_cast<uint32_t>(details.size());
          details.push_back(texts.Copy(detail));
        }
      }));
  if (rows.empty()) return s;
  PG_ASSIGN_OR_RETURN(std::vector<Organisation> orgs, directory.ListOrganisations());
  std::unordered_map<int64_t, const Organisation*> by_id;
  by_id.reserve(orgs.size());
  for (const auto& o : orgs) by_id.emplace(o.id, &o);

  // Grouping compares small numbers, not texts: each row's organisation becomes an index
  // into the distinct organisations of the window (nullptr: the "(unknown user)" group),
  // organisations and users are ranked by name once (a few hundred names), one sort of
  // fixed-size keys orders the rows by (organisation, user, time), and files are compared
  // as text only inside one user's rows. A file's id is its interned path.
  static constexpr std::string_view kUnknown = "(unknown user)";
  std::vector<const Organisation*> group_orgs;
  std::vector<uint32_t> org_of(rows.size());
  {
    std::unordered_map<int64_t, uint32_t> index;  // org_id -> index into group_orgs
    int64_t last_id = 0;
    uint32_t last = UINT32_MAX;
    for (size_t i = 0; i < rows.size(); ++i) {
      const int64_t id = rows[i].org_id;
      if (last != UINT32_MAX && id == last_id) {
        org_of[i] = last;
        continue;
      }
      auto [it, added] = index.try_emplace(id, static_cast<uint32_t>(group_orgs.size()));
      if (added) {
        auto o = by_id.find(id);
        group_orgs.push_back(id && o != by_id.end() ? o->second : nullptr);
      }
      org_of[i] = last = it->second;
      last_id = id;
    }
  }
  auto org_name = [&](uint32_t k) { return group_orgs[k] ? std::string_view(group_orgs[k]->name) : kUnknown; };
  // Ranks by name: equal names share a rank (and so a group).
  std::vector<uint32_t> org_rank(group_orgs.size());
  {
    std::vector<uint32_t> by(group_orgs.size());
    for (uint32_t k = 0; k < by.size(); ++k) by[k] = k;
    std::sort(by.begin(), by.end(), [&](uint32_t a, uint32_t b) { return org_name(a) < org_name(b); });
    uint32_t rank = 0;
    for (size_t k = 0; k < by.size(); ++k) {
      if (k && org_name(by[k]) != org_name(by[k - 1])) ++rank;
      org_rank[by[k]] = rank;
    }
  }
  std::vector<uint32_t> user_rank(users.size());
  {
    std::vector<uint32_t> by(users.size());
    for (uint32_t k = 0; k < by.size(); ++k) by[k] = k;
    std::sort(by.begin(), by.end(), [&](uint32_t a, uint32_t b) { return users.View(a) < users.View(b); });
    for (uint32_t k = 0; k < by.size(); ++k) user_rank[by[k]] = k;  // interned: names are distinct
  }
  // Rows ordered by (organisation, user) with two counting passes (user, then organisation:
  // each pass keeps the order of the one before), then each user's rows by file, time and id.
  std::vector<uint32_t> order(rows.size()), by_user(rows.size());
  {
    auto pass = [&](const std::vector<uint32_t>& in, std::vector<uint32_t>& out, size_t ranks, auto rank_of) {
      std::vector<uint32_t> start(ranks + 1, 0);
      for (uint32_t r : in) ++start[rank_of(r) + 1];
      for (size_t k = 1; k <= ranks; ++k) start[k] += start[k - 1];
      for (uint32_t r : in) out[start[rank_of(r)]++] = r;
    };
    for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    pass(order, by_user, users.size(), [&](uint32_t r) { return user_rank[rows[r].user]; });
    pass(by_user, order, group_orgs.size(), [&](uint32_t r) { return org_rank[org_of[r]]; });
  }
  struct Key {
    uint32_t org, user;
    uint32_t row, path;
    int64_t started_at, id;
  };
  std::vector<Key> keys(rows.size());
  for (size_t k = 0; k < keys.size(); ++k) {
    const uint32_t i = order[k];
    keys[k] = {org_rank[org_of[i]], user_rank[rows[i].user], i, rows[i].path, rows[i].started_at, rows[i].id};
  }
  for (size_t i = 0; i < keys.size();) {
    size_t j = i + 1;
    while (j < keys.size() && keys[j].org == keys[i].org && keys[j].user == keys[i].user) ++j;
    if (j - i > 1)
      std::sort(keys.begin() + static_cast<std::ptrdiff_t>(i), keys.begin() + static_cast<std::ptrdiff_t>(j),
                [&](const Key& a, const Key& b) {
                  if (a.path != b.path) {
                    if (int c = paths.View(a.path).compare(paths.View(b.path)); c != 0) return c < 0;
                  }
                  return std::tie(a.started_at, a.id) < std::tie(b.started_at, b.id);
                });
    i = j;
  }
  s.files = paths.size();
  // The organisation's name and tier as each of its downloads carries them, kept once.
  std::vector<std::pair<std::string_view, std::string_view>> org_texts(group_orgs.size());
  for (size_t k = 0; k < group_orgs.size(); ++k)
    if (const Organisation* o = group_orgs[k]) org_texts[k] = {texts.Copy(o->name), texts.Copy(o->tier)};
  std::vector<uint32_t> counted_by(s.files, UINT32_MAX);  // file id -> the last group that counted it
  for (size_t i = 0; i < keys.size();) {
    const uint32_t first_org = org_of[keys[i].row];
    OrgScope g;
    g.name = std::string(org_name(first_org));
    if (const Organisation* o = group_orgs[first_org]) {
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
    while (j < keys.size() && keys[j].org == keys[i].org) ++j;
    g.downloads.resize(j - i);
    for (size_t k = i; k < j; ++k) {
      const Row& r = rows[keys[k].row];
      if (k == i || keys[k].user != keys[k - 1].user) ++g.users;
      if (uint32_t& by = counted_by[r.path]; by != group) {
        by = group;
        ++g.files;
      }
      s.unfinished += r.outcome == DownloadOutcome::kInProgress;
      ScopeDownload& d = g.downloads[k - i];
      d.id = r.id;
      d.started_at = r.started_at;
      d.bytes_sent = r.bytes_sent;
      d.outcome = r.outcome;
      d.unknown_user = r.unknown_user;
      d.unknown_target = r.unknown_target;
      d.node = nodes.View(r.node);
      d.username = users.View(r.user);
      d.org_name = org_texts[org_of[keys[k].row]].first;
      d.org_tier = org_texts[org_of[keys[k].row]].second;
      d.target_path = paths.View(r.path);
      d.sha256 = hashes.View(r.sha256);
      d.source = sources.View(r.source);
      d.detail = details[r.detail];
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
// Eight bytes at a time, as PrintableAscii: a word holds ',', ';' or '"' when one of its
// bytes XORed with that character is zero (the zero-byte test may fire on a clean word;
// then the exact path runs).
void AppendCsv(std::string& out, std::string_view s) {
  bool plain = s.empty() || (s[0] != '=' && s[0] != '+' && s[0] != '-' && s[0] != '@');
  if (plain && !PrintableAscii(s)) plain = false;
  constexpr uint64_t kOnes = 0x0101010101010101ULL, kTops = 0x8080808080808080ULL;
  auto has_zero = [](uint64_t w) { return (w - kOnes) & ~w & kTops; };
  size_t i = 0;
  for (; plain && i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    if (has_zero(w ^ (kOnes * ',')) | has_zero(w ^ (kOnes * ';')) | has_zero(w ^ (kOnes * '"'))) break;
  }
  for (; plain && i < s.size(); ++i) plain = s[i] != ',' && s[i] != ';' && s[i] != '"';
  if (plain) out += s;
  else out += CsvCell(s);
}

std::string Html(std::string_view raw) {
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
    std::string_view user;
    for (size_t k = 0; k < g.downloads.size(); ++k) {
      const ScopeDownload& d = g.downloads[k];
      if (k == 0 || (d.username.data() != user.data() && d.username != user)) {
        user = d.username;
        out += "  ";
        AppendTm(out, d.username);
        out += '\n';
      }
      out += "    ";
      const size_t at = out.size();
      AppendTime(out, d.started_at);  // printable
      if (out.size() - at < 20) out.append(20 - (out.size() - at), ' ');
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
      char bytes[24];
      out.append(bytes, static_cast<size_t>(std::to_chars(bytes, bytes + sizeof bytes, d.bytes_sent).ptr - bytes));
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

namespace {

// `s` as a JSON string exactly as JsonText (core/json_output.h) writes it inside a document:
// printable ASCII without a quote or backslash as it is, anything else through JsonText.
void AppendJsonString(std::string& out, std::string_view s) {
  if (PrintableAscii(s) && s.find_first_of("\"\\") == std::string_view::npos) {
    out += '"';
    out += s;
    out += '"';
  } else {
    out += JsonText(nlohmann::ordered_json(std::string(s)), -1);
  }
}

// One organisation's downloads as the "downloads" array of RenderJson's document, at its
// depth (the key indented by 6), from "[" to "]".
void AppendJsonDownloads(std::string& out, const OrgScope& g) {
  if (g.downloads.empty()) {
    out += "[]";
    return;
  }
  out += "[\n";
  char num[24];
  for (size_t k = 0; k < g.downloads.size(); ++k) {
    const ScopeDownload& d = g.downloads[k];
    out += k ? ",\n        {\n          \"user\": " : "        {\n          \"user\": ";
    AppendJsonString(out, d.username);
    out += ",\n          \"file\": ";
    AppendJsonString(out, d.target_path);
    out += ",\n          \"time\": \"";
    AppendTime(out, d.started_at);
    out += "\",\n          \"sha256\": ";
    AppendJsonString(out, d.sha256);
    out += ",\n          \"node\": ";
    AppendJsonString(out, d.node);
    out += ",\n          \"bytes\": ";
    out.append(num, static_cast<size_t>(std::to_chars(num, num + sizeof num, d.bytes_sent).ptr - num));
    out += ",\n          \"source\": ";
    AppendJsonString(out, d.source);
    out += ",\n          \"outcome\": \"";
    out += DownloadOutcomeName(d.outcome);
    out += "\",\n          \"detail\": ";
    AppendJsonString(out, d.detail);
    out += d.unknown_user ? ",\n          \"unknown_user\": true" : ",\n          \"unknown_user\": false";
    out += d.unknown_target ? ",\n          \"unknown_target\": true\n        }" : ",\n          \"unknown_target\": false\n        }";
  }
  out += "\n      ]";
}

}  // namespace

namespace {

// The scope's JSON document; each organisation's downloads as JSON values when
// `with_downloads`, else as empty arrays (RenderJson writes them into the text itself).
nlohmann::ordered_json JsonDocument(const Scope& s, bool with_downloads) {
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
    if (with_downloads)
      for (const auto& d : g.downloads)
        o["downloads"].push_back({{"user", d.username}, {"file", d.target_path}, {"time", T(d.started_at)},
                                  {"sha256", d.sha256}, {"node", d.node}, {"bytes", d.bytes_sent},
                                  {"source", d.source}, {"outcome", DownloadOutcomeName(d.outcome)},
                                  {"detail", d.detail}, {"unknown_user", d.unknown_user},
                                  {"unknown_target", d.unknown_target}});
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
  return j;
}

}  // namespace

std::string RenderJson(const Scope& s) {
  // The document without the downloads (each organisation's "downloads" an empty array) by
  // nlohmann, then each organisation's downloads written straight into its place: a JSON
  // value per field of every download (a busy node-day: 180,000) cost more than the rest of
  // the command. Byte for byte what the whole document through JsonText gives (a test
  // compares the two).
  const std::string doc = JsonText(JsonDocument(s, false));
  // Each organisation's `"downloads": []`, in order. The text cannot occur elsewhere: a
  // quote inside a string value is written \" and the totals' "downloads" is a number.
  static constexpr std::string_view kEmpty = "\"downloads\": []";
  size_t rows = 0;
  for (const auto& g : s.orgs) rows += g.downloads.size();
  std::string out;
  out.reserve(doc.size() + rows * 420 + 2);
  size_t from = 0;
  for (const auto& g : s.orgs) {
    const size_t at = doc.find(kEmpty, from);
    if (at == std::string::npos) break;  // cannot happen: one per organisation
    out.append(doc, from, at + kEmpty.size() - 2 - from);
    AppendJsonDownloads(out, g);
    from = at + kEmpty.size();
  }
  out.append(doc, from, std::string::npos);
  out += '\n';
  return out;
}

// The same document built whole with nlohmann (every download a JSON value): what
// RenderJson must equal byte for byte. For tests.
std::string RenderJsonWhole(const Scope& s) { return JsonText(JsonDocument(s, true)) + "\n"; }

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
      svg += buf + Html(std::string(d.username) + " " + std::string(d.target_path) + " " + T(d.started_at)) +
             "</title></circle>";
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
