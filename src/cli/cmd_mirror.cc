// `patchgate mirror`: a keyless node of the chain. Pulls from its upstream with the
// client's TUF workflow into DIR (src/mirror/sync.h), serves customers through the same
// Server as `patchgate serve` (token, entitlement, serve-time verification, audit before
// the first byte) under its own node name, and runs the node runtime (heartbeat,
// compliance, optional watch and scanner).
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <thread>

#include "cli/commands.h"
#include "cli/common_flags.h"
#include "cli/serve_flags.h"
#include "core/log.h"
#include "mirror/node_runtime.h"
#include "mirror/sync.h"
#include "server/server.h"

namespace patchgate::cli {

namespace {

struct MirrorFlags {
  std::string upstream, root, data, store, node_name, token, signatures;
  ServingFlags serving;  // --listen, TLS, deadlines, caps... (shared with `serve`)
  double sync_interval = 0.25;
  bool watch = false;
  int verify_interval = 600;
  int parallel = 8;
};

int RunMirror(MirrorFlags& f) {
  const sigset_t set = BlockTerminationSignals();

  if (f.token.empty())
    if (const char* t = std::getenv("PATCHGATE_NODE_TOKEN")) f.token = t;
  if (f.token.empty())
    return ReportError(InvalidArgument("give the node token from `patchgate node add` as --node-token or "
                                       "PATCHGATE_NODE_TOKEN"));
  if (f.sync_interval < 0.05 || f.sync_interval > 86400)
    return ReportError(InvalidArgument("--sync-interval must be between 0.05 and 86400 seconds"));
  if (f.verify_interval < 1) return ReportError(InvalidArgument("--verify-interval must be at least 1 second"));

  auto store = OpenStore(f.store);
  if (!store.ok()) return ReportError(store.status());

  mirror::SyncOptions so;
  so.upstream = f.upstream;
  so.root_file = f.root;
  so.data_dir = f.data;
  so.node_token = f.token;
  so.parallel = f.parallel;
  mirror::Syncer syncer(so);
  if (Status st = syncer.Open(); !st.ok()) return ReportError(st);
  // The first pass needs no store: it starts now, while the second store connection and
  // the node's registration are made (each a few round trips, or an fsync, on a busy host).
  std::future<Result<mirror::SyncPass>> first;
  if (syncer.served_snapshot_version() == 0)
    first = std::async(std::launch::async, [&syncer] { return syncer.SyncOnce(); });
  auto wait_first = [&first] {
    if (first.valid()) first.wait();
  };
  auto reads = OpenStore(f.store);
  if (!reads.ok()) {
    wait_first();
    return ReportError(reads.status());
  }

  mirror::NodeOptions no;
  no.name = f.node_name;
  no.role = "mirror";
  no.upstream = f.upstream;
  no.dir = f.data;
  no.store_url = f.store;
  no.tls = !f.serving.o.tls_cert.empty();
  no.watch = f.watch;
  no.verify_interval_seconds = f.verify_interval;
  no.signatures_dir = f.signatures;
  auto rt = mirror::NodeRuntime::Create(no, store->get(), &syncer);
  if (!rt.ok()) {
    wait_first();
    return ReportError(rt.status());
  }

  // Shared with the signal thread, which is detached and may outlive this function.
  auto stopping = std::make_shared<std::atomic<bool>>(false);
  std::thread signals([stopping, set] {
    int sig = 0;
    sigwait(&set, &sig);
    *stopping = true;
  });
  signals.detach();

  // A mirror with nothing verified yet serves nothing: the first pass must succeed.
  while (syncer.served_snapshot_version() == 0 && !*stopping) {
    auto pass = first.valid() ? first.get() : syncer.SyncOnce();
    if (pass.ok()) break;
    log::Error("initial sync failed; retrying", {{"upstream", f.upstream}, {"error", pass.status().ToString()}});
    (*rt)->ReportSync(false, pass.status().ToString());
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  if (*stopping) return kExitOk;

  auto options = f.serving.Options();
  if (!options.ok()) return ReportError(options.status());
  server::ServerOptions o = *options;
  o.repo_dir = f.data;
  o.node_name = f.node_name;
  o.chain = (*rt)->Hooks();
  auto srv = server::Server::Create(o, store->get(), reads->get());
  if (!srv.ok()) return ReportError(srv.status());
  if (Status st = (*srv)->Start(); !st.ok()) return ReportError(st);
  if (Status st = (*rt)->Start(); !st.ok()) return ReportError(st);
  std::fprintf(stderr, "patchgate mirror: listening on port %d (node %s, upstream %s)\n", (*srv)->port(),
               f.node_name.c_str(), f.upstream.c_str());

  server::Server* s = srv->get();
  mirror::NodeRuntime* runtime = rt->get();
  std::thread syncing([&] {
    auto interval = std::chrono::microseconds(static_cast<int64_t>(f.sync_interval * 1e6));
    std::string last_error;
    while (!*stopping) {
      auto pass = syncer.SyncOnce();
      if (pass.ok()) {
        runtime->ReportSync(true, "");
        if (!last_error.empty()) log::Info("upstream verifies again; sync resumed", {{"upstream", f.upstream}});
        last_error.clear();
      } else {
        std::string e = pass.status().ToString();
        runtime->ReportSync(false, e);
        if (e != last_error)
          log::Error("sync refused; keeping the last good snapshot (this node is stale)",
                     {{"upstream", f.upstream}, {"error", e},
                      {"serving_snapshot", std::to_string(syncer.served_snapshot_version())}});
        last_error = e;
      }
      std::this_thread::sleep_for(interval);
    }
    s->Stop();
  });
  s->Run();
  *stopping = true;
  syncing.join();
  runtime->Stop();
  return kExitOk;
}

}  // namespace

void RegisterMirrorCommands(CLI::App& app, Context& ctx) {
  auto f = std::make_shared<MirrorFlags>();
  auto* m = app.add_subcommand("mirror", "Run a keyless mirror: pull and verify from an upstream node, serve customers");
  m->add_option("--upstream", f->upstream, "URL of the upstream node (origin or another mirror)")->required();
  m->add_option("--root", f->root, "Trusted root metadata to start the chain of trust from (e.g. 1.root.json)")->required();
  m->add_option("--data", f->data, "Directory to mirror into (public layout: metadata/, targets/)")->required();
  AddStoreFlag(m, &f->store);
  m->add_option("--node-name", f->node_name, "This node's name (as added with `patchgate node add`)")->required();
  m->add_option("--node-token", f->token, "Node token for the upstream (default $PATCHGATE_NODE_TOKEN)");
  f->serving.Add(m, "IPv4:PORT to serve customers on (default 127.0.0.1:8443)");
  m->add_option("--sync-interval", f->sync_interval, "Seconds between conditional polls of upstream's timestamp.json (default 0.25)");
  m->add_flag("--watch", f->watch, "Integrity watch of DIR (inotify plus a periodic full re-hash)");
  m->add_option("--signatures", f->signatures, "ClamAV signature directory: scan this node's tree (isolated worker)");
  m->add_option("--verify-interval", f->verify_interval, "Seconds between full re-hashes with --watch (default 600)");
  m->add_option("--parallel", f->parallel, "Concurrent target downloads during a sync (default 8)");
  m->final_callback([f, &ctx] { ctx.exit_code = RunMirror(*f); });
}

}  // namespace patchgate::cli
