// Status and Result<T>: errors as values at every I/O, parse and verification boundary.
//
// A Status is either OK or carries an ErrorCode and a message that says what went wrong
// and, where possible, what the user should do about it. Result<T> holds a T or a non-OK
// Status. Both are cheap to move; neither throws. Thread-compatible (no shared state).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace patchgate {

// One named kind per failure a caller may want to tell apart. Security checks each have
// their own kind so tests (and operators) can see exactly which check refused.
enum class ErrorCode {
  kOk = 0,
  kInvalidArgument,    // bad input from the user or a caller
  kNotFound,
  kAlreadyExists,
  kCorrupt,            // malformed data (JSON, metadata, log line, database row)
  kIOError,            // filesystem failure
  kNetwork,            // transport failure talking to a peer
  kUnavailable,        // a dependency (store, scanner, server) cannot be used now
  kTooLarge,           // input over a named cap
  kUnauthorized,       // no or bad credentials
  kForbidden,          // authenticated but not entitled
  kUnsupported,
  kInternal,
  // TUF verification failures (one per attack the client must resist).
  kBadSignature,       // a signature did not verify / is malformed
  kUnmetThreshold,     // fewer valid signatures from distinct keys than the threshold
  kExpired,            // metadata past its expiry (freeze attack)
  kRollback,           // a version went backwards
  kMixAndMatch,        // versions/hashes across snapshot and targets disagree
  kHashMismatch,       // content does not match the signed hash (arbitrary software)
  kLengthMismatch,     // content longer/shorter than the signed length (endless data)
  kBadSpecVersion,
  kNonCanonical,       // signed bytes are not canonical JSON
  kDelegationLoop,
  kDelegationDepth,
  kWrongRole,          // metadata of the wrong type
  // Scanning.
  kInfected,
  kScanFailed,         // anything but an explicit clean verdict
  kTimeout,
  kConflict,           // e.g. publishing an existing name with different bytes
  kDuplicateSignature, // TUF metadata lists the same keyid twice among its signatures
};

std::string_view ErrorCodeName(ErrorCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status OK() { return Status(); }

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "Kind: message", or "OK".
  std::string ToString() const;

  // Returns a copy whose message is "<context>: <message>".
  Status WithContext(std::string_view context) const;

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

// Convenience constructors, e.g. return NotFound("no such role: " + name).
#define PATCHGATE_STATUS_CTOR(Name, Code) \
  inline Status Name(std::string message) { return Status(ErrorCode::Code, std::move(message)); }
PATCHGATE_STATUS_CTOR(InvalidArgument, kInvalidArgument)
PATCHGATE_STATUS_CTOR(NotFound, kNotFound)
PATCHGATE_STATUS_CTOR(AlreadyExists, kAlreadyExists)
PATCHGATE_STATUS_CTOR(Corrupt, kCorrupt)
PATCHGATE_STATUS_CTOR(IOError, kIOError)
PATCHGATE_STATUS_CTOR(NetworkError, kNetwork)
PATCHGATE_STATUS_CTOR(Unavailable, kUnavailable)
PATCHGATE_STATUS_CTOR(TooLarge, kTooLarge)
PATCHGATE_STATUS_CTOR(Unauthorized, kUnauthorized)
PATCHGATE_STATUS_CTOR(Forbidden, kForbidden)
PATCHGATE_STATUS_CTOR(Unsupported, kUnsupported)
PATCHGATE_STATUS_CTOR(Internal, kInternal)
#undef PATCHGATE_STATUS_CTOR

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}          // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}   // NOLINT: must not be OK
  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  // By value: `for (auto& x : *F())` must not dangle when F() returns a temporary.
  T operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T value_or(T fallback) const& { return ok() ? value() : std::move(fallback); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace patchgate

#define PG_CONCAT_INNER(a, b) a##b
#define PG_CONCAT(a, b) PG_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function if `expr` is not OK.
#define PG_RETURN_IF_ERROR(expr)                        \
  do {                                                  \
    ::patchgate::Status pg_status_ = (expr);            \
    if (!pg_status_.ok()) return pg_status_;            \
  } while (0)

// PG_ASSIGN_OR_RETURN(auto x, ComputeX()); returns the error Status if not ok.
#define PG_ASSIGN_OR_RETURN(lhs, expr) \
  PG_ASSIGN_OR_RETURN_IMPL(PG_CONCAT(pg_result_, __LINE__), lhs, expr)
#define PG_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()
