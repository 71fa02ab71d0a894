// Builders of every pipeline schedule (see schedule.h for the instruction semantics).
#include "sim/schedule.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <map>
#include <sstream>
#include <tuple>

#include "model/cost_model.h"
#include "sim/sim_costs.h"

namespace eellm {
namespace {

std::string str(int v) {
  return std::to_string(v);
}

// Appends one rank's instructions, adding the receives and sends around each compute step.
class RankEmitter {
 public:
  RankEmitter(const ScheduleParams& p, int rank, std::vector<Instr>* out) : p_(p), rank_(rank), out_(out) {}

  int vs(int chunk) const { return chunk * p_.pp + rank_; }
  int last_vs() const { return p_.pp * p_.vp - 1; }
  int prev_rank() const { return (rank_ + p_.pp - 1) % p_.pp; }
  int next_rank() const { return (rank_ + 1) % p_.pp; }

  // Forward of `mb` on `chunk`: receive the input (unless first virtual stage), compute, send the
  // output (unless last virtual stage or truncated at an exit).
  void forward(int mb, int chunk, uint8_t flags = 0) {
    const int v = vs(chunk);
    if (v > 0) push(InstrKind::kRecvAct, mb, chunk, flags & kFill, prev_rank());
    push(InstrKind::kForward, mb, chunk, flags, -1);
    if (v < last_vs() && !(flags & kTruncated)) push(InstrKind::kSendAct, mb, chunk, flags & kFill, next_rank());
  }

  // Backward (or backward-input) of `mb` on `chunk`: receive the output gradient unless the last
  // virtual stage or truncated; send the input gradient unless first stage or `send` is false.
  void backward(int mb, int chunk, uint8_t flags = 0, bool send = true, InstrKind kind = InstrKind::kBackward) {
    const int v = vs(chunk);
    if (v < last_vs() && !(flags & kTruncated)) push(InstrKind::kRecvGrad, mb, chunk, flags & kFill, next_rank());
    push(kind, mb, chunk, flags, -1);
    if (v > 0 && send) push(InstrKind::kSendGrad, mb, chunk, flags & kFill, prev_rank());
  }

  void weight(int mb, int chunk) { push(InstrKind::kBackwardWeight, mb, chunk, 0, -1); }

  void push(InstrKind k, int mb, int chunk, uint8_t flags, int peer) {
    Instr in;
    in.kind = k;
    in.flags = flags;
    in.chunk = static_cast<int16_t>(chunk);
    in.microbatch = mb;
    in.peer = peer;
    out_->push_back(in);
  }

