// PipelineRuntime: executes one pipeline rank's instruction list of the simulator's Schedule
// (sim/schedule.h) for real — forward/backward of its model chunks per microbatch, activation and
// gradient messages, exit losses on their own stage, DP and embedding-group gradient all-reduce,
// AdamW — and times every instruction into a Timeline (the simulator's type, sim/timeline.h).
//
// Tensor parallelism (Megatron): the ranks of comms.tensor run the same instruction list on their
// shards (exec/gpt/gpt.h, exec/gpt/tp_shard.h); activations between stages go between ranks of equal tp
// rank: full (B·T, C), or with parallel.sequence_parallel this rank's B·T/tp rows.
//
// Parameters: each rank allocates, in its tp-shard shapes (local_config), only the tensors its
// chunks read ("held"; the rest of params() stays empty): layers and exit heads of its chunks, wte
// where the embedding or a tied head lives, wpe on the first stage, the final norm/head on the
// last. Values: the full model initialised with the scenario's seed exactly as the single-process
// Trainer does, then this rank's shard. It reduces and updates the held tensors ("owned"; all but
// EE-Tuning's frozen backbone). The gradient norm counts tied wte copies once (stage 0) and
// tp-replicated tensors once (tp rank 0), summed over the optimizer group and the tp group.
//
// Instruction semantics beyond schedule.h:
//  - FWD keeps gradients (heads' backward at forward time, EE-LLM) only when this rank's list has
//    a backward for (microbatch, chunk); so microbatches whose backward the schedule drops (EE fill
//    cool-down, stages without exits in EE-Tuning) train nothing on this rank.
//  - kTruncated FWD runs the whole chunk (its deepest exit is in it) with the final head's weight 0.
//  - kTruncated BWD (EE-LLM's fill backward: no gradient from the next stage) starts at the chunk's
//    deepest exit (layers_to_deepest_exit, what the simulator charges): the layers above get no
//    work, and their gradient is zero either way.
//  - Communication progress (RuntimeOptions::progress_polling): the next RECV_ACT and the next
//    RECV_GRAD of the list are posted ahead; the chunks' progress hook (between the matmuls of a
//    forward and of a backward) polls the pipeline communicator's messages in flight and, around a
//    chunk's last backward with overlap_grad_reduce, the posted DP buckets. A RECV event is then the
//    wait for data still missing when the rank reaches it (zero if it is there), as simulated.
//  - ZB-H1: BWD_INPUT computes the input gradient (GptChunk::backward_input) and keeps the chunk
//    state; BWD_WEIGHT adds the deferred weight gradients of the backbone matmuls
//    (backward_weight) and frees it. A BWD_INPUT without a BWD_WEIGHT runs the whole backward.
//  - kExitOnly BWD (EE-Tuning) back-propagates nothing further: the exit heads' gradients were
//    accumulated in FWD; only exit-head tensors are updated, the backbone is frozen.
//  - AR-EMB in EE-Tuning is a no-op (tied weights are frozen with the backbone); the gradient norm
//    is reduced over the pipeline ranks that have an OPT (EE-Tuning: only stages with exits).
//  - DP gradient reduction and AdamW are exec/grad_sync's GradSync (built on first use from the
//    owned tensors): gradients in buckets of parallel.ddp_bucket_size, all-reduced, or with
//    parallel.use_distributed_optimizer reduce-scattered with AdamW on this DP rank's shard and the
//    parameters all-gathered (ZeRO-1). With overlap_grad_reduce each bucket is posted as a
//    non-blocking collective as soon as its gradients are final (Megatron): during a chunk's
//    last backward-type step of the iteration — a full BWD, or under ZB-H1 the last BWD_WEIGHT,
//    since BWD_INPUT leaves the matmul weight gradients out — GptChunk reports each layer when
//    its backward is done (top layer first), the chunk's exit heads and final head (whose
//    gradients are taken at forward time) are final when that step begins, and whatever is left
//    of the chunk (positions) right after it. ALLREDUCE_DP with kOverlapped then waits for all
//    of them after the rank's last backward-type step; IterationResult::dp_buckets says when each
//    bucket was posted. The tied wte gradient (summed by AR-EMB too, over several chunks) is
//    posted at AR-DP and all-reduced in full even under ZeRO-1.
// Loss weights per microbatch: exit_loss_weight_at(iter)/m and final_exit_weight/m (m = this
// replica's microbatches), gradients averaged over DP: the same objective as exec/trainer.
// Thread-safety: one runtime per process, used by the main thread.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "exec/backend/backend.h"
#include "exec/comm/comm.h"
#include "exec/gpt/gpt.h"
#include "exec/io/checkpoint.h"
#include "exec/train/grad_sync.h"
#include "model/layout.h"
#include "model/scenario.h"
#include "sim/schedule.h"
#include "sim/timeline.h"

