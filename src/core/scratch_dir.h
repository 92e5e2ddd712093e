// A temporary folder for a test, removed with everything in it when the ScratchDir ends
// (test code only). Tests leave nothing behind in /tmp, pass or fail.
//
//   ScratchDir dir("scan");            // /tmp/pgscanXXXXXX
//   Write(dir.path() + "/a.bin", ...);
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <string_view>

namespace patchgate {

class ScratchDir {
 public:
  explicit ScratchDir(std::string_view label) {
    std::string tmpl = "/tmp/pg" + std::string(label) + "XXXXXX";
    if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  // Empty if the folder could not be made (a full /tmp); tests then fail on their first write.
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace patchgate