 private:
  const ScheduleParams& p_;
  int rank_;
  std::vector<Instr>* out_;
};

bool rank_has_exit(const ScheduleParams& p, int rank) {
  for (int c = 0; c < p.vp; ++c) {
    const size_t v = static_cast<size_t>(c * p.pp + rank);
    if (v < p.stage_has_exit.size() && p.stage_has_exit[v]) return true;
  }
  return false;
}

void build_1f1b(const ScheduleParams& p, int r, RankEmitter& e) {
  const int m = p.num_microbatches;
  const int w = std::min(p.pp - r - 1, m);
  for (int i = 0; i < w; ++i) e.forward(i, 0);
  for (int i = 0; i < m - w; ++i) {
    e.forward(w + i, 0);
    e.backward(i, 0);
  }
  for (int i = m - w; i < m; ++i) e.backward(i, 0);
}

// Megatron's interleaved schedule: virtual microbatch k runs chunk (k mod pp·vp)/pp (reversed for
// backward) on microbatch (k / (pp·vp))·pp + k mod pp.
void build_interleaved(const ScheduleParams& p, int r, RankEmitter& e) {
  const int m = p.num_microbatches, pp = p.pp, vp = p.vp;
  const int total = m * vp;
  int w = m == pp ? total : std::min((pp - r - 1) * 2 + (vp - 1) * pp, total);
  auto mb_of = [&](int k) { return (k / (pp * vp)) * pp + k % pp; };
  auto fchunk = [&](int k) { return (k % (pp * vp)) / pp; };
  auto bchunk = [&](int k) { return vp - 1 - fchunk(k); };
  for (int k = 0; k < w; ++k) e.forward(mb_of(k), fchunk(k));
  for (int i = 0; i < total - w; ++i) {
    e.forward(mb_of(w + i), fchunk(w + i));
    e.backward(mb_of(i), bchunk(i));
  }
  for (int k = total - w; k < total; ++k) e.backward(mb_of(k), bchunk(k));
}

// ZB-H1 (Qi et al. 2023): 1F1B order with B split into B (input) and W (weight); rank r defers
// its W passes by r microbatches so that the backward chain only carries B, and the deferred W
// fill the cool-down bubbles. Activations held stay within 1F1B's peak (pp on rank 0).
void build_zbh1(const ScheduleParams& p, int r, RankEmitter& e) {
  const int m = p.num_microbatches;
  const int w = std::min(p.pp - r - 1, m);
  const size_t defer = static_cast<size_t>(r);
  std::deque<int> pending;
  auto after_b = [&](int mb) {
    pending.push_back(mb);
    while (pending.size() > defer) {
      e.weight(pending.front(), 0);
      pending.pop_front();
    }
  };
  for (int i = 0; i < w; ++i) e.forward(i, 0);
  for (int i = 0; i < m - w; ++i) {
    e.forward(w + i, 0);
    e.backward(i, 0, 0, true, InstrKind::kBackwardInput);
    after_b(i);
  }
  for (int i = m - w; i < m; ++i) {
    e.backward(i, 0, 0, true, InstrKind::kBackwardInput);
    // In the cool-down each B leaves a gap on this rank: fill it with one deferred W.
    pending.push_back(i);
    e.weight(pending.front(), 0);
    pending.pop_front();
  }
  for (int mb : pending) e.weight(mb, 0);
}

struct FillPlan {
  int full = 0;                  // full microbatches M' = m − fill_warmup
  std::vector<int> partial_fwd;  // per rank: fill microbatches it may forward (EE-LLM's count)
  std::vector<int> partial_bwd;  // per rank: extra cool-down backwards it still runs
  std::vector<int> fill_last;    // per fill microbatch: deepest participating rank (-1: unused)
};

FillPlan plan_fill(const ScheduleParams& p, int fw, int fc) {
  FillPlan f;
  const int pp = p.pp;
  const double ratio = p.bwd_fwd_ratio;
  f.full = p.num_microbatches - fw;
  for (int r = 0; r < pp; ++r) {
    // EE-LLM: the warm-up bubble of rank r is ratio·(pp−r−1) − r forward-times long; each partial
    // microbatch costs 1 + ratio of them. The cool-down bubble is ratio·r.
    const double warm = ratio * (pp - r - 1) - r;
    const double cool = ratio * r;
    f.partial_fwd.push_back(warm <= 0 ? 0 : std::min(fw, static_cast<int>(warm / (1.0 + ratio))));
    f.partial_bwd.push_back(std::min(fc, static_cast<int>(cool / (1.0 + ratio))));
  }
  for (int i = 0; i < fw; ++i) {
    int reach = -1;
    for (int r = 0; r < pp; ++r)
      if (f.partial_fwd[static_cast<size_t>(r)] > i) reach = r;
    // Stop at the deepest rank that has an exit: work past it would train nothing.
    int last = -1;
    for (int r = 0; r <= reach; ++r)
      if (rank_has_exit(p, r)) last = r;
    f.fill_last.push_back(last);
  }
  return f;
}

void build_ee_fill(const ScheduleParams& p, const FillPlan& f, int r, RankEmitter& e) {
  const int mfull = f.full;
  const int fw = static_cast<int>(f.fill_last.size());
  const int w = std::min(p.pp - r, mfull);
  for (int i = 0; i < w; ++i) e.forward(i, 0);
  // Fill: forward the partial microbatches up to their deepest exit, then back-propagate the exit
  // losses in reverse order (EE-LLM's warm-up filling).
  for (int i = 0; i < fw; ++i) {
    const int last = f.fill_last[static_cast<size_t>(i)];
    if (r <= last) e.forward(mfull + i, 0, static_cast<uint8_t>(kFill | (r == last ? kTruncated : 0)));
  }
  for (int i = fw - 1; i >= 0; --i) {
    const int last = f.fill_last[static_cast<size_t>(i)];
    if (r <= last) e.backward(mfull + i, 0, static_cast<uint8_t>(kFill | (r == last ? kTruncated : 0)));
  }
  // Steady state and cool-down; the last microbatches' backward stops early (partial backward).
  const int cool_fill = p.num_fill_cooldown;
  auto runs_bwd = [&](int rank, int mb) { return mb < mfull - cool_fill + f.partial_bwd[static_cast<size_t>(rank)]; };
  for (int i = 0; i < mfull; ++i) {
    if (runs_bwd(r, i)) e.backward(i, 0, 0, r > 0 && runs_bwd(r - 1, i));
    if (w + i < mfull) e.forward(w + i, 0);
  }
}

// EE-LLM's released bubble filling (schedules.py, early_exit_forward_backward_pipelining_with_
// bubble_filling) hard-wires this ratio for each rank's share; --backward-forward-ratio only sets
// the fill counts (arguments.py).
constexpr double kReleasedFillRatio = 2.0;

// One compute step of a rank in the released code's order, before microbatch identities are known.
struct ReleasedOp {
  bool backward = false;
  int fwd = 0;        // index among the rank's forwards (a backward: the forward whose tensors it uses)
  int data = 0;       // forwards: index of the rank's data-iterator item
  bool recv = false;  // receives its input activation / output gradient first
  bool send = false;  // sends its output / input gradient after
  bool fill = false;
};

// Rank r's steps as the released code runs them (forward_only = false).
StatusOr<std::vector<ReleasedOp>> released_fill_ops(const ScheduleParams& p, int fw, int fc, int r) {
  const int pp = p.pp, m = p.num_microbatches, warm = pp - r;
  const double R = kReleasedFillRatio;
  auto share = [&](double bubble, int cap) { return std::min(cap, static_cast<int>(bubble / (1.0 + R))); };
  const double cur_warm = R * (warm - 1) - r;
  const int cur_pf = share(cur_warm, fw), next_pf = share(std::max(0.0, cur_warm - R - 1.0), fw);
  const int cur_pb = share(R * r, fc), pre_pb = share(std::max(0.0, R * r - R), fc);
  const int cooldown = std::max(0, warm - fc + cur_pb);
  const bool first = r == 0, last = r == pp - 1, has_exit = rank_has_exit(p, r);
  std::vector<ReleasedOp> ops;
  std::deque<int> stored;  // input_tensors: popped from the front
  int nf = 0;
  auto forward = [&](int data, bool send, bool fill) {
    ops.push_back({false, nf, data, !first, send && !last, fill});
    return nf++;
  };
  auto backward = [&](int fwd, bool recv, bool send, bool fill) { ops.push_back({true, fwd, 0, recv, send, fill}); };
  for (int i = 0; i < warm; ++i) stored.push_back(forward(i, true, false));
  const bool fills = has_exit || (r + 1 < pp && rank_has_exit(p, r + 1));
  if (!fills && cur_pf > 0)
    return Status::invalid_argument("EE-LLM's released bubble filling cannot run this exit placement: rank " + str(r) +
                                    " has no exit and neither has the next stage, yet its share of fill forwards is " +
                                    str(cur_pf) + " (the code pops fill tensors it never stored; set " +
                                    "parallel.fill_semantics: exit-truncated)");
  std::vector<int> warm_fills;
  for (int i = 0; i < fw; ++i)  // a stage that does not fill still skips the item (aligns the data)
    if (fills && i < cur_pf) warm_fills.push_back(forward(warm + i, i + 1 <= next_pf, true));
  for (int i = static_cast<int>(warm_fills.size()) - 1; i >= 0; --i) {
    const bool gets_grad = i + 1 <= next_pf;
    if (has_exit || gets_grad) backward(warm_fills[static_cast<size_t>(i)], gets_grad, !first, true);
  }
  for (int i = 0; i < m - warm - fw; ++i) {
    backward(stored.front(), !last, !first, false);
    stored.pop_front();
    stored.push_back(forward(warm + fw + i, true, false));
  }
  for (int i = 0; i < cooldown && !stored.empty(); ++i) {
    const bool partial = cooldown - i <= cur_pb - pre_pb;
    backward(stored.front(), !last, !first && !partial, false);
    stored.pop_front();
  }
  return ops;
}

// Microbatch identities of the released order: rank 0 names its forwards by data item; every other
// rank's k-th received activation (gradient) is the k-th one its neighbour sent. Fails where the
// neighbours' message counts differ (the released code would hang there).
Status build_released_fill(const ScheduleParams& p, int fw, int fc, Schedule& s) {
  const int pp = p.pp;
  std::vector<std::vector<ReleasedOp>> ops(static_cast<size_t>(pp));
  std::vector<std::vector<int>> fwd_id(static_cast<size_t>(pp)), bwd_id(static_cast<size_t>(pp));
  for (int r = 0; r < pp; ++r) {
    EELLM_ASSIGN_OR_RETURN(ops[static_cast<size_t>(r)], released_fill_ops(p, fw, fc, r));
  }
  auto sent = [&](int r, bool back) {
    std::vector<int> ids;
    const auto& list = ops[static_cast<size_t>(r)];
    // Only the ids of the wanted direction are read: the other direction's may not be assigned yet.
    for (size_t i = 0, f = 0, b = 0; i < list.size(); ++i) {
      const size_t at = list[i].backward ? b++ : f++;
      if (list[i].backward != back || !list[i].send) continue;
      ids.push_back(back ? bwd_id[static_cast<size_t>(r)][at] : fwd_id[static_cast<size_t>(r)][at]);
    }
    return ids;
  };
  auto mismatch = [&](int from, int to, bool back, size_t n_sent, size_t n_recv) {
    return Status::invalid_argument(
        std::string("EE-LLM's released bubble filling cannot run this exit placement: rank ") + str(from) + " sends " +
        str(static_cast<int>(n_sent)) + (back ? " gradients" : " activations") + " to rank " + str(to) +
        ", which receives " + str(static_cast<int>(n_recv)) + " (set parallel.fill_semantics: exit-truncated)");
  };
  for (int r = 0; r < pp; ++r) {
    const std::vector<int> in = r > 0 ? sent(r - 1, false) : std::vector<int>{};
    size_t k = 0;
    for (const ReleasedOp& op : ops[static_cast<size_t>(r)]) {
      if (op.backward) continue;
      if (r > 0 && k >= in.size()) return mismatch(r - 1, r, false, in.size(), k + 1);
      fwd_id[static_cast<size_t>(r)].push_back(r == 0 ? op.data : in[k++]);
    }
    if (k != in.size()) return mismatch(r - 1, r, false, in.size(), k);
  }
  for (int r = pp - 1; r >= 0; --r) {
    std::vector<int> in;
    if (r + 1 < pp) in = sent(r + 1, true);  // rank r+1's backward ids are final
    size_t k = 0;
    for (const ReleasedOp& op : ops[static_cast<size_t>(r)]) {
      if (!op.backward) continue;
      if (op.recv && k >= in.size()) return mismatch(r + 1, r, true, in.size(), k + 1);
      bwd_id[static_cast<size_t>(r)].push_back(op.recv ? in[k++]
                                                       : fwd_id[static_cast<size_t>(r)][static_cast<size_t>(op.fwd)]);
    }
    if (k != in.size()) return mismatch(r + 1, r, true, in.size(), k);
  }
  for (int r = 0; r < pp; ++r) {
    RankEmitter e(p, r, &s.ranks[static_cast<size_t>(r)]);
    size_t f = 0, b = 0;
    for (const ReleasedOp& op : ops[static_cast<size_t>(r)]) {
      const uint8_t fill = op.fill ? kFill : 0;
      if (!op.backward) {
        const int id = fwd_id[static_cast<size_t>(r)][f++];
        if (op.recv) e.push(InstrKind::kRecvAct, id, 0, fill, r - 1);
        e.push(InstrKind::kForward, id, 0, fill, -1);
        if (op.send) e.push(InstrKind::kSendAct, id, 0, fill, r + 1);
        continue;
      }
      const int id = bwd_id[static_cast<size_t>(r)][b++];
      // No gradient from the next stage: the exit losses alone start it.
      const uint8_t trunc = !op.recv && r < pp - 1 ? kTruncated : 0;
      if (op.recv) e.push(InstrKind::kRecvGrad, id, 0, fill, r + 1);
      e.push(InstrKind::kBackward, id, 0, static_cast<uint8_t>(fill | trunc), -1);
      if (op.send) e.push(InstrKind::kSendGrad, id, 0, fill, r - 1);
    }
  }
  return Status::ok();
}

// EE-Tuning: the backbone is frozen, so each microbatch goes forward through the pipeline and
// every rank with exits back-propagates its exit losses locally; no gradient crosses stages.
// With tuned_stages k < pp (EE-Tuning's --tune-exit-pipeline-parallel-size) only stages 0..k−1
// are loaded: stage k−1 sends nothing on and the stages after it run nothing.
void build_ee_tuning(const ScheduleParams& p, int r, RankEmitter& e) {
  const int active = p.tuned_stages > 0 ? std::min(p.tuned_stages, p.pp) : p.pp;
  if (r >= active) return;
  const bool has_exit = rank_has_exit(p, r);
  for (int i = 0; i < p.num_microbatches; ++i) {
    if (r + 1 < active) {
      e.forward(i, 0);
    } else {
      if (r > 0) e.push(InstrKind::kRecvAct, i, 0, 0, r - 1);
      e.push(InstrKind::kForward, i, 0, 0, -1);
    }
    if (has_exit) e.backward(i, 0, kExitOnly | kTruncated, false);
  }
}

void append_epilogue(const ScheduleParams& p, int r, bool trains, std::vector<Instr>& list) {
  if (!trains) return;
  auto make = [](InstrKind k, uint8_t flags) {
    Instr in;
    in.kind = k;
    in.flags = flags;
    return in;
  };
  if (p.dp_allreduce) {
    if (p.overlap_grad_reduce) {
      // Post the reduction just before the last backward-type step so that it overlaps with it.
      size_t pos = list.size();
      for (size_t i = list.size(); i-- > 0;) {
        const InstrKind k = list[i].kind;
        if (k == InstrKind::kBackward || k == InstrKind::kBackwardWeight || k == InstrKind::kBackwardInput) {
          pos = i;
          break;
        }
      }
      // Keep the receive that feeds that backward in front of the posted reduction.
      while (pos > 0 && list[pos - 1].is_recv()) --pos;
      list.insert(list.begin() + static_cast<std::ptrdiff_t>(pos), make(InstrKind::kAllReduceDP, kOverlapped));
    } else {
      list.push_back(make(InstrKind::kAllReduceDP, 0));
    }
  }
  if (p.embedding_group.size() >= 2 &&
      std::find(p.embedding_group.begin(), p.embedding_group.end(), r) != p.embedding_group.end())
    list.push_back(make(InstrKind::kAllReduceEmbedding, 0));
  list.push_back(make(InstrKind::kOptimizerStep, 0));
}

}  // namespace

size_t Schedule::num_instructions() const {
  size_t n = 0;
  for (const auto& r : ranks) n += r.size();
  return n;
}

int num_backbone_microbatches(const Schedule& s) {
  if (s.kind != ScheduleKind::kEEFill || s.ranks.empty()) return s.num_microbatches;
  // Virtual stage 0 is chunk 0 of rank 0; a full microbatch's backward ends there.
  std::vector<bool> full(static_cast<size_t>(s.num_microbatches), false);
  for (const Instr& in : s.ranks[0])
    if ((in.kind == InstrKind::kBackward || in.kind == InstrKind::kBackwardInput) && in.chunk == 0 && !in.has(kFill) &&
        in.microbatch >= 0 && in.microbatch < s.num_microbatches)
      full[static_cast<size_t>(in.microbatch)] = true;
  return static_cast<int>(std::count(full.begin(), full.end(), true));
}

int default_num_fill_microbatches(int pp, double bwd_fwd_ratio) {
  if (pp <= 1) return 0;
  return static_cast<int>(bwd_fwd_ratio * (pp - 1) / (1.0 + bwd_fwd_ratio));
}

StatusOr<Schedule> build_schedule(const ScheduleParams& params) {
  ScheduleParams p = params;
  const int pp = p.pp, vp = p.vp, m = p.num_microbatches;
  if (pp <= 0) return Status::invalid_argument("pipeline size (" + str(pp) + ") must be positive");
  if (vp <= 0) return Status::invalid_argument("virtual pipeline size (" + str(vp) + ") must be positive");
  if (m <= 0) return Status::invalid_argument("number of microbatches (" + str(m) + ") must be positive");
  if (!p.stage_has_exit.empty() && static_cast<int>(p.stage_has_exit.size()) != pp * vp)
    return Status::invalid_argument("stage_has_exit has " + str(static_cast<int>(p.stage_has_exit.size())) +
                                    " entries; expected pp × vp = " + str(pp * vp));
  if (vp > 1 && p.kind != ScheduleKind::kInterleaved1F1B)
    return Status::invalid_argument(std::string("virtual pipeline size ") + str(vp) +
                                    " needs the interleaved schedule, not " + to_string(p.kind));
  if (p.kind == ScheduleKind::kNoPipelining && pp != 1)
    return Status::invalid_argument("schedule none needs pipeline size 1 (got " + str(pp) + ")");
  if (p.kind == ScheduleKind::kInterleaved1F1B && (m % pp != 0 || m < pp))
    return Status::invalid_argument("number of microbatches (" + str(m) +
                                    ") must be a positive multiple of pipeline size (" + str(pp) +
                                    ") for the interleaved schedule");

  Schedule s;
  s.kind = p.kind;
  s.pp = pp;
  s.vp = vp;
  s.num_microbatches = m;
  s.bwd_fwd_ratio = p.bwd_fwd_ratio;
  s.ranks.resize(static_cast<size_t>(pp));

  FillPlan fill;
  if (p.kind == ScheduleKind::kEEFill) {
    if (!(p.bwd_fwd_ratio > 0)) return Status::invalid_argument("bwd_fwd_ratio must be positive for bubble filling");
    const int def = default_num_fill_microbatches(pp, p.bwd_fwd_ratio);
    if (p.num_fill_warmup < 0) p.num_fill_warmup = def;
    if (p.num_fill_cooldown < 0) p.num_fill_cooldown = def;
    // Without any exit a fill microbatch trains nothing and a truncated cool-down backward only
    // drops backbone gradients (EE-LLM's code would still skip their data): no filling at all, so
    // ee-fill without exits is exactly 1F1B.
    bool any_exit = false;
    for (int r = 0; r < pp; ++r) any_exit = any_exit || rank_has_exit(p, r);
    if (!any_exit) p.num_fill_warmup = p.num_fill_cooldown = 0;
    if (m < pp + p.num_fill_warmup)
      return Status::invalid_argument("bubble filling needs num_microbatches (" + str(m) + ") ≥ pipeline size (" +
                                      str(pp) + ") + num_fill_warmup_microbatches (" + str(p.num_fill_warmup) + ")");
    if (p.num_fill_cooldown > m - p.num_fill_warmup)
      return Status::invalid_argument("num_fill_cooldown_microbatches (" + str(p.num_fill_cooldown) +
                                      ") exceeds the full microbatches (" + str(m - p.num_fill_warmup) + ")");
    s.num_fill_warmup = p.num_fill_warmup;
    s.num_fill_cooldown = p.num_fill_cooldown;
    fill = plan_fill(p, p.num_fill_warmup, p.num_fill_cooldown);
    if (p.fill_semantics == FillSemantics::kEELLM && (p.num_fill_warmup > 0 || p.num_fill_cooldown > 0))
      EELLM_RETURN_IF_ERROR(build_released_fill(p, p.num_fill_warmup, p.num_fill_cooldown, s));
    else
      p.fill_semantics = FillSemantics::kExitTruncated;  // no fills: plain 1F1B either way
  }

  for (int r = 0; r < pp; ++r) {
    std::vector<Instr>& list = s.ranks[static_cast<size_t>(r)];
    RankEmitter e(p, r, &list);
    bool trains = true;
    switch (p.kind) {
      case ScheduleKind::kNoPipelining:
        for (int i = 0; i < m; ++i) {
          e.forward(i, 0);
          e.backward(i, 0);
        }
        break;
      case ScheduleKind::kGPipe:
        for (int i = 0; i < m; ++i) e.forward(i, 0);
        for (int i = 0; i < m; ++i) e.backward(i, 0);
        break;
      case ScheduleKind::k1F1B:
      case ScheduleKind::kEE1F1B:
        build_1f1b(p, r, e);
        break;
      case ScheduleKind::kInterleaved1F1B:
        build_interleaved(p, r, e);
        break;
      case ScheduleKind::kZBH1:
        build_zbh1(p, r, e);
        break;
      case ScheduleKind::kEEFill:
        if (p.fill_semantics == FillSemantics::kExitTruncated) build_ee_fill(p, fill, r, e);
        break;
      case ScheduleKind::kEETuning:
        build_ee_tuning(p, r, e);
        trains = rank_has_exit(p, r) && (p.tuned_stages <= 0 || r < p.tuned_stages);
        break;
    }
    append_epilogue(p, r, trains, list);
  }
  return s;
}

std::vector<int> embedding_group_ranks(const Scenario& scenario, const Layout& layout) {
  std::vector<int> g;
  if (layout.pp <= 1) return g;
  auto add = [&](int r) {
    if (std::find(g.begin(), g.end(), r) == g.end()) g.push_back(r);
  };
  if (!scenario.model.untie_embeddings_and_output_weights) {
    add(0);
    add(layout.pp - 1);
  }
  if (!scenario.exits.untie_exit_output_weights && !layout.exits.empty()) {
    add(0);
    for (const ExitPlacement& x : layout.exits) add(x.stage);
  }
  std::sort(g.begin(), g.end());
  if (g.size() < 2) g.clear();
  return g;
}

StatusOr<Schedule> make_schedule(const Scenario& scenario, const Layout& layout) {
  ScheduleParams p;
  p.kind = layout.schedule;
  p.pp = layout.pp;
  p.vp = layout.vp;
  p.num_microbatches = layout.num_microbatches;
  p.stage_has_exit.assign(static_cast<size_t>(layout.num_virtual_stages()), false);
  for (const ExitPlacement& x : layout.exits) p.stage_has_exit[static_cast<size_t>(x.virtual_stage)] = true;
  p.num_fill_warmup = scenario.parallel.num_fill_warmup_microbatches;
  p.num_fill_cooldown = scenario.parallel.num_fill_cooldown_microbatches;
  // Only bubble filling uses the ratio (fill counts and each rank's share of them); the cost model
  // is not free, so other schedules skip it.
  // EE-LLM's --backward-forward-ratio (parallel.backward_forward_ratio) when given.
  if (p.kind == ScheduleKind::kEEFill)
    p.bwd_fwd_ratio = scenario.parallel.backward_forward_ratio > 0
                          ? scenario.parallel.backward_forward_ratio
                          : backward_forward_ratio(sim_costs_from_model(CostModel(scenario, layout)));
  p.fill_semantics = scenario.parallel.fill_semantics;
  if (p.kind == ScheduleKind::kEETuning) p.tuned_stages = scenario.parallel.tune_exit_pipeline_parallel_size;
  p.dp_allreduce = layout.dp > 1;
  p.overlap_grad_reduce = scenario.parallel.overlap_grad_reduce;
  p.embedding_group = embedding_group_ranks(scenario, layout);
  if (p.tuned_stages > 0) {  // stages EE-Tuning does not load take no part
    std::erase_if(p.embedding_group, [&](int r) { return r >= p.tuned_stages; });
    if (p.embedding_group.size() < 2) p.embedding_group.clear();
  }
  if (p.kind == ScheduleKind::kNoPipelining && p.pp > 1) p.kind = ScheduleKind::k1F1B;
  auto s = build_schedule(p);
  if (!s.is_ok()) return s.status().with_context("schedule " + std::string(to_string(p.kind)));
  return s;
}

StatusOr<MessageMap> match_messages(const Schedule& s) {
  MessageMap mm;
  mm.message_of.resize(s.ranks.size());
  // Key: (receiving rank, grad?, microbatch, receiving chunk) in a flat table (no allocation per
  // message: the engine matches every run). The receiving chunk of an activation sent from
  // chunk c on rank r is the chunk of virtual stage c·pp + r + 1.
  const int pp = s.pp, vp = s.vp;
  int max_mb = 0;
  for (const auto& list : s.ranks)
    for (const Instr& in : list) max_mb = std::max(max_mb, static_cast<int>(in.microbatch));
  const size_t nmb = static_cast<size_t>(max_mb) + 1;
  auto key = [&](int dst_rank, bool grad, int mb, int chunk) {
    return ((static_cast<size_t>(dst_rank) * 2 + (grad ? 1 : 0)) * nmb + static_cast<size_t>(mb)) *
               static_cast<size_t>(vp) +
           static_cast<size_t>(chunk);
  };
  std::vector<int64_t> pending(static_cast<size_t>(pp) * 2 * nmb * static_cast<size_t>(vp), -1);  // rank << 32 | index
  auto where = [&](size_t r, size_t i) {
    return "rank " + str(static_cast<int>(r)) + " instruction " + str(static_cast<int>(i)) + " (" +
           to_string(s.ranks[r][i]) + ")";
  };
  for (size_t r = 0; r < s.ranks.size(); ++r) {
    mm.message_of[r].assign(s.ranks[r].size(), -1);
    for (size_t i = 0; i < s.ranks[r].size(); ++i) {
      const Instr& in = s.ranks[r][i];
      if (!in.is_send()) continue;
      const int v = in.chunk * pp + static_cast<int>(r);
      const bool grad = in.kind == InstrKind::kSendGrad;
      const int dst_v = grad ? v - 1 : v + 1;
      if (dst_v < 0 || dst_v >= s.num_virtual_stages() || dst_v % pp != in.peer || in.microbatch < 0)
        return Status::invalid_argument(where(r, i) + " sends to a stage that does not exist or to the wrong peer");
      int64_t& slot = pending[key(in.peer, grad, in.microbatch, dst_v / pp)];
      if (slot >= 0) return Status::invalid_argument(where(r, i) + " duplicates an earlier send");
      slot = (static_cast<int64_t>(r) << 32) | static_cast<int64_t>(i);
    }
  }
  size_t sends = 0;
  for (int64_t v : pending) sends += v >= 0;
  mm.messages.reserve(sends);
  for (size_t r = 0; r < s.ranks.size(); ++r) {
    for (size_t i = 0; i < s.ranks[r].size(); ++i) {
      const Instr& in = s.ranks[r][i];
      if (!in.is_recv()) continue;
      if (in.microbatch < 0 || in.chunk < 0 || in.chunk >= vp || in.peer < 0 || in.peer >= pp)
        return Status::invalid_argument(where(r, i) + " names no valid microbatch, chunk or peer");
      int64_t& slot = pending[key(static_cast<int>(r), in.kind == InstrKind::kRecvGrad, in.microbatch, in.chunk)];
      if (slot < 0 || static_cast<int>(slot >> 32) != in.peer)
        return Status::invalid_argument(where(r, i) + " has no matching send on rank " + str(in.peer));
      MessageMap::Message msg{static_cast<int>(slot >> 32), static_cast<int>(slot & 0xffffffff), static_cast<int>(r),
                              static_cast<int>(i)};
      const int id = static_cast<int>(mm.messages.size());
      mm.messages.push_back(msg);
      mm.message_of[r][i] = id;
      mm.message_of[static_cast<size_t>(msg.src_rank)][static_cast<size_t>(msg.src_index)] = id;
      slot = -1;
    }
  }
  for (int64_t v : pending)
    if (v >= 0)
      return Status::invalid_argument(where(static_cast<size_t>(v >> 32), static_cast<size_t>(v & 0xffffffff)) +
                                      " is never received");
  return mm;
}

Status check_schedule(const Schedule& s) {
  auto mm = match_messages(s);
  if (!mm.is_ok()) return mm.status();
  for (size_t r = 0; r < s.ranks.size(); ++r) {
    std::map<std::pair<int, int>, int> state;  // (mb, chunk) → 1 forwarded, 2 input-grad done
    for (size_t i = 0; i < s.ranks[r].size(); ++i) {
      const Instr& in = s.ranks[r][i];
      const std::pair<int, int> key{in.microbatch, in.chunk};
      auto where = [&] {
        return "rank " + str(static_cast<int>(r)) + " instruction " + str(static_cast<int>(i)) + " (" + to_string(in) +
               ")";
      };
      switch (in.kind) {
        case InstrKind::kForward:
          if (state.count(key)) return Status::invalid_argument(where() + " runs the forward of a microbatch twice");
          state[key] = 1;
          break;
        case InstrKind::kBackward:
        case InstrKind::kBackwardInput:
          if (state[key] != 1) return Status::invalid_argument(where() + " runs a backward before its forward");
          state[key] = 2;
          break;
        case InstrKind::kBackwardWeight:
          if (state[key] != 2) return Status::invalid_argument(where() + " runs W before its B");
          state[key] = 3;
          break;
        case InstrKind::kSendAct:
        case InstrKind::kRecvAct:
        case InstrKind::kSendGrad:
        case InstrKind::kRecvGrad:
        case InstrKind::kAllReduceDP:
        case InstrKind::kAllReduceEmbedding:
        case InstrKind::kOptimizerStep:
          break;
      }
    }
  }
  return Status::ok();
}

const char* to_string(InstrKind k) {
  switch (k) {
    case InstrKind::kForward:
      return "FWD";
    case InstrKind::kBackward:
      return "BWD";
    case InstrKind::kBackwardInput:
      return "BWD_INPUT";
    case InstrKind::kBackwardWeight:
      return "BWD_WEIGHT";
    case InstrKind::kSendAct:
      return "SEND_ACT";
    case InstrKind::kRecvAct:
      return "RECV_ACT";
    case InstrKind::kSendGrad:
      return "SEND_GRAD";
    case InstrKind::kRecvGrad:
      return "RECV_GRAD";
    case InstrKind::kAllReduceDP:
      return "ALLREDUCE_DP";
    case InstrKind::kAllReduceEmbedding:
      return "ALLREDUCE_EMBEDDING";
    case InstrKind::kOptimizerStep:
      return "OPTIMIZER_STEP";
  }
  return "?";
}

std::string to_string(const Instr& in) {
  std::string s;
  if (in.has(kFill)) s += "FILL-";
  switch (in.kind) {
    case InstrKind::kForward:
      s += "F";
      break;
    case InstrKind::kBackward:
      s += in.has(kExitOnly) ? "EXIT-B" : "B";
      break;
    case InstrKind::kBackwardInput:
      s += "BI";
      break;
    case InstrKind::kBackwardWeight:
      s += "W";
      break;
    case InstrKind::kSendAct:
      s += "SEND-ACT";
      break;
    case InstrKind::kRecvAct:
      s += "RECV-ACT";
      break;
    case InstrKind::kSendGrad:
      s += "SEND-GRAD";
      break;
    case InstrKind::kRecvGrad:
      s += "RECV-GRAD";
      break;
    case InstrKind::kAllReduceDP:
      return in.has(kOverlapped) ? "AR-DP(overlap)" : "AR-DP";
    case InstrKind::kAllReduceEmbedding:
      return "AR-EMB";
    case InstrKind::kOptimizerStep:
      return "OPT";
  }
  s += std::to_string(in.microbatch);
  if (in.chunk > 0) s += ".c" + std::to_string(in.chunk);
  if (in.is_send()) s += "→" + std::to_string(in.peer);
  if (in.is_recv()) s += "←" + std::to_string(in.peer);
  if (in.has(kTruncated) && !in.has(kExitOnly)) s += "*";
  return s;
}

std::string format_schedule(const Schedule& s) {
  std::ostringstream os;
  for (size_t r = 0; r < s.ranks.size(); ++r) {
    os << "rank " << r << ":";
    for (const Instr& in : s.ranks[r]) os << ' ' << to_string(in);
    os << '\n';
  }
  return os.str();
}

}  // namespace eellm
