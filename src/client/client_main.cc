// patchgate-client: a TUF 1.0 client and updater. The command-line shape is the one the
// public TUF conformance suite drives:
//   patchgate-client --metadata-dir DIR init TRUSTED_ROOT_FILE
//   patchgate-client --metadata-dir DIR --metadata-url URL refresh
//   patchgate-client --metadata-dir DIR --metadata-url URL --target-name PATH [--target-name PATH...]
//                    --target-base-url URL --target-dir DIR download
// Exit status: 0 on full success, 1 on any failure (2 for unusable arguments).
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "client/fetcher.h"
#include "client/http_fetcher.h"
#include "client/startup.h"
#include "client/updater.h"
#include "core/clock.h"
#include "core/fs.h"

namespace {

using namespace patchgate;


// The end of a run whose metadata writes are all flushed (FlushMetadataWrites returned
// OK): standard output flushed, then the process ends without running destructors. There
// is nothing left for them to do (every file is closed and durable, the connection is
// the kernel's to close), and freeing a 30,000-target role entry by entry is work
// the process ending does at once.
[[noreturn]] void ExitFlushed() {
  std::fflush(stdout);
  ::_exit(0);
}

int Fail(const Status& s) {
  std::fprintf(stderr, "patchgate-client: error: %s\n", s.ToString().c_str());
  return 1;
}

}  // namespace

// Heap populated at start (client/startup.h): a cold binned refresh and download fits in
// 512 KiB of it since OpenSSL builds neither its error texts nor its legacy name tables
// (195 page faults with 512 KiB or 1 MiB, 208 with 384 KiB); the rest is populated only
// when used. Each populated page costs about 1 us to map.
constexpr size_t kStartupHeapBytes = 512 << 10;

int main(int argc, char** argv) {
  client::PrefaultForShortRun(kStartupHeapBytes);
  CLI::App app{
      "patchgate-client: refresh signed TUF metadata and download only targets that match it.\n"
      "Nothing is installed or kept unless its length and hashes match the signed metadata."};
  app.require_subcommand(1);
  std::string metadata_dir, metadata_url, target_base_url, target_dir, token, install_hook, root_file;
  std::vector<std::string> target_names;
  app.add_option("--metadata-dir", metadata_dir, "Directory holding the trusted metadata")->required();
  app.add_option("--metadata-url", metadata_url, "Base URL of the repository's metadata");
  app.add_option("--target-name", target_names, "Target to download (repeatable; in order, stops at the first failure)");
  app.add_option("--target-base-url", target_base_url, "Base URL of the repository's targets");
  app.add_option("--target-dir", target_dir, "Directory where verified targets are stored");
  app.add_option("--token", token, "Bearer token for patchgate serve (default $PATCHGATE_TOKEN)");

  auto* init = app.add_subcommand("init", "Trust TRUSTED_ROOT_FILE as the initial root (no network)");
  init->add_option("TRUSTED_ROOT_FILE", root_file, "A root.json obtained out of band")->required();
  auto* refresh = app.add_subcommand("refresh", "Update root, timestamp, snapshot and targets metadata");
  auto* download = app.add_subcommand("download", "Refresh, then download and verify each --target-name");
  auto* update = app.add_subcommand("update", "Like download, then run --install-hook on each verified file");
  update->add_option("--install-hook", install_hook, "Command run as: CMD <verified-file> <target-name>")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (token.empty())
    if (const char* t = std::getenv("PATCHGATE_TOKEN")) token = t;

  client::InitOpensslForShortRun();  // client/startup.h: openssl.cnf read, no error texts
  auto& fs = RealFileSystem::Get();
  if (init->parsed()) {
    Status st = client::Updater::InitTrustedRoot(metadata_dir, root_file, &fs);
    return st.ok() ? 0 : Fail(st);
  }
  if (metadata_url.empty()) return Fail(InvalidArgument("--metadata-url is required"));
  client::HttpOptions http;
  http.bearer_token = token;
  auto fetcher = client::NewFetcher(http);
  // Verified metadata is written to the cache in the background (its fsyncs overlap with the
  // rest of the refresh and the download) and is durable before anything is installed and
  // before the process reports success.
  client::Updater updater({metadata_dir, metadata_url, target_base_url, target_dir, true}, fetcher.get(),
                          SystemClock::Get(), &fs);
  Status st = updater.Refresh();
  if (!st.ok()) return Fail(st);
  if (refresh->parsed()) {
    st = updater.FlushMetadataWrites();
    if (st.ok()) ExitFlushed();
    return Fail(st);
  }

  if (target_names.empty()) return Fail(InvalidArgument("name at least one --target-name"));
  if (target_base_url.empty() || target_dir.empty())
    return Fail(InvalidArgument("--target-base-url and --target-dir are required to download"));
  for (const auto& name : target_names) {
    auto info = updater.GetTargetInfo(name);
    if (!info.ok()) return Fail(info.status());
    auto path = updater.DownloadTarget(*info);
    if (!path.ok()) return Fail(path.status());
    std::printf("%s %s\n", name.c_str(), path->c_str());
    if (update->parsed()) {
      if (Status flushed = updater.FlushMetadataWrites(); !flushed.ok()) return Fail(flushed);
      pid_t pid = ::fork();
      if (pid == 0) {
        ::execl("/bin/sh", "sh", "-c", (install_hook + " \"$0\" \"$1\"").c_str(), path->c_str(), name.c_str(),
                static_cast<char*>(nullptr));
        _exit(127);
      }
      int status = 0;
      ::waitpid(pid, &status, 0);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return Fail(Internal("install hook failed for " + name + " (status " + std::to_string(status) + ")"));
    }
  }
  (void)download;
  st = updater.FlushMetadataWrites();
  if (st.ok()) ExitFlushed();
  return Fail(st);
}
