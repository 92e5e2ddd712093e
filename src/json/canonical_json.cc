#include "json/canonical_json.h"

#include <set>
#include <vector>

namespace patchgate::cjson {

namespace {

void AppendString(const std::string& s, std::string* out) {
  out->push_back('"');
  for (char c : s) {
    if (c == '"' || c == '\\') out->push_back('\\');
    out->push_back(c);
  }
  out->push_back('"');
}

Status EncodeInto(const Json& v, std::string* out, int depth) {
  if (depth > 512) return InvalidArgument("JSON nested too deeply to encode");
  switch (v.type()) {
    case Json::value_t::null: out->append("null"); return Status::OK();
    case Json::value_t::boolean: out->append(v.get<bool>() ? "true" : "false"); return Status::OK();
    case Json::value_t::number_integer: out->append(std::to_string(v.get<int64_t>())); return Status::OK();
    case Json::value_t::number_unsigned: out->append(std::to_string(v.get<uint64_t>())); return Status::OK();
    case Json::value_t::number_float:
      return InvalidArgument("canonical JSON has no floating-point numbers; use an integer or a string");
    case Json::value_t::string: AppendString(v.get_ref<const std::string&>(), out); return Status::OK();
    case Json::value_t::array: {
      out->push_back('[');
      bool first = true;
      for (const auto& e : v) {
        if (!first) out->push_back(',');
        first = false;
        PG_RETURN_IF_ERROR(EncodeInto(e, out, depth + 1));
      }
      out->push_back(']');
      return Status::OK();
    }
    case Json::value_t::object: {
      // nlohmann::json objects are std::map<std::string, ...>: iteration is in byte order
      // (char_traits<char> compares as unsigned char), as canonical JSON requires.
      out->push_back('{');
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (!first) out->push_back(',');
        first = false;
        AppendString(it.key(), out);
        out->push_back(':');
        PG_RETURN_IF_ERROR(EncodeInto(it.value(), out, depth + 1));
      }
      out->push_back('}');
      return Status::OK();
    }
    case Json::value_t::binary:
    case Json::value_t::discarded:
      break;
  }
  return InvalidArgument("value cannot be encoded as canonical JSON");
}

}  // namespace

Result<Json> Parse(std::string_view text, const ParseLimits& limits) {
  if (text.size() > limits.max_bytes)
    return TooLarge("JSON document of " + std::to_string(text.size()) + " bytes is over the cap of " +
                    std::to_string(limits.max_bytes));
  // Track the keys of every open object to refuse duplicates (an attacker could otherwise
  // make two parsers disagree on what was signed), and the nesting depth.
  std::vector<std::set<std::string>> open_objects;
  std::string error;
  auto cb = [&](int depth, Json::parse_event_t event, Json& parsed) -> bool {
    if (!error.empty()) return false;
    if (static_cast<size_t>(depth) > limits.max_depth) {
      error = "nesting deeper than " + std::to_string(limits.max_depth) + " levels";
      return false;
    }
    switch (event) {
      case Json::parse_event_t::object_start: open_objects.emplace_back(); break;
      case Json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case Json::parse_event_t::key:
        if (!open_objects.empty() && !open_objects.back().insert(parsed.get<std::string>()).second) {
          error = "duplicate object key \"" + parsed.get<std::string>().substr(0, 64) + "\"";
          return false;
        }
        break;
      default: break;
    }
    return true;
  };
  Json j;
  try {
    j = Json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/true,
                    /*ignore_comments=*/false);
  } catch (const Json::exception& e) {
    return Corrupt(std::string("malformed JSON: ") + e.what());
  }
  if (!error.empty()) return Corrupt("malformed JSON: " + error);
  if (j.is_discarded()) return Corrupt("malformed JSON");
  return j;
}

Result<std::string> Encode(const Json& value) {
  std::string out;
  PG_RETURN_IF_ERROR(EncodeInto(value, &out, 0));
  return out;
}

bool IsCanonical(std::string_view text) {
  auto parsed = Parse(text);
  if (!parsed.ok()) return false;
  auto enc = Encode(*parsed);
  return enc.ok() && *enc == text;
}

}  // namespace patchgate::cjson
