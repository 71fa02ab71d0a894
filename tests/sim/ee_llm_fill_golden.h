// Golden per-stage compute order of EE-LLM's early-exit schedules at PP 4, 6 microbatches, as its
// released code (megatron/core/pipeline_parallel/schedules.py) runs them rank by rank: without
// filling (early_exit_forward_backward_pipelining) and with 2 + 2 fill microbatches
// (…_with_bubble_filling, backward/forward ratio 2), exits on stages 1–2 and on stages 0–1.
// Worked out by hand from that code's control flow; identities follow its (untagged) message
// order: stage 1 fills the microbatch stage 0 sent fourth (3), stage 0's two fill forwards (4, 5)
// go on as a full microbatch (4) and as a forward nobody receives (5), and stage 0 runs its fill
// backward with the gradient of 3. Shared by tests/sim (simulator) and tests/mpi (executor).
#pragma once

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "model/scenario_io.h"
#include "sim/schedule.h"
#include "sim/timeline.h"

namespace eellm::golden {

inline const std::vector<std::string> kNoFill = {
    "F0 F1 F2 F3 B0 F4 B1 F5 B2 B3 B4 B5",
    "F0 F1 F2 B0 F3 B1 F4 B2 F5 B3 B4 B5",
    "F0 F1 B0 F2 B1 F3 B2 F4 B3 F5 B4 B5",
    "F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5",
};
inline const std::vector<std::string> kFillExitsOnStages12 = {
    "F0 F1 F2 F3 FILL-F4 FILL-F5 FILL-B3 B0 B1",
    "F0 F1 F2 FILL-F3 FILL-B3* B0 F4 B1",
    "F0 F1 B0 F2 B1 F4 B2",
    "F0 B0 F1 B1 F2 B2 F4 B4",
};
inline const std::vector<std::string> kFillExitsOnStages01 = {
    "F0 F1 F2 F3 FILL-F4 FILL-F5 FILL-B5* FILL-B3 B0 B1",
    "F0 F1 F2 FILL-F3 FILL-B3* B0 F4 B1",
    "F0 F1 B0 F2 B1 F4 B2",
    "F0 B0 F1 B1 F2 B2 F4 B4",
};

// A tiny 8-layer model (2 layers a stage) at PP 4, m 6, exits after `exits` (layers 4 and 6: stages
// 1 and 2; layers 2 and 4: stages 0 and 1), bubble filling at EE-LLM's ratio 2 when `fill`.
inline Scenario scenario(std::vector<int> exits, bool fill) {
  Scenario s = load_scenario(std::string(EELLM_SOURCE_DIR) + "/scenarios/tiny-ee.yaml").value();
  s.model.num_layers = 8;
  s.model.hidden_size = 32;
  s.model.num_attention_heads = 4;
  s.model.seq_length = 16;
  s.model.max_position_embeddings = 16;
  s.exits.exit_layer_nums = std::move(exits);
  s.exits.exit_layer_weight = {0.5, 0.25};
  s.parallel.pipeline_model_parallel_size = 4;
  s.parallel.data_parallel_size = 1;
  s.parallel.world_size = 4;
  s.parallel.schedule = ScheduleKind::kEE1F1B;
  s.parallel.fill_explicit_bubbles = fill;
  s.parallel.backward_forward_ratio = 2.0;
  s.training.micro_batch_size = 2;
  s.training.global_batch_size = 12;
  s.execution.num_threads = 1;
  return s;
}

// The compute instructions (FWD/BWD) of each rank, in list order.
inline std::vector<std::string> compute_order(const Schedule& s) {
  std::vector<std::string> out;
  for (const auto& list : s.ranks) {
    std::string line;
    for (const Instr& in : list)
      if (in.kind == InstrKind::kForward || in.kind == InstrKind::kBackward) {
        if (!line.empty()) line += ' ';
        line += to_string(in);
      }
    out.push_back(line);
  }
  return out;
}

// The compute instructions of each rank in the order a timeline ran them (by start time).
inline std::vector<std::string> compute_order(const Timeline& t, const Schedule& s) {
  std::vector<std::vector<std::pair<TimeNs, int>>> started(s.ranks.size());
  for (const TimelineEvent& e : t.events)
    if (!e.exit_part && (e.op == InstrKind::kForward || e.op == InstrKind::kBackward) && e.rank >= 0 &&
        static_cast<size_t>(e.rank) < s.ranks.size())
      started[static_cast<size_t>(e.rank)].push_back({e.t0, e.instr});
  std::vector<std::string> out;
  for (size_t r = 0; r < started.size(); ++r) {
    std::sort(started[r].begin(), started[r].end());
    std::string line;
    for (const auto& [t0, i] : started[r]) {
      if (!line.empty()) line += ' ';
      line += to_string(s.ranks[r][static_cast<size_t>(i)]);
    }
    out.push_back(line);
  }
  return out;
}

}  // namespace eellm::golden
