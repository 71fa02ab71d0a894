// Validation of a whole scenario: errors (the run cannot happen) and warnings (it can, but likely
// not as intended — e.g. a stage that does not fit device memory, with the per-stage figure).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/scenario.h"
#include "model/status.h"

namespace eellm {

// Bounds beyond any real system (docs/scenario-format.md): sizes above them are refused with the
// field named, so that every product the layout and the cost model form fits in 64 bits and no run
// builds work that would explode (2^30 microbatches, 10^6 layers).
namespace bounds {
inline constexpr int64_t kMaxLayers = 4096;
inline constexpr int64_t kMaxHidden = 262144;        // 2^18
inline constexpr int64_t kMaxHeads = 65536;          // also query groups, kv channels
inline constexpr int64_t kMaxFfnHidden = 1048576;    // 2^20
inline constexpr int64_t kMaxSeqLength = 1048576;    // 2^20 tokens; also max_position_embeddings
inline constexpr int64_t kMaxVocab = 16777216;       // 2^24 (padded too)
inline constexpr int64_t kMaxVocabMultiple = 65536;  // make_vocab_size_divisible_by
inline constexpr int64_t kMaxParallel = 65536;       // tp, pp, dp each
inline constexpr int64_t kMaxVirtualStages = 64;     // vp
inline constexpr int64_t kMaxGpus = 1048576;         // 2^20: world size, nodes × GPUs per node
inline constexpr int64_t kMaxGpusPerNode = 1024;
inline constexpr int64_t kMaxBatch = 16777216;         // micro and global batch, in sequences
inline constexpr int64_t kMaxMicrobatches = 1048576;   // per iteration
inline constexpr int64_t kMaxScheduleSteps = 4194304;  // pp × vp × microbatches (simulated work)
inline constexpr int64_t kMaxExits = 4096;
inline constexpr int64_t kMaxInferenceTokens = 1048576;  // prompt, new tokens, batch
inline constexpr int64_t kMaxThreads = 4096;
inline constexpr double kMaxBandwidthGBps = 1e6;   // 1 PB/s
inline constexpr double kMinBandwidthGBps = 1e-3;  // 1 MB/s
inline constexpr double kMaxTflops = 1e6;
inline constexpr double kMinTflops = 1e-6;
inline constexpr double kMaxMemoryGiB = 1e6;
inline constexpr double kMaxLatencyUs = 1e7;  // 10 s: latencies, launch and overhead terms
}  // namespace bounds

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

// All errors and warnings of a scenario (bounds and overflow first, then layout, ranges, memory fit
// against the device). Every entry point (load_scenario, sweep points, the GUI) runs it before any
// arithmetic on the scenario.
Diagnostics validate_scenario(const Scenario& scenario, double memory_margin_fraction = 0.0);

// Only the bound and overflow checks (sizes, products in 64 bits, finite and physical floats): what
// makes derive_layout and the cost model safe to call. Part of validate_scenario.
Diagnostics validate_bounds(const Scenario& scenario);

// Only the what-if cost inputs (cluster.cost.*, the device's power, training.train_tokens); the
// cost block checks them before costing a run (part of validate_scenario too).
Diagnostics validate_cost_fields(const Scenario& scenario);

}  // namespace eellm
