// Against the real ClamAV engine (patchgate-scan-worker) and the project's test signatures.
#include "scan/scanner.h"

#include <cstdlib>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "core/fs.h"
#include "core/scratch_dir.h"
#include "crypto/hash.h"
#include "scan/gate.h"
#include "scan/signature_version.h"
#include "store/store.h"

namespace patchgate::scan {
namespace {

const std::string kSigs = std::string(PATCHGATE_SOURCE_DIR) + "/tests/data/signatures";
const std::string kWorker = std::string(PATCHGATE_BINARY_DIR) + "/src/cli/patchgate-scan-worker";
const char kEicar[] = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
const char kMarker[] = "PATCHGATE-SIMULATED-FILE-INFECTOR-FUNLOVE\n";

class ScannerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = scratch_.path();
  }
  std::string Write(const std::string& name, const std::string& content) {
    std::string p = dir_ + "/" + name;
    (void)RealFileSystem::Get().MakeDirs(DirName(p));
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
  std::string Elf() { return *RealFileSystem::Get().ReadFile("/bin/true", 1 << 24); }
  void Zip(const std::string& zip, const std::string& file, const std::string& flags = "") {
    std::string cmd = "cd " + dir_ + " && zip -q " + flags + " " + zip + " " + file;
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }
  std::unique_ptr<Scanner> Make(ScanOptions o = {}) {
    if (o.signatures_dir.empty()) o.signatures_dir = kSigs;
    o.worker_path = kWorker;
    o.jobs = o.jobs ? o.jobs : 2;
    auto s = NewWorkerScanner(o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }
  FileResult One(Scanner& s, const std::string& path) { return (*s.Scan({path}))[0]; }

  ScratchDir scratch_{"scan"};
  std::string dir_;
};

TEST_F(ScannerTest, SignatureSetVersionFollowsEveryFileAndTheDailyVersion) {
  Write("sigs/a.hdb", "44d88612fea8a8f36de82e1278abb02f:68:Test.A\n");
  std::string v1 = SignatureSetVersion(dir_ + "/sigs");
  EXPECT_EQ(v1.rfind("sigs-", 0), 0u) << v1;
  EXPECT_EQ(SignatureSetVersion(dir_ + "/sigs"), v1);  // stable
  Write("sigs/a.hdb", "44d88612fea8a8f36de82e1278abb02f:68:Test.B\n");
  std::string v2 = SignatureSetVersion(dir_ + "/sigs");
  EXPECT_NE(v2, v1);  // one changed byte is a new signature set
  std::string header = "ClamAV-VDB:23 Nov 2026 07-55 +0000:27480:2071523:90:abc:def:raynman:1700000000";
  header.resize(512, ' ');
  Write("sigs/daily.cvd", header + "rest of the database");
  std::string v3 = SignatureSetVersion(dir_ + "/sigs");
  EXPECT_EQ(v3.rfind("daily-27480-", 0), 0u) << v3;
  Write("sigs/daily.cvd", std::string(512, 'x'));  // not a CVD header: no daily version claimed
  EXPECT_EQ(SignatureSetVersion(dir_ + "/sigs").rfind("sigs-", 0), 0u);
  // The workers report the version the parent computed once.
  auto scanner = Make();
  ASSERT_TRUE(scanner);
  EXPECT_EQ(scanner->info().db_version, SignatureSetVersion(kSigs));
}

TEST_F(ScannerTest, CleanFilesAreCleanAndHashed) {
  auto s = Make();
  ASSERT_TRUE(s);
  auto r = One(*s, Write("clean.bin", Elf()));
  EXPECT_EQ(r.verdict, Verdict::kClean) << r.error;
  EXPECT_EQ(r.length, Elf().size());
  EXPECT_EQ(r.sha256, Sha256Hex(Elf()));  // the hash comes from the same read as the scan
  EXPECT_EQ(s->info().engine, "ClamAV");
  EXPECT_FALSE(s->info().engine_version.empty());
  EXPECT_GT(s->info().signatures, 5u);
}

TEST_F(ScannerTest, LargeFilesAreHashedThroughAWindowEveryByte) {
  // Over the size that is mapped whole (8 MiB), and not a multiple of the 4 MiB hash window:
  // the hash covers every byte, the last partial window included.
  std::string big(9u << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 2654435761u) >> 13);
  big += "tail";
  auto s = Make();
  ASSERT_TRUE(s);
  auto r = One(*s, Write("big.bin", big));
  EXPECT_EQ(r.verdict, Verdict::kClean) << r.error;
  EXPECT_EQ(r.length, big.size());
  EXPECT_EQ(r.sha256, Sha256Hex(big));
}

TEST_F(ScannerTest, AVerdictWithoutTheFilesHashIsAnError) {
  // A worker that answers "clean" without saying what content it scanned: the verdict is not
  // bound to the file's bytes, so it must not count as clean.
  std::string fake = Write("fake-worker.sh",
                           "#!/bin/bash\n"
                           "echo '{\"ready\":true,\"engine_version\":\"fake\",\"db_version\":\"x\",\"signatures\":1}'\n"
                           "while read -r op id rest; do echo \"{\\\"id\\\":\\\"$id\\\",\\\"verdict\\\":\\\"clean\\\"}\"; done\n");
  ASSERT_EQ(::chmod(fake.c_str(), 0755), 0);
  ScanOptions o;
  o.signatures_dir = kSigs;
  o.worker_path = fake;
  o.jobs = 1;
  auto s = NewWorkerScanner(o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto r = One(**s, Write("plain.txt", "plain"));
  EXPECT_EQ(r.verdict, Verdict::kError);
  EXPECT_NE(r.error.find("without the file's hash"), std::string::npos) << r.error;
}

TEST_F(ScannerTest, TheTimeLimitRunsFromWhenAThreadTakesTheFileNotFromTheSend) {
  // One scanning thread, two files: the second waits in the worker's queue while the first
  // takes 0.8 s of a 1 s limit. Counted from the send it would be late; counted from when the
  // thread takes it ("started") it is on time, and both are clean.
  std::string fake = Write("slow-worker.sh", R"(#!/bin/bash
echo '{"ready":true,"engine_version":"fake","db_version":"x","signatures":1}'
while read -r op id rest; do
  echo "{\"id\":\"$id\",\"started\":true}"
  sleep 0.8
  echo "{\"id\":\"$id\",\"sha256\":\"$(printf '0%.0s' {1..64})\",\"length\":1,\"verdict\":\"clean\"}"
done
)");
  ASSERT_EQ(::chmod(fake.c_str(), 0755), 0);
  ScanOptions o;
  o.signatures_dir = kSigs;
  o.worker_path = fake;
  o.jobs = 1;
  o.timeout_seconds = 1;
  auto s = NewWorkerScanner(o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto r = (*s)->Scan({Write("one.txt", "1"), Write("two.txt", "2")});
  ASSERT_TRUE(r.ok());
  for (const auto& f : *r) EXPECT_EQ(f.verdict, Verdict::kClean) << f.path << ": " << f.error;
}

TEST_F(ScannerTest, Eicar) {
  auto s = Make();
  auto r = One(*s, Write("eicar.com", kEicar));
  EXPECT_EQ(r.verdict, Verdict::kInfected);
  ASSERT_FALSE(r.detections.empty());
  EXPECT_NE(r.detections[0].find("EICAR"), std::string::npos);
}

TEST_F(ScannerTest, MarkerInfectedElfIsCaughtByBodySignatures) {
  auto s = Make();
  auto r = One(*s, Write("infected-true", Elf() + kMarker));
  EXPECT_EQ(r.verdict, Verdict::kInfected);
  std::string all;
  for (const auto& d : r.detections) all += d + " ";
  EXPECT_NE(all.find("FileInfector.ELF"), std::string::npos) << all;  // logical signature, ELF target
  EXPECT_NE(all.find("YARA"), std::string::npos) << all;
}

TEST_F(ScannerTest, InfectedInsideZipAndZipInsideZip) {
  Write("eicar.com", kEicar);
  Zip("one.zip", "eicar.com");
  Zip("two.zip", "one.zip");
  auto s = Make();
  EXPECT_EQ(One(*s, dir_ + "/one.zip").verdict, Verdict::kInfected);
  EXPECT_EQ(One(*s, dir_ + "/two.zip").verdict, Verdict::kInfected);
}

TEST_F(ScannerTest, EncryptedZipIsNotClean) {
  Write("payload.bin", Elf());
  Zip("enc.zip", "payload.bin", "-P secret");
  auto s = Make();
  auto r = One(*s, dir_ + "/enc.zip");
  EXPECT_EQ(r.verdict, Verdict::kUnscannable);
  ASSERT_FALSE(r.detections.empty());
  EXPECT_NE(r.detections[0].find("Encrypted"), std::string::npos);
}

TEST_F(ScannerTest, FileOverTheSizeLimitIsNotClean) {
  ScanOptions o;
  o.max_file_size = 100000;
  auto s = Make(o);
  auto r = One(*s, Write("big.bin", std::string(200000, 'x')));
  EXPECT_EQ(r.verdict, Verdict::kUnscannable);
  EXPECT_NE(r.error.find("over the scan limit"), std::string::npos);
}

TEST_F(ScannerTest, EmptyOrMalformedSignaturesRefuseToStart) {
  ASSERT_TRUE(RealFileSystem::Get().MakeDirs(dir_ + "/empty").ok());
  ScanOptions o;
  o.signatures_dir = dir_ + "/empty";
  o.worker_path = kWorker;
  auto s = NewWorkerScanner(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ErrorCode::kScanFailed);
  EXPECT_NE(s.status().message().find("empty"), std::string::npos);
  Write("bad/x.ndb", "garbage:::\n");
  o.signatures_dir = dir_ + "/bad";
  s = NewWorkerScanner(o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("Malformed"), std::string::npos) << s.status().message();
  o.signatures_dir = dir_ + "/missing";
  EXPECT_EQ(NewWorkerScanner(o).status().code(), ErrorCode::kScanFailed);
}

TEST_F(ScannerTest, ClamavTestfilesAreAllDetected) {
  auto exp = ExpandInputs({"/usr/share/clamav-testfiles"});
  if (exp.files.empty()) GTEST_SKIP() << "Debian's clamav-testfiles package is not installed";
  auto s = Make();
  auto results = s->Scan(exp.files);
  ASSERT_TRUE(results.ok());
  for (const auto& r : *results) EXPECT_EQ(r.verdict, Verdict::kInfected) << r.path << " " << r.error;
}

TEST_F(ScannerTest, SymlinkOutsideTheInputIsRefusedAndUnreadableIsError) {
  Write("in/a.bin", "a");
  ASSERT_EQ(::symlink("/etc/passwd", (dir_ + "/in/escape").c_str()), 0);
  ASSERT_EQ(::symlink((dir_ + "/in/a.bin").c_str(), (dir_ + "/in/inside").c_str()), 0);
  ASSERT_EQ(::mkfifo((dir_ + "/in/fifo").c_str(), 0600), 0);
  auto exp = ExpandInputs({dir_ + "/in"});
  ASSERT_EQ(exp.files.size(), 1u);
  ASSERT_EQ(exp.refused.size(), 2u);
  bool saw_escape = false;
  for (const auto& [p, why] : exp.refused) saw_escape |= why.find("outside the input") != std::string::npos;
  EXPECT_TRUE(saw_escape);
  // A file that cannot be read when its turn comes is an error, never clean.
  auto s = Make();
  auto r = One(*s, dir_ + "/in/vanished.bin");
  EXPECT_EQ(r.verdict, Verdict::kError);
  EXPECT_FALSE(r.error.empty());
}

// Bytes waiting in the worker's request pipe (its stdin), read through /proc.
int PendingRequestBytes(int pid) {
  int fd = ::open(("/proc/" + std::to_string(pid) + "/fd/0").c_str(), O_RDONLY | O_NONBLOCK);
  if (fd < 0) return -1;
  int n = -1;
  if (::ioctl(fd, FIONREAD, &n) != 0) n = -1;
  ::close(fd);
  return n;
}

// Whether every thread of `pid` is in the stopped state ('T' in /proc/<pid>/task/*/stat).
bool AllThreadsStopped(int pid) {
  auto tasks = RealFileSystem::Get().ListDir("/proc/" + std::to_string(pid) + "/task");
  if (!tasks.ok() || tasks->empty()) return false;
  for (const auto& t : *tasks) {
    auto stat = RealFileSystem::Get().ReadFile("/proc/" + std::to_string(pid) + "/task/" + t + "/stat", 4096);
    if (!stat.ok()) return false;
    size_t paren = stat->rfind(')');  // the command name may hold spaces and parentheses
    if (paren == std::string::npos || paren + 2 >= stat->size() || (*stat)[paren + 2] != 'T') return false;
  }
  return true;
}

TEST_F(ScannerTest, AWorkerCrashIsAnErrorNeverCleanAndTheWorkerRestarts) {
  // Under AddressSanitizer the worker would catch the SIGSEGV, print its report and abort,
  // while its other scanning thread goes on answering: a crash must end the process at once,
  // as it does in a release build, so the worker is started with ASan's handler off.
  const char* asan = std::getenv("ASAN_OPTIONS");
  std::string saved = asan ? asan : "";
  ::setenv("ASAN_OPTIONS", (saved + (saved.empty() ? "" : ":") + "handle_segv=0").c_str(), 1);
  struct Restore {
    std::string v;
    bool had;
    ~Restore() { had ? ::setenv("ASAN_OPTIONS", v.c_str(), 1) : ::unsetenv("ASAN_OPTIONS"); }
  } restore{saved, asan != nullptr};
  // Two scanning threads share one engine in one worker process.
  ScanOptions o;
  o.jobs = 2;
  auto s = Make(o);
  ASSERT_TRUE(s);
  auto pids = WorkerPidsForTest(*s);
  ASSERT_EQ(pids.size(), 1u);
  std::vector<std::string> files = {Write("a.bin", "clean a"), Write("b.bin", "clean b")};
  // One scan first, so the engine is loaded and requests go straight to the worker's pipe
  // (a worker stopped while still loading would never be sent them).
  auto warm = s->Scan({Write("warm.bin", "warm")});
  ASSERT_TRUE(warm.ok() && (*warm)[0].verdict == Verdict::kClean);
  ASSERT_EQ(WorkerPidsForTest(*s), pids);
  // Hold the worker still, let both requests reach it, then crash it as a libclamav parser
  // crash would: both files are in flight when it dies.
  ASSERT_EQ(::kill(pids[0], SIGSTOP), 0);
  // kill() only queues the stop: wait until every thread of the worker is stopped, or its
  // request reader could still take the first request off the pipe.
  for (int i = 0; i < 1000 && !AllThreadsStopped(pids[0]); ++i) usleep(10000);
  ASSERT_TRUE(AllThreadsStopped(pids[0]));
  std::vector<FileResult> results;
  std::thread scan([&] { results = *s->Scan(files); });
  const int want = 2 * static_cast<int>(std::string("SCAN 1 \n").size() + 2 * files[0].size());
  for (int i = 0; i < 1000 && PendingRequestBytes(pids[0]) < want; ++i) usleep(10000);
  EXPECT_GE(PendingRequestBytes(pids[0]), want);
  ::kill(pids[0], SIGSEGV);
  ::kill(pids[0], SIGCONT);
  scan.join();
  ASSERT_EQ(results.size(), 2u);
  for (const auto& r : results) {
    EXPECT_EQ(r.verdict, Verdict::kError) << r.path;
    EXPECT_NE(r.error.find("worker died"), std::string::npos) << r.error;
    EXPECT_NE(r.error.find("Segmentation"), std::string::npos) << r.error;
  }
  // A fresh process scans the next files; the crashed one is gone.
  auto again = s->Scan(files);
  for (const auto& r : *again) EXPECT_EQ(r.verdict, Verdict::kClean) << r.error;
  auto fresh = WorkerPidsForTest(*s);
  EXPECT_NE(fresh[0], pids[0]);
  // A worker that dies while idle is replaced too, and its death costs no verdict.
  ::kill(fresh[0], SIGKILL);
  usleep(100000);
  EXPECT_EQ(One(*s, files[0]).verdict, Verdict::kClean);
  EXPECT_NE(WorkerPidsForTest(*s)[0], fresh[0]);
}

TEST_F(ScannerTest, OneEngineIsSharedByTheScanningThreads) {
  ScanOptions o;
  o.jobs = 3;
  auto s = Make(o);
  ASSERT_TRUE(s);
  auto pids = WorkerPidsForTest(*s);
  ASSERT_EQ(pids.size(), 1u);  // one process, not one per job
  std::vector<std::string> files;
  for (int i = 0; i < 6; ++i) files.push_back(Write("f" + std::to_string(i), "clean " + std::to_string(i)));
  for (const auto& r : *s->Scan(files)) EXPECT_EQ(r.verdict, Verdict::kClean) << r.error;
  EXPECT_EQ(WorkerPidsForTest(*s), pids);
  std::string status = *RealFileSystem::Get().ReadFile("/proc/" + std::to_string(pids[0]) + "/status", 1 << 16);
  EXPECT_NE(status.find("Threads:\t4"), std::string::npos) << status;  // the request reader and 3 scanning threads
}

TEST_F(ScannerTest, FilesOverTwoGibibytesAreUnscannableWithAReason) {
  // A sparse file: 3 GiB long, no disk blocks, never read (refused on its size).
  std::string big = dir_ + "/big.iso";
  int fd = ::open(big.c_str(), O_CREAT | O_WRONLY, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 3LL << 30), 0);
  ::close(fd);
  ScanOptions o;
  o.max_file_size = 4000000000ull;
  o.signatures_dir = kSigs;
  o.worker_path = kWorker;
  auto s = Make(o);
  auto r = One(*s, big);
  EXPECT_EQ(r.verdict, Verdict::kUnscannable);
  EXPECT_NE(r.error.find("cannot scan files of 2 GiB"), std::string::npos) << r.error;
  // Through the publish gate the reason reaches the user.
  auto gate = MakePublishGate(o, dir_ + "/repo");
  tuf::StagedInput staged;
  staged.source = staged.staged = big;
  staged.name = "big.iso";
  staged.length = 3ull << 30;
  auto refused = gate({staged});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("2 GiB"), std::string::npos) << refused.status().message();
}

TEST_F(ScannerTest, ALimitHeuristicAlwaysCarriesAReason) {
  // Deeply nested zips exceed the recursion limit: unscannable, and the reason is given.
  Write("d0", Elf());
  std::string prev = "d0";
  for (int i = 1; i <= 40; ++i) {
    std::string z = "z" + std::to_string(i) + ".zip";
    Zip(z, prev);
    prev = z;
  }
  auto s = Make();
  auto r = One(*s, dir_ + "/" + prev);
  EXPECT_EQ(r.verdict, Verdict::kUnscannable) << r.error;
  EXPECT_FALSE(r.error.empty());
  EXPECT_NE(r.error.find("cannot be vouched for"), std::string::npos) << r.error;
}

TEST_F(ScannerTest, ParallelScanKeepsInputOrder) {
  std::vector<std::string> files;
  for (int i = 0; i < 20; ++i) files.push_back(Write("f" + std::to_string(i), i == 13 ? std::string(kEicar) : "clean " + std::to_string(i)));
  auto s = Make();
  auto r = s->Scan(files);
  ASSERT_EQ(r->size(), 20u);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ((*r)[i].path, files[i]);
    EXPECT_EQ((*r)[i].verdict, i == 13 ? Verdict::kInfected : Verdict::kClean);
  }
}

