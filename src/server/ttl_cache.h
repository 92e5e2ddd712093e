// A small map whose entries expire after a fixed time (token and entitlement answers).
// Thread-safe.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace patchgate::server {

template <typename V>
class TtlCache {
 public:
  explicit TtlCache(int ttl_ms) : ttl_(std::chrono::milliseconds(ttl_ms)) {}
  bool Get(const std::string& k, V* out) {
    if (ttl_.count() <= 0) return false;
    std::lock_guard<std::mutex> l(mu_);
    auto it = map_.find(k);
    if (it == map_.end() || std::chrono::steady_clock::now() > it->second.second) return false;
    *out = it->second.first;
    return true;
  }
  void Put(const std::string& k, const V& v) {
    if (ttl_.count() <= 0) return;
    std::lock_guard<std::mutex> l(mu_);
    if (map_.size() > 100000) map_.clear();
    map_[k] = {v, std::chrono::steady_clock::now() + ttl_};
  }

 private:
  std::chrono::milliseconds ttl_;
  std::mutex mu_;
  std::map<std::string, std::pair<V, std::chrono::steady_clock::time_point>> map_;
};

}  // namespace patchgate::server
