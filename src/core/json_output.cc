#include "core/json_output.h"

#include <nlohmann/json.hpp>

#include "core/text.h"

namespace patchgate {
namespace {

template <typename Json>
void EscapeStrings(Json& j) {
  if (j.is_string()) {
    auto& s = j.template get_ref<std::string&>();
    if (!IsValidUtf8(s)) s = EscapeInvalidUtf8(s);
  } else if (j.is_array()) {
    for (auto& v : j) EscapeStrings(v);
  } else if (j.is_object()) {
    Json out = Json::object();
    for (auto it = j.begin(); it != j.end(); ++it) {
      Json v = std::move(it.value());
      EscapeStrings(v);
      const std::string& k = it.key();
      out[IsValidUtf8(k) ? k : EscapeInvalidUtf8(k)] = std::move(v);
    }
    j = std::move(out);
  }
}

template <typename Json>
std::string Dump(const Json& j, int indent) {
  try {
    return j.dump(indent);
  } catch (const nlohmann::json::type_error&) {
    // Some string is not UTF-8: escape a copy. The replace handler is a second net only.
    Json copy = j;
    EscapeStrings(copy);
    return copy.dump(indent, ' ', false, Json::error_handler_t::replace);
  }
}

}  // namespace

std::string JsonText(const nlohmann::json& j, int indent) { return Dump(j, indent); }
std::string JsonText(const nlohmann::ordered_json& j, int indent) { return Dump(j, indent); }

}  // namespace patchgate
