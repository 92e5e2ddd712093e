// TargetCatalogue: what was published and what happened to it. One row per published
// target (product, version, length, hash, the publish-time scan verdict), the infection
// mark a rescan sets on a published target, and the record of a node refusing to serve a
// file whose bytes no longer match (node quarantine). Also the plain node rows (name, role,
// upstream, state); node identity, tokens and heartbeats are NodeRegistry's.
//
// Promises: UpsertTarget replaces the row of the same path (a republish clears its
// infection mark: the new bytes were scanned at publish); MarkTargetInfected keeps the
// target listed, marked, so scope and advisories still find it.
// Threading: safe to call from several threads at once.
// Errors: kUnavailable when the database cannot be reached; kNotFound for an unknown path.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "store/records.h"

namespace patchgate {

class TargetCatalogue {
 public:
  virtual ~TargetCatalogue() = default;

  virtual Status UpsertTarget(const TargetRecord& t) = 0;
  virtual Result<TargetRecord> GetTarget(const std::string& path) = 0;
  virtual Result<std::vector<std::string>> ListTargetPaths() = 0;  // every published target, sorted
  virtual Status MarkTargetInfected(const std::string& path, const std::string& detail) = 0;
  virtual Status UpsertNode(const NodeRecord& n) = 0;
  virtual Result<std::vector<NodeRecord>> ListNodes() = 0;
  // Records that `node` refused to serve `path` because its bytes did not match.
  virtual Status QuarantineTargetOnNode(const std::string& node, const std::string& path,
                                        const std::string& expected_sha256,
                                        const std::string& actual_sha256, int64_t at) = 0;
};

}  // namespace patchgate