namespace eellm::exec {

// Test hook: make one world rank fail at one instruction of its list.
enum class FaultKind { kNone, kExit, kHang };

struct RuntimeOptions {
  double recv_timeout_s = 60;  // execution.recv_timeout_s
  int num_threads = 1;         // CPU backend threads per rank
  bool record_timeline = true;
  // Drive the pipeline's messages while the rank computes: each receive is posted ahead (the next
  // one of each direction, Communicator::post_recv, as soon as the previous one is done), and the
  // communicator's sends and receives in flight are polled between the matmuls of every forward
  // and backward (Communicator::progress), so a large MPI message moves while both ranks compute
  // instead of when they next block. false: receives posted when reached, polls only between
  // instructions (the behaviour before; EELLM_COMM_PROGRESS=off under `eellm train`).
  bool progress_polling = true;
  FaultKind fault = FaultKind::kNone;
  int fault_world_rank = -1;
  int fault_instruction = 0;
};

struct IterationResult {
  int iteration = 0;              // 0-based index of the iteration just run
  std::vector<double> exit_loss;  // per exit: mean over the microbatches whose forward reached it
  double final_loss = 0;          // mean over the microbatches that reached the final head
  double total_loss = 0;          // final_exit_weight·final + Σ weight(iter)·exit
  double grad_norm = 0, lr = 0;   // 0 on ranks without an OPT (EE-Tuning stages without exits)
  Timeline timeline;              // all pipeline ranks (dp 0, tp 0) on world rank 0, else empty
  // This rank's DP gradient buckets (dp > 1): chunk (readiness group; -1: AR-DP), padded size and
  // when each was posted and found complete, in ns since the iteration's start (the timeline's clock).
  std::vector<GradSync::BucketTiming> dp_buckets;
};

// The schedule every rank of a run of `scenario` executes: make_schedule of the scenario alone (the
// very lists simulate() plays), checked. PipelineRuntime::create runs this.
StatusOr<Schedule> runtime_schedule(const Scenario& scenario);

class PipelineRuntime {
 public:
  // `comms` must outlive the runtime. Fails for layouts whose world size differs from the
  // communicator's.
  static StatusOr<std::unique_ptr<PipelineRuntime>> create(const Scenario& scenario, Communicators& comms,
                                                           const RuntimeOptions& options);

  // One training iteration. `inputs`/`targets`: this DP replica's m microbatches, each B·T tokens
  // (m·B·T values). Every rank of the job calls it; errors name the rank and the instruction.
  StatusOr<IterationResult> run_iteration(const std::vector<int32_t>& inputs, const std::vector<int32_t>& targets,
                                          int iteration);

