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

namespace {

// One labelled value of a metric family: `labels` is empty or `{key="value",...}`.
struct Sample {
  const char* labels;
  uint64_t value;
};

uint64_t Load(const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); }

// Writes a family the way Prometheus expects it: its HELP and TYPE lines, then its samples.
void Family(std::string& out, const char* name, const char* type, const char* help, std::initializer_list<Sample> samples) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
  for (const Sample& s : samples) out.append(name).append(s.labels).append(" ").append(std::to_string(s.value)).append("\n");
}

void Counter(std::string& out, const char* name, const char* help, const std::atomic<uint64_t>& value) {
  Family(out, name, "counter", help, {{"", Load(value)}});
}

}  // namespace

std::string Metrics::Render() const {
  std::string out;
  Family(out, "patchgate_requests_total", "counter", "HTTP requests by status class.",
         {{"{code=\"2xx\"}", Load(requests_2xx)},
          {"{code=\"3xx\"}", Load(requests_3xx)},
          {"{code=\"4xx\"}", Load(requests_4xx)},
          {"{code=\"5xx\"}", Load(requests_5xx)}});
  Counter(out, "patchgate_bytes_sent_total", "Body bytes sent.", bytes_sent);
  Family(out, "patchgate_downloads_total", "counter", "Audited downloads by outcome.",
         {{"{outcome=\"complete\"}", Load(downloads_complete)},
          {"{outcome=\"partial\"}", Load(downloads_partial)},
          {"{outcome=\"aborted\"}", Load(downloads_aborted)}});
  Family(out, "patchgate_verify_cache_total", "counter", "Serve-time verification cache lookups.",
         {{"{result=\"hit\"}", Load(verify_cache_hits)}, {"{result=\"miss\"}", Load(verify_cache_misses)}});
  Counter(out, "patchgate_verify_mismatch_total", "Files refused because they did not match the signed hash.",
          verify_mismatches);
  Family(out, "patchgate_verified_files_total", "counter", "Files verified, by serve-time protection.",
         {{"{mode=\"fs-verity\"}", Load(files_fs_verity)}, {"{mode=\"chunk-digest\"}", Load(files_chunk_digests)}});
  Counter(out, "patchgate_integrity_aborts_total", "Downloads cut because the file changed while being served.",
          integrity_aborts);
  Counter(out, "patchgate_audit_records_total", "Download records committed.", audit_records);
  Counter(out, "patchgate_audit_failures_total",
          "Download records that could not be committed (each such request was refused with 503).", audit_failures);
  Counter(out, "patchgate_audit_row_retries_total",
          "Group commits that failed as a whole and were retried record by record.", audit_row_retries);
  Counter(out, "patchgate_audit_writes_total", "Audit transactions written (begins and completions).", audit_writes);
  Counter(out, "patchgate_audit_flushes_total", "Flushes of the audit store to disk.", audit_flushes);
  Counter(out, "patchgate_audit_folded_total", "Download records moved from the journal into the indexed trail.",
          audit_folded);
  Counter(out, "patchgate_audit_fold_failures_total",
          "Attempts to move journal records into the indexed trail that failed (the records stay in the journal "
          "and are retried).",
          audit_fold_failures);
  out += "# HELP patchgate_audit_commit_seconds Latency of one group commit.\n"
         "# TYPE patchgate_audit_commit_seconds histogram\n";
  char buf[128];
  uint64_t cum = 0;
  for (size_t i = 0; i <= kBuckets.size(); ++i) {
    cum += Load(audit_latency[i]);
    if (i < kBuckets.size()) std::snprintf(buf, sizeof buf, "%g", kBuckets[i]);
    out.append("patchgate_audit_commit_seconds_bucket{le=\"")
        .append(i < kBuckets.size() ? buf : "+Inf")
        .append("\"} ")
        .append(std::to_string(cum))
        .append("\n");
  }
  std::snprintf(buf, sizeof buf, "patchgate_audit_commit_seconds_sum %.6f\n",
                static_cast<double>(Load(audit_latency_sum_us)) / 1e6);
  out += buf;
  out.append("patchgate_audit_commit_seconds_count ").append(std::to_string(Load(audit_commits))).append("\n");
  Family(out, "patchgate_connections_open", "gauge", "Client connections open now.", {{"", Load(connections_open)}});
  Counter(out, "patchgate_loop_answers_total", "Requests answered by an event loop without a worker.", loop_answers);
  Counter(out, "patchgate_verify_loads_total",
          "Target files read and hashed for serving (one per cold file, whatever the number of requests waiting "
          "for it).",
          verify_loads);
  Counter(out, "patchgate_verify_load_waits_total",
          "Requests that waited for another request's read of the same file.", verify_load_waits);
  return out;
}

}  // namespace patchgate::server
