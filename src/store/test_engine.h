// For tests that run one suite on both store engines (test code only).
//
//   class FooTest : public ::testing::TestWithParam<std::string> {
//     void SetUp() override {
//       engine_.emplace(GetParam(), "foo");
//       if (!engine_->available()) GTEST_SKIP() << TestEngine::kNoPostgres;
//       ... Store::Open(engine_->url()) ...
//     }
//     std::optional<TestEngine> engine_;
//   };
//   INSTANTIATE_TEST_SUITE_P(Engines, FooTest, TestEngine::Names(), TestEngine::ParamName);
//
// SQLite: a fresh store in a ScratchDir, removed when the TestEngine ends.
// PostgreSQL: the server named by PATCHGATE_TEST_PG_URL (scripts/test.sh starts one), shared
// by every test: names a test creates go through Unique() so runs never collide.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/scratch_dir.h"

namespace patchgate {

class TestEngine {
 public:
  static constexpr const char* kNoPostgres =
      "PATCHGATE_TEST_PG_URL is not set: no PostgreSQL to test against (scripts/test.sh starts one)";

  TestEngine(const std::string& engine, std::string_view label) {
    if (engine == "sqlite") {
      dir_.emplace(label);
      if (!dir_->path().empty()) url_ = "sqlite://" + dir_->path() + "/store.db";
      return;
    }
    const char* url = std::getenv("PATCHGATE_TEST_PG_URL");
    if (url == nullptr || *url == '\0') return;
    url_ = url;
    prefix_ = std::string(label.substr(0, 1)) + std::to_string(SystemClock::Get().NowMicros()) + "-";
  }
  TestEngine(const TestEngine&) = delete;
  TestEngine& operator=(const TestEngine&) = delete;

  // False when the engine cannot be tested here (PostgreSQL without PATCHGATE_TEST_PG_URL).
  bool available() const { return !url_.empty(); }
  const std::string& url() const { return url_; }
  // A name no other test run uses on a shared database (unchanged on SQLite's fresh file).
  std::string Unique(std::string_view name) const { return prefix_ + std::string(name); }

  static auto Names() { return ::testing::Values(std::string("sqlite"), std::string("postgresql")); }
  static std::string ParamName(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

 private:
  std::optional<ScratchDir> dir_;
  std::string url_, prefix_;
};

}  // namespace patchgate
