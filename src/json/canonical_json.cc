#include "json/canonical_json.h"

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
