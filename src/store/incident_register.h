// IncidentRegister: the incidents opened against a node (an infection, a file changed on
// disk, an operator's report): which node, the time window in which it may have served
// bad bytes, the cause, and the files involved. Scope and notification read them back.
//
// Promises: an incident, once created, keeps its id and fields (there is no update).
// Threading: safe to call from several threads at once.
// Errors: kUnavailable when the database cannot be reached; kNotFound for an unknown id.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "store/records.h"

namespace patchgate {

class IncidentRegister {
 public:
  virtual ~IncidentRegister() = default;

  virtual Result<int64_t> CreateIncident(const Incident& incident) = 0;
  virtual Result<Incident> GetIncident(int64_t id) = 0;
  virtual Result<std::vector<Incident>> ListIncidents() = 0;
};

}  // namespace patchgate
