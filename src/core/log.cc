#include "core/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>

#include "core/clock.h"

namespace patchgate::log {

namespace {
std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
std::atomic<int> g_json{-1};  // -1: detect
std::mutex g_mu;

const char* Name(Level l) {
  switch (l) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "info";
}
}  // namespace

void SetLevel(Level level) { g_level = static_cast<int>(level); }
void SetJson(bool json) { g_json = json ? 1 : 0; }

void Write(Level level, std::string_view msg, std::initializer_list<Field> fields) {
  if (static_cast<int>(level) < g_level.load()) return;
  int json = g_json.load();
  if (json < 0) json = ::isatty(2) ? 0 : 1;
  std::string line;
  std::string ts = FormatRfc3339Micros(SystemClock::Get().NowMicros());
  if (json) {
    nlohmann::ordered_json j;
    j["ts"] = ts;
    j["level"] = Name(level);
    j["msg"] = std::string(msg);
    for (const auto& [k, v] : fields) j[std::string(k)] = v;
    line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    line = ts + " " + Name(level) + " " + std::string(msg);
    for (const auto& [k, v] : fields) line += " " + std::string(k) + "=" + v;
  }
  line += '\n';
  std::lock_guard<std::mutex> lock(g_mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace patchgate::log
