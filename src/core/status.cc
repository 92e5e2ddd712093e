#include "core/status.h"

namespace patchgate {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "OK";
    case ErrorCode::kInvalidArgument: return "InvalidArgument";
    case ErrorCode::kNotFound: return "NotFound";
    case ErrorCode::kAlreadyExists: return "AlreadyExists";
    case ErrorCode::kCorrupt: return "Corrupt";
    case ErrorCode::kIOError: return "IOError";
    case ErrorCode::kNetwork: return "NetworkError";
    case ErrorCode::kUnavailable: return "Unavailable";
    case ErrorCode::kTooLarge: return "TooLarge";
    case ErrorCode::kUnauthorized: return "Unauthorized";
    case ErrorCode::kForbidden: return "Forbidden";
    case ErrorCode::kUnsupported: return "Unsupported";
    case ErrorCode::kInternal: return "Internal";
    case ErrorCode::kBadSignature: return "BadSignature";
    case ErrorCode::kUnmetThreshold: return "UnmetThreshold";
    case ErrorCode::kExpired: return "ExpiredMetadata";
    case ErrorCode::kRollback: return "Rollback";
    case ErrorCode::kMixAndMatch: return "MixAndMatch";
    case ErrorCode::kHashMismatch: return "HashMismatch";
    case ErrorCode::kLengthMismatch: return "LengthMismatch";
    case ErrorCode::kBadSpecVersion: return "BadSpecVersion";
    case ErrorCode::kNonCanonical: return "NonCanonical";
    case ErrorCode::kDelegationLoop: return "DelegationLoop";
    case ErrorCode::kDelegationDepth: return "DelegationDepth";
    case ErrorCode::kWrongRole: return "WrongRole";
    case ErrorCode::kInfected: return "Infected";
    case ErrorCode::kScanFailed: return "ScanFailed";
    case ErrorCode::kTimeout: return "Timeout";
    case ErrorCode::kConflict: return "Conflict";
    case ErrorCode::kDuplicateSignature: return "DuplicateSignature";
  }
  return "Unknown";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out(ErrorCodeName(code_));
  out += ": ";
  out += message_;
  return out;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string m(context);
  m += ": ";
  m += message_;
  return Status(code_, std::move(m));
}

}  // namespace patchgate
