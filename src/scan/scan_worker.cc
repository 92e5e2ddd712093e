// patchgate-scan-worker: the only patchgate process that loads libclamav. It loads and
// compiles the signature databases once, then answers scan requests on stdin/stdout, one
// JSON object per line. A crash inside a libclamav parser kills this process only; the
// parent sees EOF, reports "error" (never "clean") and starts a fresh worker.
//
// Protocol (parent -> worker, one line each):
//   SCAN <path>        worker reads the file ONCE into memory and replies
//                      {"sha256":..,"length":..} or {"verdict":"error","error":..}
//   GO | SKIP          GO: scan the bytes already read and reply with the verdict;
//                      SKIP: the parent had a cached verdict; nothing is scanned.
// Startup reply: {"ready":true,"engine_version":..,"db_version":..,"signatures":N} or
// {"ready":false,"error":..} (then exit 2).
#include <clamav.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "crypto/hash.h"
#include "scan/signature_version.h"

namespace {

using nlohmann::json;

void Reply(const json& j) {
  std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
  s += '\n';
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);
}

struct Detections {
  std::vector<std::string> names;
};

void OnVirus(int, const char* name, void* ctx) {
  if (ctx && name) static_cast<Detections*>(ctx)->names.emplace_back(name);
}

}  // namespace

