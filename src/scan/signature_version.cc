#include "scan/signature_version.h"

#include <dirent.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <vector>

#include "crypto/hash.h"

namespace patchgate::scan {

namespace {

// A .cvd/.cld file starts with a 512-byte ASCII header
// "ClamAV-VDB:<build time>:<version>:<signatures>:<functionality level>:...".
std::string CvdVersion(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char head[512] = {};
  in.read(head, sizeof head);
  std::string h(head, static_cast<size_t>(in.gcount()));
  if (h.rfind("ClamAV-VDB:", 0) != 0) return "";
  size_t a = h.find(':', 11);
  if (a == std::string::npos) return "";
  size_t b = h.find(':', a + 1);
  if (b == std::string::npos) return "";
  std::string v = h.substr(a + 1, b - a - 1);
  if (v.empty() || v.size() > 12 || v.find_first_not_of("0123456789") != std::string::npos) return "";
  return v;
}

}  // namespace

std::string SignatureSetVersion(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());
  std::string all, daily;
  for (const auto& n : names) {
    auto digest = Sha256File(dir + "/" + n);
    all += n + ":" + (digest.ok() ? digest->sha256 : "?") + "\n";
    if ((n == "daily.cvd" || n == "daily.cld") && daily.empty()) {
      std::string v = CvdVersion(dir + "/" + n);
      if (!v.empty()) daily = "daily-" + v;
    }
  }
  std::string id = Sha256Hex(all).substr(0, 16);
  return daily.empty() ? "sigs-" + id : daily + "-" + id;
}

}  // namespace patchgate::scan
