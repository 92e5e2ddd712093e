#include "json/canonical_json.h"

#include <vector>

#include "core/text.h"

namespace patchgate::cjson {

namespace {

// Appends `s` as a JSON string. Canonical form (securesystemslib) escapes only '"' and
// '\\' and copies every other byte, control characters included; the standard form
// (what is written to disk) also escapes control characters, so the file is JSON that
// any parser reads. Both refuse bytes that are not UTF-8: JSON text cannot carry them.
Status AppendString(const std::string& s, bool standard, std::string* out) {
  if (!IsValidUtf8(s)) {
    std::string shown;
    for (unsigned char c : s.substr(0, 48)) shown += (c >= 0x20 && c < 0x7f) ? std::string(1, static_cast<char>(c)) : "?";
    return InvalidArgument("the string \"" + shown + (s.size() > 48 ? "…" : "") +
                           "\" is not valid UTF-8 and cannot be encoded as JSON");
  }
  static const char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else if (standard && u < 0x20) {
      switch (c) {
        case '\n': out->append("\\n"); break;
        case '\r': out->append("\\r"); break;
        case '\t': out->append("\\t"); break;
        case '\b': out->append("\\b"); break;
        case '\f': out->append("\\f"); break;
        default:
          out->append("\\u00");
          out->push_back(kHex[u >> 4]);
          out->push_back(kHex[u & 15]);
      }
    } else {
      out->push_back(c);
    }
  }
  out->push_back('"');
  return Status::OK();
}

Status EncodeInto(const Json& v, bool standard, std::string* out, int depth) {
  if (depth > 512) return InvalidArgument("JSON nested too deeply to encode");
  switch (v.type()) {
    case Json::value_t::null: out->append("null"); return Status::OK();
    case Json::value_t::boolean: out->append(v.get<bool>() ? "true" : "false"); return Status::OK();
    case Json::value_t::number_integer: out->append(std::to_string(v.get<int64_t>())); return Status::OK();
    case Json::value_t::number_unsigned: out->append(std::to_string(v.get<uint64_t>())); return Status::OK();
    case Json::value_t::number_float:
      return InvalidArgument("canonical JSON has no floating-point numbers; use an integer or a string");
    case Json::value_t::string: return AppendString(v.get_ref<const std::string&>(), standard, out);
    case Json::value_t::array: {
      out->push_back('[');
      bool first = true;
      for (const auto& e : v) {
        if (!first) out->push_back(',');
        first = false;
        PG_RETURN_IF_ERROR(EncodeInto(e, standard, out, depth + 1));
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
        PG_RETURN_IF_ERROR(AppendString(it.key(), standard, out));
        out->push_back(':');
        PG_RETURN_IF_ERROR(EncodeInto(it.value(), standard, out, depth + 1));
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

namespace {

// Builds the DOM through nlohmann's SAX interface so duplicate keys (which could make two
// parsers disagree on what was signed) and excessive nesting are refused while parsing.
class DomBuilder final : public nlohmann::json_sax<Json> {
 public:
  explicit DomBuilder(size_t max_depth) : max_depth_(max_depth) {}

  bool null() override { return Put(Json(nullptr)) != nullptr; }
  bool boolean(bool v) override { return Put(Json(v)) != nullptr; }
  bool number_integer(number_integer_t v) override { return Put(Json(v)) != nullptr; }
  bool number_unsigned(number_unsigned_t v) override { return Put(Json(v)) != nullptr; }
  bool number_float(number_float_t v, const string_t&) override { return Put(Json(v)) != nullptr; }
  bool string(string_t& v) override { return Put(Json(std::move(v))) != nullptr; }
  bool binary(binary_t&) override { return Fail("binary values are not JSON"); }
  bool start_object(std::size_t) override { return Open(Json::object()); }
  bool start_array(std::size_t) override { return Open(Json::array()); }
  bool end_object() override { stack_.pop_back(); return true; }
  bool end_array() override { stack_.pop_back(); return true; }
  bool key(string_t& k) override {
    auto& obj = stack_.back()->get_ref<Json::object_t&>();
    auto [it, inserted] = obj.try_emplace(k);
    if (!inserted) return Fail("duplicate object key \"" + k.substr(0, 64) + "\"");
    slot_ = &it->second;
    return true;
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) override {
    if (error_.empty()) error_ = e.what();
    return false;
  }

  Json& root() { return root_; }
  const std::string& error() const { return error_; }

 private:
  Json* Put(Json v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    Json* top = stack_.back();
    if (top->is_array()) {
      top->get_ref<Json::array_t&>().push_back(std::move(v));
      return &top->get_ref<Json::array_t&>().back();
    }
    *slot_ = std::move(v);
    return slot_;
  }
  bool Open(Json container) {
    if (stack_.size() >= max_depth_) return Fail("nesting deeper than " + std::to_string(max_depth_) + " levels");
    Json* p = Put(std::move(container));
    stack_.push_back(p);
    return true;
  }
  bool Fail(std::string why) {
    if (error_.empty()) error_ = std::move(why);
    return false;
  }

  size_t max_depth_;
  Json root_;
  std::vector<Json*> stack_;  // open containers; only the top one is ever modified
  Json* slot_ = nullptr;      // value slot for the last key of the top object
  std::string error_;
};

}  // namespace

Result<Json> Parse(std::string_view text, const ParseLimits& limits) {
  if (text.size() > limits.max_bytes)
    return TooLarge("JSON document of " + std::to_string(text.size()) + " bytes is over the cap of " +
                    std::to_string(limits.max_bytes));
  DomBuilder builder(limits.max_depth);
  bool ok = false;
  try {
    ok = Json::sax_parse(text.begin(), text.end(), &builder, nlohmann::detail::input_format_t::json,
                         /*strict=*/true, /*ignore_comments=*/false);
  } catch (const Json::exception& e) {
    return Corrupt(std::string("malformed JSON: ") + e.what());
  }
  if (!ok) return Corrupt("malformed JSON: " + (builder.error().empty() ? std::string("parse error") : builder.error()));
  return std::move(builder.root());
}

Result<std::string> Encode(const Json& value) {
  std::string out;
  PG_RETURN_IF_ERROR(EncodeInto(value, /*standard=*/false, &out, 0));
  return out;
}

Result<std::string> EncodeStandard(const Json& value) {
  std::string out;
  PG_RETURN_IF_ERROR(EncodeInto(value, /*standard=*/true, &out, 0));
  return out;
}

bool IsCanonical(std::string_view text) {
  auto parsed = Parse(text);
  if (!parsed.ok()) return false;
  auto enc = Encode(*parsed);
  return enc.ok() && *enc == text;
}

}  // namespace patchgate::cjson
