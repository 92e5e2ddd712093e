#include "client/startup.h"
#include "core/sanitizer.h"
#include "crypto/keys.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace patchgate::client {
namespace {

long MinorFaults() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

// The measurement, in a fresh copy of this test program (the settings are for the whole
// process, and a long-running test process's heap is already large and fragmented): the
// page faults that filling 512 KiB of fresh heap memory takes, after
// PrefaultForShortRun(1 MiB) when PATCHGATE_PREFAULT=1, or without it. Prints "faults=N".
TEST(PrefaultForShortRun, DISABLED_FillTheHeapInAFreshProcess) {
  const char* mode = std::getenv("PATCHGATE_PREFAULT");
  if (mode && std::string(mode) == "1") {
    PrefaultReport r = PrefaultForShortRun(1 << 20);
    if (r.heap_bytes < (1u << 20)) {
      std::printf("faults=-1\n");
      return;
    }
  }
  long before = MinorFaults();
  std::vector<char*> blocks;
  blocks.reserve(8);
  for (int i = 0; i < 8; ++i) {
    blocks.push_back(static_cast<char*>(std::malloc(64 << 10)));
    std::memset(blocks.back(), 1, 64 << 10);
  }
  long faults = MinorFaults() - before;
  for (char* b : blocks) std::free(b);
  std::printf("faults=%ld\n", faults);
}

long FaultsToFillHeap(bool prefault) {
  std::string cmd = std::string("PATCHGATE_PREFAULT=") + (prefault ? "1" : "0") +
                    " /proc/" + std::to_string(::getpid()) +
                    "/exe --gtest_also_run_disabled_tests "
                    "--gtest_filter=PrefaultForShortRun.DISABLED_FillTheHeapInAFreshProcess 2>&1";
  FILE* f = ::popen(cmd.c_str(), "r");
  if (!f) return -3;
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
  ::pclose(f);
  auto at = out.find("faults=");
  return at == std::string::npos ? -4 : std::atol(out.c_str() + at + 7);
}

TEST(PrefaultForShortRun, HeapMemoryIsMappedBeforeItIsTouched) {
  if (!kGlibcMalloc) GTEST_SKIP() << "a sanitizer's allocator replaces glibc's malloc: there is no heap to populate";
  long without = FaultsToFillHeap(false);
  long with = FaultsToFillHeap(true);
  std::printf("page faults filling 512 KiB of heap: %ld without, %ld after PrefaultForShortRun\n", without, with);
  ASSERT_GE(with, 0) << "the heap was not populated (a kernel before 5.14 has no MADV_POPULATE_WRITE)";
  EXPECT_GE(without, 64);  // 128 pages, fresh
  EXPECT_LT(with, 16);     // a few for the stack and the bookkeeping
}

TEST(PrefaultForShortRun, TheProgramsCodeIsMapped) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    PrefaultReport r = PrefaultForShortRun(0);  // no heap: only the read-only segments
    (void)!::write(fds[1], &r, sizeof r);
    ::_exit(0);
  }
  ::close(fds[1]);
  PrefaultReport r;
  ASSERT_EQ(::read(fds[0], &r, sizeof r), static_cast<ssize_t>(sizeof r));
  ::close(fds[0]);
  ::waitpid(pid, nullptr, 0);
  EXPECT_EQ(r.heap_bytes, 0u);
  EXPECT_GT(r.mapped_bytes, 1u << 20);  // this test program's code alone is larger
}

// In a fresh copy of this program whose OpenSSL was started as patchgate-client starts it:
// verifies each signature of the JSON file $PATCHGATE_SIGNED ([{key, message, sig}], made
// by a normally started OpenSSL), and the same signature over a changed message. Prints
// "verified=N refused=M".
TEST(InitOpensslForShortRun, DISABLED_VerifyInAFreshProcess) {
  InitOpensslForShortRun();
  const char* path = std::getenv("PATCHGATE_SIGNED");
  ASSERT_NE(path, nullptr);
  FILE* f = std::fopen(path, "r");
  ASSERT_NE(f, nullptr);
  std::string text;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) text.append(buf, n);
  std::fclose(f);
  int verified = 0, refused = 0;
  for (const auto& item : Json::parse(text)) {
    auto key = PublicKey::FromJson(item["key"]);
    ASSERT_TRUE(key.ok()) << key.status().ToString();
    const std::string message = item["message"], sig = item["sig"];
    Status good = key->Verify(message, sig);
    if (good.ok()) ++verified;
    else std::printf("%s: %s\n", key->keytype().c_str(), good.ToString().c_str());
    if (key->Verify(message + "!", sig).code() == ErrorCode::kBadSignature) ++refused;
  }
  std::printf("verified=%d refused=%d\n", verified, refused);
}

// Every key type the client meets (ed25519, ecdsa P-256, rsa PSS; signed by an OpenSSL
// started with every default, as other implementations' keys are) verifies in a process
// whose OpenSSL has no legacy cipher and digest tables and no error texts, and a changed
// message is still refused.
TEST(InitOpensslForShortRun, EveryKeyTypeVerifiesAndTamperingIsRefused) {
  Json signed_items = Json::array();
  for (KeyType type : {KeyType::kEd25519, KeyType::kEcdsaP256, KeyType::kRsaPss}) {
    auto k = PrivateKey::Generate(type);
    ASSERT_TRUE(k.ok()) << k.status().ToString();
    const std::string message = "signed bytes of a role";
    auto sig = k->SignHex(message);
    ASSERT_TRUE(sig.ok()) << sig.status().ToString();
    signed_items.push_back(Json{{"key", k->public_key().ToJson()}, {"message", message}, {"sig", *sig}});
  }
  char dir[] = "/tmp/pg-startup-test.XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/signed.json";
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  const std::string text = signed_items.dump();
  std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
  std::string cmd = "PATCHGATE_SIGNED=" + path + " /proc/" + std::to_string(::getpid()) +
                    "/exe --gtest_also_run_disabled_tests "
                    "--gtest_filter=InitOpensslForShortRun.DISABLED_VerifyInAFreshProcess 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  ::pclose(p);
  ::unlink(path.c_str());
  ::rmdir(dir);
  EXPECT_NE(out.find("verified=3 refused=3"), std::string::npos) << out;
}

}  // namespace
}  // namespace patchgate::client
