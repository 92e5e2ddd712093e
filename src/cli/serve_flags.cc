#include "cli/serve_flags.h"

namespace patchgate::cli {

void ServingFlags::Add(CLI::App* cmd, const char* listen_help) {
  cmd->add_option("--listen", o.listen, listen_help);
  cmd->add_option("--tls-cert", o.tls_cert, "PEM certificate chain (enables TLS 1.2/1.3)");
  cmd->add_option("--tls-key", o.tls_key, "PEM private key for --tls-cert");
  cmd->add_option("--header-timeout", o.header_timeout_seconds, "Seconds a client has to send a request head");
  cmd->add_option("--idle-timeout", o.idle_timeout_seconds, "Seconds an idle keep-alive connection is kept");
  cmd->add_option("--send-timeout", o.send_timeout_seconds, "Seconds a stalled reader is kept");
  cmd->add_option("--max-connections", o.max_connections, "Concurrent connections");
  cmd->add_option("--max-connections-per-address", o.max_connections_per_address,
                  "Concurrent connections from one source address (default 2048)");
  cmd->add_option("--loops", o.loops, "Event loops accepting and reading connections (default: one per core)");
  cmd->add_option("--max-workers", o.max_workers,
                  "Threads for store look-ups, verification and streaming large files, at most (default 256)");
  cmd->add_option("--verified-memory-mb", verified_memory_mb,
                  "MiB of verified target bytes kept in memory (sealed memfds, least recently used dropped; files "
                  "being loaded count too) and sent from there with sendfile (default 256; 0: none)");
  cmd->add_option("--verified-memory-max-file-mb", verified_memory_max_file_mb,
                  "Largest target kept in that memory, in MiB (default 64; one request reads and verifies a cold "
                  "file while the others wait for it); larger ones are read from disk and checked chunk by chunk "
                  "while they are sent (about five times the CPU per byte)");
  cmd->add_option("--max-header-bytes", o.limits.max_header_bytes, "Largest request head accepted");
  cmd->add_option("--max-headers", o.limits.max_headers, "Most request headers accepted");
  cmd->add_option("--auth-cache-ms", o.auth_cache_ms, "Reuse token/entitlement answers this long (0: never)");
  cmd->add_option("--audit-finish-ms", o.audit_finish_ms,
                  "Batch download completions (end, bytes, outcome) this long; the drain writes them (0: at once)");
  cmd->add_option("--drain-seconds", o.drain_seconds, "On SIGTERM, how long in-flight downloads may finish");
}

Result<server::ServerOptions> ServingFlags::Options() const {
  if (verified_memory_mb < 0) return InvalidArgument("--verified-memory-mb must be 0 or more");
  if (verified_memory_mb > (int64_t{1} << 30)) return InvalidArgument("--verified-memory-mb is too large");
  if (verified_memory_max_file_mb < 0 || verified_memory_max_file_mb > (int64_t{1} << 30))
    return InvalidArgument("--verified-memory-max-file-mb must be between 0 and 2^30");
  server::ServerOptions out = o;
  out.verified_memory_bytes = static_cast<uint64_t>(verified_memory_mb) << 20;
  out.verified_memory_max_file = static_cast<uint64_t>(verified_memory_max_file_mb) << 20;
  return out;
}

sigset_t BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  return set;
}

}  // namespace patchgate::cli