int main(int argc, char** argv) {
  std::string db_dir, db_version;
  long long max_file = 512LL * 1024 * 1024;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--db" && i + 1 < argc) db_dir = argv[++i];
    else if (a == "--max-file-size" && i + 1 < argc) max_file = std::atoll(argv[++i]);
    else if (a == "--db-version" && i + 1 < argc) db_version = argv[++i];  // computed once by the parent
  }
  if (db_dir.empty()) {
    Reply({{"ready", false}, {"error", "usage: patchgate-scan-worker --db DIR [--max-file-size BYTES] [--db-version ID]"}});
    return 2;
  }
  cl_error_t rc = cl_init(CL_INIT_DEFAULT);
  if (rc != CL_SUCCESS) {
    Reply({{"ready", false}, {"error", std::string("libclamav init failed: ") + cl_strerror(rc)}});
    return 2;
  }
  {
    DIR* d = ::opendir(db_dir.c_str());
    if (!d) {
      Reply({{"ready", false}, {"error", "cannot open signature directory " + db_dir + ": " + std::strerror(errno)}});
      return 2;
    }
    bool any = false;
    while (dirent* e = ::readdir(d)) any |= e->d_name[0] != '.';
    ::closedir(d);
    if (!any) {
      Reply({{"ready", false}, {"error", "signature directory " + db_dir +
                                             " is empty: an empty signature set cannot vouch for anything"}});
      return 2;
    }
  }
  cl_engine* engine = cl_engine_new();
  unsigned int sigs = 0;
  rc = cl_load(db_dir.c_str(), engine, &sigs, CL_DB_STDOPT);
  if (rc != CL_SUCCESS) {
    Reply({{"ready", false}, {"error", "cannot load signatures from " + db_dir + ": " + cl_strerror(rc) +
                                           " (a malformed signature file?)"}});
    return 2;
  }
  if (sigs == 0) {
    Reply({{"ready", false}, {"error", "no signatures loaded from " + db_dir +
                                           ": an empty signature directory cannot vouch for anything"}});
    return 2;
  }
  // Limits raised to the largest artifact the repository accepts; what exceeds them is
  // reported by the EXCEEDS_MAX heuristic, which blocks.
  cl_engine_set_num(engine, CL_ENGINE_MAX_FILESIZE, max_file);
  cl_engine_set_num(engine, CL_ENGINE_MAX_SCANSIZE, max_file * 4);
  cl_engine_set_num(engine, CL_ENGINE_MAX_RECURSION, 32);
  cl_engine_set_num(engine, CL_ENGINE_MAX_FILES, 100000);
  rc = cl_engine_compile(engine);
  if (rc != CL_SUCCESS) {
    Reply({{"ready", false}, {"error", std::string("cannot compile the signature engine: ") + cl_strerror(rc)}});
    return 2;
  }
  cl_engine_set_clcb_virus_found(engine, OnVirus);
  if (db_version.empty()) db_version = patchgate::scan::SignatureSetVersion(db_dir);
  Reply({{"ready", true}, {"engine_version", cl_retver()}, {"db_version", db_version}, {"signatures", sigs}});

  cl_scan_options opts{};
  opts.general = CL_SCAN_GENERAL_ALLMATCHES | CL_SCAN_GENERAL_HEURISTICS;
  opts.parse = ~0u;  // every parser: archives, packers, documents, mail, images...
  opts.heuristic = CL_SCAN_HEURISTIC_EXCEEDS_MAX | CL_SCAN_HEURISTIC_ENCRYPTED_ARCHIVE | CL_SCAN_HEURISTIC_BROKEN |
                   CL_SCAN_HEURISTIC_ENCRYPTED_DOC;

  std::string line;
  std::string data;  // the bytes of the current file, read once
  const char* map_base = nullptr;
  size_t map_len = 0;
  auto release = [&] {
    if (map_base) ::munmap(const_cast<char*>(map_base), map_len);
    map_base = nullptr;
    map_len = 0;
  };
  bool have = false;
  std::string current;
  while (std::getline(std::cin, line)) {
    if (line.rfind("SCAN ", 0) == 0) {
      release();
      have = false;
      current = line.substr(5);
      int fd = ::open(current.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      struct stat st {};
      if (fd < 0 || ::fstat(fd, &st) != 0) {
        Reply({{"verdict", "error"}, {"error", "cannot read " + current + ": " + std::strerror(errno)}});
        if (fd >= 0) ::close(fd);
        continue;
      }
      if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        Reply({{"verdict", "error"}, {"error", current + " is not a regular file"}});
        continue;
      }
      if (st.st_size > max_file) {
        ::close(fd);
        Reply({{"verdict", "unscannable"}, {"error", current + " is " + std::to_string(st.st_size) +
                                                       " bytes, over the scan limit of " + std::to_string(max_file)}});
        continue;
      }
      map_len = static_cast<size_t>(st.st_size);
      if (map_len > 0) {
        void* p = ::mmap(nullptr, map_len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (p == MAP_FAILED) {
          ::close(fd);
          map_len = 0;
          Reply({{"verdict", "error"}, {"error", "cannot map " + current + ": " + std::strerror(errno)}});
          continue;
        }
        map_base = static_cast<const char*>(p);
      }
      ::close(fd);
      // The one read pass: the same mapped bytes are hashed now and scanned after GO.
      std::string sha = patchgate::Sha256Hex(std::string_view(map_base ? map_base : "", map_len));
      have = true;
      Reply({{"sha256", sha}, {"length", map_len}});
    } else if (line == "GO") {
      if (!have) {
        Reply({{"verdict", "error"}, {"error", "nothing to scan"}});
        continue;
      }
      Detections det;
      const char* virname = nullptr;
      unsigned long scanned = 0;
      cl_fmap_t* map = cl_fmap_open_memory(map_base ? map_base : "", map_len);
      cl_error_t r = cl_scanmap_callback(map, current.c_str(), &virname, &scanned, engine, &opts, &det);
      cl_fmap_close(map);
      if (r == CL_VIRUS) {
        if (det.names.empty() && virname) det.names.emplace_back(virname);
        bool heuristic_only = std::all_of(det.names.begin(), det.names.end(), [](const std::string& n) {
          return n.rfind("Heuristics.Limits", 0) == 0 || n.rfind("Heuristics.Encrypted", 0) == 0;
        });
        Reply({{"verdict", heuristic_only ? "unscannable" : "infected"}, {"detections", det.names}});
      } else if (r == CL_CLEAN) {
        Reply({{"verdict", "clean"}});
      } else {
        Reply({{"verdict", "error"}, {"error", std::string("libclamav: ") + cl_strerror(r)}});
      }
      release();
      have = false;
    } else if (line == "SKIP") {
      release();
      have = false;
    } else {
      Reply({{"verdict", "error"}, {"error", "unknown request"}});
    }
  }
  release();
  cl_engine_free(engine);
  return 0;
}
