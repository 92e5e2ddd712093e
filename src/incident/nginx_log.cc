#include "incident/nginx_log.h"

#include <cstring>

#include "core/clock.h"
#include "core/text.h"

namespace patchgate::incident {

namespace {

bool Num(std::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 18) return false;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

// Reads a double-quoted field starting at s[*pos] == '"'.
bool Quoted(std::string_view s, size_t* pos, std::string* out) {
  if (*pos >= s.size() || s[*pos] != '"') return false;
  size_t i = *pos + 1;
  out->clear();
  while (i < s.size()) {
    char c = s[i];
    if (c == '"') {
      *pos = i + 1;
      return true;
    }
    if (c == '\\' && i + 3 < s.size() && s[i + 1] == 'x' && HexDigitValue(s[i + 2]) >= 0 && HexDigitValue(s[i + 3]) >= 0) {
      // nginx's \xHH: decoded when it is printable ASCII ('"' and '\\' in practice); any
      // other byte stays escaped as in the log, so a field is always text a store can keep.
      int byte = HexDigitValue(s[i + 2]) * 16 + HexDigitValue(s[i + 3]);
      if (byte >= 0x20 && byte < 0x7f) out->push_back(static_cast<char>(byte));
      else out->append(s.substr(i, 4));
      i += 4;
      continue;
    }
    if (c == '\\' && i + 1 < s.size()) {
      out->push_back(s[i + 1]);  // older nginx escaped only '"' and '\\' this way
      i += 2;
      continue;
    }
    out->push_back(c);
    ++i;
  }
  return false;
}

}  // namespace

Result<int64_t> ParseNginxTime(std::string_view t) {
  // dd/Mon/yyyy:HH:MM:SS +zzzz
  static const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (t.size() != 26 || t[2] != '/' || t[6] != '/' || t[11] != ':' || t[14] != ':' || t[17] != ':' || t[20] != ' ')
    return Corrupt("bad time");
  int64_t d, y, h, mi, s, zh, zm;
  if (!Num(t.substr(0, 2), &d) || !Num(t.substr(7, 4), &y) || !Num(t.substr(12, 2), &h) ||
      !Num(t.substr(15, 2), &mi) || !Num(t.substr(18, 2), &s) || !Num(t.substr(22, 2), &zh) || !Num(t.substr(24, 2), &zm))
    return Corrupt("bad time");
  int month = -1;
  for (int i = 0; i < 12; ++i)
    if (t.substr(3, 3) == kMonths[i]) month = i + 1;
  if (month < 0 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60 || (t[21] != '+' && t[21] != '-') || zh > 23 || zm > 59)
    return Corrupt("bad time");
  int64_t offset = (zh * 3600 + zm * 60) * (t[21] == '+' ? 1 : -1);
  int64_t secs = UnixFromCivil(y, static_cast<unsigned>(month), static_cast<unsigned>(d), h, mi, s) - offset;
  return secs * 1'000'000;
}

Result<LogRecord> ParseCombinedLine(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  // nginx escapes control bytes and non-ASCII bytes itself.
  if (!IsPlainText(line)) return Corrupt("control byte or invalid UTF-8 in the line");
  LogRecord r;
  size_t sp = line.find(' ');
  if (sp == std::string_view::npos || sp == 0) return Corrupt("no remote address");
  r.remote_addr = std::string(line.substr(0, sp));
  if (line.substr(sp, 3) != " - ") return Corrupt("expected ' - ' after the address");
  size_t p = sp + 3;
  size_t ub = line.find(" [", p);
  if (ub == std::string_view::npos) return Corrupt("no [time]");
  r.remote_user = std::string(line.substr(p, ub - p));
  if (r.remote_user == "-") r.remote_user.clear();
  p = ub + 2;
  size_t te = line.find(']', p);
  if (te == std::string_view::npos) return Corrupt("unterminated [time]");
  PG_ASSIGN_OR_RETURN(r.time_us, ParseNginxTime(line.substr(p, te - p)));
  p = te + 1;
  if (p >= line.size() || line[p] != ' ') return Corrupt("expected a space after [time]");
  ++p;
  std::string request;
  if (!Quoted(line, &p, &request)) return Corrupt("bad \"request\"");
  size_t s1 = request.find(' ');
  size_t s2 = s1 == std::string::npos ? s1 : request.find(' ', s1 + 1);
  if (s1 == std::string::npos) return Corrupt("bad request line");
  r.method = request.substr(0, s1);
  r.path = request.substr(s1 + 1, s2 == std::string::npos ? std::string::npos : s2 - s1 - 1);
  if (auto q = r.path.find('?'); q != std::string::npos) r.path.resize(q);
  if (p >= line.size() || line[p] != ' ') return Corrupt("expected status");
  ++p;
  size_t e = line.find(' ', p);
  if (e == std::string_view::npos) return Corrupt("expected bytes after status");
  int64_t status, bytes;
  if (!Num(line.substr(p, e - p), &status) || status < 100 || status > 999) return Corrupt("bad status");
  r.status = static_cast<int>(status);
  p = e + 1;
  e = line.find(' ', p);
  std::string_view b = line.substr(p, e == std::string_view::npos ? std::string_view::npos : e - p);
  if (b == "-") bytes = 0;
  else if (!Num(b, &bytes)) return Corrupt("bad byte count");
  r.bytes = static_cast<uint64_t>(bytes);
  if (e == std::string_view::npos) return Corrupt("missing referer and user agent");
  p = e + 1;
  if (!Quoted(line, &p, &r.referer)) return Corrupt("bad \"referer\"");
  if (p >= line.size() || line[p] != ' ') return Corrupt("missing user agent");
  ++p;
  if (!Quoted(line, &p, &r.user_agent)) return Corrupt("bad \"user agent\"");
  return r;
}

}  // namespace patchgate::incident
