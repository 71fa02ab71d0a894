// Memory timeline from instruction timings (see memory.h).
#include "sim/memory.h"

#include <algorithm>
#include <cassert>
#include <map>
#include <tuple>

namespace eellm {

MemoryTimeline memory_timeline(const Schedule& s, const EngineResult& res, const MemoryParams& p) {
  MemoryTimeline out;
  const size_t pp = s.ranks.size();
  out.ranks.resize(pp);
  struct Delta {
    TimeNs t;
    int order;  // frees before allocations at the same instant
    int64_t bytes;
    int flight;
  };
  std::vector<Delta> deltas;
  for (size_t r = 0; r < pp; ++r) {
    deltas.clear();
    const int64_t stat = r < p.static_bytes.size() ? p.static_bytes[r] : 0;
    // Bytes each (microbatch, chunk) still holds: activations, logits.
    std::map<std::pair<int, int>, std::pair<int64_t, int64_t>> held;
    const auto& list = s.ranks[r];
    TimeNs rank_end = 0;
    for (size_t i = 0; i < list.size(); ++i) {
      const Instr& in = list[i];
      const InstrTiming ti = res.timing[r][i];
      rank_end = std::max(rank_end, ti.end);
      if (in.kind > InstrKind::kBackwardWeight) continue;
      const size_t v = static_cast<size_t>(s.virtual_stage(static_cast<int>(r), in.chunk));
      const ChunkMemory cm = v < p.chunks.size() ? p.chunks[v] : ChunkMemory{};
      const std::pair<int, int> key{in.microbatch, in.chunk};
      if (in.kind == InstrKind::kForward) {
        // EE-Tuning: the frozen backbone keeps nothing for backward; only exit heads do.
        const bool tuning = s.kind == ScheduleKind::kEETuning;
        const int64_t act = tuning ? 0 : in.has(kTruncated) ? cm.activation_partial_bytes : cm.activation_bytes;
        held[key] = {act, cm.exit_logits_bytes};
        deltas.push_back({ti.start, 1, act + cm.exit_logits_bytes, 1});
        continue;
      }
      auto it = held.find(key);
      if (it == held.end()) continue;
      auto& [act, logits] = it->second;
      if (in.kind == InstrKind::kBackwardInput) {  // W still needs the stored inputs
        deltas.push_back({ti.end, 0, -logits, 0});
        logits = 0;
        continue;
      }
      deltas.push_back({ti.end, 0, -(act + logits), -1});
      held.erase(it);
    }
    for (const auto& [key, bytes] : held) deltas.push_back({rank_end, 0, -(bytes.first + bytes.second), -1});
    std::stable_sort(deltas.begin(), deltas.end(),
                     [](const Delta& a, const Delta& b) { return std::tie(a.t, a.order) < std::tie(b.t, b.order); });
    RankMemory& rm = out.ranks[r];
    rm.static_bytes = rm.peak_bytes = stat;
    int64_t cur = stat;
    int flight = 0;
    out.samples.push_back({static_cast<int32_t>(r), 0, cur});
    for (size_t k = 0; k < deltas.size(); ++k) {
      cur += deltas[k].bytes;
      flight += deltas[k].flight;
      assert(cur >= stat && flight >= 0);
      rm.max_in_flight = std::max(rm.max_in_flight, flight);
      if (cur > rm.peak_bytes) {
        rm.peak_bytes = cur;
        rm.peak_time = deltas[k].t;
      }
      // One sample per instant: the value after all changes at that time.
      if (k + 1 == deltas.size() || deltas[k + 1].t != deltas[k].t) {
        if (out.samples.back().rank == static_cast<int32_t>(r) && out.samples.back().t == deltas[k].t)
          out.samples.back().bytes = cur;
        else
          out.samples.push_back({static_cast<int32_t>(r), deltas[k].t, cur});
      }
    }
  }
  return out;
}

}  // namespace eellm
