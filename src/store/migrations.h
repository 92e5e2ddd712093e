// Numbered schema migrations, embedded from src/store/migrations/*.sql at build time.
#pragma once

#include <string_view>
#include <vector>

namespace patchgate::store {

struct Migration {
  int version;
  std::string_view name;
  std::string_view sql;  // portable: {ID} is replaced by the engine's auto-increment key
};
const std::vector<Migration>& Migrations();

}  // namespace patchgate::store