  const Schedule& schedule() const { return schedule_; }
  const Layout& layout() const { return layout_; }
  const GptConfig& config() const { return cfg_; }            // this rank's tp shard of the model
  const GptConfig& full_config() const { return full_cfg_; }  // the whole model
  GptParams& params() { return params_; }                     // held tensors only, in tp-shard shapes
  const std::vector<Instr>& instructions() const { return schedule_.ranks[static_cast<size_t>(pp_rank_)]; }
  // Tensors this rank updates (checkpoint names), in GptParams::named() order.
  const std::vector<std::string>& owned_names() const { return owned_names_; }
  int pp_rank() const { return pp_rank_; }
  // The DP reduction / optimizer of this rank (created on first use); checkpoints read and write
  // its AdamW moments.
  StatusOr<GradSync*> grad_sync();
  void set_record_timeline(bool on) { opt_.record_timeline = on; }

 private:
  PipelineRuntime() = default;
  using Key = std::pair<int, int>;  // (microbatch, chunk)

  Status execute(const Instr& in, int index, const std::vector<int32_t>& inputs, const std::vector<int32_t>& targets,
                 const HeadWeights& w);
  // create(): checks the embedding group against the schedule's AR-EMB ranks, builds the
  // optimizer group and indexes the backward steps of this rank's list.
  Status bind_schedule(Communicators& comms);
  // run_iteration(): the pipeline of replica (dp 0, tp 0) sends its events to world rank 0.
  Status gather_timeline(IterationResult& r);
  // The timeline's event(s) of instruction `in`, run over [ev.t0, ev.t1) (sim/timeline.h's contract):
  // a compute step one backbone event; a SEND (its send got id `send_id`) from the posting to the
  // send's completion, added once the pipeline communicator reports it; others as timed.
  void record(const Instr& in, const TimelineEvent& ev, int64_t send_id);
  void take_send_completions();  // ends the SEND events whose sends were found complete
  Status finish_sends();         // waits for this iteration's sends; every SEND event ended

  // execute()'s handlers of the compute and point-to-point kinds.
  Status run_forward(const Instr& in, const std::vector<int32_t>& inputs, const std::vector<int32_t>& targets,
                     const HeadWeights& w);
  Status run_backward(const Instr& in, int index);  // BWD and BWD_INPUT
  Status send(const Instr& in);                     // SEND_ACT and SEND_GRAD
  Status missing(const Instr& in, const char* what) const;
  int virtual_stage(const Instr& in) const;
  Status reduce_data_parallel();
  // After instruction `index`: posts the buckets of chunks whose last backward it was (overlap).
  Status after_instruction(int index);
  // Overlap: when `index` is the last backward-type step of `chunk`, reports the chunk's heads
  // final and arms the chunk's per-layer hook (disarm_layer_hook after the step). False otherwise.
  StatusOr<bool> arm_layer_hook(int chunk, int index);
  Status disarm_layer_hook(int chunk);
  void progress();  // the chunks' progress hook: pipeline messages in flight, armed DP buckets
  // Posts the next RECV_ACT and RECV_GRAD at or after instruction `from` unless one is outstanding.
  Status post_receives(size_t from);
  Tensor& receive_buffer(const Instr& in);  // act_in_/grad_in_ of the RECV, allocated on first use
  Status optimizer_step(int iteration, IterationResult& r);
  int tag(int microbatch, bool grad, int chunk) const;
  size_t activation_floats() const;
  std::string where(const Instr& in, int index) const;

