// Schedule: per pipeline rank, the ordered list of instructions one training iteration executes.
// The single source of truth for both interpreters (DESIGN.md): sim/engine plays the lists on
// modelled devices, exec/runtime executes them for real. Tensor- and data-parallel replicas of a
// pipeline rank execute the same list; DP gradient reduction and the embedding-group all-reduce are
// instructions of the list.
//
// Semantics every interpreter follows:
//  - Instructions of one rank run in list order on its compute stream.
//  - SEND_* is non-blocking (the transfer runs on a communication stream); RECV_* blocks until the
//    matching SEND's data has arrived. A send and its receive are matched by
//    (kind act|grad, microbatch, receiving virtual stage), never by position.
//  - FWD/BWD of microbatch i on chunk c consume/produce the activations of virtual stage
//    c·pp + rank. Exit losses of the chunk's exits are computed in FWD and back-propagated in BWD,
//    summed with the gradient received from the next virtual stage (EE-LLM).
//  - kFill: a bubble-filling microbatch (EE-LLM): it trains only stages up to the deepest exit it
//    reaches. kTruncated on FWD: the forward stops at the deepest exit of this chunk (nothing is sent).
//    kTruncated on BWD: no gradient arrives from the next stage; only local exit losses start it.
//  - kEEFill follows EE-LLM's released code (megatron/core/pipeline_parallel/schedules.py,
//    early_exit_forward_backward_pipelining_with_bubble_filling), where the fill microbatches are
//    part of the iteration's num_microbatches m, not extra data: microbatches 0..m−f_w−1 are full
//    ones (the loss is divided by m − f_w there), m−f_w..m−1 are the warm-up fills (partial forward
//    up to their deepest exit, then partial backward), and with f_c cool-down fills the backward of
//    the last full microbatches stops before the first stages (rank r runs m − f_w − f_c + its
//    partial-backward count of backwards). So only the microbatches counted by
//    num_backbone_microbatches() train the whole backbone; sim/simulate counts throughput on those.
//    Without any exit there is nothing to fill: both counts are 0 and the lists equal 1F1B's.
//    FillSemantics::kEELLM (the default) replays that code's control flow rank by rank: rank r
//    forwards pp − r microbatches before filling, a fill forward runs the whole stage (no
//    kTruncated) and is not sent when the next stage does not fill, stage 0 forwards one more fill
//    than any exit uses, and the microbatch a stage fills is the one whose activation arrives next
//    (EE-LLM's p2p is untagged, so identities follow message order). The per-rank shares use the
//    ratio 2 that the released code hard-wires (its --backward-forward-ratio only sets the counts).
//    Where that code would hang or mismatch its messages (e.g. exits on stages 0 and 2 of 4), the
//    build fails naming the ranks. FillSemantics::kExitTruncated is eellm's variant: fill
//    microbatches are m−f_w..m−1 on every stage and stop at their deepest exit.
//  - kExitOnly (EE-Tuning): BWD back-propagates only through the exit heads (frozen backbone).
//  - ALLREDUCE_* are collectives posted on a communication stream; OPTIMIZER_STEP waits for all of
//    the rank's posted collectives. kOverlapped on ALLREDUCE_DP: posted before the rank's last
//    backward so that it overlaps with it (overlap_grad_reduce).
// Invariants (check_schedule): every send has exactly one receive on the peer and vice versa; on a
// rank each microbatch's FWD precedes its BWD/BWD_INPUT, BWD_INPUT precedes BWD_WEIGHT.
// Value type, immutable once built; safe to share across threads for reading.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/layout.h"
#include "model/scenario.h"
#include "model/status.h"

namespace eellm {

enum class InstrKind : uint8_t {
  kForward,
  kBackward,        // input + weight gradients in one pass
  kBackwardInput,   // zero-bubble B: gradient w.r.t. the input only
  kBackwardWeight,  // zero-bubble W: gradient w.r.t. the weights
  kSendAct,
  kRecvAct,
  kSendGrad,
  kRecvGrad,
  kAllReduceDP,         // gradient reduction over the data-parallel group (reduce-scatter with ZeRO-1)
  kAllReduceEmbedding,  // tied word-embedding gradients over the embedding group
  kOptimizerStep,
};
inline constexpr int kNumInstrKinds = 11;

// Instr::flags bits.
enum InstrFlag : uint8_t {
  kFill = 1,        // bubble-filling microbatch (EE-LLM)
  kTruncated = 2,   // FWD stops at this chunk's deepest exit / BWD starts from exit losses only
  kExitOnly = 4,    // EE-Tuning: only exit heads are trained
  kOverlapped = 8,  // ALLREDUCE_DP overlapped with the following backward
};

struct Instr {
  InstrKind kind = InstrKind::kForward;
  uint8_t flags = 0;
  int16_t chunk = 0;        // model chunk on this rank (0..vp-1)
  int32_t microbatch = -1;  // -1 for collectives and the optimizer step
  int32_t peer = -1;        // pipeline rank at the other end of a send/recv, else -1

