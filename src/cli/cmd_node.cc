// `patchgate node add|revoke`, `patchgate nodes`, `patchgate policy set|show`: the chain's
// node identities and fleet compliance (src/mirror/policy.h decides the states).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common_flags.h"
#include "core/clock.h"
#include "core/json_output.h"
#include "core/text.h"
#include "crypto/hash.h"
#include "mirror/policy.h"
#include "store/node_registry.h"

namespace patchgate::cli {

namespace {

struct NodeFlags {
  std::string store, name, role = "mirror", upstream;
  bool json = false;
  // policy
  bool require_scanner = false, require_watch = false, fence = false, no_fence = false;
  std::string max_signature_age, max_lag, max_heartbeat_age;
};

int WithRegistry(const std::string& url, const std::function<int(NodeRegistry&)>& fn) {
  auto r = NodeRegistry::Open(url);
  if (!r.ok()) return ReportError(r.status());
  return fn(**r);
}

int NodeAdd(NodeFlags& f) {
  if (f.role == "mirror" && f.upstream.empty())
    return ReportError(InvalidArgument("a mirror needs --upstream URL (the origin or another mirror)"));
  return WithRegistry(f.store, [&](NodeRegistry& reg) {
    std::string token = "pgn_" + HexEncode(RandomBytes(24));
    Status st = reg.AddNode(f.name, f.role, f.upstream, Sha256Hex(token));
    if (!st.ok()) return ReportError(st);
    std::fprintf(stderr, "added node %s (%s); its token is shown once, give it to the node "
                         "(--node-token or PATCHGATE_NODE_TOKEN):\n", f.name.c_str(), f.role.c_str());
    std::printf("%s\n", token.c_str());
    return kExitOk;
  });
}

int NodeRevoke(NodeFlags& f) {
  return WithRegistry(f.store, [&](NodeRegistry& reg) {
    Status st = reg.RevokeNode(f.name);
    if (!st.ok()) return ReportError(st);
    std::printf("revoked node %s: its token no longer pulls from any node\n", f.name.c_str());
    return kExitOk;
  });
}

std::string Age(int64_t micros, int64_t now) {
  if (micros <= 0) return "never";
  return mirror::FormatDuration(std::max<int64_t>(0, (now - micros) / 1'000'000)) + " ago";
}

int NodesCmd(NodeFlags& f) {
  return WithRegistry(f.store, [&](NodeRegistry& reg) {
    auto nodes = reg.ListNodes();
    if (!nodes.ok()) return ReportError(nodes.status());
    auto policy = reg.GetPolicy();
    if (!policy.ok()) return ReportError(policy.status());
    int64_t now = SystemClock::Get().NowMicros();
    if (f.json) {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& n : *nodes) {
        mirror::Compliance c = mirror::Evaluate(*policy, n, now);
        nlohmann::json j = {{"name", n.name}, {"role", n.role}, {"upstream", n.upstream},
                            {"state", c.state}, {"reasons", c.reasons}, {"revoked", n.revoked}};
        if (n.heartbeat) {
          const NodeHeartbeat& h = *n.heartbeat;
          j["heartbeat"] = {{"at", FormatRfc3339Micros(h.at)},
                            {"software_version", h.software_version},
                            {"snapshot_version", h.snapshot_version},
                            {"origin_snapshot_version", h.origin_snapshot_version},
                            {"lag_seconds", h.lag_seconds},
                            {"upstream_ok", h.upstream_ok},
                            {"upstream_error", h.upstream_error},
                            {"scanner_loaded", h.scanner_loaded},
                            {"signature_age_seconds", h.signature_age_seconds},
                            {"scan_infected", h.scan_infected},
                            {"watch_alive", h.watch_alive},
                            {"last_full_verify_at", h.last_full_verify_at ? FormatRfc3339Micros(h.last_full_verify_at) : ""},
                            {"last_full_verify_ok", h.last_full_verify_ok},
                            {"quarantine_pending", h.quarantine_pending},
                            {"tls", h.tls},
                            {"fenced", h.fenced}};
        } else {
          j["heartbeat"] = nullptr;
        }
        arr.push_back(std::move(j));
      }
      std::printf("%s\n", JsonText(arr).c_str());
      return kExitOk;
    }
    std::printf("%-16s %-7s %-9s %-8s %-7s %-5s %-14s %s\n", "NODE", "ROLE", "SNAPSHOT", "SCANNER", "WATCH", "TLS",
                "HEARTBEAT", "STATE");
    for (const auto& n : *nodes) {
      mirror::Compliance c = mirror::Evaluate(*policy, n, now);
      std::string state = c.state;
      if (!c.reasons.empty()) {
        state += " (";
        for (size_t i = 0; i < c.reasons.size(); ++i) state += (i ? "; " : "") + c.reasons[i];
        state += ")";
      }
      const NodeHeartbeat* h = n.heartbeat ? &*n.heartbeat : nullptr;
      std::printf("%-16s %-7s %-9s %-8s %-7s %-5s %-14s %s\n", EscapeForTerminal(n.name).c_str(),
                  EscapeForTerminal(n.role).c_str(),
                  h ? std::to_string(h->snapshot_version).c_str() : "-",
                  h ? (h->scanner_loaded ? "yes" : "no") : "-", h ? (h->watch_alive ? "alive" : "off") : "-",
                  h ? (h->tls ? "on" : "off") : "-", Age(h ? h->at : 0, now).c_str(), EscapeForTerminal(state).c_str());
    }
    return kExitOk;
  });
}

int NodeSyncs(NodeFlags& f) {
  return WithRegistry(f.store, [&](NodeRegistry& reg) {
    auto syncs = reg.ListSyncs(f.name);
    if (!syncs.ok()) return ReportError(syncs.status());
    if (f.json) {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& s : *syncs)
        arr.push_back({{"node", s.node}, {"what", s.what}, {"at", FormatRfc3339Micros(s.at)}, {"files", s.files},
                       {"bytes", s.bytes}});
      std::printf("%s\n", JsonText(arr).c_str());
      return kExitOk;
    }
    std::printf("%-27s %-16s %-10s %8s %12s\n", "AT", "NODE", "WHAT", "FILES", "BYTES");
    for (const auto& s : *syncs)
      std::printf("%-27s %-16s %-10s %8lld %12lld\n", FormatRfc3339Micros(s.at).c_str(),
                  EscapeForTerminal(s.node).c_str(), EscapeForTerminal(s.what).c_str(),
                  static_cast<long long>(s.files), static_cast<long long>(s.bytes));
    return kExitOk;
  });
}

