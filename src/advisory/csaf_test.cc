// CSAF rendering, checked by the CSAF project's validator library (tests/advise/validate.mjs:
// strict schema + every mandatory test must give 0 errors).
#include "advisory/csaf.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

namespace patchgate::advisory {
namespace {

struct Validation {
  int exit_code = -1;
  std::string output;
};

// Runs the validator on the given documents; skips (fails under CI) when it is not installed.
Validation Validate(const std::vector<std::string>& docs) {
  std::string dir = std::string(PATCHGATE_SOURCE_DIR) + "/tests/advise";
  char tmpl[] = "/tmp/pgcsafXXXXXX";
  std::string tmp = mkdtemp(tmpl);
  std::string cmd = "cd " + dir + " && node validate.mjs";
  for (size_t i = 0; i < docs.size(); ++i) {
    std::string f = tmp + "/doc" + std::to_string(i) + ".json";
    std::ofstream(f) << docs[i];
    cmd += " " + f;
  }
  Validation v;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) v.output.append(buf, n);
  int st = pclose(p);
  v.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::system(("rm -rf " + tmp).c_str());
  return v;
}

bool ValidatorInstalled() {
  std::ifstream f(std::string(PATCHGATE_SOURCE_DIR) + "/tests/advise/node_modules/@secvisogram/csaf-validator-lib/package.json");
  return f.good() && std::system("node --version >/dev/null 2>&1") == 0;
}

class CsafTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!ValidatorInstalled()) {
      if (std::getenv("CI")) FAIL() << "the CSAF validator is not installed (scripts/deps.sh runs npm ci in tests/advise)";
      GTEST_SKIP() << "the CSAF validator is not installed (scripts/deps.sh runs npm ci in tests/advise)";
    }
  }
  static Advisory Sample() {
    Advisory a;
    a.id = "PG-2026-0007";
    a.product = "webserver";
    a.title = "Remote code execution in the WebDAV module of webserver";
    a.summary = "A crafted PROPFIND request lets an unauthenticated attacker run code as the server user.";
    a.cve = "CVE-2026-12345";
    a.cvss_vector = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H";
    a.severity = "critical";
    a.workaround = "Disable the WebDAV module: set dav=off in webserver.conf and restart.";
    a.revisions = {{"1", 1'790'000'000'000'000, "Initial version"}};
    a.state = "scheduled";
    return a;
  }
  static std::vector<TargetRecord> Targets() {
    std::vector<TargetRecord> t;
    for (const char* v : {"2.4.0", "2.4.1", "2.10.0"}) {
      TargetRecord r;
      r.path = std::string("webserver/") + v + "/webserver.tar.gz";
      r.product = "webserver";
      r.version = v;
      r.sha256 = std::string(64, 'c');
      r.length = 1000;
      t.push_back(r);
    }
    return t;
  }
  Publisher p_{"Example Vendor", "https://vendor.example", "https://downloads.vendor.example", "mailto:psirt@vendor.example"};
};

TEST_F(CsafTest, EmbargoedPreNoticeFinalAdvisoryAndIncidentResponseAreValid) {
  Advisory pre = Sample();
  std::string interim = RenderAdvisory(pre, Targets(), "AMBER", "interim", 1'790'000'100'000'000, p_);
  Advisory fin = Sample();
  fin.fix = FixTarget{"webserver/2.10.0/webserver.tar.gz", "2.10.0", std::string(64, 'c'), 1000};
  fin.revisions.push_back({"2", 1'790'600'000'000'000, "Public release"});
  fin.state = "published";
  std::string final_doc = RenderAdvisory(fin, Targets(), "WHITE", "final", 1'790'600'000'000'000, p_);
  Advisory bare = Sample();  // nothing published yet, no CVE, no CVSS, no workaround
  bare.cve.clear();
  bare.cvss_vector.clear();
  bare.workaround.clear();
  bare.cve = "CVE-2026-0001";
  std::string bare_doc = RenderAdvisory(bare, {}, "RED", "interim", 1'790'000'100'000'000, p_);

  Incident inc{12, "mirror-2", 1'789'000'000'000'000, 1'789'003'600'000'000, "file infector (Virut) on the mirror",
               1'789'010'000'000'000, {}};
  incident::Scope scope;
  incident::OrgScope g;
  g.name = "Contoso";
  Download d;
  d.target_path = "office/2.1/setup.exe";
  g.downloads.push_back(scope.Keep(d));
  scope.orgs.push_back(g);
  scope.downloads = 1;
  std::string ir = RenderIncidentResponse(inc, scope, "WHITE", 1'789'020'000'000'000, p_);

  Validation v = Validate({interim, final_doc, bare_doc, ir});
  std::printf("%s", v.output.c_str());  // the recommended/informative findings, for the record
  EXPECT_EQ(v.exit_code, 0) << v.output;

  auto j = nlohmann::json::parse(final_doc);
  EXPECT_EQ(j["document"]["tracking"]["status"], "final");
  EXPECT_EQ(j["document"]["tracking"]["version"], "2");
  EXPECT_EQ(j["document"]["distribution"]["tlp"]["label"], "WHITE");
  EXPECT_EQ(j["document"]["references"][0]["url"],
            "https://downloads.vendor.example/.well-known/csaf/white/2026/pg-2026-0007.json");
  auto& vuln = j["vulnerabilities"][0];
  EXPECT_EQ(vuln["cve"], "CVE-2026-12345");
  EXPECT_EQ(vuln["scores"][0]["cvss_v3"]["baseScore"], 9.8);
  EXPECT_EQ(vuln["product_status"]["fixed"][0], "CSAFPID-webserver-2.10.0");
  EXPECT_EQ(vuln["product_status"]["known_affected"].size(), 2u);  // 2.4.0 and 2.4.1 (2.10.0 sorts last)
  bool vendor_fix = false, workaround = false;
  for (const auto& r : vuln["remediations"]) {
    if (r["category"] == "vendor_fix") {
      vendor_fix = true;
      EXPECT_EQ(r["url"], "https://downloads.vendor.example/targets/webserver/2.10.0/" + std::string(64, 'c') +
                              ".webserver.tar.gz");
    }
    workaround |= r["category"] == "workaround";
  }
  EXPECT_TRUE(vendor_fix);
  EXPECT_TRUE(workaround);
  auto i = nlohmann::json::parse(ir);
  EXPECT_EQ(i["document"]["category"], "csaf_security_incident_response");
  EXPECT_FALSE(i.contains("vulnerabilities"));
}

TEST_F(CsafTest, TheValidatorCatchesABrokenDocument) {
  // The test above can fail: a final document whose version does not match its history.
  auto j = nlohmann::json::parse(RenderAdvisory(Sample(), Targets(), "WHITE", "final", 1'790'000'100'000'000, p_));
  j["document"]["tracking"]["version"] = "3";
  Validation v = Validate({j.dump()});
  EXPECT_EQ(v.exit_code, 1) << v.output;
  EXPECT_NE(v.output.find("mandatoryTest_6_1_16"), std::string::npos) << v.output;
}

TEST(CompareVersions, NumericPartsCompareAsNumbers) {
  EXPECT_LT(CompareVersions("2.9", "2.10"), 0);
  EXPECT_EQ(CompareVersions("1.0.0", "1.0.0"), 0);
  EXPECT_GT(CompareVersions("3", "2.99"), 0);
}

}  // namespace
}  // namespace patchgate::advisory
