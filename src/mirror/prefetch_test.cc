#include "mirror/prefetch.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "tuf/metadata.h"

namespace patchgate::mirror {
namespace {

const std::string kBase = "http://up/metadata";

// A snapshot envelope listing `roles` at version 3 (unsigned: the prefetch only reads names).
std::string SnapshotListing(const std::vector<std::string>& roles) {
  Json meta = Json::object();
  meta["targets.json"] = {{"version", 1}};
  for (const auto& r : roles) meta[r + ".json"] = {{"version", 3}, {"length", 100}};
  Json signed_json = {{"_type", "snapshot"}, {"spec_version", "1.0.31"}, {"version", 9},
                           {"expires", "2099-01-01T00:00:00Z"}, {"meta", meta}};
  return Json{{"signatures", Json::array()}, {"signed", signed_json}}.dump();
}

// Shared between the test and the background fetchers: a MemoryFetcher per thread over
// the same files (a Fetcher is used by one thread at a time).
struct Upstream {
  std::map<std::string, std::string> files;
  std::unique_ptr<client::Fetcher> Make() {
    auto f = std::make_unique<client::MemoryFetcher>();
    f->files = files;
    return f;
  }
};

TEST(PrefetchFetcher, RolesListedInTheSnapshotAreFetchedAheadAndServedOnce) {
  Upstream up;
  up.files[kBase + "/9.snapshot.json"] = SnapshotListing({"bins.a-00", "bins.a-01", "bins.a-02"});
  for (const char* r : {"bins.a-00", "bins.a-01", "bins.a-02"}) up.files[kBase + "/3." + r + ".json"] = std::string("body of ") + r;
  client::MemoryFetcher direct;
  direct.files = up.files;
  PrefetchOptions o;
  o.metadata_url = kBase;
  o.parallel = 2;
  o.have = [](const std::string& name) { return name == "3.bins.a-01.json"; };  // held already
  o.make_fetcher = [&up] { return up.Make(); };
  PrefetchFetcher f(&direct, o);
  auto snap = f.FetchAll(kBase + "/9.snapshot.json", 1 << 20);
  ASSERT_TRUE(snap.ok());
  EXPECT_EQ(f.queued(), 3u);  // targets.json v1, bins 00 and 02 (01 is held)
  f.WaitForPrefetch();
  auto b0 = f.FetchAll(kBase + "/3.bins.a-00.json", 100);
  ASSERT_TRUE(b0.ok());
  EXPECT_EQ(*b0, "body of bins.a-00");
  auto b2 = f.FetchAll(kBase + "/3.bins.a-02.json", 100);
  ASSERT_TRUE(b2.ok());
  EXPECT_EQ(f.served_from_prefetch(), 2u);
  EXPECT_EQ(direct.requests[kBase + "/3.bins.a-00.json"], 0);
  // Served once: a second request goes to the upstream again.
  ASSERT_TRUE(f.FetchAll(kBase + "/3.bins.a-00.json", 100).ok());
  EXPECT_EQ(direct.requests[kBase + "/3.bins.a-00.json"], 1);
}

TEST(PrefetchFetcher, TheCallersCapStillHolds) {
  Upstream up;
  up.files[kBase + "/9.snapshot.json"] = SnapshotListing({"r"});
  up.files[kBase + "/3.r.json"] = std::string(100, 'x');
  client::MemoryFetcher direct;
  direct.files = up.files;
  PrefetchOptions o;
  o.metadata_url = kBase;
  o.make_fetcher = [&up] { return up.Make(); };
  PrefetchFetcher f(&direct, o);
  ASSERT_TRUE(f.FetchAll(kBase + "/9.snapshot.json", 1 << 20).ok());
  f.WaitForPrefetch();
  std::string got;
  Status st = f.Fetch(kBase + "/3.r.json", 10, [&](std::string_view c) {
    got.append(c);
    return Status::OK();
  });
  EXPECT_EQ(st.code(), ErrorCode::kTooLarge);
  EXPECT_EQ(got.size(), 10u);
  EXPECT_EQ(f.served_from_prefetch(), 1u);
  EXPECT_EQ(direct.requests[kBase + "/3.r.json"], 0);
}

TEST(PrefetchFetcher, AFailedPrefetchIsFetchedAgainDirectly) {
  Upstream up;
  up.files[kBase + "/9.snapshot.json"] = SnapshotListing({"r"});  // 3.r.json missing upstream at first
  client::MemoryFetcher direct;
  direct.files = up.files;
  direct.files[kBase + "/3.r.json"] = "late";
  PrefetchOptions o;
  o.metadata_url = kBase;
  o.make_fetcher = [&up] { return up.Make(); };
  PrefetchFetcher f(&direct, o);
  ASSERT_TRUE(f.FetchAll(kBase + "/9.snapshot.json", 1 << 20).ok());
  f.WaitForPrefetch();
  auto r = f.FetchAll(kBase + "/3.r.json", 100);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "late");
  EXPECT_EQ(direct.requests[kBase + "/3.r.json"], 1);
}

TEST(PrefetchFetcher, GarbageSnapshotBytesPrefetchNothing) {
  client::MemoryFetcher direct;
  direct.files[kBase + "/9.snapshot.json"] = "not json";
  PrefetchOptions o;
  o.metadata_url = kBase;
  o.make_fetcher = [] { return std::make_unique<client::MemoryFetcher>(); };
  PrefetchFetcher f(&direct, o);
  ASSERT_TRUE(f.FetchAll(kBase + "/9.snapshot.json", 1 << 20).ok());
  EXPECT_EQ(f.queued(), 0u);
}

// Counts the background downloads.
class CountingFetcher : public client::Fetcher {
 public:
  CountingFetcher(std::map<std::string, std::string> files, std::atomic<int>* count) : count_(count) { f_.files = std::move(files); }
  Status Fetch(const std::string& url, uint64_t max, const client::Sink& sink) override {
    ++*count_;
    return f_.Fetch(url, max, sink);
  }

 private:
  client::MemoryFetcher f_;
  std::atomic<int>* count_;
};

TEST(PrefetchFetcher, MemoryIsBounded) {
  Upstream up;
  up.files[kBase + "/9.snapshot.json"] = SnapshotListing({"a", "b", "c", "d"});
  for (const char* r : {"a", "b", "c", "d"}) up.files[kBase + "/3." + r + ".json"] = std::string(100, r[0]);
  client::MemoryFetcher direct;
  direct.files = up.files;
  std::atomic<int> started{0};
  PrefetchOptions o;
  o.metadata_url = kBase;
  o.parallel = 1;
  o.max_total_bytes = 150;  // the second answer goes over: then nothing more until one is taken
  o.make_fetcher = [&] { return std::make_unique<CountingFetcher>(up.files, &started); };
  PrefetchFetcher f(&direct, o);
  auto wait_for = [&](int n) {
    for (int i = 0; i < 500 && started.load() < n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // and no further
  };
  ASSERT_TRUE(f.FetchAll(kBase + "/9.snapshot.json", 1 << 20).ok());
  wait_for(2);
  EXPECT_EQ(started.load(), 2);
  auto a = f.FetchAll(kBase + "/3.a.json", 100);  // taken: room again
  ASSERT_TRUE(a.ok());
  wait_for(3);
  EXPECT_EQ(started.load(), 3);
  EXPECT_EQ(f.served_from_prefetch(), 1u);
}

}  // namespace
}  // namespace patchgate::mirror
