// AuthDirectory: who may download what. Organisations (with their contacts), their users
// and the users' tokens (only the token's SHA-256 is stored, never the token), and the
// entitlements (organisation -> product) the server checks before serving a byte.
//
// Promises: a revoked user's token stops authenticating at once (no cache in here; callers
// that cache must bound it). Names typed by an administrator are validated (core/names.h)
// and refused with kInvalidArgument, never silently changed.
// Threading: safe to call from several threads at once.
// Errors: kUnavailable when the database cannot be reached (the server then answers 503,
// never serves unrecorded); kNotFound / kAlreadyExists / kUnauthorized as named below.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "store/records.h"

namespace patchgate {

class AuthDirectory {
 public:
  virtual ~AuthDirectory() = default;

  // The name must pass ValidateOrganisationName (core/names.h); the other fields are plain
  // text under kMaxContactFieldBytes / kMaxWebhookUrlBytes. kAlreadyExists for a taken name.
  virtual Result<int64_t> AddOrganisation(const Organisation& org) = 0;
  virtual Result<Organisation> GetOrganisation(const std::string& name) = 0;
  virtual Result<std::vector<Organisation>> ListOrganisations() = 0;
  // token_hash = hex SHA-256 of the token; the token itself is never stored. The user name
  // must pass ValidateUserName (core/names.h).
  virtual Result<int64_t> AddUser(const std::string& org, const std::string& username,
                                  const std::string& token_hash) = 0;
  virtual Status RevokeUser(const std::string& username) = 0;
  // kUnauthorized when no user has this hash or the user is revoked.
  virtual Result<User> AuthenticateTokenHash(const std::string& token_hash) = 0;
  virtual Result<User> GetUser(const std::string& username) = 0;
  // The product must pass ValidateProductName (core/names.h): a name that can never be
  // published is refused.
  virtual Status Grant(const std::string& org, const std::string& product) = 0;
  virtual Result<bool> IsEntitled(int64_t org_id, const std::string& product) = 0;
  virtual Result<std::vector<std::string>> EntitledOrganisations(const std::string& product) = 0;
};

}  // namespace patchgate
