// Shared by the checkpoint tests and the checkpoint fuzz harnesses: a whole (unsharded) model and
// its AdamW moments as the distributed save takes them, saved by a 1-process world.
#pragma once

#include <string>
#include <vector>

#include "exec/comm/comm.h"
#include "exec/gpt/optimizer.h"
#include "exec/io/dist_checkpoint.h"

namespace eellm::exec::testing {

// Every tensor of `p` whole, with all of its moments in `opt` (pointers into both: they must outlive the result).
struct WholePieces {
  std::vector<CkptParam> params;
  std::vector<CkptMoments> moments;
};
inline WholePieces whole_pieces(GptParams& p, AdamW& opt) {
  WholePieces w;
  auto P = p.named(), M = opt.m().named(), V = opt.v().named();
  for (size_t i = 0; i < P.size(); ++i) {
    w.params.push_back({P[i].first, P[i].second->shape, ShardSpec{}, P[i].second});
    w.moments.push_back({P[i].first, P[i].second->shape, ShardSpec{}, P[i].second->shape, 0, P[i].second->numel(),
                         M[i].second->ptr(), V[i].second->ptr()});
  }
  return w;
}

// `p` and `opt` saved as a distributed checkpoint (manifest.json + one rank file) by a 1-process world.
inline Status save_self_distributed(const std::string& dir, const Scenario& s, const GptConfig& cfg, GptParams& p,
                                    AdamW& opt, const TrainProgress& prog) {
  const WholePieces w = whole_pieces(p, opt);
  auto world = make_self_communicator("world");
  return save_distributed_checkpoint(dir, *world, s, cfg, CkptLayout{}, w.params, w.moments, prog, 10);
}

}  // namespace eellm::exec::testing
