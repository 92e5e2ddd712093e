#include "tuf/metadata.h"

#include <fnmatch.h>

#include <algorithm>
#include <set>

#include "crypto/hash.h"
#include "json/canonical_scan.h"

namespace patchgate::tuf {

std::string_view RoleTypeName(RoleType t) {
  switch (t) {
    case RoleType::kRoot: return "root";
    case RoleType::kTimestamp: return "timestamp";
    case RoleType::kSnapshot: return "snapshot";
    case RoleType::kTargets: return "targets";
  }
  return "?";
}

namespace {

const Json* Field(const Json& o, const char* name) {
  auto it = o.find(name);
  return it == o.end() ? nullptr : &*it;
}

Result<std::string> GetString(const Json& o, const char* name, std::string_view ctx) {
  const Json* f = Field(o, name);
  if (!f || !f->is_string()) return Corrupt(std::string(ctx) + ": missing string field \"" + name + "\"");
  return f->get<std::string>();
}

Result<int64_t> GetInt(const Json& o, const char* name, std::string_view ctx) {
  const Json* f = Field(o, name);
  if (!f || !f->is_number_integer()) return Corrupt(std::string(ctx) + ": missing integer field \"" + name + "\"");
  if (f->is_number_unsigned() && f->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    return Corrupt(std::string(ctx) + ": \"" + name + "\" out of range");
  return f->get<int64_t>();
}

Result<RoleKeys> ParseRoleKeys(const Json& j, std::string_view ctx) {
  if (!j.is_object()) return Corrupt(std::string(ctx) + ": role is not an object");
  RoleKeys r;
  const Json* ids = Field(j, "keyids");
  if (!ids || !ids->is_array()) return Corrupt(std::string(ctx) + ": role has no keyids array");
  if (ids->size() > kMaxKeys) return TooLarge(std::string(ctx) + ": too many keyids");
  std::set<std::string> seen;
  for (const auto& id : *ids) {
    if (!id.is_string()) return Corrupt(std::string(ctx) + ": keyid is not a string");
    if (!seen.insert(id.get<std::string>()).second)
      return Corrupt(std::string(ctx) + ": duplicate keyid in role");
    r.keyids.push_back(id.get<std::string>());
  }
  PG_ASSIGN_OR_RETURN(int64_t t, GetInt(j, "threshold", ctx));
  if (t < 1) return Corrupt(std::string(ctx) + ": threshold must be at least 1");
  if (t > static_cast<int64_t>(kMaxKeys)) return Corrupt(std::string(ctx) + ": threshold too large");
  r.threshold = static_cast<int>(t);
  return r;
}

Result<std::map<std::string, PublicKey>> ParseKeys(const Json& j, std::string_view ctx) {
  if (!j.is_object()) return Corrupt(std::string(ctx) + ": keys is not an object");
  if (j.size() > kMaxKeys) return TooLarge(std::string(ctx) + ": too many keys");
  std::map<std::string, PublicKey> keys;
  for (auto it = j.begin(); it != j.end(); ++it) {
    auto k = PublicKey::FromJson(it.value());
    if (!k.ok()) return k.status().WithContext(std::string(ctx) + ": key " + it.key().substr(0, 16));
    keys.emplace(it.key(), std::move(*k));
  }
  return keys;
}

Result<std::map<std::string, std::string>> ParseHashes(const Json& j, std::string_view ctx) {
  if (!j.is_object() || j.empty()) return Corrupt(std::string(ctx) + ": hashes must be a non-empty object");
  std::map<std::string, std::string> h;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_string()) return Corrupt(std::string(ctx) + ": hash is not a string");
    h[it.key()] = it.value().get<std::string>();
  }
  return h;
}

// The raw text of top-level member `key` of an object, for text that already parsed as
// JSON (so it is well formed). Keys are compared as written (no escape decoding).
std::optional<std::string_view> RawMember(std::string_view t, std::string_view key) {
  size_t i = 0;
  auto ws = [&] { while (i < t.size() && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r')) ++i; };
  auto skip_string = [&] {  // at '"'
    for (++i; i < t.size() && t[i] != '"'; ++i)
      if (t[i] == '\\') ++i;
    ++i;
  };
  auto skip_value = [&] {
    if (i < t.size() && t[i] == '"') return skip_string();
    if (i < t.size() && (t[i] == '{' || t[i] == '[')) {
      int depth = 0;
      while (i < t.size()) {
        char c = t[i];
        if (c == '"') { skip_string(); continue; }
        ++i;
        if (c == '{' || c == '[') ++depth;
        else if ((c == '}' || c == ']') && --depth == 0) return;
      }
      return;
    }
    while (i < t.size() && t[i] != ',' && t[i] != '}' && t[i] != ']' && t[i] != ' ' && t[i] != '\t' &&
           t[i] != '\n' && t[i] != '\r')
      ++i;
  };
  ws();
  if (i >= t.size() || t[i] != '{') return std::nullopt;
  ++i;
  while (true) {
    ws();
    if (i >= t.size() || t[i] != '"') return std::nullopt;
    size_t k0 = i + 1;
    skip_string();
    if (i > t.size()) return std::nullopt;
    std::string_view k = t.substr(k0, i - 1 - k0);
    ws();
    if (i >= t.size() || t[i] != ':') return std::nullopt;
    ++i;
    ws();
    size_t v0 = i;
    skip_value();
    if (i > t.size()) return std::nullopt;
    if (k == key) return t.substr(v0, i - v0);
    ws();
    if (i >= t.size() || t[i] != ',') return std::nullopt;
    ++i;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------

Result<Envelope> Envelope::Parse(std::string_view text, uint64_t max_bytes) {
  if (text.size() > max_bytes)
    return TooLarge("metadata of " + std::to_string(text.size()) + " bytes is over the cap of " +
                    std::to_string(max_bytes));
  PG_ASSIGN_OR_RETURN(Json doc, cjson::Parse(text, {.max_bytes = max_bytes, .max_depth = 64}));
  if (!doc.is_object()) return Corrupt("metadata is not a JSON object");
  const Json* sigs = Field(doc, "signatures");
  const Json* sig = Field(doc, "signed");
  if (!sigs || !sigs->is_array() || !sig || !sig->is_object())
    return Corrupt("metadata needs a \"signatures\" array and a \"signed\" object");
  if (sigs->size() > kMaxSignatures) return TooLarge("metadata carries too many signatures");
  Envelope env;
  std::set<std::string> keyids;
  for (const auto& s : *sigs) {
    if (!s.is_object()) return Corrupt("signature is not an object");
    PG_ASSIGN_OR_RETURN(std::string keyid, GetString(s, "keyid", "signature"));
    PG_ASSIGN_OR_RETURN(std::string value, GetString(s, "sig", "signature"));
    // TUF: a keyid appears at most once among the signatures (python-tuf refuses such
    // metadata too); a repeated keyid is malformed metadata, whatever its signatures say.
    if (!keyids.insert(keyid).second)
      return Status(ErrorCode::kDuplicateSignature,
                    "metadata lists two signatures by key " + keyid.substr(0, 16) +
                        "; each key may sign once (malformed or tampered metadata: refused)");
    env.signatures.push_back({std::move(keyid), std::move(value)});
  }
  // Fast path: a canonical file's "signed" member is already the signed bytes.
  bool have_bytes = false;
  if (cjson::IsCanonicalFast(text)) {
    auto slice = cjson::MemberSlice(text, "signed");
    if (slice.ok()) {
      env.signed_bytes.assign(slice->data(), slice->size());
      have_bytes = true;
    }
  }
  if (!have_bytes) {
    auto enc = cjson::Encode(*sig);
    if (!enc.ok()) return Corrupt("signed metadata cannot be canonicalised: " + enc.status().message());
    env.signed_bytes = std::move(*enc);
    if (auto raw = RawMember(text, "signed"); raw && *raw != env.signed_bytes) env.raw_signed_bytes = *raw;
  }
  env.signed_json = std::move(doc["signed"]);
  return env;
}

Result<Envelope> Envelope::FromSigned(Json signed_json) {
  Envelope env;
  PG_ASSIGN_OR_RETURN(env.signed_bytes, cjson::Encode(signed_json));
  env.signed_json = std::move(signed_json);
  return env;
}

Result<std::string> Envelope::Serialize() const {
  std::string out = "{\"signatures\":[";
  bool first = true;
  for (const auto& s : signatures) {
    if (!first) out += ',';
    first = false;
    PG_ASSIGN_OR_RETURN(std::string one, cjson::Encode(Json{{"keyid", s.keyid}, {"sig", s.sig}}));
    out += one;
  }
  out += "],\"signed\":";
  // signed_bytes is canonical JSON, which copies control characters raw (securesystemslib):
  // not JSON text when a string holds one (a PEM key). The file gets the standard form,
  // which parses back to the same canonical bytes.
  bool has_control = std::any_of(signed_bytes.begin(), signed_bytes.end(),
                                 [](char c) { return static_cast<unsigned char>(c) < 0x20; });
  if (has_control) {
    PG_ASSIGN_OR_RETURN(std::string standard, cjson::EncodeStandard(signed_json));
    out += standard;
  } else {
    out += signed_bytes;
  }
  out += '}';
  return out;
}

Status Envelope::Sign(const PrivateKey& key) {
  PG_ASSIGN_OR_RETURN(std::string sig, key.SignHex(signed_bytes));
  std::string id = key.KeyId();
  for (auto& s : signatures) {
    if (s.keyid == id) {
      s.sig = sig;
      return Status::OK();
    }
  }
  signatures.push_back({id, sig});
  return Status::OK();
}

bool VerifiedSignatures::Contains(const PublicKey& key, std::string_view sig) const {
  std::string id = key.keytype() + '\n' + key.scheme() + '\n' + key.public_value() + '\n';
  id += sig;
  return entries_.count(id) != 0;
}

void VerifiedSignatures::Add(const PublicKey& key, std::string_view sig) {
  std::string id = key.keytype() + '\n' + key.scheme() + '\n' + key.public_value() + '\n';
  id += sig;
  entries_.insert(std::move(id));
}

namespace {

Status VerifyThresholdOver(std::string_view signed_bytes, std::string_view raw_signed_bytes,
                           const std::vector<Signature>& signatures, const std::map<std::string, PublicKey>& keys,
                           const RoleKeys& role, std::string_view role_name, VerifiedSignatures* cache) {
  std::set<std::string> allowed(role.keyids.begin(), role.keyids.end());
  std::set<std::string> good;
  std::string last_error;
  for (const auto& s : signatures) {
    if (!allowed.count(s.keyid) || good.count(s.keyid)) continue;
    auto k = keys.find(s.keyid);
    if (k == keys.end()) continue;
    if (cache && cache->Contains(k->second, s.sig)) {
      good.insert(s.keyid);
      continue;
    }
    Status v = k->second.Verify(signed_bytes, s.sig);
    if (v.ok()) {
      good.insert(s.keyid);
      if (cache) cache->Add(k->second, s.sig);
    } else {
      last_error = v.message();
    }
  }
  if (static_cast<int>(good.size()) >= role.threshold) return Status::OK();
  if (!raw_signed_bytes.empty()) {
    for (const auto& s : signatures) {
      auto k = keys.find(s.keyid);
      if (allowed.count(s.keyid) && !good.count(s.keyid) && k != keys.end() &&
          k->second.Verify(raw_signed_bytes, s.sig).ok())
        return Status(ErrorCode::kNonCanonical,
                      std::string(role_name) + " metadata is signed over non-canonical bytes (key " +
                          s.keyid.substr(0, 16) + "); TUF signatures cover the canonical JSON of \"signed\": "
                          "re-sign it with a canonicalising tool (e.g. `patchgate refresh --force`)");
    }
  }
  std::string msg = std::string(role_name) + " metadata has " + std::to_string(good.size()) +
                    " valid signature(s) from distinct authorised keys; " +
                    std::to_string(role.threshold) + " required";
  if (!last_error.empty()) msg += " (" + last_error + ")";
  return Status(ErrorCode::kUnmetThreshold, msg);
}

}  // namespace

Status VerifyThreshold(const Envelope& env, const std::map<std::string, PublicKey>& keys, const RoleKeys& role,
                       std::string_view role_name, VerifiedSignatures* cache) {
  return VerifyThresholdOver(env.signed_bytes, env.raw_signed_bytes, env.signatures, keys, role, role_name, cache);
}

Status VerifyThreshold(std::string_view signed_bytes, const std::vector<Signature>& signatures,
                       const std::map<std::string, PublicKey>& keys, const RoleKeys& role,
                       std::string_view role_name, VerifiedSignatures* cache) {
  return VerifyThresholdOver(signed_bytes, {}, signatures, keys, role, role_name, cache);
}

Result<Common> ParseCommon(const Json& s, RoleType expected) {
  std::string_view name = RoleTypeName(expected);
  PG_ASSIGN_OR_RETURN(std::string type, GetString(s, "_type", name));
  if (type != name)
    return Status(ErrorCode::kWrongRole, "expected " + std::string(name) + " metadata, got \"" + type.substr(0, 32) + "\"");
  Common c;
  c.type = expected;
  PG_ASSIGN_OR_RETURN(c.spec_version, GetString(s, "spec_version", name));
  auto dot = c.spec_version.find('.');
  if (c.spec_version.substr(0, dot) != "1")
    return Status(ErrorCode::kBadSpecVersion, std::string(name) + " metadata has spec_version \"" +
                                                  c.spec_version.substr(0, 32) + "\"; this client supports 1.x");
  PG_ASSIGN_OR_RETURN(c.version, GetInt(s, "version", name));
  if (c.version < 1) return Corrupt(std::string(name) + ": version must be >= 1");
  PG_ASSIGN_OR_RETURN(std::string expires, GetString(s, "expires", name));
  auto e = ParseRfc3339(expires);
  if (!e.ok()) return Corrupt(std::string(name) + ": bad expires: " + e.status().message());
  c.expires = *e;
  return c;
}

Status CheckNotExpired(const Common& c, const Clock& clock, std::string_view role_name) {
  if (clock.NowUnix() >= c.expires)
    return Status(ErrorCode::kExpired, std::string(role_name) + " metadata version " + std::to_string(c.version) +
                                           " expired at " + FormatRfc3339(c.expires) +
                                           " (a freeze attack, or the repository needs `patchgate refresh`)");
  return Status::OK();
}

Result<Root> Root::FromSigned(const Json& s) {
  Root r;
  PG_ASSIGN_OR_RETURN(r.common, ParseCommon(s, RoleType::kRoot));
  const Json* cs = Field(s, "consistent_snapshot");
  if (cs && !cs->is_boolean()) return Corrupt("root: consistent_snapshot is not a boolean");
  r.consistent_snapshot = cs ? cs->get<bool>() : false;
  const Json* keys = Field(s, "keys");
  const Json* roles = Field(s, "roles");
  if (!keys || !roles || !roles->is_object()) return Corrupt("root: needs keys and roles objects");
  PG_ASSIGN_OR_RETURN(r.keys, ParseKeys(*keys, "root"));
  for (const char* role : {"root", "timestamp", "snapshot", "targets"}) {
    const Json* rj = Field(*roles, role);
    if (!rj) return Corrupt(std::string("root: no \"") + role + "\" role");
    PG_ASSIGN_OR_RETURN(RoleKeys rk, ParseRoleKeys(*rj, std::string("root role ") + role));
    r.roles[role] = std::move(rk);
  }
  return r;
}

Result<MetaFile> ParseMetaFile(const Json& j) {
  if (!j.is_object()) return Corrupt("meta entry is not an object");
  MetaFile m;
  PG_ASSIGN_OR_RETURN(m.version, GetInt(j, "version", "meta"));
  if (m.version < 1) return Corrupt("meta: version must be >= 1");
  if (const Json* l = Field(j, "length")) {
    if (!l->is_number_unsigned() && !(l->is_number_integer() && l->get<int64_t>() >= 0))
      return Corrupt("meta: length must be a non-negative integer");
    m.length = l->get<uint64_t>();
  }
  if (const Json* h = Field(j, "hashes")) {
    PG_ASSIGN_OR_RETURN(m.hashes, ParseHashes(*h, "meta"));
  }
  return m;
}

Result<Timestamp> Timestamp::FromSigned(const Json& s) {
  Timestamp t;
  PG_ASSIGN_OR_RETURN(t.common, ParseCommon(s, RoleType::kTimestamp));
  const Json* meta = Field(s, "meta");
  if (!meta || !meta->is_object() || !meta->contains("snapshot.json"))
    return Corrupt("timestamp: meta must describe snapshot.json");
  PG_ASSIGN_OR_RETURN(t.snapshot, ParseMetaFile((*meta)["snapshot.json"]));
  return t;
}

Result<Snapshot> Snapshot::FromSigned(const Json& s) {
  Snapshot sn;
  PG_ASSIGN_OR_RETURN(sn.common, ParseCommon(s, RoleType::kSnapshot));
  const Json* meta = Field(s, "meta");
  if (!meta || !meta->is_object()) return Corrupt("snapshot: meta is not an object");
  if (meta->size() > kMaxDelegatedRoles + 1) return TooLarge("snapshot: too many roles");
  for (auto it = meta->begin(); it != meta->end(); ++it) {
    PG_ASSIGN_OR_RETURN(MetaFile m, ParseMetaFile(it.value()));
    sn.meta.emplace(it.key(), std::move(m));
  }
  if (!sn.meta.count("targets.json")) return Corrupt("snapshot: meta has no targets.json");
  return sn;
}

Result<TargetFile> ParseTargetFile(const Json& j) {
  if (!j.is_object()) return Corrupt("target entry is not an object");
  TargetFile t;
  const Json* l = Field(j, "length");
  if (!l || !(l->is_number_unsigned() || (l->is_number_integer() && l->get<int64_t>() >= 0)))
    return Corrupt("target: length must be a non-negative integer");
  t.length = l->get<uint64_t>();
  const Json* h = Field(j, "hashes");
  if (!h) return Corrupt("target: no hashes");
  PG_ASSIGN_OR_RETURN(t.hashes, ParseHashes(*h, "target"));
  if (const Json* c = Field(j, "custom")) t.custom = *c;
  return t;
}

Result<TargetFile> ParseTargetFile(Json&& j) {
  // The same checks; the custom object (most of an entry's nodes) is moved, not copied.
  Json custom;
  if (j.is_object()) {
    auto c = j.find("custom");
    if (c != j.end()) {
      custom = std::move(*c);
      j.erase(c);
    }
  }
  PG_ASSIGN_OR_RETURN(TargetFile t, ParseTargetFile(static_cast<const Json&>(j)));
  t.custom = std::move(custom);
  return t;
}

namespace {

Result<Delegations> ParseDelegations(const Json& d) {
  if (!d.is_object()) return Corrupt("delegations is not an object");
  Delegations out;
  const Json* keys = Field(d, "keys");
  if (!keys) return Corrupt("delegations: no keys");
  PG_ASSIGN_OR_RETURN(out.keys, ParseKeys(*keys, "delegations"));
  const Json* roles = Field(d, "roles");
  const Json* succinct = Field(d, "succinct_roles");
  if ((roles != nullptr) == (succinct != nullptr))
    return Corrupt("delegations: exactly one of roles and succinct_roles is required");
  if (roles) {
    if (!roles->is_array()) return Corrupt("delegations: roles is not an array");
    if (roles->size() > kMaxDelegatedRoles) return TooLarge("delegations: too many roles");
    std::set<std::string> names;
    for (const auto& r : *roles) {
      DelegatedRole dr;
      PG_ASSIGN_OR_RETURN(dr.name, GetString(r, "name", "delegated role"));
      if (!names.insert(dr.name).second) return Corrupt("delegations: duplicate role name " + dr.name);
      if (dr.name == "root" || dr.name == "timestamp" || dr.name == "snapshot" || dr.name == "targets")
        return Corrupt("delegations: a delegated role cannot be named " + dr.name);
      PG_ASSIGN_OR_RETURN(dr.keys, ParseRoleKeys(r, "delegated role " + dr.name));
      const Json* term = Field(r, "terminating");
      if (!term || !term->is_boolean()) return Corrupt("delegated role " + dr.name + ": terminating must be a boolean");
      dr.terminating = term->get<bool>();
      const Json* paths = Field(r, "paths");
      const Json* prefixes = Field(r, "path_hash_prefixes");
      if (paths && prefixes) return Corrupt("delegated role " + dr.name + ": both paths and path_hash_prefixes");
      const Json* list = paths ? paths : prefixes;
      if (list) {
        if (!list->is_array()) return Corrupt("delegated role " + dr.name + ": paths is not an array");
        for (const auto& p : *list) {
          if (!p.is_string()) return Corrupt("delegated role " + dr.name + ": path is not a string");
          (paths ? dr.paths : dr.path_hash_prefixes).push_back(p.get<std::string>());
        }
      }
      out.roles.push_back(std::move(dr));
    }
  } else {
    SuccinctRoles s;
    PG_ASSIGN_OR_RETURN(s.keys, ParseRoleKeys(*succinct, "succinct_roles"));
    PG_ASSIGN_OR_RETURN(int64_t bits, GetInt(*succinct, "bit_length", "succinct_roles"));
    if (bits < 1 || bits > 32) return Corrupt("succinct_roles: bit_length must be 1..32");
    s.bit_length = static_cast<int>(bits);
    PG_ASSIGN_OR_RETURN(s.name_prefix, GetString(*succinct, "name_prefix", "succinct_roles"));
    out.succinct = std::move(s);
  }
  return out;
}

Result<Targets> ParseTargets(const Json& s, bool with_targets) {
  Targets t;
  PG_ASSIGN_OR_RETURN(t.common, ParseCommon(s, RoleType::kTargets));
  const Json* targets = Field(s, "targets");
  if (!targets || !targets->is_object()) return Corrupt("targets: \"targets\" is not an object");
  if (with_targets) {
    for (auto it = targets->begin(); it != targets->end(); ++it) {
      auto tf = ParseTargetFile(it.value());
      if (!tf.ok()) return tf.status().WithContext("target " + it.key().substr(0, 128));
      t.targets.emplace_hint(t.targets.end(), it.key(), std::move(*tf));
    }
  }
  if (const Json* d = Field(s, "delegations")) {
    PG_ASSIGN_OR_RETURN(Delegations del, ParseDelegations(*d));
    t.delegations = std::move(del);
  }
  return t;
}

}  // namespace

Result<LazyTargets> LazyTargets::Parse(std::string_view text, uint64_t max_bytes) {
  if (text.size() > max_bytes)
    return TooLarge("metadata of " + std::to_string(text.size()) + " bytes is over the cap of " +
                    std::to_string(max_bytes));
  // One pass validates the whole text and records where the members of the envelope and
  // of "signed" are.
  cjson::ScannedMembers m;
  if (!cjson::ScanCanonical(text, "signed", &m)) return Unsupported("not canonical JSON: parse it with Envelope::Parse");
  auto find = [](const std::vector<cjson::RawMember>& members, std::string_view key) -> std::optional<std::string_view> {
    for (const auto& member : members)
      if (member.key == key) return member.value;  // the keys looked up here need no escapes
    return std::nullopt;
  };
  auto sigs_text = find(m.top, "signatures");
  auto signed_text = find(m.top, "signed");
  if (!sigs_text || !signed_text || signed_text->empty() || signed_text->front() != '{')
    return Corrupt("metadata needs a \"signatures\" array and a \"signed\" object");
  LazyTargets out;
  // Reuse the envelope parser for the (small) signature list and its checks.
  {
    std::string shell = "{\"signatures\":" + std::string(*sigs_text) + ",\"signed\":{}}";
    PG_ASSIGN_OR_RETURN(Envelope sig_only, Envelope::Parse(shell, max_bytes));
    out.signatures = std::move(sig_only.signatures);
  }
  out.signed_offset = static_cast<size_t>(signed_text->data() - text.data());
  out.signed_size = signed_text->size();
  Json small = Json::object();
  for (const char* key : {"_type", "delegations", "expires", "spec_version", "version"}) {
    auto member = find(m.nested, key);
    if (!member) continue;  // ParseCommon names what is missing
    PG_ASSIGN_OR_RETURN(Json v, cjson::Parse(*member));
    small[key] = std::move(v);
  }
  auto targets = find(m.nested, "targets");
  if (!targets || targets->empty() || targets->front() != '{')
    return Corrupt("targets: \"targets\" is not an object");
  out.targets_offset = static_cast<size_t>(targets->data() - text.data());
  out.targets_size = targets->size();
  small["targets"] = Json::object();
  PG_ASSIGN_OR_RETURN(out.parsed, Targets::FromSignedWithoutTargets(small));
  out.signed_json = std::move(small);
  return out;
}

Result<std::optional<TargetFile>> FindTargetInCanonical(std::string_view targets_object, std::string_view path) {
  auto entry = cjson::MemberSlice(targets_object, path);
  if (!entry.ok()) {
    if (entry.status().code() == ErrorCode::kNotFound) return std::optional<TargetFile>();
    return entry.status();
  }
  PG_ASSIGN_OR_RETURN(Json j, cjson::Parse(*entry));
  auto tf = ParseTargetFile(j);
  if (!tf.ok()) return tf.status().WithContext("target " + std::string(path.substr(0, 128)));
  return std::optional<TargetFile>(std::move(*tf));
}

namespace {

// One entry of a canonical targets object, from its text, with the checks of
// ParseTargetFile: only the members it reads are parsed (custom only when asked for).
// nullopt: not the plain shape this reads.
std::optional<Result<TargetFile>> ParseCanonicalEntry(std::string_view entry, bool with_custom) {
  cjson::ScannedMembers m;
  if (entry.empty() || entry.front() != '{' || !cjson::ScanCanonical(entry, "hashes", &m)) return std::nullopt;
  Json j = Json::object();
  for (const auto& member : m.top) {
    // Canonical JSON escapes only '"' and '\\': these names have a single spelling.
    if (member.key != "length" && member.key != "hashes" && (member.key != "custom" || !with_custom)) continue;
    auto v = cjson::Parse(member.value, {.max_bytes = kMaxTargetsBytes, .max_depth = 64});
    if (!v.ok()) return Result<TargetFile>(v.status());
    j.emplace(std::string(member.key), std::move(*v));
  }
  return ParseTargetFile(std::move(j));
}

}  // namespace

Result<std::optional<std::map<std::string, TargetFile>>> ReadCanonicalTargets(std::string_view targets_object,
                                                                             bool with_custom) {
  using Out = std::optional<std::map<std::string, TargetFile>>;
  cjson::ScannedMembers members;
  if (!cjson::ScanCanonical(targets_object, {}, &members)) return Out();
  std::map<std::string, TargetFile> out;
  for (const auto& member : members.top) {
    auto tf = ParseCanonicalEntry(member.value, with_custom);
    if (!tf) return Out();
    // A key's raw text: canonical JSON escapes only '"' and '\\' (each as a backslash and
    // the character itself).
    std::string path;
    path.reserve(member.key.size());
    for (size_t i = 0; i < member.key.size(); ++i) {
      if (member.key[i] == '\\' && i + 1 < member.key.size()) ++i;
      path.push_back(member.key[i]);
    }
    if (!tf->ok()) return tf->status().WithContext("target " + path.substr(0, 128));
    out.emplace_hint(out.end(), std::move(path), std::move(**tf));
  }
  return Out(std::move(out));
}

Result<std::optional<TargetFile>> LazyTargets::Find(std::string_view text, std::string_view path) const {
  return FindTargetInCanonical(TargetsText(text), path);
}

Result<Targets> Targets::FromSigned(const Json& s) { return ParseTargets(s, true); }
Result<Targets> Targets::FromSignedWithoutTargets(const Json& s) { return ParseTargets(s, false); }

Status CheckMetaFile(const MetaFile& m, std::string_view data, std::string_view what) {
  if (m.length && *m.length != data.size())
    return Status(ErrorCode::kLengthMismatch, std::string(what) + " is " + std::to_string(data.size()) +
                                                  " bytes; the signed length is " + std::to_string(*m.length));
  for (const auto& [alg, expected] : m.hashes) {
    auto h = Hasher::Create(alg);
    if (!h.ok()) continue;  // unknown algorithms are skipped; at least one must be known
    h->Update(data);
    if (!ConstantTimeEquals(h->FinalHex(), expected))
      return Status(ErrorCode::kHashMismatch, std::string(what) + " does not match its signed " + alg + " hash");
  }
  return Status::OK();
}

bool PathPatternMatches(std::string_view pattern, std::string_view path) {
  // Same number of '/'-separated components, each matched with fnmatch (python-tuf).
  auto split = [](std::string_view s) {
    std::vector<std::string> parts;
    size_t start = 0;
    for (;;) {
      size_t pos = s.find('/', start);
      parts.emplace_back(s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
      if (pos == std::string_view::npos) break;
      start = pos + 1;
    }
    return parts;
  };
  auto pp = split(pattern), tp = split(path);
  if (pp.size() != tp.size()) return false;
  for (size_t i = 0; i < pp.size(); ++i)
    if (::fnmatch(pp[i].c_str(), tp[i].c_str(), 0) != 0) return false;
  return true;
}

bool DelegatedRole::Matches(const std::string& target_path) const {
  if (!path_hash_prefixes.empty()) {
    std::string h = Sha256Hex(target_path);
    for (const auto& p : path_hash_prefixes)
      if (h.compare(0, p.size(), p) == 0) return true;
    return false;
  }
  for (const auto& p : paths)
    if (PathPatternMatches(p, target_path)) return true;
  return false;
}

std::string SuccinctRoles::BinName(int index) const {
  int hex_digits = (bit_length + 3) / 4;
  char buf[16];
  std::snprintf(buf, sizeof buf, "%0*x", hex_digits, index);
  return name_prefix + "-" + buf;
}

std::string SuccinctRoles::BinFor(const std::string& target_path) const {
  std::string h = Sha256Hex(target_path);
  uint32_t first = static_cast<uint32_t>(std::stoul(h.substr(0, 8), nullptr, 16));
  int index = static_cast<int>(first >> (32 - bit_length));
  return BinName(index);
}

bool SameListing(const MetaFile& a, const MetaFile& b) {
  return a.version == b.version && a.length == b.length && a.hashes == b.hashes;
}

std::string DelegationPrint(const std::map<std::string, PublicKey>& keys, const RoleKeys& rk,
                            const std::optional<DelegatedRole>& delegation) {
  std::string p = "threshold=" + std::to_string(rk.threshold);
  for (const auto& id : rk.keyids) {
    p += "\nkey " + id + "=";
    if (auto k = keys.find(id); k != keys.end()) p += k->second.ToJson().dump();
  }
  if (delegation) {
    p += "\nterminating=" + std::to_string(delegation->terminating);
    for (const auto& g : delegation->paths) p += "\npath " + g;
    for (const auto& h : delegation->path_hash_prefixes) p += "\nprefix " + h;
  }
  return p;
}

}  // namespace patchgate::tuf
