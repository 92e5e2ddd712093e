// `patchgate serve`: the download server on the store.
#include <csignal>
#include <cstdio>
#include <thread>

#include <fstream>

#include "advisory/openpgp.h"
#include "advisory/provider.h"
#include "advisory/runner.h"
#include "cli/commands.h"
#include "cli/common_flags.h"
#include "cli/serve_flags.h"
#include "core/log.h"
#include "mirror/node_runtime.h"
#include "crypto/keys.h"
#include "notify/transport.h"
#include "server/server.h"

namespace patchgate::cli {

namespace {

struct ServeFlags {
  std::string store;
  ServingFlags serving;              // --listen, TLS, deadlines, caps... (shared with `mirror`)
  server::ServerOptions& o = serving.o;
  bool watch = false;
  std::string signatures;
  int verify_interval = 600;
  // The CSAF provider and the advisory due-step runner (src/advisory).
  std::string csaf_base_url, publisher = "patchgate vendor", publisher_namespace = "https://vendor.example",
              contact = "mailto:psirt@vendor.example";
  std::string smtp, sender, ack_base_url, webhook_secret_file;
  std::optional<std::string> passphrase_file;
  int due_interval = 30;
};

int RunServe(ServeFlags& f) {
  const sigset_t set = BlockTerminationSignals();

  auto store = OpenStore(f.store);
  if (!store.ok()) return ReportError(store.status());
  // A second connection for token and entitlement look-ups, so they never wait for an
  // audit commit's fsync (SQLite WAL readers run beside the writer). An in-memory SQLite
  // database is private to its connection, so it is shared instead.
  std::unique_ptr<Store> reads;
  if ((*store)->engine() != "sqlite" || f.store.find(":memory:") == std::string::npos) {
    auto r = OpenStore(f.store);
    if (!r.ok()) return ReportError(r.status());
    reads = std::move(*r);
  }
  // The node runtime: downstream mirrors authenticate here, heartbeat and compliance,
  // optional integrity watch and scanner. It needs a store other processes can share.
  mirror::NodeOptions no;
  no.name = f.o.node_name;
  no.role = "origin";
  no.dir = f.o.repo_dir;
  no.store_url = f.store;
  no.tls = !f.o.tls_cert.empty();
  no.watch = f.watch;
  no.signatures_dir = f.signatures;
  no.verify_interval_seconds = f.verify_interval;
  std::unique_ptr<mirror::NodeRuntime> runtime;
  if (auto rt = mirror::NodeRuntime::Create(no, store->get(), nullptr); rt.ok()) {
    runtime = std::move(*rt);
    f.o.chain = runtime->Hooks();
  } else if (f.watch || !f.signatures.empty()) {
    return ReportError(rt.status().WithContext("--watch/--signatures need the node registry"));
  } else {
    log::Warn("no node registry: mirrors cannot pull from this node", {{"error", rt.status().ToString()}});
  }
  // The CSAF provider under /.well-known/ (embargo-aware), on the read connection.
  advisory::Publisher pub;
  pub.name = f.publisher;
  pub.namespace_url = f.publisher_namespace;
  pub.contact = f.contact;
  pub.base_url = f.csaf_base_url.empty() ? (f.o.tls_cert.empty() ? "http://" : "https://") + f.o.listen : f.csaf_base_url;
  while (!pub.base_url.empty() && pub.base_url.back() == '/') pub.base_url.pop_back();
  std::string home = advisory::GnupgHomeOf(f.o.repo_dir);
  auto provider = std::make_shared<advisory::Provider>(reads ? reads.get() : store->get(), pub, home, &SystemClock::Get());
  f.o.extra_route = [provider](const std::string& method, const std::string& target,
                               int64_t org) -> std::optional<server::ServerOptions::ExtraResponse> {
    auto r = provider->Handle(method, target, org);
    if (!r) return std::nullopt;
    return server::ServerOptions::ExtraResponse{r->status, r->headers, r->body};
  };
  // With delivery flags, this origin also runs the advisories' due steps.
  std::unique_ptr<advisory::DueRunner> due;
  if (!f.smtp.empty()) {
    advisory::RunOptions ro;
    ro.publisher = pub;
    ro.delivery.from = f.sender;
    ro.delivery.ack_base_url = f.ack_base_url.empty() ? pub.base_url : f.ack_base_url;
    ro.delivery.parallel = 4;
    if (f.sender.empty()) return ReportError(InvalidArgument("--smtp needs --from ADDR"));
    if (!f.webhook_secret_file.empty()) {
      std::ifstream in(f.webhook_secret_file);
      if (!std::getline(in, ro.delivery.webhook_secret) || ro.delivery.webhook_secret.empty())
        return ReportError(InvalidArgument("cannot read a secret from " + f.webhook_secret_file));
    }
    ro.gnupg_home = home;
    ro.repo_dir = f.o.repo_dir;
    auto pass = ObtainPassphrase(f.passphrase_file, "OpenPGP signing key passphrase: ", false);
    if (!pass.ok()) return ReportError(pass.status());
    ro.passphrase = *pass;
    due = std::make_unique<advisory::DueRunner>(store->get(), notify::NewCurlTransport(f.smtp), ro, &SystemClock::Get(),
                                                f.due_interval);
  }
  auto options = f.serving.Options();
  if (!options.ok()) return ReportError(options.status());
  auto srv = server::Server::Create(*options, store->get(), reads.get());
  if (!srv.ok()) return ReportError(srv.status());
  Status st = (*srv)->Start();
  if (!st.ok()) return ReportError(st);
  if (runtime) {
    st = runtime->Start();
    if (!st.ok()) return ReportError(st);
  }
  std::fprintf(stderr, "patchgate serve: listening on port %d (node %s)\n", (*srv)->port(), f.o.node_name.c_str());
  server::Server* s = srv->get();
  std::thread signals([s, set] {
    int sig = 0;
    sigwait(&set, &sig);
    s->Stop();
  });
  signals.detach();
  s->Run();
  if (runtime) runtime->Stop();
  if (due) due->Stop();
  return kExitOk;
}

}  // namespace

void RegisterServeCommands(CLI::App& app, Context& ctx) {
  auto f = std::make_shared<ServeFlags>();
  auto* serve = app.add_subcommand("serve", "Serve the repository to authenticated, entitled customers, auditing every download");
  serve->add_option("--repo", f->o.repo_dir, "Repository directory (serves its metadata/ and targets/)")->required();
  AddStoreFlag(serve, &f->store);
  serve->add_option("--node-name", f->o.node_name, "This node's name in the audit trail (default origin)");
  f->serving.Add(serve, "IPv4:PORT to listen on (default 127.0.0.1:8443)");
  serve->add_flag("--watch", f->watch, "Integrity watch of the served tree (inotify plus a periodic full re-hash)");
  serve->add_option("--signatures", f->signatures, "ClamAV signature directory: scan this node's tree (isolated worker)");
  serve->add_option("--verify-interval", f->verify_interval, "Seconds between full re-hashes with --watch (default 600)");
  serve->add_option("--csaf-base-url", f->csaf_base_url, "Public origin of the CSAF provider (default: http(s)://LISTEN)");
  serve->add_option("--publisher", f->publisher, "Publisher name in CSAF documents");
  serve->add_option("--publisher-namespace", f->publisher_namespace, "Publisher namespace URL in CSAF documents");
  serve->add_option("--contact", f->contact, "security.txt / CSAF contact");
  serve->add_option("--smtp", f->smtp, "Run advisory due steps, sending through smtp://host:port or smtps://...");
  serve->add_option("--from", f->sender, "Sender address for advisory messages");
  serve->add_option("--ack-base-url", f->ack_base_url, "Base URL for acknowledgement links (default: the CSAF base URL)");
  serve->add_option("--webhook-secret-file", f->webhook_secret_file, "HMAC key for webhook signatures");
  serve->add_option("--passphrase-file", f->passphrase_file, "Passphrase of the OpenPGP signing key (DIR/keys/openpgp)");
  serve->add_option("--due-interval", f->due_interval, "Seconds between due-step passes (default 30)");
  serve->final_callback([f, &ctx] { ctx.exit_code = RunServe(*f); });
}

}  // namespace patchgate::cli