  Scenario scenario_;
  Layout layout_;
  Schedule schedule_;
  RuntimeOptions opt_;
  Communicators* comms_ = nullptr;
  int pp_rank_ = 0;
  GptConfig full_cfg_;  // the whole model
  GptConfig cfg_;       // this rank's tensor-parallel shard of it (local_config; = full_cfg_ at tp 1)
  std::unique_ptr<Backend> be_;
  std::vector<std::unique_ptr<GptChunk>> chunks_;  // per local chunk
  GptParams params_, grads_;
  std::vector<std::string> owned_names_;
  std::vector<std::pair<Tensor*, Tensor*>> owned_;  // (param, grad) pairs, named() order
  std::vector<bool> owned_counts_in_norm_;          // wte only on pp rank 0 (tied copies count once)
  std::unique_ptr<Communicator> trainers_;          // pipeline ranks with an OPT (all but EE-Tuning's exit-less)
  std::unique_ptr<GradSync> grad_sync_;   // see grad_sync(); owns the AdamW moments (ZeRO-1: this rank's DP shard)
  std::vector<int> chunk_last_backward_;  // per local chunk: index of its last backward-type step
  std::map<int, std::vector<size_t>> layer_sync_;   // backbone layer → its GradSync tensor indices
  std::vector<std::vector<size_t>> head_sync_;      // per local chunk: its heads' GradSync tensor indices
  Status hook_status_;                              // first failure inside the per-layer hook
  GradSync* polled_sync_ = nullptr;                 // DP buckets the progress hook polls (while armed)
  std::vector<GradSync::BucketTiming> dp_timings_;  // of this iteration's reduce()
  std::set<Key> has_backward_;
  std::set<Key> sends_act_;        // (microbatch, chunk) whose forward output is sent
  std::set<Key> has_weight_step_;  // BWD_WEIGHT steps of this rank (ZB-H1)
  int last_backward_index_ = -1;
  // Per iteration.
  std::map<Key, ChunkState> states_;
  std::map<Key, ChunkState> w_states_;  // between a BWD_INPUT and its BWD_WEIGHT
  std::map<Key, Tensor> act_in_, grad_in_, grad_out_;
  std::vector<double> loss_sum_, loss_count_;  // exits then final
  bool dp_pending_ = false;
  int dp_pending_index_ = -1;  // the overlapped ALLREDUCE_DP posted (dp_pending_)
  int64_t t_origin_ns_ = 0;
  std::vector<TimelineEvent> events_;
  std::map<int64_t, TimelineEvent> sends_in_flight_;  // SEND events by send id, until the send completes
  int posted_recv_[2] = {-1, -1};                     // the RECV_ACT / RECV_GRAD posted ahead (-1: none)
};

// `eellm train` under mpirun: every rank reads the same data, takes its DP replica's microbatches,
// runs `steps` iterations (−1 → training.train_iters) and rank 0 prints one line per iteration.
struct DistributedTrainOptions {
  int steps = -1;
  std::string data_path;     // token file; empty → training.data_path, else the default corpus
  std::string trace_path;    // measured trace of the last iteration (world rank 0 writes it)
  std::string metrics_path;  // JSONL per iteration (world rank 0)
  // Distributed checkpoints (exec/io/dist_checkpoint.h): saved every save_interval iterations (≤ 0:
  // only at the end) and after the last one; a resume may come from any parallel layout or from a
  // single-process checkpoint, and continues the iteration count, LR schedule and data position.
  std::string save_dir, resume_dir;
  CheckpointReadOptions resume_read;  // what the resume accepts (NaN/Inf weights only when asked)
  int save_interval = 0;
  RuntimeOptions runtime;
};
Status run_distributed_training(const Scenario& scenario, Communicator& world, const DistributedTrainOptions& options,
                                std::ostream* log);

// True when this build has MPI and the process was started by mpirun/srun: `eellm train` then
// takes the distributed path.
bool launched_with_mpi();
// The whole distributed `eellm train`: initialises MPI, runs run_distributed_training (rank 0
// logs to `log`), finalises. Returns the process exit code; errors are printed by world rank 0
// (configuration errors are the same on every rank), faults by the rank that sees them.
// runtime.num_threads ≤ 0 → the cores divided among the ranks of this node. With
// execution.device cuda in a CUDA build the ranks talk over NCCL (bootstrapped over MPI; an error
// names NCCL if it cannot start); EELLM_DIST_COMM=mpi keeps MPI with host copies.
int train_distributed_main(const Scenario& scenario, const DistributedTrainOptions& options, std::ostream& log);

}  // namespace eellm::exec