int PolicySet(NodeFlags& f) {
  ChainPolicy p;
  p.require_scanner = f.require_scanner;
  p.require_watch = f.require_watch;
  p.fence = f.fence;
  for (auto [text, out, flag] : {std::tuple{&f.max_signature_age, &p.max_signature_age_seconds, "--max-signature-age"},
                                 std::tuple{&f.max_lag, &p.max_lag_seconds, "--max-lag"},
                                 std::tuple{&f.max_heartbeat_age, &p.max_heartbeat_age_seconds, "--max-heartbeat-age"}}) {
    if (text->empty()) continue;
    auto d = mirror::ParseDuration(*text);
    if (!d.ok()) return ReportError(d.status().WithContext(flag));
    *out = *d;
  }
  if (p.max_heartbeat_age_seconds < 1) return ReportError(InvalidArgument("--max-heartbeat-age must be at least 1s"));
  return WithRegistry(f.store, [&](NodeRegistry& reg) {
    Status st = reg.SetPolicy(p);
    if (!st.ok()) return ReportError(st);
    std::printf("policy: require-scanner=%s max-signature-age=%s require-watch=%s max-lag=%s max-heartbeat-age=%s "
                "fence=%s\n",
                p.require_scanner ? "yes" : "no",
                p.max_signature_age_seconds ? mirror::FormatDuration(p.max_signature_age_seconds).c_str() : "none",
                p.require_watch ? "yes" : "no", p.max_lag_seconds ? mirror::FormatDuration(p.max_lag_seconds).c_str() : "none",
                mirror::FormatDuration(p.max_heartbeat_age_seconds).c_str(), p.fence ? "yes" : "no");
    return kExitOk;
  });
}

}  // namespace

void RegisterNodeCommands(CLI::App& app, Context& ctx) {
  auto f = std::make_shared<NodeFlags>();
  auto* node = app.add_subcommand("node", "Nodes of the chain and their tokens");
  node->require_subcommand(1);
  auto* add = node->add_subcommand("add", "Add a node; prints its token once (only its hash is stored)");
  add->add_option("NAME", f->name, "Node name (letters, digits, '-', '_', '.')")->required();
  add->add_option("--role", f->role, "mirror (default) or origin")->check(CLI::IsMember({"mirror", "origin"}));
  add->add_option("--upstream", f->upstream, "URL the node pulls from (the origin or another mirror)");
  AddStoreFlag(add, &f->store);
  add->final_callback([f, &ctx] { ctx.exit_code = NodeAdd(*f); });
  auto* revoke = node->add_subcommand("revoke", "Revoke a node's token: it can no longer pull");
  revoke->add_option("NAME", f->name, "Node name")->required();
  AddStoreFlag(revoke, &f->store);
  revoke->final_callback([f, &ctx] { ctx.exit_code = NodeRevoke(*f); });

  auto* syncs = node->add_subcommand("syncs", "What a node pulled from its upstream (never counted as downloads)");
  syncs->add_option("NAME", f->name, "Node name")->required();
  syncs->add_flag("--json", f->json, "JSON output");
  AddStoreFlag(syncs, &f->store);
  syncs->final_callback([f, &ctx] { ctx.exit_code = NodeSyncs(*f); });

  auto* nodes = app.add_subcommand("nodes", "Every node with its compliance state: compliant, non-compliant (reasons), "
                                            "stale (no heartbeat) or quarantined");
  nodes->add_flag("--json", f->json, "JSON output");
  AddStoreFlag(nodes, &f->store);
  nodes->final_callback([f, &ctx] { ctx.exit_code = NodesCmd(*f); });

  auto* policy = app.add_subcommand("policy", "The fleet's compliance policy");
  policy->require_subcommand(1);
  auto* set = policy->add_subcommand("set", "Define compliance (flags not given are off / unlimited)");
  set->add_flag("--require-scanner", f->require_scanner, "Every node must scan its tree (--signatures)");
  set->add_option("--max-signature-age", f->max_signature_age, "Oldest allowed signature set, e.g. 24h");
  set->add_flag("--require-watch", f->require_watch, "Every node must run the integrity watch (--watch)");
  set->add_option("--max-lag", f->max_lag, "Longest a mirror may stay behind the origin, e.g. 10m");
  set->add_option("--max-heartbeat-age", f->max_heartbeat_age, "A node without a heartbeat this long is stale (default 2m)");
  set->add_flag("--fence", f->fence, "A non-compliant node answers customers 503 until it complies");
  AddStoreFlag(set, &f->store);
  set->final_callback([f, &ctx] { ctx.exit_code = PolicySet(*f); });
}

}  // namespace patchgate::cli
