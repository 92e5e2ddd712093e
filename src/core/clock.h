// Clock seam: everything that asks "what time is it" takes a Clock&, so tests move time
// (expiry, freeze attacks, embargoes, incident windows) without sleeping.
// SystemClock is thread-safe; FakeClock is thread-safe (atomic).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "core/status.h"

namespace patchgate {

class Clock {
 public:
  virtual ~Clock() = default;
  // Seconds since the Unix epoch (UTC).
  virtual int64_t NowUnix() const = 0;
  // Microseconds since the Unix epoch (UTC), for audit records.
  virtual int64_t NowMicros() const = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t NowUnix() const override;
  int64_t NowMicros() const override;
  // A process-wide instance; never deleted.
  static SystemClock& Get();
};

class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t unix_seconds = 1'700'000'000) : micros_(unix_seconds * 1'000'000) {}
  int64_t NowUnix() const override { return micros_.load() / 1'000'000; }
  int64_t NowMicros() const override { return micros_.load(); }
  void SetUnix(int64_t s) { micros_ = s * 1'000'000; }
  void Advance(int64_t seconds) { micros_ += seconds * 1'000'000; }

 private:
  std::atomic<int64_t> micros_;
};

// RFC 3339 / ISO 8601 in UTC with a "Z" suffix and no fraction: "2030-01-01T00:00:00Z"
// (the form TUF uses for "expires").
std::string FormatRfc3339(int64_t unix_seconds);
// With microseconds: "2030-01-01T00:00:00.123456Z".
std::string FormatRfc3339Micros(int64_t unix_micros);
// Accepts "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)"; also a space for 'T'.
// Returns microseconds since the epoch.
Result<int64_t> ParseRfc3339Micros(std::string_view text);
Result<int64_t> ParseRfc3339(std::string_view text);  // seconds (fraction dropped)
// Seconds since the epoch of a UTC civil date and time (proleptic Gregorian; no checks).
int64_t UnixFromCivil(int64_t year, unsigned month, unsigned day, int64_t hour, int64_t minute, int64_t second);

}  // namespace patchgate
