// The publish gate's decision, without the engine: only an explicit clean verdict for
// every input lets a publish through (#9.8: an `error` verdict must be refused).
#include "scan/gate.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

namespace patchgate::scan {
namespace {

class GateDecision : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pggateXXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  static std::vector<tuf::StagedInput> Inputs(size_t n) {
    std::vector<tuf::StagedInput> v(n);
    for (size_t i = 0; i < n; ++i) {
      v[i].source = "/in/f" + std::to_string(i);
      v[i].staged = "/staged/f" + std::to_string(i);
      v[i].name = "f" + std::to_string(i);
    }
    return v;
  }
  static FileResult Result(Verdict v, std::string sha = std::string(64, 'a')) {
    FileResult r;
    r.verdict = v;
    r.sha256 = std::move(sha);
    if (v != Verdict::kClean) r.error = "engine said no";
    return r;
  }
  std::string dir_;
  EngineInfo info_;
};

TEST_F(GateDecision, AllCleanPassesWithScannedHashes) {
  auto r = JudgeScan(Inputs(2), {Result(Verdict::kClean, "11"), Result(Verdict::kClean, "22")}, info_, dir_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].custom["scan"]["verdict"], "clean");
  EXPECT_EQ((*r)[1].scanned_sha256, "22");
}

TEST_F(GateDecision, ErrorVerdictIsRefused) {
  auto r = JudgeScan(Inputs(3), {Result(Verdict::kClean), Result(Verdict::kError), Result(Verdict::kClean)}, info_,
                     dir_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kScanFailed);
  EXPECT_NE(r.status().message().find("/in/f1"), std::string::npos) << r.status().message();
}

TEST_F(GateDecision, UnscannableVerdictIsRefused) {
  auto r = JudgeScan(Inputs(1), {Result(Verdict::kUnscannable)}, info_, dir_);
  EXPECT_EQ(r.status().code(), ErrorCode::kScanFailed);
}

TEST_F(GateDecision, MissingVerdictIsRefused) {
  auto r = JudgeScan(Inputs(2), {Result(Verdict::kClean)}, info_, dir_);
  EXPECT_EQ(r.status().code(), ErrorCode::kScanFailed);
}

}  // namespace
}  // namespace patchgate::scan
