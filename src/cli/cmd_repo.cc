// `patchgate init | key rotate | publish | refresh | verify`: the signed repository.
#include <cstdio>
#include <memory>
#include <optional>

#include "cli/commands.h"
#include "cli/common_flags.h"
#include "core/clock.h"
#include "core/text.h"
#include "tuf/repository.h"

namespace patchgate::cli {

namespace {

struct RepoFlags {
  KeyFlags keys;
  // init
  std::string dir;
  std::string root_keys_dir;
  int root_threshold = 1, root_keys = 1;
  std::string key_type = "ed25519";
  int expires_root = 365, expires_targets = 365, expires_snapshot = 7, expires_timestamp = 1;
  int bins_threshold = 1024, bin_bits = 8;
  // publish
  std::string product, version;
  bool replace = false;
  std::vector<std::string> files;
  // key rotate
  std::string role;
  std::optional<int> new_threshold, new_keys;
  // refresh
  bool force = false;
  int64_t margin_hours = 24;
};

int RunInit(RepoFlags& f) {
  tuf::InitOptions o;
  o.dir = f.dir;
  o.root_keys_dir = f.root_keys_dir;
  o.root_threshold = f.root_threshold;
  o.root_keys = f.root_keys;
  auto kt = ParseKeyType(f.key_type);
  if (!kt.ok()) return ReportError(kt.status());
  o.key_type = *kt;
  o.expiry = {f.expires_root, f.expires_targets, f.expires_snapshot, f.expires_timestamp};
  o.bins_threshold = f.bins_threshold;
  o.bin_bits = f.bin_bits;
  auto access = f.keys.Access(/*confirm=*/true);
  if (!access.ok()) return ReportError(access.status());
  Status st = tuf::InitRepository(o, *access, SystemClock::Get());
  if (!st.ok()) return ReportError(st);
  std::printf("created repository %s\n  metadata: %s/metadata (serve this)\n  targets:  %s/targets (serve this)\n"
              "  root keys (keep offline): %s\n",
              o.dir.c_str(), o.dir.c_str(), o.dir.c_str(),
              (o.root_keys_dir.empty() ? o.dir + ".root-keys" : o.root_keys_dir).c_str());
  return kExitOk;
}

int RunPublish(RepoFlags& f, const PrePublishHookFactory& hook_factory) {
  tuf::PublishOptions o;
  o.dir = f.dir;
  o.product = f.product;
  o.version = f.version;
  o.replace = f.replace;
  if (hook_factory) {
    auto hook = hook_factory(f.dir);
    if (!hook.ok()) return ReportError(hook.status());
    o.hook = *hook;
    o.max_input_bytes = PublishGateMaxFileSize();
  }
  auto access = f.keys.Access(false);
  if (!access.ok()) return ReportError(access.status());
  auto r = tuf::Publish(o, f.files, *access, SystemClock::Get());
  if (!r.ok()) return ReportError(r.status());
  for (const auto& t : *r)
    std::printf("%s %s  %s  %llu bytes\n", t.unchanged ? "unchanged" : "published", EscapeForTerminal(t.path).c_str(),
                t.sha256.c_str(), static_cast<unsigned long long>(t.length));
  return kExitOk;
}

int RunRotate(RepoFlags& f) {
  tuf::RotateOptions o{f.dir, f.role, f.new_threshold, f.new_keys};
  auto access = f.keys.Access(false);
  if (!access.ok()) return ReportError(access.status());
  Status st = tuf::RotateKey(o, *access, SystemClock::Get());
  if (!st.ok()) return ReportError(st);
  std::printf("rotated the key of %s\n", f.role.c_str());
  return kExitOk;
}

int RunRefresh(RepoFlags& f) {
  auto access = f.keys.Access(false);
  if (!access.ok()) return ReportError(access.status());
  auto r = tuf::Refresh(f.dir, f.force, f.margin_hours * 3600, *access, SystemClock::Get());
  if (!r.ok()) return ReportError(r.status());
  std::printf(*r ? "re-signed timestamp%s\n" : "nothing due%s\n", *r ? " (and snapshot when due)" : "");
  return kExitOk;
}

int RunVerify(RepoFlags& f) {
  auto r = tuf::VerifyRepository(f.dir, SystemClock::Get());
  if (!r.ok()) return ReportError(r.status());
  for (const auto& p : r->problems) std::printf("PROBLEM %s\n", EscapeForTerminal(p).c_str());
  for (const auto& n : r->notes) std::printf("NOTE %s\n", EscapeForTerminal(n).c_str());
  std::printf("%s: root v%lld, timestamp v%lld, snapshot v%lld; %zu roles and %zu targets checked; %zu problem(s)\n",
              f.dir.c_str(), static_cast<long long>(r->root_version), static_cast<long long>(r->timestamp_version),
              static_cast<long long>(r->snapshot_version), r->roles_checked, r->targets_checked, r->problems.size());
  return r->problems.empty() ? kExitOk : kExitFailure;
}

}  // namespace

void RegisterRepoCommands(CLI::App& app, Context& ctx) {
  auto f = std::make_shared<RepoFlags>();

  auto* init = app.add_subcommand("init", "Create a TUF repository (keys, root, targets, snapshot, timestamp)");
  init->add_option("DIR", f->dir, "Repository directory (must be new or empty)")->required();
  init->add_option("--root-keys-dir,--offline-keys", f->root_keys_dir, "Where root keys go (default DIR.root-keys; keep offline)");
  init->add_option("--root-threshold", f->root_threshold, "Root signatures required (K of N)")->check(CLI::PositiveNumber);
  init->add_option("--root-keys", f->root_keys, "Number of root keys (N)")->check(CLI::PositiveNumber);
  init->add_option("--key-type", f->key_type, "ed25519 (default), ecdsa or rsa");
  init->add_option("--expires-root", f->expires_root, "Days until root expires");
  init->add_option("--expires-targets", f->expires_targets, "Days until targets roles expire");
  init->add_option("--expires-snapshot", f->expires_snapshot, "Days until snapshot expires");
  init->add_option("--expires-timestamp", f->expires_timestamp, "Days until timestamp expires");
  init->add_option("--bins-threshold", f->bins_threshold, "Split a product into hash bins past this many targets");
  init->add_option("--bin-bits", f->bin_bits, "Hash bins per split product: 2^bits");
  f->keys.Add(init);
  init->final_callback([f, &ctx] { ctx.exit_code = RunInit(*f); });

  auto* publish = app.add_subcommand("publish", "Scan, hash, sign and publish files as targets of a product");
  publish->add_option("DIR", f->dir, "Repository directory")->required();
  publish->add_option("--product", f->product, "Product the files belong to (role product.<name>)")->required();
  publish->add_option("--version", f->version, "Product version recorded in the targets' custom metadata");
  publish->add_flag("--replace", f->replace, "Allow publishing new bytes under an existing name");
  publish->add_option("FILE", f->files, "Files to publish")->required();
  f->keys.Add(publish);
  AddPublishGateFlags(publish);
  publish->final_callback([f, &ctx] { ctx.exit_code = RunPublish(*f, PublishGateHookFactory()); });

  auto* key = app.add_subcommand("key", "Manage signing keys");
  key->require_subcommand(1);
  auto* rotate = key->add_subcommand("rotate", "Replace the key(s) of a role and re-sign what depends on it");
  rotate->add_option("DIR", f->dir, "Repository directory")->required();
  rotate->add_option("--role", f->role, "root, timestamp, snapshot, targets or product.<name>")->required();
  rotate->add_option("--threshold", f->new_threshold, "New threshold (root)");
  rotate->add_option("--keys", f->new_keys, "New number of keys (root)");
  f->keys.Add(rotate);
  rotate->final_callback([f, &ctx] { ctx.exit_code = RunRotate(*f); });

  auto* refresh = app.add_subcommand("refresh", "Re-sign timestamp (and snapshot) before they expire");
  refresh->add_option("DIR", f->dir, "Repository directory")->required();
  refresh->add_flag("--force", f->force, "Re-sign snapshot and timestamp now");
  refresh->add_option("--margin-hours", f->margin_hours, "Re-sign what expires within this many hours (default 24)");
  f->keys.Add(refresh);
  refresh->final_callback([f, &ctx] { ctx.exit_code = RunRefresh(*f); });

  auto* verify = app.add_subcommand("verify", "Check the whole signed chain and every target file; exit 1 on any problem");
  verify->add_option("DIR", f->dir, "Repository directory")->required();
  verify->final_callback([f, &ctx] { ctx.exit_code = RunVerify(*f); });
}

}  // namespace patchgate::cli
