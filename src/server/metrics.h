// Counters exported at /metrics in the Prometheus text format. Lock-free; thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace patchgate::server {

struct Metrics {
  std::atomic<uint64_t> requests_2xx{0}, requests_3xx{0}, requests_4xx{0}, requests_5xx{0};
  std::atomic<uint64_t> bytes_sent{0};
  std::atomic<uint64_t> downloads_complete{0}, downloads_partial{0}, downloads_aborted{0};
  std::atomic<uint64_t> verify_cache_hits{0}, verify_cache_misses{0}, verify_mismatches{0};
  std::atomic<uint64_t> audit_commits{0}, audit_records{0}, audit_failures{0};
  std::atomic<uint64_t> connections_open{0};
  // How each verified file is protected while it is served: kernel fs-verity reads, or
  // per-chunk digests checked on the bytes read before they are sent (hash-while-send).
  std::atomic<uint64_t> files_fs_verity{0}, files_chunk_digests{0};
  // Downloads cut because the bytes read no longer matched the chunk digests.
  std::atomic<uint64_t> integrity_aborts{0};
  std::atomic<uint64_t> audit_row_retries{0};  // group commits retried row by row
  // Audit transactions written (begins and/or completions) and flushes to disk: each costs
  // a fixed amount whatever its size, so records per write and per flush say how well the
  // group commit amortises it.
  std::atomic<uint64_t> audit_writes{0}, audit_flushes{0};
  std::atomic<uint64_t> audit_folded{0}, audit_fold_failures{0};  // journal records folded (AuditLog)
  // Requests answered by an event loop without a worker (everything they needed was cached).
  std::atomic<uint64_t> loop_answers{0};
  // Target files read and hashed (one per cold file however many requests ask for it at
  // once), and requests that waited for another request's read of the same file instead.
  std::atomic<uint64_t> verify_loads{0}, verify_load_waits{0};
  // Audit commit latency histogram (seconds): buckets and running sum in microseconds.
  static constexpr std::array<double, 9> kBuckets{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5};
  std::array<std::atomic<uint64_t>, kBuckets.size() + 1> audit_latency{};
  std::atomic<uint64_t> audit_latency_sum_us{0};

  void CountStatus(int status);
  void ObserveAuditCommit(int64_t micros, size_t records);
  std::string Render() const;
};

}  // namespace patchgate::server
