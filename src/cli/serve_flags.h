// The flags of every command that runs the download server (`patchgate serve` and
// `patchgate mirror`): where it listens, TLS, deadlines, connection caps, threads, the
// memory kept for verified bytes, the auth cache and audit batching. Declared once, so both
// commands take the same flags with the same meaning and defaults.
#pragma once

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdint>

#include "core/status.h"
#include "server/server.h"

namespace patchgate::cli {

struct ServingFlags {
  server::ServerOptions o;  // the fields the flags set; the command sets the rest
  int64_t verified_memory_mb = server::ServerOptions{}.verified_memory_bytes >> 20;
  int64_t verified_memory_max_file_mb = server::ServerOptions{}.verified_memory_max_file >> 20;
  // Adds the flags to `cmd`; `listen_help` says what is served on --listen.
  void Add(CLI::App* cmd, const char* listen_help);
  // The options with the derived values (--verified-memory-mb in bytes); a bad value is an
  // InvalidArgument naming the flag.
  Result<server::ServerOptions> Options() const;
};

// A server command takes SIGTERM and SIGINT on a thread of its own (stop accepting, drain,
// complete the records): blocks both in the calling thread, and so in every thread it makes
// after, ignores SIGPIPE (a client gone mid-response is an error value, not a signal), and
// returns the set for that thread's sigwait. Call it first, before any thread is made.
sigset_t BlockTerminationSignals();

}  // namespace patchgate::cli