TEST_F(ScannerTest, VerdictCacheSkipsTheEngineForKnownCleanBytes) {
  auto store = Store::Open("sqlite://" + dir_ + "/cache.db");
  ASSERT_TRUE(store.ok());
  ScanOptions o;
  o.cache = store->get();
  auto s = Make(o);
  std::string f = Write("clean.bin", Elf());
  EXPECT_FALSE(One(*s, f).cached);
  auto second = One(*s, f);
  EXPECT_TRUE(second.cached);
  EXPECT_EQ(second.verdict, Verdict::kClean);
  // Infected verdicts are never served from the cache as clean.
  std::string e = Write("eicar.com", kEicar);
  EXPECT_EQ(One(*s, e).verdict, Verdict::kInfected);
  EXPECT_EQ(One(*s, e).verdict, Verdict::kInfected);
}

TEST_F(ScannerTest, GateQuarantinesAndRefuses) {
  ScanOptions o;
  o.signatures_dir = kSigs;
  o.worker_path = kWorker;
  auto gate = MakePublishGate(o, dir_ + "/repo");
  auto in = [](const std::string& p) {
    tuf::StagedInput s;
    s.source = s.staged = p;
    s.name = p.substr(p.find_last_of('/') + 1);
    return s;
  };
  auto ok = gate({in(Write("clean.bin", "fine"))});
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ((*ok)[0].custom["scan"]["verdict"], "clean");
  EXPECT_EQ((*ok)[0].custom["scan"]["engine"], "ClamAV");
  EXPECT_EQ((*ok)[0].scanned_sha256, Sha256Hex("fine"));
  auto bad = gate({in(dir_ + "/clean.bin"), in(Write("eicar.com", kEicar))});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kInfected);
  auto q = RealFileSystem::Get().ListDir(dir_ + "/repo/quarantine");
  ASSERT_TRUE(q.ok());
  ASSERT_EQ(q->size(), 2u);  // the bytes and the JSON report
  std::string report;
  for (const auto& n : *q)
    if (n.size() > 5 && n.substr(n.size() - 5) == ".json") report = *RealFileSystem::Get().ReadFile(dir_ + "/repo/quarantine/" + n, 1 << 20);
  EXPECT_NE(report.find("\"detections\""), std::string::npos);
  EXPECT_NE(report.find("\"signature_version\""), std::string::npos);
  Write("p.bin", Elf());
  Zip("enc.zip", "p.bin", "-P pw");
  EXPECT_EQ(gate({in(dir_ + "/enc.zip")}).status().code(), ErrorCode::kScanFailed);
}

}  // namespace
}  // namespace patchgate::scan
