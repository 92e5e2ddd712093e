#include "server/metrics.h"

#include <gtest/gtest.h>

#include <set>
#include <sstream>
#include <string>

namespace patchgate::server {
namespace {

// The family a sample line belongs to: its name without labels, and a histogram's
// _bucket/_sum/_count samples belong to the histogram.
std::string FamilyOf(const std::string& line, const std::set<std::string>& histograms) {
  std::string name = line.substr(0, line.find_first_of("{ "));
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    std::string s = suffix;
    if (name.size() > s.size() && name.ends_with(s)) {
      std::string base = name.substr(0, name.size() - s.size());
      if (histograms.count(base)) return base;
    }
  }
  return name;
}

TEST(Metrics, EveryFamilyHasHelpAndTypeBeforeItsSamples) {
  Metrics m;
  m.audit_failures = 3;
  m.audit_fold_failures = 2;
  m.ObserveAuditCommit(1500, 4);
  std::istringstream in(m.Render());
  std::set<std::string> helped, typed, histograms, sampled;
  std::string line;
  size_t samples = 0;
  while (std::getline(in, line)) {
    ASSERT_FALSE(line.empty());
    if (line.starts_with("# HELP ")) {
      std::string name = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_TRUE(helped.insert(name).second) << "HELP twice for " << name;
      continue;
    }
    if (line.starts_with("# TYPE ")) {
      std::string rest = line.substr(7);
      std::string name = rest.substr(0, rest.find(' '));
      std::string type = rest.substr(rest.find(' ') + 1);
      EXPECT_TRUE(type == "counter" || type == "gauge" || type == "histogram") << line;
      EXPECT_TRUE(typed.insert(name).second) << "TYPE twice for " << name;
      if (type == "histogram") histograms.insert(name);
      continue;
    }
    ++samples;
    std::string family = FamilyOf(line, histograms);
    EXPECT_TRUE(helped.count(family)) << "no HELP before: " << line;
    EXPECT_TRUE(typed.count(family)) << "no TYPE before: " << line;
    sampled.insert(family);
  }
  EXPECT_GT(samples, 20u);
  EXPECT_EQ(sampled, typed) << "a family declared without samples, or the reverse";
}

TEST(Metrics, RendersTheValuesCounted) {
  Metrics m;
  m.audit_failures = 3;
  m.audit_fold_failures = 2;
  m.CountStatus(404);
  m.ObserveAuditCommit(1500, 4);  // 1.5 ms: above the 0.001 bucket, within 0.002
  std::string out = m.Render();
  EXPECT_NE(out.find("\npatchgate_audit_failures_total 3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\npatchgate_audit_fold_failures_total 2\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\npatchgate_requests_total{code=\"4xx\"} 1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\npatchgate_audit_records_total 4\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\npatchgate_audit_commit_seconds_bucket{le=\"0.001\"} 0\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\npatchgate_audit_commit_seconds_bucket{le=\"0.002\"} 1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\npatchgate_audit_commit_seconds_bucket{le=\"+Inf\"} 1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\npatchgate_audit_commit_seconds_sum 0.001500\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\npatchgate_audit_commit_seconds_count 1\n"), std::string::npos) << out;
}

}  // namespace
}  // namespace patchgate::server
