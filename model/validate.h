// Validation of a whole scenario: errors (the run cannot happen) and warnings (it can, but likely
// not as intended — e.g. a stage that does not fit device memory, with the per-stage figure).
#pragma once

#include <string>
#include <vector>

#include "model/scenario.h"
#include "model/status.h"

namespace eellm {

struct Diagnostic {
  enum class Severity { kError, kWarning };
  Severity severity = Severity::kError;
  std::string field;    // "parallel.layer_partition[2]"
  std::string message;  // full sentence with the numbers
};

struct Diagnostics {
  std::vector<Diagnostic> items;
  bool has_errors() const;
  // The first error as a Status (ok when there is none).
  Status first_error() const;
  std::string to_string() const;
};

// All errors and warnings of a scenario (layout, ranges, memory fit against the device).
Diagnostics validate_scenario(const Scenario& scenario, double memory_margin_fraction = 0.0);

// Only the what-if cost inputs (cluster.cost.*, the device's power, training.train_tokens); the
// cost block checks them before costing a run (part of validate_scenario too).
Diagnostics validate_cost_fields(const Scenario& scenario);

}  // namespace eellm