  bool has(InstrFlag f) const { return (flags & f) != 0; }
  bool is_compute() const { return kind <= InstrKind::kBackwardWeight || kind == InstrKind::kOptimizerStep; }
  bool is_send() const { return kind == InstrKind::kSendAct || kind == InstrKind::kSendGrad; }
  bool is_recv() const { return kind == InstrKind::kRecvAct || kind == InstrKind::kRecvGrad; }
  bool is_collective() const { return kind == InstrKind::kAllReduceDP || kind == InstrKind::kAllReduceEmbedding; }
  friend bool operator==(const Instr&, const Instr&) = default;
};

struct Schedule {
  ScheduleKind kind = ScheduleKind::k1F1B;
  int pp = 1, vp = 1;
  int num_microbatches = 1;               // data microbatches per iteration per DP replica (incl. fill ones)
  int num_fill_warmup = 0;                // EE fill: microbatches that run only to the exits (taken from m, as EE-LLM)
  int num_fill_cooldown = 0;              // EE fill: last microbatches whose backward stops before rank 0
  double bwd_fwd_ratio = 2.0;             // the ratio the fill counts were derived with
  std::vector<std::vector<Instr>> ranks;  // [pipeline rank] → instruction list

  int num_virtual_stages() const { return pp * vp; }
  int virtual_stage(int rank, int chunk) const { return chunk * pp + rank; }
  size_t num_instructions() const;
};

// Everything a builder needs, independent of a Scenario (tests build schedules directly).
struct ScheduleParams {
  ScheduleKind kind = ScheduleKind::k1F1B;
  int pp = 1, vp = 1;
  int num_microbatches = 1;
  // Per virtual stage (pp·vp entries, or empty = no exits): whether the chunk holds an exit head.
  std::vector<bool> stage_has_exit;
  int num_fill_warmup = -1;  // -1 → EE-LLM's default from pp and bwd_fwd_ratio
  int num_fill_cooldown = -1;
  double bwd_fwd_ratio = 2.0;
  FillSemantics fill_semantics = FillSemantics::kEELLM;  // kEEFill: whose fill order to build
  int tuned_stages = 0;       // kEETuning: stages loaded and run (--tune-exit-pipeline-parallel-size); 0 → pp
  bool dp_allreduce = false;  // emit ALLREDUCE_DP (data_parallel_size > 1)
  bool overlap_grad_reduce = false;
  std::vector<int> embedding_group;  // pipeline ranks of the tied-embedding group (< 2 → none)
};

// Microbatches per DP replica whose forward and backward run through every virtual stage (they
// train the whole backbone): m, except for kEEFill where warm-up fills and the microbatches whose
// cool-down backward is truncated do not count. EE-Tuning: m (the backbone is frozen by design).
int num_backbone_microbatches(const Schedule& schedule);

// EE-LLM's default fill counts: int(ratio·(pp−1) / (1 + ratio)).
int default_num_fill_microbatches(int pp, double bwd_fwd_ratio);

// Builds the schedule; errors (Status) name the parameter and value for impossible combinations
// (e.g. interleaved with m not divisible by pp, fill counts larger than the microbatches allow).
StatusOr<Schedule> build_schedule(const ScheduleParams& params);

// The schedule of a scenario — a function of the scenario alone, so the simulator (simulate()) and
// the executor (exec/train/runtime) build the same lists: parameters from the derived layout
// (exits per chunk, embedding group, fill overrides parallel.num_fill_*); EE-fill counts not given
// there, and each rank's share of them, follow EE-LLM from the backward/forward ratio of the
// scenario's own cost model (backward_forward_ratio(sim_costs_from_model(CostModel(scenario,
// layout))), sim/simulate.h) — the costs simulate() plays the schedule with.
StatusOr<Schedule> make_schedule(const Scenario& scenario, const Layout& layout);

// Pipeline ranks holding a tied word embedding: first, last and every rank with a tied exit head
// (EE-LLM: tied exit heads keep an embedding copy). Empty when nothing is tied or only one rank
// holds a copy.
std::vector<int> embedding_group_ranks(const Scenario& scenario, const Layout& layout);

// Matching of sends and receives: for each rank and instruction index, the index of the message
// (shared by the send and its receive), or -1 for non-p2p instructions.
struct MessageMap {
  std::vector<std::vector<int32_t>> message_of;  // [rank][instr]
  struct Message {
    int src_rank = 0, src_index = 0, dst_rank = 0, dst_index = 0;
  };
  std::vector<Message> messages;
};
// Fails (invalid argument naming rank, instruction and key) on a send without receive, a receive
// without send, or a duplicated key.
StatusOr<MessageMap> match_messages(const Schedule& schedule);

// All invariants listed above; the first violation as a Status naming rank and instruction.
Status check_schedule(const Schedule& schedule);

const char* to_string(InstrKind kind);
// "F3", "B3", "BI3", "W3", "SEND-ACT3→1", "RECV-GRAD3←2", "AR-DP", "AR-EMB", "OPT", with ".c1" for
// chunk > 0 and a "FILL-" prefix / "*" suffix (truncated) where flagged.
std::string to_string(const Instr& instr);
// One line per rank: "rank 0: F0 SEND-ACT0→1 F1 ...".
std::string format_schedule(const Schedule& schedule);

}  // namespace eellm
