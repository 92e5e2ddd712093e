#include "client/target_fetch.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "crypto/hash.h"

namespace patchgate::client {
namespace {

std::string Slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

class TargetFetchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pgtfetchXXXXXX";
    dir_ = mkdtemp(tmpl);
    body_ = std::string(100000, 'a') + "the end";
    file_.length = body_.size();
    file_.hashes["sha256"] = Sha256Hex(body_);
    f_.files[url_] = body_;
  }
  void TearDown() override { (void)system(("rm -rf " + dir_).c_str()); }
  std::string dir_, body_, url_ = "http://up/targets/x/abc.bin";
  tuf::TargetFile file_;
  MemoryFetcher f_;
};

TEST_F(TargetFetchTest, ResumesAPartialDownloadWithARange) {
  std::string dest = dir_ + "/t";
  std::ofstream(dest + ".part", std::ios::binary) << body_.substr(0, 60000);
  TargetFetchOptions o;
  o.resume = true;
  ASSERT_TRUE(FetchTargetTo(&f_, url_, "x", file_, dest, o).ok());
  EXPECT_EQ(Slurp(dest), body_);
  EXPECT_NE(access((dest + ".part").c_str(), F_OK), 0);
}

TEST_F(TargetFetchTest, ACorruptPartialIsDiscarded) {
  std::string dest = dir_ + "/t";
  std::ofstream(dest + ".part", std::ios::binary) << std::string(60000, 'z');
  TargetFetchOptions o;
  o.resume = true;
  Status st = FetchTargetTo(&f_, url_, "x", file_, dest, o);
  EXPECT_EQ(st.code(), ErrorCode::kHashMismatch);
  EXPECT_NE(access(dest.c_str(), F_OK), 0);
  EXPECT_NE(access((dest + ".part").c_str(), F_OK), 0);  // the next attempt starts from 0
  ASSERT_TRUE(FetchTargetTo(&f_, url_, "x", file_, dest, o).ok());
  EXPECT_EQ(Slurp(dest), body_);
}

TEST_F(TargetFetchTest, TamperedOrEndlessBytesNeverReachDest) {
  std::string dest = dir_ + "/t";
  f_.files[url_] = body_.substr(0, body_.size() - 1) + "X";
  EXPECT_EQ(FetchTargetTo(&f_, url_, "x", file_, dest, {}).code(), ErrorCode::kHashMismatch);
  f_.files[url_] = body_ + "more";
  EXPECT_EQ(FetchTargetTo(&f_, url_, "x", file_, dest, {}).code(), ErrorCode::kLengthMismatch);
  EXPECT_NE(access(dest.c_str(), F_OK), 0);
}

TEST(TargetUrlPath, ConsistentNamesPercentEncoded) {
  EXPECT_EQ(TargetUrlPath("office/setup.exe", "ab", true), "office/ab.setup.exe");
  EXPECT_EQ(TargetUrlPath("a b/c", "ff", false), "a%20b/c");
}

}  // namespace
}  // namespace patchgate::client
