#include "server/metrics.h"

#include <cstdio>

namespace patchgate::server {

void Metrics::CountStatus(int status) {
  if (status < 300) ++requests_2xx;
  else if (status < 400) ++requests_3xx;
  else if (status < 500) ++requests_4xx;
  else ++requests_5xx;
}

void Metrics::ObserveAuditCommit(int64_t micros, size_t records) {
  ++audit_commits;
  audit_records += records;
  audit_latency_sum_us += static_cast<uint64_t>(micros);
  double s = static_cast<double>(micros) / 1e6;
  size_t i = 0;
  while (i < kBuckets.size() && s > kBuckets[i]) ++i;
  ++audit_latency[i];
}

std::string Metrics::Render() const {
  std::string out;
  char buf[256];
  auto line = [&](const char* fmt, auto... args) {
    std::snprintf(buf, sizeof buf, fmt, args...);
    out += buf;
  };
  auto u = [](const std::atomic<uint64_t>& a) { return static_cast<unsigned long long>(a.load()); };
  out += "# HELP patchgate_requests_total HTTP requests by status class.\n# TYPE patchgate_requests_total counter\n";
  line("patchgate_requests_total{code=\"2xx\"} %llu\n", u(requests_2xx));
  line("patchgate_requests_total{code=\"3xx\"} %llu\n", u(requests_3xx));
  line("patchgate_requests_total{code=\"4xx\"} %llu\n", u(requests_4xx));
  line("patchgate_requests_total{code=\"5xx\"} %llu\n", u(requests_5xx));
  out += "# HELP patchgate_bytes_sent_total Body bytes sent.\n# TYPE patchgate_bytes_sent_total counter\n";
  line("patchgate_bytes_sent_total %llu\n", u(bytes_sent));
  out += "# HELP patchgate_downloads_total Audited downloads by outcome.\n# TYPE patchgate_downloads_total counter\n";
  line("patchgate_downloads_total{outcome=\"complete\"} %llu\n", u(downloads_complete));
  line("patchgate_downloads_total{outcome=\"partial\"} %llu\n", u(downloads_partial));
  line("patchgate_downloads_total{outcome=\"aborted\"} %llu\n", u(downloads_aborted));
  out += "# HELP patchgate_verify_cache_total Serve-time verification cache lookups.\n# TYPE patchgate_verify_cache_total counter\n";
  line("patchgate_verify_cache_total{result=\"hit\"} %llu\n", u(verify_cache_hits));
  line("patchgate_verify_cache_total{result=\"miss\"} %llu\n", u(verify_cache_misses));
  out += "# HELP patchgate_verify_mismatch_total Files refused because they did not match the signed hash.\n"
         "# TYPE patchgate_verify_mismatch_total counter\n";
  line("patchgate_verify_mismatch_total %llu\n", u(verify_mismatches));
  out += "# HELP patchgate_verified_files_total Files verified, by serve-time protection.\n"
         "# TYPE patchgate_verified_files_total counter\n";
  line("patchgate_verified_files_total{mode=\"fs-verity\"} %llu\n", u(files_fs_verity));
  line("patchgate_verified_files_total{mode=\"chunk-digest\"} %llu\n", u(files_chunk_digests));
  out += "# HELP patchgate_integrity_aborts_total Downloads cut because the file changed while being served.\n"
         "# TYPE patchgate_integrity_aborts_total counter\n";
  line("patchgate_integrity_aborts_total %llu\n", u(integrity_aborts));
  out += "# HELP patchgate_audit_records_total Download records committed.\n# TYPE patchgate_audit_records_total counter\n";
  line("patchgate_audit_records_total %llu\n", u(audit_records));
  line("patchgate_audit_failures_total %llu\n", u(audit_failures));
  line("patchgate_audit_row_retries_total %llu\n", u(audit_row_retries));
  out += "# HELP patchgate_audit_writes_total Audit transactions written (begins and completions).\n"
         "# TYPE patchgate_audit_writes_total counter\n";
  line("patchgate_audit_writes_total %llu\n", u(audit_writes));
  out += "# HELP patchgate_audit_flushes_total Flushes of the audit store to disk.\n"
         "# TYPE patchgate_audit_flushes_total counter\n";
  line("patchgate_audit_flushes_total %llu\n", u(audit_flushes));
  out += "# HELP patchgate_audit_folded_total Download records moved from the journal into the indexed trail.\n"
         "# TYPE patchgate_audit_folded_total counter\n";
  line("patchgate_audit_folded_total %llu\n", u(audit_folded));
  line("patchgate_audit_fold_failures_total %llu\n", u(audit_fold_failures));
  out += "# HELP patchgate_audit_commit_seconds Latency of one group commit.\n# TYPE patchgate_audit_commit_seconds histogram\n";
  uint64_t cum = 0;
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    cum += audit_latency[i].load();
    line("patchgate_audit_commit_seconds_bucket{le=\"%g\"} %llu\n", kBuckets[i], static_cast<unsigned long long>(cum));
  }
  cum += audit_latency[kBuckets.size()].load();
  line("patchgate_audit_commit_seconds_bucket{le=\"+Inf\"} %llu\n", static_cast<unsigned long long>(cum));
  line("patchgate_audit_commit_seconds_sum %.6f\n", static_cast<double>(audit_latency_sum_us.load()) / 1e6);
  line("patchgate_audit_commit_seconds_count %llu\n", u(audit_commits));
  line("# TYPE patchgate_connections_open gauge\npatchgate_connections_open %llu\n", u(connections_open));
  line("# HELP patchgate_loop_answers_total Requests answered by an event loop without a worker.\n"
       "# TYPE patchgate_loop_answers_total counter\npatchgate_loop_answers_total %llu\n", u(loop_answers));
  out += "# HELP patchgate_verify_loads_total Target files read and hashed for serving (one per cold file, "
         "whatever the number of requests waiting for it).\n# TYPE patchgate_verify_loads_total counter\n";
  line("patchgate_verify_loads_total %llu\n", u(verify_loads));
  out += "# HELP patchgate_verify_load_waits_total Requests that waited for another request's read of the same "
         "file.\n# TYPE patchgate_verify_load_waits_total counter\n";
  line("patchgate_verify_load_waits_total %llu\n", u(verify_load_waits));
  return out;
}

}  // namespace patchgate::server
