// The metadata route on its own: a real signed repository on disk. Authentication and the
// route table in front of it are tested through the whole server in server_test.cc.
#include "server/metadata_service.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/clock.h"
#include "core/scratch_dir.h"
#include "crypto/hash.h"
#include "tuf/repository.h"

namespace patchgate::server {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

class MetadataServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_ = dir_.path() + "/repo";
    tuf::InitOptions io;
    io.dir = repo_;
    tuf::KeyAccess access{"pw", false};
    ASSERT_TRUE(tuf::InitRepository(io, access, SystemClock::Get()).ok());
    repo_fd_ = ::open(repo_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(repo_fd_, 0);
    options_.chain.record_sync = [this](const std::string& node, const std::string& what, uint64_t bytes) {
      synced_.push_back(node + " " + what + " " + std::to_string(bytes));
    };
    catalogue_ = std::make_unique<Catalogue>(repo_);
  }
  void TearDown() override {
    service_.reset();
    catalogue_.reset();
    if (repo_fd_ >= 0) ::close(repo_fd_);
  }
  void Start(bool background_catalogue) {
    if (background_catalogue) ASSERT_TRUE(catalogue_->StartBackground().ok());
    service_ = std::make_unique<MetadataService>(MetadataService::Deps{
        &options_, catalogue_.get(), &files_, &metrics_, [this] { ++generation_checks_; }, repo_fd_});
  }
  static RequestHead Req(const std::string& method, const std::string& name, const std::string& extra = "") {
    ParseOutcome p =
        ParseRequestHead(method + " /metadata/" + name + " HTTP/1.1\r\nHost: h\r\n" + extra + "\r\n", HttpLimits{});
    EXPECT_TRUE(p.head.has_value());
    return *p.head;
  }
  static int Status(const PendingSend& out) { return std::stoi(out.head.substr(9, 3)); }

  ScratchDir dir_{"metasvc"};
  std::string repo_;
  int repo_fd_ = -1;
  ServerOptions options_;
  Metrics metrics_;
  MetadataFiles files_;
  std::unique_ptr<Catalogue> catalogue_;
  std::unique_ptr<MetadataService> service_;
  std::vector<std::string> synced_;
  int generation_checks_ = 0;
};

TEST_F(MetadataServiceTest, ServesTheFileWithItsETagAnd304ForAMatchingIfNoneMatch) {
  Start(false);
  std::string bytes = ReadAll(repo_ + "/metadata/1.root.json");
  PendingSend out;
  EXPECT_TRUE(service_->Serve(Req("GET", "1.root.json"), "1.root.json", true, false, &out));
  EXPECT_EQ(Status(out), 200);
  EXPECT_EQ(out.body, bytes);
  std::string etag = "\"" + Sha256Hex(bytes) + "\"";
  EXPECT_NE(out.head.find("ETag: " + etag), std::string::npos) << out.head;
  EXPECT_NE(out.head.find("Cache-Control: max-age=31536000, immutable"), std::string::npos);
  PendingSend again;
  service_->Serve(Req("GET", "1.root.json", "If-None-Match: " + etag + "\r\n"), "1.root.json", true, false, &again);
  EXPECT_EQ(Status(again), 304);
  EXPECT_TRUE(again.body.empty());
  PendingSend head;
  service_->Serve(Req("HEAD", "1.root.json"), "1.root.json", true, true, &head);
  EXPECT_EQ(Status(head), 200);
  EXPECT_TRUE(head.body.empty());
  EXPECT_NE(head.head.find("Content-Length: " + std::to_string(bytes.size())), std::string::npos);
}

TEST_F(MetadataServiceTest, AMissingFileOrALinkIs404) {
  Start(false);
  ASSERT_EQ(::symlink("../keys", (repo_ + "/metadata/k.json").c_str()), 0);
  for (const std::string name : {"nope.json", "k.json"}) {
    PendingSend out;
    EXPECT_TRUE(service_->Serve(Req("GET", name), name, true, false, &out));
    EXPECT_EQ(Status(out), 404) << name;
  }
}

// The loop answers only from memory, and only while the file is still the one read.
TEST_F(MetadataServiceTest, TheLoopAnswersOnlyFromMemoryWhileTheFileIsUnchanged) {
  Start(false);
  PendingSend miss;
  EXPECT_FALSE(service_->ServeFromLoop(Req("GET", "1.root.json"), "1.root.json", true, &miss));
  PendingSend worker;
  service_->Serve(Req("GET", "1.root.json"), "1.root.json", true, false, &worker);
  PendingSend hit;
  EXPECT_TRUE(service_->ServeFromLoop(Req("GET", "1.root.json"), "1.root.json", true, &hit));
  EXPECT_EQ(hit.body, worker.body);
  EXPECT_EQ(metrics_.loop_answers.load(), 1u);
  EXPECT_FALSE(service_->ServeFromLoop(Req("HEAD", "1.root.json"), "1.root.json", true, &miss));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::ofstream(repo_ + "/metadata/1.root.json", std::ios::app) << " ";
  PendingSend changed;
  EXPECT_FALSE(service_->ServeFromLoop(Req("GET", "1.root.json"), "1.root.json", true, &changed))
      << "bytes read before the file changed were served from memory";
}

// timestamp.json is the one the catalogue was loaded from, even once the file on disk
// changed; a node's pull is reported with the bytes it took.
TEST_F(MetadataServiceTest, TimestampIsTheCataloguesAndANodesPullIsReported) {
  Start(true);
  std::string loaded = ReadAll(repo_ + "/metadata/timestamp.json");
  std::ofstream(repo_ + "/metadata/timestamp.json.new") << "{}";
  std::filesystem::rename(repo_ + "/metadata/timestamp.json.new", repo_ + "/metadata/timestamp.json");
  PendingSend out;
  std::string node = "mirror-1";
  EXPECT_TRUE(service_->Serve(Req("GET", "timestamp.json"), "timestamp.json", true, false, &out, &node));
  EXPECT_EQ(out.body, loaded);
  EXPECT_NE(out.head.find("Cache-Control: no-cache"), std::string::npos);
  EXPECT_GE(generation_checks_, 1);
  ASSERT_TRUE(out.done);
  out.done(out.body.size(), true);
  ASSERT_EQ(synced_.size(), 1u);
  EXPECT_EQ(synced_[0], "mirror-1 metadata/timestamp.json " + std::to_string(loaded.size()));
  PendingSend loop;
  EXPECT_TRUE(service_->ServeFromLoop(Req("GET", "timestamp.json"), "timestamp.json", true, &loop));
  EXPECT_EQ(loop.body, loaded);
}

}  // namespace
}  // namespace patchgate::server
